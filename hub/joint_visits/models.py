"""Joint visits and joint (ABE) interviews: a council asks a force, the force answers, the council
records what happened. One row per request, carrying each side's answer as it arrives.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class JointVisitKind(enum.StrEnum):
    VISIT = "visit"
    ABE_INTERVIEW = "abe_interview"  # Achieving Best Evidence: a joint investigative interview


class Urgency(enum.StrEnum):
    IMMEDIATE = "immediate"
    WITHIN_24_HOURS = "within_24_hours"
    WITHIN_72_HOURS = "within_72_hours"
    PLANNED = "planned"


class JointVisitResponse(enum.StrEnum):
    OFFICER_ASSIGNED = "officer_assigned"
    NOT_AVAILABLE = "not_available"


class UnavailableReason(enum.StrEnum):
    NO_OFFICER_AVAILABLE = "no_officer_available"
    NO_SPECIALIST_AVAILABLE = "no_specialist_available"
    INSUFFICIENT_NOTICE = "insufficient_notice"
    NOT_A_POLICE_MATTER = "not_a_police_matter"
    OTHER = "other"


class OfficerRole(enum.StrEnum):
    """The assigned officer's rank or role, so that seniority can be read (as for meetings)."""

    CONSTABLE = "constable"
    SERGEANT = "sergeant"
    INSPECTOR = "inspector"
    CHIEF_INSPECTOR = "chief_inspector"
    SUPERINTENDENT_OR_ABOVE = "superintendent_or_above"
    POLICE_STAFF = "police_staff"
    OTHER = "other"


class JointVisitOutcome(enum.StrEnum):
    HELD_JOINTLY = "held_jointly"
    SOCIAL_WORKER_ALONE = "social_worker_alone"
    CANCELLED = "cancelled"


class JointVisitRequest(SQLModel, table=True):
    __tablename__ = "joint_visit_request"
    __table_args__ = (
        sa.UniqueConstraint("council_code", "council_reference"),
        sa.UniqueConstraint("council_code", "idempotency_key"),
        # The council's and the force's, each newest first (`pagination.Listing`'s branches);
        # each also serves a lookup by its code alone.
        *(
            sa.Index(f"ix_joint_visit_request_{code}_recorded_at", code, "recorded_at", "id")
            for code in ("council_code", "force_code")
        ),
    )

    id: str = id_field()
    council_code: str = org_field(index=False)
    council_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    force_code: str = org_field(index=False)
    child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    kind: str = enum_field()
    urgency: str = enum_field()
    needed_by: dt.datetime = utc_field()
    recorded_at: dt.datetime = utc_field(index=True)
    shared_at: dt.datetime = utc_field(now=True)
    response: str | None = enum_field(nullable=True)
    response_reason: str | None = enum_field(nullable=True)
    officer_role: str | None = enum_field(nullable=True)
    responded_at: dt.datetime | None = utc_field(nullable=True)
    outcome: str | None = enum_field(nullable=True)
    outcome_at: dt.datetime | None = utc_field(nullable=True)
