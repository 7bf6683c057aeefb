"""Statements run together in one trip to aiosqlite's thread (`hub.db.together`), as SQLite's
audit append runs them: bound and read as SQLAlchemy binds and reads them, in the session's
own transaction, seen by the engine's statement listeners in the caller's context, and a
failure raised as SQLAlchemy raises it, leaving nothing behind."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain, service, verify
from hub.audit.indexer import AuditIndexer
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.db import Database, OnSQLiteThread, UTCDateTime, together
from hub.limits.unavailable import is_transient
from tests.conftest import is_postgres
from tests.test_audit_chain import ACTOR, served

pytestmark = pytest.mark.skipif(is_postgres(), reason="aiosqlite's thread is SQLite's")

_NOTES = sa.table("together_note", sa.column("n", sa.Integer), sa.column("at", UTCDateTime()))
_CREATE = "CREATE TABLE IF NOT EXISTS together_note (n INTEGER PRIMARY KEY, at DATETIME)"
_INSERT = sa.insert(_NOTES).values(
    n=sa.bindparam("n", type_=sa.Integer),
    at=sa.bindparam("at", type_=UTCDateTime()),
)
_BY_N = sa.select(_NOTES.c.n, _NOTES.c.at).where(_NOTES.c.n == sa.bindparam("n", type_=sa.Integer))
AT = dt.datetime(2001, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="thread's own")


@pytest.fixture
async def notes(db: Database) -> Any:
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql(_CREATE)
    yield
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql("DROP TABLE together_note")


@pytest.fixture
def heard(db: Database) -> Iterator[list[tuple[str, bool, str]]]:
    """(statement, executemany, the caller's context variable) as the listeners heard them."""
    seen: list[tuple[str, bool, str]] = []

    def note(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement, many, _CALLER.get()))

    engine = db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", note)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", note)


def _write_then_read(run: OnSQLiteThread) -> list[Any]:
    run.execute_many(_INSERT, [{"n": 1, "at": AT}, {"n": 2, "at": AT + dt.timedelta(days=1)}])
    return run.rows(_BY_N, {"n": 2})


@pytest.mark.usefixtures("notes")
async def test_statements_together_in_the_sessions_transaction(
    db: Database, heard: list[tuple[str, bool, str]]
) -> None:
    async with db.transaction(write=True) as writer:
        token = _CALLER.set("request")
        try:
            found = await together(writer, _write_then_read)
        finally:
            _CALLER.reset(token)
        # The session's own transaction: its next statement sees the rows, uncommitted.
        counted = (await writer.execute(sa.text("SELECT count(*) FROM together_note"))).scalar()
        assert counted == 2
        # Aware UTC times out, from what the column type wrote (as SQLAlchemy reads them).
        assert [(row.n, row.at) for row in found] == [(2, AT + dt.timedelta(days=1))]
        through = (await writer.execute(_BY_N, {"n": 1})).one()
        assert through.at == AT
    ours = [(s.split(None, 1)[0], many, caller) for s, many, caller in heard if "together" in s]
    # Each statement told to the listeners, with the request's context (a span's parent).
    assert ours[:2] == [("INSERT", True, "request"), ("SELECT", False, "request")]


@pytest.mark.usefixtures("notes")
async def test_a_failure_together_is_sqlalchemys_and_leaves_nothing(db: Database) -> None:
    def twice(run: OnSQLiteThread) -> None:
        run.execute_many(_INSERT, [{"n": 5, "at": AT}])
        run.execute_many(_INSERT, [{"n": 5, "at": AT}])  # the same key: refused

    with pytest.raises(sa.exc.IntegrityError) as raised:
        async with db.transaction(write=True) as writer:
            await together(writer, twice)
    assert "together_note" in str(raised.value)
    assert "2001" not in str(raised.value)  # no parameters in its text
    async with db.transaction(write=False) as reader:
        left = (await reader.execute(sa.text("SELECT count(*) FROM together_note"))).scalar()
    assert left == 0  # the first insert was rolled back with the transaction
    # The connection went back to the pool usable.
    async with db.transaction(write=True) as writer:
        assert [row.n for row in await together(writer, _write_then_read)] == [2]


async def test_together_takes_only_statements_compiled_once(session: AsyncSession) -> None:
    listed = sa.select(chain.EVENTS.c.seq).where(
        chain.EVENTS.c.seq.in_(sa.bindparam("seqs", expanding=True))
    )

    def expanding(run: OnSQLiteThread) -> list[Any]:
        return run.rows(listed, {"seqs": [1, 2]})

    with pytest.raises(TypeError, match="compiled once"):
        await together(session, expanding)
    with pytest.raises(TypeError, match="SQLite session"):
        await together(_NotOurs(), _write_then_read)  # type: ignore[arg-type]


