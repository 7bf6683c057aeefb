from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class ReferenceKind(enum.StrEnum):
    POLICE_PERSON = "police_person"
    COUNCIL_CASE = "council_case"


class Child(SQLModel, table=True):
    """A child as one organisation recorded them: the row belongs to that organisation.

    The NHS number is not unique: two forces that record the same child hold a row each, and
    the hub links them (`ChildLink`) rather than letting one force's push read or change the
    other's.
    """

    id: str = id_field()
    given_name: str = Field(max_length=100)
    family_name: str = Field(max_length=100)
    date_of_birth: dt.date
    nhs_number: str | None = Field(default=None, max_length=10, index=True)
    responsible_council_code: str = org_field()
    host_council_code: str | None = org_field(nullable=True)
    # The school a police force names for Operation Encompass notices (a school organisation).
    school_code: str | None = org_field(nullable=True)
    looked_after: bool = False
    created_at: dt.datetime = utc_field(now=True)
    updated_at: dt.datetime = utc_field(now=True)


class ChildReference(SQLModel, table=True):
    """A reference an organisation holds for a child: how a push finds the child again."""

    __tablename__ = "child_reference"
    __table_args__ = (sa.UniqueConstraint("organisation_code", "kind", "value"),)

    id: str = id_field()
    child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    organisation_code: str = org_field(index=False)
    kind: str = enum_field()
    value: str = Field(max_length=64)


class ChildLink(SQLModel, table=True):
    """A push matched a child another organisation holds: which, by what, when, by whom.

    A link is for the hub's record of the combination (and a reconciliation the agreement may
    define); it never lets the pushing force read or alter the matched child.
    """

    __tablename__ = "child_link"
    __table_args__ = (sa.UniqueConstraint("child_id", "matched_child_id"),)

    id: str = id_field()
    child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    matched_child_id: str = Field(foreign_key="child.id", max_length=36, index=True)
    matched_by: str = enum_field()
    organisation_code: str = org_field(index=False)
    linked_at: dt.datetime = utc_field(now=True)
