"""A page's incidents carry their involved children in their own statement (`hub.db.Nested`):
the same rows, of the same types, in the same order, within the same scope, as the loader's
statement of them gives."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.scope import RowScope
from hub.children.models import Child
from hub.db import GivenRows, Nested, processing, records, rows
from hub.incidents import service as incidents
from hub.incidents.models import DashRisk, Incident, IncidentChild, IncidentType
from hub.incidents.service import IncidentFilter
from hub.reference.models import Organisation, OrganisationKind
from tests.conftest import is_postgres, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL

_INCIDENT_CHILD: sa.Table = IncidentChild.__table__  # type: ignore[attr-defined]
# Long before any other test's incidents: the pages here hold only this test's.
BASE = dt.datetime(1999, 7, 1, 8, 15, 30, 654321, tzinfo=dt.UTC)


async def _seeded(session: AsyncSession) -> tuple[list[str], str]:
    """Three incidents: two children each (the first a pupil of a new school), and one with
    none; their ids, and the school's code."""
    school = f"NR-{uuid.uuid4().hex[:8]}"
    session.add(
        Organisation(
            code=school,
            name="Synthetic school",
            kind=OrganisationKind.SCHOOL,
            nation="england",
        )
    )
    await session.flush()  # before the children naming it
    ids = []
    for n in range(3):
        incident = Incident(
            force_code=FORCE,
            police_reference=unique("NR"),
            payload_hash="0" * 64,
            type=IncidentType.DOMESTIC_ABUSE,
            occurred_at=BASE + dt.timedelta(days=n),
            recorded_at=BASE + dt.timedelta(days=n, hours=2),
            location_council_code=COUNCIL,
            dash_risk=DashRisk.MEDIUM,
            summary=f"synthetic {n}",
            pushed_by_client="test",
        )
        session.add(incident)
        ids.append(incident.id)
        for m in range(2 if n < 2 else 0):
            child = Child(
                given_name=f"Synthetic{n}{m}",
                family_name="Example",
                date_of_birth=dt.date(2012 + m, 2, 28),
                responsible_council_code=OTHER_COUNCIL if m else COUNCIL,
                school_code=school if m == 0 else None,
                looked_after=bool(m),
            )
            session.add(child)
            await session.flush()
            session.add(
                IncidentChild(
                    incident_id=incident.id, child_id=child.id, present=True, victim=bool(m)
                )
            )
    await session.flush()
    return ids, school


def _typed(rows: list[Any]) -> list[list[tuple[type, Any]]]:
    return [[(type(value), value) for value in row] for row in rows]


async def _compared(session: AsyncSession, scope: RowScope, ids: list[str]) -> dict[str, Any]:
    where = IncidentFilter(occurred_from=BASE, occurred_to=BASE + dt.timedelta(days=5))
    page = await incidents.list_(
        session, scope=scope, where=where, first=10, after=None, involved=True
    )
    assert sorted(r.id for r in page.items) == sorted(ids)
    carried = incidents.involved_of(page.items, scope, session.get_bind().dialect)
    assert carried is not None
    statement = incidents.involved(scope, _INCIDENT_CHILD.c.incident_id.in_(ids))
    loaded = records(await session.execute(statement))
    for incident_id in ids:
        expected = [tuple(row) for row in loaded if row.incident_id == incident_id]
        assert _typed(carried[incident_id]) == _typed(expected), incident_id
    return carried


async def test_the_carried_children_are_the_loaders_rows(session: AsyncSession) -> None:
    ids, _ = await _seeded(session)
    carried = await _compared(session, RowScope(councils=frozenset({COUNCIL})), ids)
    assert [len(carried[i]) for i in ids] == [2, 2, 0]
    first = carried[ids[0]]
    # Their types as every other read gives them: a date, aware UTC times, booleans.
    columns = [*_INCIDENT_CHILD.c.keys(), *Child.__table__.c.keys()]  # type: ignore[attr-defined]
    child = dict(
        zip(columns[len(_INCIDENT_CHILD.c) :], first[0][len(_INCIDENT_CHILD.c) :], strict=True)
    )
    assert type(child["date_of_birth"]) is dt.date
    assert child["created_at"].utcoffset() == dt.timedelta(0)
    assert type(child["looked_after"]) is bool
    assert [row[1] for row in first] == sorted(row[1] for row in first)  # by child id


async def test_a_school_is_carried_only_its_own_pupils(session: AsyncSession) -> None:
    ids, school = await _seeded(session)
    carried = await _compared(session, RowScope(schools=frozenset({school})), ids[:2])
    # Each incident had two children; the school sees its pupil in each, not the other.
    assert [len(carried[i]) for i in ids[:2]] == [1, 1]


