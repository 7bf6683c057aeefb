from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class RiskGrade(enum.StrEnum):
    """College of Policing APP (2017) grades; the framework is stored beside the grade."""

    NO_APPARENT_RISK = "no_apparent_risk"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class MissingFrom(enum.StrEnum):
    CARE = "care"
    HOME = "home"


class MissingStatus(enum.StrEnum):
    MISSING = "missing"
    FOUND = "found"
    RETURNED = "returned"


class MissingEpisode(SQLModel, table=True):
    __tablename__ = "missing_episode"
    __table_args__ = (
        sa.UniqueConstraint("force_code", "police_reference"),
        sa.UniqueConstraint("force_code", "idempotency_key"),
        # A force's episodes, newest first (`pagination.Listing`'s branches); it also serves a
        # lookup by the force alone.
        sa.Index(
            "ix_missing_episode_force_code_reported_missing_at",
            "force_code",
            "reported_missing_at",
            "id",
        ),
    )

    id: str = id_field()
    child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    force_code: str = org_field(index=False)
    police_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    reported_missing_at: dt.datetime = utc_field(index=True)
    recorded_at: dt.datetime = utc_field()
    shared_at: dt.datetime = utc_field(now=True)
    risk_grade: str = enum_field(index=True)
    risk_framework: str = Field(max_length=64)
    last_seen_council_code: str = org_field()
    missing_from: str = enum_field()
    status: str = enum_field(index=True)
    found_at: dt.datetime | None = utc_field(nullable=True)
    returned_at: dt.datetime | None = utc_field(nullable=True)
    updated_at: dt.datetime = utc_field(now=True)
    pushed_by_client: str = Field(max_length=64)
    # The return home interview (T5), recorded by a council after the child's return.
    return_interview_at: dt.datetime | None = utc_field(nullable=True)
    return_interview_by_council: str | None = Field(default=None, max_length=32)
