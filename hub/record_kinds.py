"""Every record kind the timeliness report measures: importing this module declares them all.

Each domain declares its own (`hub/<domain>/timeliness.py`, `hub.timeliness.kinds`); the
entry points that report on every kind (the schema, the CLI, the migrations) import this list,
so that no timeliness module names a domain.
"""

from hub.incidents import timeliness as incidents
from hub.investigations import timeliness as investigations
from hub.joint_visits import timeliness as joint_visits
from hub.meetings import timeliness as meetings
from hub.missing import timeliness as missing
from hub.protection import timeliness as protection

__all__ = ["incidents", "investigations", "joint_visits", "meetings", "missing", "protection"]
