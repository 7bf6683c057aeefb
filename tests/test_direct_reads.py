"""Reads sent straight to the driver (`hub.db.rows`) and lists built once per shape
(`hub.pagination.Listing`): the same rows as SQLAlchemy gives, in the session's own
transaction, seen by the engine's statement listeners, and failures as SQLAlchemy's."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.scope import RowScope
from hub.db import Database, UTCDateTime, _direct, dialect_of, records, rows, unpacked
from hub.db import among as listed
from hub.incidents import service as incidents
from hub.incidents.models import DashRisk, Incident, IncidentType
from hub.incidents.service import IncidentFilter
from tests.conftest import is_postgres, unique
from tests.factories import COUNCIL, FORCE

_INCIDENT: sa.Table = Incident.__table__  # type: ignore[attr-defined]
# Long before any other test's incidents: a page here holds only this test's.
BASE = dt.datetime(2001, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)


async def _incidents(session: AsyncSession, count: int) -> list[str]:
    """`count` incidents a day apart, in COUNCIL, in the test's own transaction."""
    ids = []
    for n in range(count):
        row = Incident(
            force_code=FORCE,
            police_reference=unique("DR"),
            payload_hash="0" * 64,
            type=IncidentType.DOMESTIC_ABUSE if n % 2 else IncidentType.NEGLECT,
            occurred_at=BASE + dt.timedelta(days=n),
            recorded_at=BASE + dt.timedelta(days=n, hours=1),
            location_council_code=COUNCIL,
            dash_risk=DashRisk.HIGH if n % 3 == 0 else None,
            summary=f"synthetic {n}",
            pushed_by_client="test",
        )
        session.add(row)
        ids.append(row.id)
    await session.flush()
    return ids


def _statement(ids: list[str], *, array: bool) -> sa.Select[Any]:
    # Two organisation codes in the scope: a list the statement holds, rendered in.
    scope = RowScope(councils=frozenset({COUNCIL, "E08000026"}))
    keyed = (
        _INCIDENT.c.id == sa.any_(sa.bindparam("keys", type_=sa.ARRAY(sa.String)))
        if array
        else _INCIDENT.c.id.in_(sa.bindparam("keys", expanding=True))
    )
    return sa.select(*_INCIDENT.c).where(keyed, scope.incidents()).order_by(_INCIDENT.c.id)


