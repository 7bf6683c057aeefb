"""Fixtures: a migrated database (SQLite by default, PostgreSQL when asked), a real uvicorn server.

`HUB_TEST_DATABASE_URL` picks the server: unset, a fresh SQLite file; a PostgreSQL URL (any
database on the server), a fresh database created for the run and dropped after it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

# Every record kind declared, as the hub's entry points declare them (the schema, the CLI).
import hub.record_kinds  # noqa: F401
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.audit.models import AuditEvent
from hub.db import Database, unpacked
from hub.demo import EXAMPLE_PURPOSE
from hub.limits.rate import RoleLimit
from hub.migrate import upgrade
from hub.server import options as server_options
from hub.settings import Settings, get_settings

POSTGRES_URL = os.getenv("HUB_TEST_DATABASE_URL", "")


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM (CI stopped: `stop_suites` in .ci/run, or `timeout`) ends the run as Ctrl-C
    does, so that pytest tears the fixtures down: a throwaway PostgreSQL cluster is stopped
    and deleted (`pg_ctl` starts its server in a session of its own, out of reach of a signal
    to the run's process group), scratch databases are dropped. Python's default for SIGTERM
    ends the process at once and leaves all of them behind. Once only: the signal comes again
    (from `timeout`, passing on its own), and a teardown interrupted leaves them too; if it
    takes too long, `timeout --kill-after` ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stopped)


def is_postgres() -> bool:
    return POSTGRES_URL.startswith("postgresql")


async def _create_pg_database(base_url: str, name: str) -> str:
    url = make_url(base_url)
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(base_url: str, name: str) -> None:
    admin = create_async_engine(
        make_url(base_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hub-data")


@contextlib.asynccontextmanager
async def scratch_database(
    directory: Path, prefix: str, *, migrate: bool = True
) -> AsyncIterator[str]:
    """A database of its own: a fresh PostgreSQL database (dropped after) or a SQLite file."""
    if is_postgres():
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        url = await _create_pg_database(POSTGRES_URL, name)
        try:
            if migrate:
                await upgrade(url)
            yield url
        finally:
            await _drop_pg_database(POSTGRES_URL, name)
    else:
        url = f"sqlite+aiosqlite:///{directory / f'{prefix}.db'}"
        if migrate:
            await upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def database_url(data_dir: Path) -> AsyncIterator[str]:
    """A freshly migrated database with the reference data loaded."""
    async with scratch_database(data_dir, "hub_test") as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on the test loop, for reading what the server stored."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    """A write transaction rolled back at the end: whatever a test does, nobody else sees."""
    async with db.session(write=True) as session:
        await session.begin()
        try:
            yield session
        finally:
            await session.rollback()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A hub served by uvicorn in a thread, on a real port, with its own event loop."""

    settings: Settings
    url: str
    app: Any
    keys: KeySet
    statements: list[str] = field(default_factory=list)

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def token(
        self, role: Role, org: str, *, user: str | None = "test-user", purpose: str | None = ""
    ) -> str:
        """A valid token; by default it names a person and a purpose the role may give."""
        return issue_access_token(
            settings=self.settings,
            keys=self.keys,
            client_id=f"test-{role.value}",
            organisation_code=org,
            role=role,
            user=user,
            purpose=EXAMPLE_PURPOSE[role] if purpose == "" else purpose,
        )


def serve(
    app: Any, port: int, settings: Settings, *, http: str | None = None
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve `app` in a thread with the hub's server options (hub/server.py), once started."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **server_options(settings, http=http),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "uvicorn did not start"
            raise RuntimeError(msg)
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="session")
def live_server(database_url: str, data_dir: Path) -> Iterator[LiveServer]:
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        issuer=f"http://127.0.0.1:{port}",
        graphiql=True,
        introspection=True,
        # The suite drives one client harder than any real one (ten identical pushes at once):
        # the limits' own tests start hubs with theirs.
        rate_limits={"default": RoleLimit(rate=1000, burst=1000, in_flight=100)},
        # No webhook dispatcher polling behind the tests that count a request's statements:
        # tests/test_webhooks.py starts a hub of its own that delivers.
        webhook_dispatch=False,
        # Nor an escalation scanner waking mid-test (every 60 s) to read meetings and write
        # escalations: tests/test_escalation.py starts hubs of its own that scan.
        escalation_scan_seconds=0,
    )
    app = create_app(settings)
    live = LiveServer(
        settings=settings,
        url=f"http://127.0.0.1:{port}",
        app=app,
        keys=KeySet.for_settings(settings),
    )
    engine = app.app.state.hub.db.engine.sync_engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        live.statements.append(unpacked(statement))  # as written, if SQLite was sent it packed

    server, thread = serve(app, port, settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, server: LiveServer, token: str) -> None:
        self.http = http
        self.server = server
        # The token names the person and the purpose; tests that vary them send headers.
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            self.server.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers=self.headers,
        )

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def as_role(http: httpx.AsyncClient, live_server: LiveServer) -> Any:
    def make(role: Role, org: str) -> GraphQLClient:
        return GraphQLClient(http, live_server, live_server.token(role, org))

    return make


def unique(prefix: str) -> str:
    """A reference no other test uses: the session's database is shared."""
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture(scope="module")
async def world(live_server: LiveServer, database_url: str) -> AsyncIterator[Any]:
    """The agreement's small synthetic world (tests/scenario.py), built once per module."""
    from tests.scenario import build_world  # noqa: PLC0415 - scenario imports this module

    database = Database(database_url)
    async with httpx.AsyncClient(timeout=30) as http:
        yield await build_world(http, live_server, database)
    await database.dispose()


@contextlib.contextmanager
def cli_settings(
    monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path
) -> Iterator[Settings]:
    """The environment the CLI reads its settings from, pointing at a test database."""
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.delenv("HUB_MODE", raising=False)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        get_settings.cache_clear()


async def audit_events_of(db: Database, request_id: str) -> list[AuditEvent]:
    """The audit events one request wrote, in chain order."""
    async with db.transaction(write=False) as session:
        query = sa.select(AuditEvent).where(AuditEvent.request_id == request_id)
        return list((await session.execute(query.order_by(AuditEvent.seq))).scalars())
