"""The domains whose stages can be escalated: importing each module registers its declaration."""

from hub.closures import escalation as closures
from hub.joint_visits import escalation as joint_visits
from hub.meetings import escalation as meetings
from hub.missing import escalation as missing
from hub.vetting import escalation as vetting

DECLARING_MODULES = (missing, meetings, joint_visits, vetting, closures)
