"""Retryable means retryable: a database out of reach answers 503 `SERVICE_UNAVAILABLE` with
`Retry-After`, over real HTTP, never `INTERNAL`; data errors stay what they were (issue 17.1).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.limits.unavailable import UNAVAILABLE_CODES, is_transient
from hub.settings import Settings
from tests.conftest import LiveServer, free_port, serve, unique
from tests.factories import FORCE, REPORT_INCIDENT, incident

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture(scope="module")
def hub_without_database(
    tmp_path_factory: pytest.TempPathFactory,
    live_server: LiveServer,  # first: tracing instruments the first engine it sees only
) -> Iterator[Settings]:
    """A hub whose PostgreSQL is down (nothing listens on its port), on every test database."""
    port = free_port()
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone",
        data_dir=tmp_path_factory.mktemp("hub-down"),
        issuer=f"http://127.0.0.1:{port}",
    )
    from hub.app import create_app  # noqa: PLC0415

    server, thread = serve(create_app(settings), port, settings)
    yield settings
    server.should_exit = True
    thread.join(timeout=10)


def _police_token(settings: Settings) -> str:
    return issue_access_token(
        settings=settings,
        keys=KeySet.for_settings(settings),
        client_id="test-police-retry",
        organisation_code=FORCE,
        role=Role.POLICE_OFFICER,
        user="pc-retry",
        purpose=None,
    )


def _assert_retryable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    codes = [e["extensions"]["code"] for e in response.json()["errors"]]
    assert codes, response.text
    # On PostgreSQL a read's audit is in its transaction, and that may be what failed first.
    assert set(codes) <= UNAVAILABLE_CODES, codes


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_push_while_the_database_is_down_is_retryable(
    hub_without_database: Settings, accept: str
) -> None:
    settings = hub_without_database
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{settings.issuer}/graphql",
            json={"query": REPORT_INCIDENT, "variables": {"input": incident(unique("RETRY"))}},
            headers={"Authorization": f"Bearer {_police_token(settings)}", "Accept": accept},
        )
    _assert_retryable(response)
    assert "postgres" not in response.text  # nothing of the driver's message leaks


async def test_a_query_while_the_database_is_down_is_retryable(
    hub_without_database: Settings,
) -> None:
    settings = hub_without_database
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{settings.issuer}/graphql",
            json={"query": "{ incidents(first: 1) { edges { node { id } } } }"},
            headers={"Authorization": f"Bearer {_police_token(settings)}"},
        )
    _assert_retryable(response)


async def test_the_token_endpoint_while_the_database_is_down_is_retryable(
    hub_without_database: Settings,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{hub_without_database.issuer}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("some-client", "some-secret"),
        )
    _assert_retryable(response)


async def test_driver_errors_are_told_apart(tmp_path: Path) -> None:
    """Real errors from the real drivers: busy and refused are transient, a constraint is not."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0, "isolation_level": None}
    )
    try:
        async with engine.connect() as connection:
            with pytest.raises(sa.exc.OperationalError) as locked:
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            with pytest.raises(sa.exc.OperationalError) as missing:
                await connection.exec_driver_sql("SELECT * FROM no_such_table")
        holder.execute("INSERT INTO t VALUES (1)")
        holder.execute("COMMIT")
        async with engine.connect() as connection:
            with pytest.raises(sa.exc.IntegrityError) as duplicate:
                await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        holder.close()
        await engine.dispose()
    refused = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(OSError) as down:
        async with refused.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
    await refused.dispose()
    assert is_transient(locked.value)
    assert is_transient(down.value)
    assert not is_transient(duplicate.value)
    assert not is_transient(missing.value)
