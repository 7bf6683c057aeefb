from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class InvestigationStatus(enum.StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    CHARGED = "charged"
    NO_FURTHER_ACTION = "no_further_action"
    CLOSED = "closed"


class Investigation(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("force_code", "police_reference"),
        # A force's investigations, latest change first (`pagination.Listing`'s branches); it
        # also serves a lookup by the force alone.
        sa.Index(
            "ix_investigation_force_code_status_changed_at",
            "force_code",
            "status_changed_at",
            "id",
        ),
    )

    id: str = id_field()
    force_code: str = org_field(index=False)
    police_reference: str = Field(max_length=64)
    status: str = enum_field(index=True)
    status_changed_at: dt.datetime = utc_field(index=True)
    shared_at: dt.datetime = utc_field(now=True)
    updated_at: dt.datetime = utc_field(now=True)


class InvestigationTransition(SQLModel, table=True):
    """One status change, with its reason: the history councils hold a force to."""

    __tablename__ = "investigation_transition"
    __table_args__ = (
        sa.UniqueConstraint(
            "investigation_id", "to_status", "changed_at", name="uq_investigation_transition_change"
        ),
        sa.UniqueConstraint(
            "investigation_id", "idempotency_key", name="uq_investigation_transition_idempotency"
        ),
    )

    id: str = id_field()
    investigation_id: str = Field(foreign_key="investigation.id", max_length=36, index=True)
    from_status: str | None = enum_field(nullable=True)
    to_status: str = enum_field()
    changed_at: dt.datetime = utc_field()
    reason: str = Field(sa_type=sa.Text)
    shared_at: dt.datetime = utc_field(now=True)
    idempotency_key: str | None = Field(default=None, max_length=128)
    pushed_by_client: str = Field(max_length=64)


class InvestigationIncident(SQLModel, table=True):
    __tablename__ = "investigation_incident"

    investigation_id: str = Field(foreign_key="investigation.id", primary_key=True, max_length=36)
    incident_id: str = Field(foreign_key="incident.id", primary_key=True, max_length=36, index=True)


class InvestigationChild(SQLModel, table=True):
    __tablename__ = "investigation_child"

    investigation_id: str = Field(foreign_key="investigation.id", primary_key=True, max_length=36)
    child_id: str = Field(foreign_key="child.id", primary_key=True, max_length=36, index=True)
