"""The domains whose stages can be escalated: importing each module registers its declaration."""

from hub.missing import escalation as missing

DECLARING_MODULES = (missing,)
