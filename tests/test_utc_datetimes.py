"""Stored times come back timezone-aware in UTC, read through SQLAlchemy or straight from the
driver, whatever the database's session time zone (`hub.db.UTCDateTime`)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from hub.db import Database, UTCDateTime, rows
from tests.conftest import is_postgres

# 23:30 in London summer time: the day differs in UTC, so a time read in the wrong zone shows.
_LONDON = dt.timezone(dt.timedelta(hours=1))
_STORED = dt.datetime(2026, 7, 1, 23, 30, 0, 123_456, tzinfo=_LONDON)


@pytest.mark.skipif(not is_postgres(), reason="asyncpg's reading is what is trusted; see below")
async def test_times_come_back_aware_in_utc_by_either_path(db: Database) -> None:
    statement = sa.select(
        sa.cast(sa.bindparam("at", type_=UTCDateTime()), UTCDateTime()).label("at")
    )
    async with db.transaction(write=False) as session:
        await session.execute(sa.text("SET LOCAL TIME ZONE 'Europe/London'"))
        through_orm = (await session.execute(statement, {"at": _STORED})).scalar_one()
        [direct] = await rows(session, statement, {"at": _STORED})
    for value in (through_orm, direct.at):
        assert value == _STORED
        assert value.tzinfo is dt.UTC
        assert value.isoformat() == "2026-07-01T22:30:00.123456+00:00"


def test_asyncpg_is_trusted_with_utc_and_sqlite_is_not() -> None:
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415

    asyncpg = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    assert UTCDateTime().result_processor(asyncpg, None) is None
    processor = UTCDateTime().result_processor(sqlite.aiosqlite.dialect(), None)  # type: ignore[attr-defined]
    assert processor is not None
    assert processor(dt.datetime(2026, 7, 1, 22, 30)).tzinfo is dt.UTC  # noqa: DTZ001 - as SQLite holds it
