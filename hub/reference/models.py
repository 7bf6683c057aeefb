from __future__ import annotations

import enum

from sqlmodel import Field, SQLModel

from hub.base import enum_field


class OrganisationKind(enum.StrEnum):
    POLICE_FORCE = "police_force"
    COUNCIL = "council"
    SCHOOL = "school"
    INSPECTORATE = "inspectorate"
    HUB_OPERATOR = "hub_operator"


class Nation(enum.StrEnum):
    ENGLAND = "england"
    WALES = "wales"
    GREAT_BRITAIN = "great_britain"


class Organisation(SQLModel, table=True):
    """A force, council, school, inspectorate or the hub operator, keyed by its official code."""

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    kind: str = enum_field(index=True)
    nation: str | None = enum_field(nullable=True)
    ons_code: str | None = Field(default=None, max_length=16)
    council_kind: str | None = enum_field(nullable=True)


class ForceCoverage(SQLModel, table=True):
    """Which police force covers which council's area (BTP covers every council's railways)."""

    __tablename__ = "force_coverage"

    force_code: str = Field(foreign_key="organisation.code", primary_key=True, max_length=32)
    council_code: str = Field(
        foreign_key="organisation.code", primary_key=True, max_length=32, index=True
    )
