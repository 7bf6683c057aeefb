"""Keyset pagination, newest first, on (time, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import InvalidInput

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool


_CURSOR_PREFIX = "c1:"
_NOT_A_CURSOR = "after is not a cursor this API gave out"


def encode_cursor(record_id: str) -> str:
    """Opaque, and carrying only the record's id: never a value of a field the caller may not see.

    The sort key is looked up again, inside the caller's scope and filters, when the cursor comes
    back, so a cursor naming a record the caller cannot see is refused like a forged one.
    """
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error) as error:
        raise InvalidInput(_NOT_A_CURSOR, field="after") from error
    if not raw.startswith(_CURSOR_PREFIX):
        raise InvalidInput(_NOT_A_CURSOR, field="after")
    return raw.removeprefix(_CURSOR_PREFIX)


def page_size(first: int | None, *, default: int, maximum: int) -> int:
    if first is None:
        return default
    if not 1 <= first <= maximum:
        raise InvalidInput(f"first must be between 1 and {maximum}", field="first")
    return first


async def paginate(
    session: AsyncSession,
    query: sa.Select[T],
    *,
    time_column: Any,
    id_column: Any,
    first: int,
    after: str | None,
) -> Page[T]:
    if after is not None:
        record_id = decode_cursor(after)
        anchor = await session.scalar(
            query.with_only_columns(time_column).where(id_column == record_id)
        )
        if anchor is None:
            raise InvalidInput(_NOT_A_CURSOR, field="after")
        query = query.where(sa.tuple_(time_column, id_column) < sa.tuple_(anchor, record_id))
    query = query.order_by(time_column.desc(), id_column.desc()).limit(first + 1)
    rows = list((await session.execute(query)).scalars())
    items = rows[:first]
    cursors = [encode_cursor(getattr(r, id_column.key)) for r in items]
    return Page(items=items, cursors=cursors, has_next_page=len(rows) > first)


def narrowed(
    query: sa.Select[T],
    *,
    time_column: Any,
    since: dt.datetime | None,
    until: dt.datetime | None,
    any_of: Mapping[Any, Sequence[Any]],
) -> sa.Select[T]:
    """The filters every record list shares: a half-open time range, and any of some values."""
    if since is not None:
        query = query.where(time_column >= since)
    if until is not None:
        query = query.where(time_column < until)
    for column, values in any_of.items():
        if values:
            query = query.where(column.in_(values))
    return query
