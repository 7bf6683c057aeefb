"""Checks every push shares: aware timestamps, no events from the future, codes that exist."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import among, dialect_of, rows
from hub.errors import InvalidInput
from hub.reference.models import Organisation, OrganisationKind

_ORGANISATION: sa.Table = Organisation.__table__  # type: ignore[attr-defined]


# Every column, as the request's organisation loader reads them: a push's resolver can hand
# the rows found here to its loader rather than read them again.
@functools.lru_cache(maxsize=4)
def _organisations(dialect: str | None) -> sa.Select[Any]:
    """The organisations of the `codes` parameter (`among`), built once for each database."""
    return sa.select(*_ORGANISATION.c).where(among(_ORGANISATION.c.code, "codes", dialect=dialect))


MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# No record the hub keeps is about anything earlier; later checks can then do date arithmetic
# freely, and both databases hold every time that passes.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def aware_utc(value: dt.datetime, *, field: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field} must carry a timezone offset, e.g. 2026-01-31T09:00:00Z", field=field
        )
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # year 1 or 9999 with an offset: not a time in UTC
        raise InvalidInput(f"{field} is out of range", field=field) from None


def optional_utc(value: dt.datetime | None, *, field: str) -> dt.datetime | None:
    return None if value is None else aware_utc(value, field=field)


def event_time(value: dt.datetime, *, field: str, now: dt.datetime) -> dt.datetime:
    """An event's time: aware, and not later than the hub's clock allows."""
    value = aware_utc(value, field=field)
    if value > now + MAX_CLOCK_SKEW:
        raise InvalidInput(f"{field} is in the future", field=field)
    if value < EARLIEST:
        raise InvalidInput(f"{field} is before {EARLIEST.date().isoformat()}", field=field)
    return value


def not_before(later: dt.datetime, earlier: dt.datetime, *, field: str, what: str) -> None:
    if later < earlier:
        raise InvalidInput(f"{field} is before {what}", field=field)


def text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    return value


@dataclasses.dataclass(frozen=True)
class Probes:
    """Questions a caller asks in the organisations' statement, a round trip saved: yes-or-no
    clauses (EXISTS) built once (`asked`, by name), and the values of their parameters this
    time."""

    asked: tuple[tuple[str, sa.ColumnElement[bool]], ...]
    values: Mapping[str, Any]


@functools.lru_cache(maxsize=16)
def _asking(
    asked: tuple[tuple[str, sa.ColumnElement[bool]], ...], dialect: str | None
) -> sa.Select[Any]:
    """The organisations' statement with the probes' answers as columns, built once: one
    compiled once (`hub.db.rows`)."""
    return _organisations(dialect).add_columns(*(probe.label(name) for name, probe in asked))


async def require_organisations(
    session: AsyncSession,
    codes: Iterable[tuple[str, str, OrganisationKind]],
    *,
    probes: Probes | None = None,
) -> dict[str, Any]:
    """Each (code, field, kind) must name an organisation of that kind; report the first miss.

    Returns the organisations named (rows of every column, by code); with `probes`, each row
    also answers them, under their names (a push's: whether it names anything stored before).
    """
    wanted = list(codes)
    if not wanted:
        return {}
    dialect = dialect_of(session)
    statement, values = _organisations(dialect), {"codes": list({code for code, _, _ in wanted})}
    if probes is not None:
        statement, values = _asking(probes.asked, dialect), {**probes.values, **values}
    # Named tuples, as the organisation loader's rows are (`hub.db.records`).
    found: dict[str, Any] = {row.code: row for row in await rows(session, statement, values)}
    for code, field, kind in wanted:
        organisation = found.get(code)
        if organisation is None or organisation.kind != kind:
            raise InvalidInput(f"{field} is not a known {kind.replace('_', ' ')} code", field=field)
    return found
