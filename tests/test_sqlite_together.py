"""Statements run together in one trip to aiosqlite's thread (`hub.db.together`), as SQLite's
audit append runs them: bound and read as SQLAlchemy binds and reads them, in the session's
own transaction, seen by the engine's statement listeners in the caller's context, and a
failure raised as SQLAlchemy raises it, leaving nothing behind."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain
from hub.db import Database, OnSQLiteThread, UTCDateTime, together
from tests.conftest import is_postgres

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