@contextlib.contextmanager
def _statements_seen(db: Database) -> Iterator[list[str]]:
    """The statements the engine's listeners are told of meanwhile, as sent."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


async def test_rows_are_sqlalchemys_rows_in_the_sessions_transaction(
    session: AsyncSession,
) -> None:
    # Written in this transaction and not committed: only its own connection sees them.
    ids = await _incidents(session, 3)
    statement = _statement(ids, array=dialect_of(session) == "postgresql")
    direct = await rows(session, statement, {"keys": ids})
    through_sqlalchemy = records(await session.execute(statement, {"keys": ids}))
    assert [r._asdict() for r in direct] == [r._asdict() for r in through_sqlalchemy]
    assert sorted(r.id for r in direct) == sorted(ids)
    first = min(direct, key=lambda r: r.occurred_at)
    # The column type's own processing: aware UTC times, as every other read gives them.
    assert first.occurred_at == BASE
    assert first.occurred_at.tzinfo is not None
    assert first.occurred_at.utcoffset() == dt.timedelta(0)


async def test_the_engines_statement_listeners_see_a_direct_read(
    db: Database, session: AsyncSession
) -> None:
    ids = await _incidents(session, 1)
    with _statements_seen(db) as seen:
        async with db.transaction(write=False) as reader:
            await rows(reader, _statement(ids, array=db.audits_reads_in_place), {"keys": ids})
    assert any(statement.lstrip().startswith("SELECT incident.id") for statement in seen), seen


@pytest.mark.skipif(not is_postgres(), reason="READ ONLY transactions are PostgreSQL's")
async def test_a_direct_read_keeps_a_read_transaction_read_only(db: Database) -> None:
    setting = sa.select(sa.func.current_setting("transaction_read_only").label("value"))
    async with db.transaction(write=False) as reader:
        [found] = await rows(reader, setting)
    assert found.value == "on"
    async with db.transaction(write=True) as writer:
        [found] = await rows(writer, setting)
    assert found.value == "off"


async def test_a_failed_direct_read_fails_as_sqlalchemys_and_rolls_back(db: Database) -> None:
    missing = sa.table("no_such_table", sa.column("n"))
    failing = sa.select(missing.c.n).where(missing.c.n == sa.bindparam("n", type_=sa.Integer))
    async with db.transaction(write=False) as reader:
        with pytest.raises(sa.exc.DBAPIError) as expected:
            await reader.execute(failing, {"n": 7})
    with pytest.raises(sa.exc.DBAPIError) as raised:
        async with db.transaction(write=False) as reader:
            await rows(reader, failing, {"n": 7})
    assert type(raised.value) is type(expected.value)
    assert str(raised.value) == str(expected.value)  # the same text (and no parameters)
    if is_postgres():
        assert getattr(raised.value.orig, "sqlstate", None) == "42P01"  # the driver's code, kept
    # The connection went back to the pool in a usable state.
    async with db.transaction(write=False) as reader:
        [found] = await rows(
            reader, sa.select(sa.bindparam("n", type_=sa.Integer).label("n")), {"n": 7}
        )
    assert found.n == 7


async def test_a_direct_read_in_a_savepoint_fails_only_the_savepoint(db: Database) -> None:
    """`begin_nested` emits its SAVEPOINT only when the connection is first asked for: a
    direct read inside it must ask, or its failure aborts the whole transaction (and what the
    transaction wrote before the savepoint goes with it)."""
    missing = sa.table("no_such_table", sa.column("n"))
    failing = sa.select(missing.c.n).where(missing.c.n == sa.bindparam("n", type_=sa.Integer))
    kept = sa.select(*_INCIDENT.c).where(_INCIDENT.c.id == sa.bindparam("id"))
    async with db.transaction(write=True) as writer:
        [written] = await _incidents(writer, 1)
        await rows(writer, kept, {"id": written})  # the outer transaction's adapter, noted
        with pytest.raises(sa.exc.DBAPIError):
            async with writer.begin_nested():
                await rows(writer, failing, {"n": 7})
        [found] = await rows(writer, kept, {"id": written})
        assert found.id == written
        await writer.rollback()


async def test_a_listing_is_built_once_per_shape_and_bound_per_request(
    session: AsyncSession,
) -> None:
    ids = await _incidents(session, 6)
    scope = RowScope(councils=frozenset({COUNCIL}))
    since, until = BASE + dt.timedelta(days=1), BASE + dt.timedelta(days=5)

    async def page(where: IncidentFilter, *, after: str | None = None) -> list[str]:
        found = await incidents.list_(session, scope=scope, where=where, first=2, after=after)
        return [r.id for r in found.items if r.id in ids]

    window = IncidentFilter(occurred_from=since, occurred_to=until)
    first = await page(window)
    assert first == [ids[4], ids[3]]  # newest first, inside [since, until)
    assert await page(window, after=ids[3]) == [ids[2], ids[1]]
    other = IncidentFilter(occurred_from=BASE, occurred_to=until)
    assert await page(other, after=ids[1]) == [ids[0]]
    risky = IncidentFilter(dash_risks=(DashRisk.HIGH,), occurred_to=until)
    assert await page(risky) == [ids[3], ids[0]]
    later = BASE + dt.timedelta(days=30)
    typed = IncidentFilter(
        types=(IncidentType.DOMESTIC_ABUSE,), occurred_from=since, occurred_to=later
    )
    assert await page(typed) == [ids[5], ids[3]]
    # The same shape of filter, other values: the same statements, bound afresh.
    dialect = dialect_of(session)
    shape_of = incidents.Narrowing.of
    one, _ = shape_of(since=since, until=until, any_of=((), ()))
    two, _ = shape_of(since=BASE, until=BASE, any_of=((), ()))
    assert one == two
    listing = incidents._listing(scope, one, dialect=dialect)
    assert incidents._listing(scope, two, dialect=dialect) is listing


@pytest.mark.skipif(is_postgres(), reason="SQLite's packed reads (`hub.db._packed`)")
async def test_sqlite_reads_a_statements_rows_packed_as_sqlalchemy_reads_them(
    db: Database, session: AsyncSession
) -> None:
    """Sent as one row (one step, one wait for the interpreter's lock), the rows are
    SQLAlchemy's, in the statement's order (not the order they were written in), with every
    value as it was: text that JSON would escape or could take for JSON, nulls, integers,
    aware times."""
    awkward = ['quote " back \\ new\nline', '["looks", "like", {"json": 1}]', "é ☂ \u2028", ""]
    ids = await _incidents(session, 13)
    for n, incident_id in enumerate(ids):  # written in one order, read in others
        await session.execute(
            sa.update(_INCIDENT)
            .where(_INCIDENT.c.id == incident_id)
            .values(
                occurred_at=BASE + dt.timedelta(days=(n * 5) % 13),
                summary=awkward[n % len(awkward)],
            )
        )
    among = listed(_INCIDENT.c.id, "keys", dialect="sqlite")
    later_first = _INCIDENT.c.occurred_at.desc()
    statements = [
        sa.select(*_INCIDENT.c).where(among).order_by(later_first),  # no LIMIT
        sa.select(*_INCIDENT.c).where(among).order_by(later_first, _INCIDENT.c.id).limit(7),
        sa.select(_INCIDENT.c.id, sa.func.count().label("n"))
        .where(among)
        .group_by(_INCIDENT.c.id)
        .order_by(_INCIDENT.c.id.desc()),
        sa.select(_INCIDENT.c.id).where(sa.false()),  # no rows
    ]
    with _statements_seen(db) as seen:
        for statement in statements:
            params = {"keys": ids}
            direct = await rows(session, statement, params)
            through_sqlalchemy = records(await session.execute(statement, params))
            assert [r._asdict() for r in direct] == [r._asdict() for r in through_sqlalchemy]
    packed = [s for s in seen if s.startswith("SELECT json_group_array(json_array(packed.")]
    assert len(packed) == len(statements), seen
    assert unpacked(packed[0]).startswith("SELECT incident.id, incident.force_code")
    summaries = {r.summary for r in await rows(session, statements[0], {"keys": ids})}
    assert summaries == set(awkward)


def test_only_columns_json_carries_exactly_are_read_packed() -> None:
    """Reals (JSON keeps fifteen digits of them), blobs, and values of no known type are read
    row by row; text, integers, booleans and times packed; PostgreSQL never packs."""
    table = sa.table(
        "sample",
        sa.column("t", sa.String()),
        sa.column("i", sa.Integer()),
        sa.column("b", sa.Boolean()),
        sa.column("at", UTCDateTime()),
        sa.column("r", sa.Float()),
        sa.column("blob", sa.LargeBinary()),
        sa.column("unknown"),
    )
    lite, pg = sqlite.dialect(), postgresql.dialect()
    plain = sa.select(table.c.t, table.c.i, table.c.b, table.c.at)
    assert _direct(plain, lite).packed  # type: ignore[union-attr]
    assert not _direct(plain, pg).packed  # type: ignore[union-attr]
    for other in (table.c.r, table.c.blob, table.c.unknown):
        assert not _direct(sa.select(table.c.t, other), lite).packed  # type: ignore[union-attr]
