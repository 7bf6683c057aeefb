"""Import every table so that `SQLModel.metadata` is complete (Alembic and tests rely on it),
and every record kind, whose tables the stage facts are derived from."""

from sqlmodel import SQLModel

import hub.record_kinds  # noqa: F401 - the migrations derive every kind's stage facts
from hub.access.models import CouncilReach, OAuthClient
from hub.audit.models import (
    AuditChainHead,
    AuditEvent,
    AuditEventChild,
    AuditEventRecipient,
    AuditEventRecord,
    AuditIndexProgress,
)
from hub.changes.models import RecordChange
from hub.children.models import Child, ChildLink, ChildReference
from hub.closures.models import ClosureReview
from hub.escalation.models import Escalation
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationTransition,
)
from hub.joint_visits.models import JointVisitRequest
from hub.limits.models import RateLimit
from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation
from hub.missing.models import MissingEpisode
from hub.protection.models import PoliceProtection
from hub.reference.models import ForceCoverage, Organisation
from hub.timeliness.facts import StageFact
from hub.timeliness.models import RecordReceipt
from hub.vetting.models import VettingCheck
from hub.webhooks.models import WebhookDelivery, WebhookEndpoint

metadata = SQLModel.metadata

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "AuditEventChild",
    "AuditEventRecipient",
    "AuditEventRecord",
    "AuditIndexProgress",
    "Child",
    "ChildLink",
    "ChildReference",
    "ClosureReview",
    "CouncilReach",
    "Escalation",
    "ForceCoverage",
    "Incident",
    "IncidentChild",
    "Investigation",
    "InvestigationChild",
    "InvestigationIncident",
    "InvestigationTransition",
    "JointVisitRequest",
    "Meeting",
    "MeetingChild",
    "MeetingInvitation",
    "MissingEpisode",
    "OAuthClient",
    "Organisation",
    "PoliceProtection",
    "RateLimit",
    "RecordChange",
    "RecordReceipt",
    "StageFact",
    "VettingCheck",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
