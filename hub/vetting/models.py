"""A vetting check: one council's request to one force about one applicant, and its outcome."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class VettingPurpose(enum.StrEnum):
    FOSTER_CARER = "foster_carer"
    ADOPTER = "adopter"
    CONNECTED_PERSON = "connected_person"  # a family member or friend caring for a child
    OTHER = "other"


class VettingStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


class VettingOutcome(enum.StrEnum):
    """The category only: what is held is disclosed through the force's secure channel."""

    NO_INFORMATION_HELD = "no_information_held"
    INFORMATION_TO_BE_DISCLOSED = "information_to_be_disclosed"


class VettingCheck(SQLModel, table=True):
    __tablename__ = "vetting_check"
    __table_args__ = (
        sa.UniqueConstraint("council_code", "council_reference"),
        sa.UniqueConstraint("council_code", "idempotency_key"),
    )

    id: str = id_field()
    council_code: str = org_field()
    council_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    force_code: str = org_field()
    purpose: str = enum_field()
    # The applicant, with only what a police check needs (data minimisation): never a child's
    # record, so never in the audit's child index.
    applicant_reference: str = Field(max_length=64)
    given_name: str = Field(max_length=100)
    family_name: str = Field(max_length=100)
    date_of_birth: dt.date
    postcode: str = Field(max_length=8)
    # Earlier postcodes, normalised and joined by commas ("" when none were given).
    previous_postcodes: str = Field(default="", max_length=120)
    requested_at: dt.datetime = utc_field(index=True)
    shared_at: dt.datetime = utc_field(now=True)
    requested_by_client: str = Field(max_length=64)
    status: str = enum_field(index=True)
    outcome: str | None = enum_field(nullable=True)
    completed_at: dt.datetime | None = utc_field(nullable=True)
    completed_by_client: str | None = Field(default=None, max_length=64)
    updated_at: dt.datetime = utc_field(now=True)
