"""Keyset pagination, newest first, on (time, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
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


def encode_cursor(time: dt.datetime, record_id: str) -> str:
    raw = json.dumps([time.isoformat(), record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time, record_id = json.loads(raw)
        return dt.datetime.fromisoformat(time), str(record_id)
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidInput("after is not a cursor this API gave out", field="after") from error


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
        time, record_id = decode_cursor(after)
        query = query.where(sa.tuple_(time_column, id_column) < sa.tuple_(time, record_id))
    query = query.order_by(time_column.desc(), id_column.desc()).limit(first + 1)
    rows = list((await session.execute(query)).scalars())
    items = rows[:first]
    time_attr, id_attr = time_column.key, id_column.key
    cursors = [encode_cursor(getattr(r, time_attr), getattr(r, id_attr)) for r in items]
    return Page(items=items, cursors=cursors, has_next_page=len(rows) > first)
