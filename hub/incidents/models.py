from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class IncidentType(enum.StrEnum):
    DOMESTIC_ABUSE = "domestic_abuse"
    CHILD_PROTECTION = "child_protection"
    CHILD_SEXUAL_EXPLOITATION = "child_sexual_exploitation"
    CHILD_CRIMINAL_EXPLOITATION = "child_criminal_exploitation"
    NEGLECT = "neglect"
    ONLINE_HARM = "online_harm"
    OTHER_SAFEGUARDING = "other_safeguarding"


class DashRisk(enum.StrEnum):
    STANDARD = "standard"
    MEDIUM = "medium"
    HIGH = "high"


class Incident(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("force_code", "police_reference"),
        sa.UniqueConstraint("force_code", "idempotency_key"),
        # A force's and a council's incidents, newest first, each read from its own index
        # (`pagination.Listing`'s branches); each also serves a lookup by its code alone.
        sa.Index("ix_incident_force_code_occurred_at", "force_code", "occurred_at", "id"),
        sa.Index(
            "ix_incident_location_council_code_occurred_at",
            "location_council_code",
            "occurred_at",
            "id",
        ),
    )

    id: str = id_field()
    force_code: str = org_field(index=False)
    police_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    type: str = enum_field(index=True)
    occurred_at: dt.datetime = utc_field(index=True)
    recorded_at: dt.datetime = utc_field()
    shared_at: dt.datetime = utc_field(now=True)
    location_council_code: str = org_field(index=False)
    dash_risk: str | None = enum_field(nullable=True)
    summary: str = Field(default="", sa_type=sa.Text)
    # Police-restricted operational detail: the agreement keeps it from every other role.
    operational_notes: str = Field(default="", sa_type=sa.Text)
    pushed_by_client: str = Field(max_length=64)


class IncidentChild(SQLModel, table=True):
    """How a child was involved in an incident; one row per child, any of the three may hold."""

    __tablename__ = "incident_child"

    incident_id: str = Field(foreign_key="incident.id", primary_key=True, max_length=36)
    child_id: str = Field(foreign_key="child.id", primary_key=True, max_length=36, index=True)
    present: bool = False
    household_member: bool = False
    victim: bool = False
