"""Per-client limits over real HTTP: 429 `RATE_LIMITED` with `Retry-After`, audited as refusals,
one allowance per client however many hub processes serve it (issue 17.2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.app import _limiter
from hub.audit.models import AuditEvent, Outcome
from hub.db import Database, fetch
from hub.demo import EXAMPLE_PURPOSE
from hub.limits.rate import PostgresLimiter, RoleLimit
from hub.settings import Settings
from tests.conftest import POSTGRES_URL, LiveServer, free_port, is_postgres, serve, unique
from tests.factories import COUNCIL

BURST = 3
# One request a hundred seconds: after the burst, nothing more within a test.
STRICT = {"default": RoleLimit(rate=0.01, burst=BURST, in_flight=1)}
VIEWER = {"query": "{ viewer { role } }"}


@dataclasses.dataclass(frozen=True)
class Hub:
    settings: Settings
    url: str


def _start(database_url: str, data_dir: Path) -> Iterator[Hub]:
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    # One issuer for both hubs, as behind one load balancer: a token is good at either.
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        issuer="http://hub.limits.test",
        rate_limits=STRICT,
    )
    server, thread = serve(create_app(settings), port, settings)
    yield Hub(settings, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def limited_hub(
    database_url: str,
    data_dir: Path,
    live_server: LiveServer,  # first: tracing instruments the first engine it sees only
) -> Iterator[Hub]:
    yield from _start(database_url, data_dir)


@pytest.fixture(scope="module")
def second_hub(database_url: str, data_dir: Path) -> Iterator[Hub]:
    """Another hub on the same database: as another process, it shares no memory with the first."""
    yield from _start(database_url, data_dir)


def _headers(settings: Settings, client_id: str) -> dict[str, str]:
    token = issue_access_token(
        settings=settings,
        keys=KeySet.for_settings(settings),
        client_id=client_id,
        organisation_code=COUNCIL,
        role=Role.COUNCIL_SOCIAL_WORKER,
        user="sw-limits",
        purpose=EXAMPLE_PURPOSE[Role.COUNCIL_SOCIAL_WORKER],
    )
    return {"Authorization": f"Bearer {token}"}


async def _denials(db: Database, client_id: str) -> list[dict[str, object]]:
    async with db.transaction(write=False) as session:
        details = await session.scalars(
            sa.select(AuditEvent.detail).where(
                AuditEvent.client_id == client_id, AuditEvent.outcome == Outcome.DENIED.value
            )
        )
        return [json.loads(detail or "{}") for detail in details]


async def test_over_its_rate_a_client_is_refused_and_the_refusal_audited(
    limited_hub: Hub, db: Database
) -> None:
    client, other = unique("flooder"), unique("bystander")
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{limited_hub.url}/graphql"
        answers = [
            await http.post(url, json=VIEWER, headers=_headers(limited_hub.settings, client))
            for _ in range(2 * BURST)
        ]
        bystander = await http.post(url, json=VIEWER, headers=_headers(limited_hub.settings, other))
    assert [a.status_code for a in answers] == [200] * BURST + [429] * BURST
    for refused in answers[BURST:]:
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert bystander.status_code == 200  # limits are per client
    denials = await _denials(db, client)
    assert denials == [{"denied": ["RATE_LIMITED"], "limit": "rate"}] * BURST


@pytest.mark.skipif(not is_postgres(), reason="SQLite is served by one process")
async def test_two_hub_processes_share_one_allowance(
    limited_hub: Hub, second_hub: Hub, db: Database
) -> None:
    client = unique("two-hubs")
    hubs = [limited_hub, second_hub]
    async with httpx.AsyncClient(timeout=30) as http:
        answers = [
            await http.post(
                f"{hubs[n % 2].url}/graphql",
                json=VIEWER,
                headers=_headers(limited_hub.settings, client),
            )
            for n in range(4 * BURST)
        ]
    codes = [a.status_code for a in answers]
    assert codes.count(200) == BURST, codes  # not BURST per process
    assert codes.count(429) == 3 * BURST, [a.text for a in answers]
    assert len(await _denials(db, client)) == 3 * BURST


async def test_a_client_with_a_request_in_flight_is_refused_another(
    limited_hub: Hub, db: Database
) -> None:
    client = unique("in-flight")
    port = int(limited_hub.url.rsplit(":", 1)[1])
    body = json.dumps(VIEWER).encode()
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in {
            "Host": "127.0.0.1",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
            **_headers(limited_hub.settings, client),
        }.items()
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Headers only: the hub admits the request and waits for its body, so it is in flight.
    writer.write(f"POST /graphql HTTP/1.1\r\n{head}\r\n".encode())
    await writer.drain()
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{limited_hub.url}/graphql"
        refused = await _retry_until_refused(http, url, _headers(limited_hub.settings, client))
        writer.write(body)
        await writer.drain()
        first = await reader.read()
        writer.close()
        after = await http.post(url, json=VIEWER, headers=_headers(limited_hub.settings, client))
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert first.startswith(b"HTTP/1.1 200")
    assert after.status_code == 200  # the slot was released
    assert {"denied": ["RATE_LIMITED"], "limit": "in_flight"} in await _denials(db, client)


async def _retry_until_refused(
    http: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> httpx.Response:
    """The raw request may not have reached the hub yet: ask until it has (bounded)."""
    for _ in range(50):
        response = await http.post(url, json=VIEWER, headers=headers)
        if response.status_code == 429:
            return response
        await asyncio.sleep(0.1)
    return response


@pytest.mark.skipif(not is_postgres(), reason="the shared limiter is PostgreSQL's")
async def test_the_limiter_keeps_as_many_connections_as_requests_have() -> None:
    # Fewer, and at 8 requests in flight its overflow connections were closed as they came back
    # and opened again for the next admission (a connect and its first queries per request).
    db = Database(POSTGRES_URL, pool_size=7)
    limiter = _limiter(db)
    try:
        assert isinstance(limiter, PostgresLimiter)
        pool = limiter._engine.sync_engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.size() == 7
    finally:
        await limiter.close()
        await db.dispose()


@pytest.mark.skipif(not is_postgres(), reason="the shared limiter is PostgreSQL's")
async def test_a_release_goes_with_the_clients_next_admission_or_soon_after(
    database_url: str,
) -> None:
    limiter = PostgresLimiter(database_url, pool_size=2)
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement.split(None, 1)[0])

    sa.event.listen(limiter._engine.sync_engine, "before_cursor_execute", note)
    client = unique("fold")
    one = RoleLimit(rate=1000, burst=1000, in_flight=1)

    async def in_flight() -> int:
        async with limiter._engine.connect() as connection:
            found = await connection.execute(
                sa.text("SELECT in_flight FROM rate_limit WHERE client_id = :c"), {"c": client}
            )
            return int(found.scalar_one())

    try:
        assert (await limiter.admit(client, one)).admitted
        await limiter.release(client)
        # A cap of one: the second admission is allowed only with the release it carries.
        assert (await limiter.admit(client, one)).admitted
        assert statements == ["INSERT", "INSERT"]  # no UPDATE between them
        assert await in_flight() == 1  # one in flight: the first one's slot went back
        await limiter.release(client)
        for _ in range(100):  # the flush, RELEASE_FLUSH_SECONDS later (bounded wait)
            if await in_flight() == 0:
                break
            await asyncio.sleep(0.05)
        assert await in_flight() == 0
        assert statements.count("UPDATE") == 1
        # An admission while its client's release is being written waits for the write (here
        # held back a while, as a slow round trip would be), not counting the slot as taken.
        assert (await limiter.admit(client, one)).admitted
        await limiter.release(client)
        send, written = limiter._once_more_if_dropped, asyncio.Event()

        async def held_back(statement: Any, parameters: dict[str, Any]) -> Any:
            if str(statement).lstrip().startswith("UPDATE"):  # the flush's, not an admission
                await written.wait()
            return await send(statement, parameters)

        limiter._once_more_if_dropped = held_back  # type: ignore[method-assign]
        limiter._start_flush()
        await asyncio.sleep(0)  # the flush has taken the owed slot
        asyncio.get_running_loop().call_later(0.2, written.set)
        assert (await limiter.admit(client, one)).admitted
        # And a release still owed is written when the limiter closes.
        await limiter.release(client)
    finally:
        await limiter.close()
    reader = PostgresLimiter(database_url, pool_size=1)
    try:
        limiter = reader
        assert await in_flight() == 0
    finally:
        await reader.close()


def _terminate(database_url: str, pid: int) -> bool:
    """End one server process, from a thread with a loop of its own: the caller's event loop
    runs nothing meanwhile, so its pooled connection learns of it only when it next sends a
    statement, as after a connection lost without a word."""
    ended: list[bool] = []

    async def terminate() -> None:
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                found = await connection.execute(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                )
                ended.append(bool(found.scalar_one()))
        finally:
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(terminate(),))
    thread.start()
    thread.join(timeout=30)
    return ended == [True]


@pytest.mark.skipif(not is_postgres(), reason="the shared limiter is PostgreSQL's")
async def test_an_admission_on_a_dropped_connection_retries_on_a_fresh_pool(
    database_url: str,
) -> None:
    limiter = PostgresLimiter(database_url, pool_size=2)
    client, limit = unique("dropped"), RoleLimit(rate=1000, burst=1000, in_flight=10)
    try:
        assert (await limiter.admit(client, limit)).admitted
        await limiter.release(client)
        pool = limiter._engine.sync_engine.pool
        assert pool.checkedin() == 1  # the one connection the admission used, now idle
        raw = await limiter._engine.raw_connection()
        pid = await raw.dbapi_connection._connection.fetchval("SELECT pg_backend_pid()")  # type: ignore[union-attr]
        raw.close()
        # Only the limiter's own connection: the suite's other hubs share this database.
        assert _terminate(database_url, pid)
        # Its statement fails on the dead connection, which discards the pool: the one
        # retry runs on a fresh connection of a fresh pool, and the client is admitted.
        assert (await limiter.admit(client, limit)).admitted
        assert limiter._engine.sync_engine.pool is not pool
        await limiter.release(client)
    finally:
        await limiter.close()


@pytest.mark.skipif(not is_postgres(), reason="fetch serves the shared limiter, on PostgreSQL")
async def test_fetch_refuses_an_engine_whose_statements_would_stay_uncommitted(
    database_url: str,
) -> None:
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(ValueError, match="AUTOCOMMIT"):
            await fetch(engine, sa.text("SELECT 1 AS one").columns(sa.column("one")))
        # The connection went back to the pool: its only one is free for the next checkout.
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
