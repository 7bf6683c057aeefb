"""A GraphQL query's session (`Database.query_session`): each statement a transaction of its own
(no BEGIN, no COMMIT); on PostgreSQL its one write the audit's append, committed as it runs;
what needs a transaction around it is refused, not silently half-done."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service
from hub.audit.models import AuditEvent
from hub.db import Database, NeedsATransaction, rows
from tests.conftest import is_postgres
from tests.test_audit_chain import consulted, index_committed, served

postgres_only = pytest.mark.skipif(
    not is_postgres(), reason="a SQLite query's audit is written in a transaction of its own"
)


def _draft(request_id: str) -> service.EventDraft:
    return consulted("AuditedRead", request_id, served(2))


async def _events(db: Database, request_id: str) -> list[AuditEvent]:
    async with db.transaction(write=False) as reader:
        query = sa.select(AuditEvent).where(AuditEvent.request_id == request_id)
        return list((await reader.execute(query)).scalars())


def _in_transaction(raw: Any) -> bool:
    """The driver's own view of its connection (asyncpg's, or aiosqlite's sqlite3's)."""
    driver = raw.driver_connection
    if is_postgres():
        return bool(driver.is_in_transaction())
    return bool(driver.in_transaction)


async def test_a_query_session_opens_no_transaction(db: Database) -> None:
    async with db.query_session() as session:
        await session.begin()
        [row] = (await session.execute(sa.text("SELECT 1 AS n"))).all()
        [direct] = await rows(session, sa.select(sa.literal(2).label("n")))
        raw = await (await session.connection()).get_raw_connection()
        assert not _in_transaction(raw)  # no BEGIN was sent for either statement
        assert (row.n, direct.n) == (1, 2)
        await session.commit()
    # A write transaction still has one, and commits it.
    async with db.transaction(write=True) as writer:
        await writer.execute(sa.text("SELECT 1"))
        raw = await (await writer.connection()).get_raw_connection()
        assert _in_transaction(raw)


@postgres_only
async def test_a_query_sessions_append_is_committed_as_it_runs(db: Database) -> None:
    request_id = f"req-{uuid.uuid4()}"
    async with db.query_session() as session:
        await session.begin()
        [seq] = await service.record_many(session, [_draft(request_id)])
        # Another connection sees it before this session commits (or even ends).
        [event] = await _events(db, request_id)
        assert event.seq == seq
        assert event.operation_name == "AuditedRead"
        await session.rollback()  # nothing to undo: the append was its own transaction
    assert [e.seq for e in await _events(db, request_id)] == [seq]
    await index_committed(db)


_WRITES = [
    "  insert into audit_index_progress (id, indexed_seq) values (-7, 0)",
    "UPDATE audit_chain_head SET last_seq = last_seq WHERE id = -7",
    "DELETE FROM audit_index_progress WHERE id = -7",
]


@pytest.mark.parametrize(
    "statement", [*_WRITES, *(["SET LOCAL jit = off"] if is_postgres() else [])]
)
async def test_what_needs_a_transaction_is_refused(db: Database, statement: str) -> None:
    async with db.query_session() as session:
        await session.begin()
        with pytest.raises(NeedsATransaction, match="open a transaction for it"):
            await session.execute(sa.text(statement))
    async with db.transaction(write=False) as reader:
        found = await reader.execute(sa.text("SELECT count(*) FROM audit_index_progress"))
        assert found.scalar_one() == 1  # the indexer's one row, and no other


@postgres_only
async def test_a_transaction_of_its_own_is_not_refused(db: Database) -> None:
    # The guard is the audited read's alone: the hub's other sessions write as before.
    async with db.transaction(write=True) as writer:
        await writer.execute(sa.text("SET LOCAL jit = off"))
        setting = await writer.execute(sa.text("SELECT current_setting('jit')"))
        assert setting.scalar_one() == "off"


async def test_a_query_sessions_end_takes_no_trip_on_sqlite(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.audits_reads_in_place:
        pytest.skip("SQLite's thread: PostgreSQL sends no COMMIT or ROLLBACK without a BEGIN")
    import aiosqlite  # noqa: PLC0415 - SQLite's driver, on SQLite only

    ended: list[str] = []
    for name in ("commit", "rollback"):
        original = getattr(aiosqlite.Connection, name)

        async def counted(self: Any, *, _name: str = name, _original: Any = original) -> None:
            ended.append(_name)
            await _original(self)

        monkeypatch.setattr(aiosqlite.Connection, name, counted)
    async with db.query_session() as session:
        await session.begin()
        await session.execute(sa.text("SELECT 1"))
        await session.commit()
    async with db.query_session() as session:
        await session.begin()
        await session.execute(sa.text("SELECT 1"))
        await session.rollback()
    assert ended == []  # no transaction to end: no trip to the connection's thread for it
    async with db.transaction(write=True) as writer:
        await writer.execute(sa.text("SELECT 1"))
    assert ended == ["commit"]  # a transaction begun is ended as before


# Long enough to be cancelled while it runs, on either database (a second or less).
_SLOW = sa.select(
    sa.text(
        "(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000) "
        "SELECT count(*) FROM c) AS n"
    )
)


@pytest.mark.parametrize("kind", ["query", "read", "write"])
@pytest.mark.parametrize("path", ["direct", "sqlalchemy"])
async def test_a_session_cancelled_mid_statement_leaves_its_pool_usable(
    db: Database, kind: str, path: str
) -> None:
    """A request cancelled while its statement runs (a socket closed, a hub stopping) hands
    its connection back with nothing open on it: the transactions after it begin, run and
    commit, on every connection of the pool."""
    loop = asyncio.get_running_loop()
    sent = asyncio.Event()

    def listener(*_: Any) -> None:  # in whichever thread sends the statement
        loop.call_soon_threadsafe(sent.set)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", listener)

    def opened() -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        return db.query_session() if kind == "query" else db.transaction(write=kind == "write")

    async def slow() -> None:
        async with opened() as session:
            if path == "direct":
                await rows(session, _SLOW)
            else:
                await session.execute(_SLOW)

    try:
        for _ in range(3):
            sent.clear()
            running = asyncio.create_task(slow())
            await sent.wait()
            await asyncio.sleep(0.05)  # the statement is with the database now
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", listener)
    for _ in range(10):
        # A write lock left held fails this after a second, not SQLite's 30 s busy timeout.
        async with db.transaction(write=True, write_lock_wait=1) as writer:
            [row] = await rows(writer, sa.select(sa.literal(1).label("n")))
            assert row.n == 1
            raw = await (await writer.connection()).get_raw_connection()
            assert _in_transaction(raw)  # its own, begun on a connection with none open