class _NotOurs:
    bind = None


@pytest.mark.usefixtures("notes")
async def test_a_write_together_commits_in_its_own_transaction(db: Database) -> None:
    found = await db.write_together(_write_then_read)
    assert [row.n for row in found] == [2]
    async with db.transaction(write=False) as reader:
        left = (await reader.execute(sa.text("SELECT count(*) FROM together_note"))).scalar()
    assert left == 2  # committed, seen from another connection


@pytest.mark.usefixtures("notes")
async def test_a_failed_write_together_leaves_nothing_and_frees_the_turn(db: Database) -> None:
    def failing(run: OnSQLiteThread) -> None:
        run.execute_many(_INSERT, [{"n": 5, "at": AT}])
        run.execute_many(_INSERT, [{"n": 5, "at": AT}])

    with pytest.raises(sa.exc.IntegrityError):
        await db.write_together(failing)
    # The turn was given back: a writer that would wait no more than this gets it.
    await db.write_together(_write_then_read, write_lock_wait=5)
    async with db.transaction(write=False) as reader:
        kept = (await reader.execute(sa.text("SELECT n FROM together_note ORDER BY n"))).scalars()
        assert list(kept) == [1, 2]  # the failed transaction's first insert rolled back


@pytest.mark.usefixtures("notes")
async def test_a_write_together_waits_its_turn_and_fails_as_a_busy_database(
    db: Database,
) -> None:
    async with db.transaction(write=True) as writer:
        await writer.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE: this process's turn taken
        with pytest.raises(sa.exc.OperationalError) as raised:
            await db.write_together(_write_then_read, write_lock_wait=0.05)
    assert is_transient(raised.value)  # answered as retryable, as a busy BEGIN is
    assert "database is locked" in str(raised.value)
    async with db.transaction(write=False) as reader:
        left = (await reader.execute(sa.text("SELECT count(*) FROM together_note"))).scalar()
    assert left == 0


def _drafts(request_id: str, records: int = 2) -> list[service.EventDraft]:
    return [
        service.EventDraft(
            actor=ACTOR,
            operation=S62Operation.CONSULTATION,
            operation_kind=OperationKind.QUERY,
            operation_name="CouncilIncidents",
            outcome=Outcome.SERVED,
            records=served(records),
            request_id=request_id,
            trace_id=None,
            agreement_version="sha256:test",
            detail=None,
        )
    ]


async def test_appends_waiting_together_are_one_transaction_each_committed(
    db: Database, heard: list[tuple[str, bool, str]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    calls = [service.record_many(db, _drafts(f"{tag}-{n}")) for n in range(6)]
    seqs = await asyncio.gather(*calls)
    # Each caller has its own event, in the order they asked, one after another on the chain.
    flat = [seq for each in seqs for seq in each]
    assert flat == list(range(flat[0], flat[0] + 6))
    # One write transaction for the six (they all waited while the first was being written).
    begun = [s for s, _, _ in heard if s.startswith("BEGIN IMMEDIATE")]
    assert len(begun) == 1
    async with db.transaction(write=False) as reader:
        report = await verify.verify(reader)
        found = await reader.execute(
            sa.select(chain.EVENTS.c.request_id).where(chain.EVENTS.c.seq.in_(flat))
        )
        assert sorted(found.scalars()) == sorted(f"{tag}-{n}" for n in range(6))
        indexed = sa.select(sa.func.count()).where(chain.RECORDS.c.seq.in_(flat))
        assert (await reader.execute(indexed)).scalar() == 0  # indexed after, off the path
    assert report.ok, report.problem
    assert await AuditIndexer(db).index_all() >= 6
    async with db.transaction(write=False) as reader:
        assert (await reader.execute(indexed)).scalar() == 12  # each event's two records
        report = await verify.verify(reader)
    assert report.ok, report.problem


async def test_one_bad_append_in_a_group_fails_no_other(db: Database) -> None:
    tag = uuid.uuid4().hex[:8]
    good = [service.record_many(db, _drafts(f"{tag}-{n}")) for n in range(3)]
    broken = chain.Pending(content={}, canonical=b"[]")

    async def bad() -> chain.Head:
        return await chain.append_apart(db, [broken])

    results = await asyncio.gather(good[0], bad(), good[1], good[2], return_exceptions=True)
    assert isinstance(results[1], KeyError)  # its event has no columns: it alone fails
    kept = [seq for each in (results[0], results[2], results[3]) for seq in each]  # type: ignore[union-attr]
    assert len(kept) == 3
    async with db.transaction(write=False) as reader:
        report = await verify.verify(reader)
    assert report.ok, report.problem
