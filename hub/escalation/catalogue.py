"""The domains whose stages can be escalated: importing each module registers its declaration."""

from hub.closures import escalation as closures
from hub.missing import escalation as missing
from hub.vetting import escalation as vetting

DECLARING_MODULES = (missing, vetting, closures)