async def test_a_page_read_without_them_carries_none(session: AsyncSession) -> None:
    await _seeded(session)
    where = IncidentFilter(occurred_from=BASE, occurred_to=BASE + dt.timedelta(days=5))
    scope = RowScope(councils=frozenset({COUNCIL}))
    page = await incidents.list_(session, scope=scope, where=where, first=10, after=None)
    assert page.items
    assert incidents.involved_of(page.items, scope, session.get_bind().dialect) is None


async def test_the_carried_times_are_utc_whatever_the_sessions_time_zone(
    session: AsyncSession,
) -> None:
    """PostgreSQL writes a time in JSON in the session's zone: read back, it is the same
    instant in UTC, as asyncpg gives it (Chatham's offset is 12:45 or 13:45)."""
    ids, _ = await _seeded(session)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SET LOCAL TIME ZONE 'Pacific/Chatham'"))
    carried = await _compared(session, RowScope(councils=frozenset({COUNCIL})), ids)
    created = carried[ids[0]][0][-2]
    assert created.tzinfo is dt.UTC


def test_a_column_json_cannot_carry_faithfully_is_refused_when_the_statement_is_built() -> None:
    odd = sa.table("odd", sa.column("id", sa.String()), sa.column("amount", sa.Numeric()))
    nested = Nested(sa.select(odd.c.id, odd.c.amount), "id")
    with pytest.raises(TypeError, match="cannot carry"):
        nested.column("postgresql")
    nested.column("sqlite")  # SQLite's processors take what its JSON holds


# --- rows given as JSON (`GivenRows`) ------------------------------------------------------

_CHILD: sa.Table = Child.__table__  # type: ignore[attr-defined]


@pytest.mark.skipif(not is_postgres(), reason="json_populate_recordset is PostgreSQL's")
async def test_rows_given_as_json_are_stored_as_bound_values_would_be(
    session: AsyncSession,
) -> None:
    """Every kind of column a push writes, through `GivenRows` and back: times to the
    microsecond from another zone, dates, booleans, NULLs, quotes, backslashes, control
    characters and non-ASCII text; a column a row lacks is NULL."""
    await session.execute(sa.text("SET LOCAL TIME ZONE 'Pacific/Chatham'"))
    chatham = dt.timezone(dt.timedelta(hours=13, minutes=45))
    given = [
        {
            "id": str(uuid.uuid4()),
            "given_name": 'Zoë "Zed" O\'Neill\\\n\t\u2028',
            "family_name": "Ñandú",
            "date_of_birth": dt.date(2014, 2, 28),
            "nhs_number": None,
            "responsible_council_code": COUNCIL,
            "host_council_code": OTHER_COUNCIL,
            "school_code": None,
            "looked_after": True,
            "created_at": dt.datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=dt.UTC),
            "updated_at": dt.datetime(2026, 10, 25, 14, 30, 0, 1, tzinfo=chatham),
        },
        {
            "id": str(uuid.uuid4()),
            "given_name": "Synthetic",
            "family_name": "Child",
            "date_of_birth": dt.date(2019, 12, 31),
            "responsible_council_code": COUNCIL,
            "looked_after": False,
            "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        },
    ]
    rows_given = GivenRows(_CHILD)
    returned = sa.text(
        f"INSERT INTO child ({rows_given.columns}) {rows_given.sql} RETURNING {rows_given.columns}"
    ).columns(*(sa.column(c.name, c.type) for c in _CHILD.c))
    value = rows_given.value(given, session.get_bind().dialect)
    stored = {row.id: row._asdict() for row in await rows(session, returned, {"child": value})}
    for row in given:
        expected = {column.name: row.get(column.name) for column in _CHILD.c}
        assert stored[row["id"]] == expected
    assert stored[given[0]["id"]]["updated_at"].utcoffset() == dt.timedelta(0)  # aware, UTC


def test_a_column_json_cannot_give_faithfully_is_refused_when_the_text_is_built() -> None:
    odd = sa.Table("odd", sa.MetaData(), sa.Column("id", sa.String()), sa.Column("n", sa.Numeric()))
    with pytest.raises(TypeError, match="cannot carry"):
        _ = GivenRows(odd).sql


def test_a_rows_processing_puts_each_value_through_its_columns_processor() -> None:
    """`processing` writes one function a statement: each value by position, through its
    column's processor where it has one, the rest as given, as a tuple the row's length."""
    process = processing((None, str.upper, None, int))
    assert process(("a", "b", None, "7")) == ("a", "B", None, 7)
    assert processing((None,))(["x"]) == ("x",)
    assert processing(())(()) == ()
