"""The tables the partnership figures read: the domains' own (hub/meetings, hub/joint_visits,
hub/protection; their names are the shared contract of issue 13), as SQLAlchemy tables, so that
a time binds and reads as UTC on SQLite as on PostgreSQL."""

from __future__ import annotations

from typing import Any

from hub.children.models import Child
from hub.joint_visits.models import JointVisitRequest
from hub.meetings.models import Meeting, MeetingInvitation
from hub.protection.models import PoliceProtection


def _table(model: type[Any]) -> Any:
    return model.__table__


meeting = _table(Meeting)
meeting_invitation = _table(MeetingInvitation)
joint_visit_request = _table(JointVisitRequest)
police_protection = _table(PoliceProtection)
child = _table(Child)
