"""Keyset pagination, newest first, on (time, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import records
from hub.errors import InvalidInput

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page, and each item's position: what its cursor seals (`hub.cursors`)."""

    items: list[T]
    positions: list[str]
    has_next_page: bool


_NOT_A_CURSOR = "after is not a cursor this API gave out"


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
    rows: bool = False,
) -> Page[T]:
    """The page after the record whose id is `after` (an opened cursor).

    The sort key is looked up again, inside the caller's scope and filters, so a position naming
    a record the caller cannot see is refused like a forged cursor. With `rows`, the query
    selects a table's columns and the page holds its rows, not one entity per row.
    """
    if after is not None:
        anchored = query.with_only_columns(time_column).where(id_column == after)
        anchor = await session.scalar(anchored)
        if anchor is None:
            raise InvalidInput(_NOT_A_CURSOR, field="after")
        query = query.where(sa.tuple_(time_column, id_column) < sa.tuple_(anchor, after))
    query = query.order_by(time_column.desc(), id_column.desc()).limit(first + 1)
    result = await session.execute(query)
    found: list[Any] = records(result) if rows else list(result.scalars())
    items = found[:first]
    positions = [getattr(r, id_column.key) for r in items]
    return Page(items=items, positions=positions, has_next_page=len(found) > first)


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
