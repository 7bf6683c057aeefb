"""SQLite's write transactions take turns in the process, in the order they asked
(`hub.db._WriteTurns`), instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.db import Database
from hub.limits.unavailable import is_transient
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(is_postgres(), reason="SQLite's one write lock")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with database.transaction(write=True) as session:
        await session.execute(sa.text("CREATE TABLE note (n INTEGER)"))
    yield database
    await database.dispose()


async def _hold(db: Database, holding: asyncio.Event, done: asyncio.Event) -> None:
    """A writer that takes its turn, says so, and keeps it until told."""
    async with db.transaction(write=True) as session:
        await session.execute(sa.text("INSERT INTO note VALUES (1)"))
        holding.set()
        await done.wait()


async def test_writers_take_turns_one_at_a_time_and_all_commit(db: Database) -> None:
    inside = 0
    most = 0
    order: list[int] = []

    async def write(n: int) -> None:
        nonlocal inside, most
        async with db.transaction(write=True) as session:
            # The transaction begins (and waits its turn) at its first statement.
            await session.execute(sa.text("INSERT INTO note VALUES (:n)"), {"n": n})
            inside += 1
            most = max(most, inside)
            order.append(n)
            await asyncio.sleep(0.01)  # others ask meanwhile, and wait their turn
            inside -= 1

    await asyncio.gather(*(write(n) for n in range(8)))
    assert most == 1  # one at a time
    assert sorted(order) == list(range(8))  # and every one had its turn
    async with db.transaction(write=False) as session:
        stored = (await session.execute(sa.text("SELECT n FROM note ORDER BY n"))).scalars()
        assert list(stored) == list(range(8))


async def test_a_waiting_writer_queues_in_the_process_not_in_sqlites_busy_handler(
    db: Database,
) -> None:
    begun: list[str] = []
    sa.event.listen(
        db.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: (
            begun.append(statement) if statement.startswith("BEGIN IMMEDIATE") else None
        ),
    )
    holding, done = asyncio.Event(), asyncio.Event()

    async def follow() -> None:
        async with db.transaction(write=True) as session:
            await session.execute(sa.text("INSERT INTO note VALUES (2)"))

    holder = asyncio.create_task(_hold(db, holding, done))
    await holding.wait()
    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.2)  # the follower has asked by now
    # Its BEGIN IMMEDIATE is not yet sent: it waits on the process's queue, to be woken
    # when the holder's turn ends (SQLite's busy handler would sleep and poll instead).
    assert len(begun) == 1
    assert not follower.done()
    done.set()
    await asyncio.gather(holder, follower)
    assert len(begun) == 2


async def test_a_writer_that_cannot_wait_fails_as_a_busy_sqlite_and_stores_nothing(
    db: Database,
) -> None:
    holding = asyncio.Event()
    done = asyncio.Event()

    async def impatient() -> None:
        async with db.transaction(write=True, write_lock_wait=0.05) as session:
            await session.execute(sa.text("INSERT INTO note VALUES (2)"))

    holder = asyncio.create_task(_hold(db, holding, done))
    await holding.wait()
    with pytest.raises(
        (sqlite3.OperationalError, sa.exc.OperationalError), match="database is locked"
    ) as refused:
        await impatient()
    assert is_transient(refused.value)  # answered as retryable (HTTP 503)
    done.set()
    await holder
    # The turn was given back: the next writer goes at once.
    async with db.transaction(write=True, write_lock_wait=1) as session:
        await session.execute(sa.text("INSERT INTO note VALUES (3)"))
    async with db.transaction(write=False) as session:
        stored = (await session.execute(sa.text("SELECT n FROM note ORDER BY n"))).scalars()
        assert list(stored) == [1, 3]


async def test_a_writer_that_fails_gives_its_turn_back(db: Database) -> None:
    async def fail() -> None:
        async with db.transaction(write=True) as session:
            await session.execute(sa.text("INSERT INTO note VALUES (1)"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await fail()
    async with db.transaction(write=True, write_lock_wait=1) as session:
        await session.execute(sa.text("INSERT INTO note VALUES (2)"))
    async with db.transaction(write=False) as session:
        stored = (await session.execute(sa.text("SELECT n FROM note"))).scalars()
        assert list(stored) == [2]


async def test_a_writer_cancelled_while_its_begin_waits_in_the_thread_leaves_nothing_open(
    db: Database,
) -> None:
    """The thread runs the BEGIN IMMEDIATE it was sent after its caller is cancelled (a socket
    closed, a hub stopping): the connection must not go back to the pool with it open."""
    loop = asyncio.get_running_loop()
    in_the_thread = asyncio.Event()
    stalled: list[str] = []  # the first BEGIN IMMEDIATE only

    def stall(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE" and not stalled:
            stalled.append(statement)
            loop.call_soon_threadsafe(in_the_thread.set)
            time.sleep(0.3)  # in aiosqlite's thread, before SQLite is sent the BEGIN

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", stall)

    async def write() -> None:
        async with db.transaction(write=True) as session:
            await session.execute(sa.text("INSERT INTO note VALUES (1)"))

    cancelled = asyncio.create_task(write())
    await in_the_thread.wait()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # Nothing holds SQLite's write lock: another connection takes it without waiting.
    path = db.engine.url.database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    # The pool's connection (the one that was cancelled) begins the next writer's transaction.
    for n in (2, 3):
        async with db.transaction(write=True, write_lock_wait=1) as session:
            await session.execute(sa.text("INSERT INTO note VALUES (:n)"), {"n": n})
    async with db.transaction(write=False) as session:
        stored = (await session.execute(sa.text("SELECT n FROM note ORDER BY n"))).scalars()
        assert list(stored) == [2, 3]
