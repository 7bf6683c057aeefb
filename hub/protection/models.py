"""Police protection (Children Act 1989 s.46): a child removed or kept safe by a constable, and
whether children's social care was consulted before.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class PlacedIn(enum.StrEnum):
    FOSTER_CARE = "foster_care"
    RELATIVE_OR_FRIEND = "relative_or_friend"
    LOCAL_AUTHORITY_ACCOMMODATION = "local_authority_accommodation"
    HOSPITAL = "hospital"
    POLICE_STATION = "police_station"
    OTHER = "other"


class ConsultedRole(enum.StrEnum):
    SOCIAL_WORKER = "social_worker"
    TEAM_MANAGER = "team_manager"
    EMERGENCY_DUTY_TEAM = "emergency_duty_team"
    OTHER = "other"


class Alternative(enum.StrEnum):
    """What the officer considered instead of police protection; NONE stands alone."""

    FAMILY_OR_FRIENDS = "family_or_friends"
    VOLUNTARY_ACCOMMODATION = "voluntary_accommodation"
    REMAIN_AT_HOME_WITH_SAFETY_PLAN = "remain_at_home_with_safety_plan"
    NONE = "none"


class PoliceProtection(SQLModel, table=True):
    __tablename__ = "police_protection"
    __table_args__ = (
        sa.UniqueConstraint("force_code", "police_reference"),
        sa.UniqueConstraint("force_code", "idempotency_key"),
        # The force's, the placing council's and the consulted council's, each newest first
        # (`pagination.Listing`'s branches); each also serves a lookup by its code alone.
        *(
            sa.Index(f"ix_police_protection_{code}_taken_at", code, "taken_at", "id")
            for code in ("force_code", "placed_council_code", "consulted_council_code")
        ),
    )

    id: str = id_field()
    force_code: str = org_field(index=False)
    police_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    taken_at: dt.datetime = utc_field(index=True)
    recorded_at: dt.datetime = utc_field()
    shared_at: dt.datetime = utc_field(now=True)
    placed_in: str = enum_field()
    placed_council_code: str | None = org_field(nullable=True, index=False)
    consulted_before: bool
    consulted_at: dt.datetime | None = utc_field(nullable=True)
    consulted_council_code: str | None = org_field(nullable=True, index=False)
    consulted_role: str | None = enum_field(nullable=True)
    # Comma-joined `Alternative` values, sorted: one column the report reads without a join.
    alternatives_considered: str = Field(sa_type=sa.Text)
    pushed_by_client: str = Field(max_length=64)
