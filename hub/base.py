"""What every table shares: one metadata with a naming convention, ids, UTC timestamps."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.db import NAMING_CONVENTION, UTCDateTime, utcnow

SQLModel.metadata.naming_convention = NAMING_CONVENTION

E = TypeVar("E", bound=enum.Enum)


def stored(kind: type[E]) -> Callable[[Any], E]:
    """The member of `kind` a stored value names (or the member itself), as one dictionary
    lookup: calling the enum costs about a microsecond in Python 3.11, and a council page made
    120 such calls. An unknown value raises KeyError where the call raised ValueError."""
    return {member.value: member for member in kind}.__getitem__


def new_id() -> str:
    return str(uuid.uuid4())


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True, max_length=36)


def utc_field(*, nullable: bool = False, index: bool = False, now: bool = False) -> Any:
    """A timezone-aware UTC column; `now` stamps it with the hub's clock on insert."""
    column: sa.Column[dt.datetime] = sa.Column(UTCDateTime(), nullable=nullable, index=index)
    if now:
        return Field(default_factory=utcnow, sa_column=column)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def org_field(*, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        foreign_key="organisation.code",
        max_length=32,
        index=index,
        nullable=nullable,
    )


def enum_field(*, nullable: bool = False, index: bool = False) -> Any:
    """Enums are stored as short strings: adding a value needs no database type migration."""
    return Field(default=None if nullable else ..., max_length=32, index=index, nullable=nullable)


__all__ = ["Field", "SQLModel", "dt", "enum_field", "id_field", "new_id", "org_field", "utc_field"]
