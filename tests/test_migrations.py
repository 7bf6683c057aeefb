"""Migrations build the schema the models describe, on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from hub.migrate import alembic_config, upgrade
from hub.reference.models import ForceCoverage, Organisation
from hub.tables import metadata
from tests.conftest import scratch_database


@pytest.fixture
async def empty_database(tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(tmp_path, "hub_mig", migrate=False) as url:
        yield url


async def _drift(url: str) -> list:
    engine = create_async_engine(url)

    def compare(connection: sa.Connection) -> list:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(compare)
    await engine.dispose()
    return differences


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def test_migrations_match_the_models(empty_database: str) -> None:
    await upgrade(empty_database)
    assert await _drift(empty_database) == []
    assert await _tables(empty_database) == set(metadata.tables)


async def test_migrations_downgrade_and_upgrade_again(empty_database: str) -> None:
    await upgrade(empty_database)
    config = alembic_config(empty_database)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _tables(empty_database) == set()
    assert await _drift(empty_database) != [], "the drift check sees a missing schema"
    await upgrade(empty_database)
    assert await _drift(empty_database) == []


async def test_reference_data_is_loaded_and_sync_is_repeatable(empty_database: str) -> None:
    first = await upgrade(empty_database)
    again = await upgrade(empty_database)
    assert (first.added, again.added, again.updated) == (44 + 175 + 4, 0, 0)
    engine = create_async_engine(empty_database)
    async with engine.connect() as connection:
        kinds = dict(
            (
                await connection.execute(
                    sa.select(Organisation.kind, sa.func.count()).group_by(Organisation.kind)
                )
            ).all()
        )
        coverage = await connection.scalar(sa.select(sa.func.count()).select_from(ForceCoverage))
        london = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(ForceCoverage)
            .where(ForceCoverage.force_code == "MET")
        )
    await engine.dispose()
    assert kinds == {"police_force": 44, "council": 175, "inspectorate": 3, "hub_operator": 1}
    assert coverage == 175 * 2  # each council's territorial force, and BTP
    assert london == 32


async def test_audit_event_records_are_compressed_with_lz4_on_postgresql(
    empty_database: str,
) -> None:
    if not empty_database.startswith("postgresql"):
        pytest.skip("column compression is PostgreSQL's")
    await upgrade(empty_database)
    engine = create_async_engine(empty_database)
    methods = (
        "SELECT attname, CAST(attcompression AS text) FROM pg_attribute"
        " WHERE attrelid = 'audit_event'::regclass AND attname IN ('records', 'child_ids')"
    )
    async with engine.connect() as connection:
        lz4 = (
            await connection.execute(
                sa.text(
                    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                    " WHERE name = 'default_toast_compression'"
                )
            )
        ).scalar()
        found = dict((await connection.execute(sa.text(methods))).all())
    await engine.dispose()
    if not lz4:
        pytest.skip("this PostgreSQL was built without lz4")
    assert found == {"records": "l", "child_ids": "l"}


async def test_recipients_of_events_written_before_the_index_are_indexed(
    empty_database: str,
) -> None:
    """0019 indexes the recipients of fanned-out deliveries already logged, as far as the index
    progress row says the indexes reach (the indexer does the rest)."""
    await upgrade(empty_database, "0018")
    detail = (
        '{"recipients":[{"client_id":"c-1","purpose":"p","request_id":"r-1","user":"sw-1"},'
        '{"client_id":"c-2","purpose":"p","request_id":"r-2","user":null}]}'
    )
    engine = create_async_engine(empty_database)
    async with engine.begin() as connection:
        for seq in (1, 2, 3):
            await connection.execute(
                sa.text(
                    "INSERT INTO audit_event (seq, id, occurred_at, operation, outcome, "
                    "organisation_code, client_id, role, operation_kind, fields, child_ids, "
                    "detail, prev_hash, hash) VALUES (:seq, :id, CURRENT_TIMESTAMP, "
                    "'disclosure', 'served', 'E08000025', '*', 'council_social_worker', "
                    "'subscription', '[]', '[]', :detail, :h, :h)"
                ),
                {
                    "seq": seq,
                    "id": f"event-{seq}",
                    "detail": None if seq == 2 else detail,
                    "h": "0" * 64,
                },
            )
        await connection.execute(sa.text("UPDATE audit_index_progress SET indexed_seq = 2"))
    await upgrade(empty_database)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                'SELECT seq, ordinal, "user", client_id, request_id FROM audit_event_recipient '
                "ORDER BY seq, ordinal"
            )
        )
        # Event 3 is past the progress row: the indexer indexes it, not the migration.
        assert [tuple(row) for row in rows] == [
            (1, 0, "sw-1", "c-1", "r-1"),
            (1, 1, None, "c-2", "r-2"),
        ]
    await engine.dispose()
