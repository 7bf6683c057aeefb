"""What every table shares: one metadata with a naming convention, ids, UTC timestamps."""

from __future__ import annotations

import datetime as dt
import enum
import os
import threading
import uuid
from collections.abc import Callable, Iterator
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


# Random ids a read of the operating system's randomness yields: a push makes half a dozen,
# and `uuid.uuid4()` read 16 bytes a time, one system call per id (2.4% of a push's CPU).
IDS_PER_READ = 256


class _Randomness(threading.local):
    """Each thread's unread random bytes, as 16-byte ids to come (aiosqlite's thread makes ids
    too). A forked child starts with none: it must not make its parent's ids again."""

    def __init__(self) -> None:
        self.left: Iterator[bytes] = iter(())


_RANDOMNESS = _Randomness()


def _forget_randomness() -> None:
    _RANDOMNESS.left = iter(())


os.register_at_fork(after_in_child=_forget_randomness)


def _random_blocks() -> Iterator[bytes]:
    read = os.urandom(16 * IDS_PER_READ)
    return (read[at : at + 16] for at in range(0, len(read), 16))


def new_id() -> str:
    """A random (version 4) UUID's text, as `str(uuid.uuid4())` writes it, from the same
    source (`os.urandom`), read for many ids at once."""
    try:
        raw = next(_RANDOMNESS.left)
    except StopIteration:
        _RANDOMNESS.left = _random_blocks()
        raw = next(_RANDOMNESS.left)
    return str(uuid.UUID(bytes=raw, version=4))  # as `uuid4` makes one of its 16 bytes


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
