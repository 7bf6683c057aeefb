"""The server's limits (hub/server.py) and the audit's bounded wait for the chain's head, over a
real uvicorn on loopback with test-sized limits.

Raw sockets play the slow and the greedy client. `HANG` bounds every wait: reaching it means the
server did not act, never that it was slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import select
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.audit import service
from hub.db import Database
from hub.server import ClientSlots, slots_of
from hub.settings import Settings
from tests.conftest import LiveServer, free_port, is_postgres, serve, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, incident
from tests.test_audit_chain import consulted, served

HEADER_TIMEOUT = 0.5
HANG = 10.0  # longer than any limit here
LOCAL = "127.0.0.1"


@dataclass
class Guarded:
    live: LiveServer
    slots: ClientSlots
    port: int


@contextlib.contextmanager
def _guarded(
    database_url: str, data_dir: Path, *, http: str | None = None, **limits: Any
) -> Iterator[Guarded]:
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = Settings(
        database_url=database_url, data_dir=data_dir, issuer=f"http://{LOCAL}:{port}", **limits
    )
    app = create_app(settings)
    server, thread = serve(app, port, settings, http=http)
    live = LiveServer(
        settings=settings, url=f"http://{LOCAL}:{port}", app=app, keys=KeySet.for_settings(settings)
    )
    try:
        yield Guarded(live=live, slots=slots_of(server.config), port=port)
    finally:
        server.should_exit = True
        thread.join(timeout=HANG)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def impatient(
    request: pytest.FixtureRequest, database_url: str, data_dir: Path
) -> Iterator[Guarded]:
    """Heads and the audit's lock must come within half a second; idleness alone is allowed
    far longer, so that what closes a connection here is the header timeout."""
    with _guarded(
        database_url,
        data_dir,
        http=request.param,
        header_timeout_seconds=HEADER_TIMEOUT,
        idle_timeout_seconds=3 * HANG,
        audit_lock_timeout_seconds=HEADER_TIMEOUT,
    ) as guarded:
        yield guarded


@pytest.fixture(scope="module")
def capped(database_url: str, data_dir: Path) -> Iterator[Guarded]:
    """Four connections per client, and time enough to hold them."""
    with _guarded(
        database_url,
        data_dir,
        header_timeout_seconds=3 * HANG,
        idle_timeout_seconds=3 * HANG,
        max_connections_per_client=4,
    ) as guarded:
        yield guarded


def _connect(port: int) -> socket.socket:
    return socket.create_connection((LOCAL, port), timeout=HANG)


def _until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (TimeoutError if it does not)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _trickled_until_closed(sock: socket.socket, head: bytes) -> bool:
    """Send a request head's first line, then a header line every tenth of a second, never the
    blank line that ends it; whether the server closed the connection within `HANG`."""
    sock.sendall(head)
    for _ in range(int(HANG / 0.1)):
        readable, _, _ = select.select([sock], [], [], 0.1)
        try:
            if readable and not sock.recv(4096):
                return True
            sock.sendall(b"X-Slow: 1\r\n")
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
HEALTH_THEN_CLOSE = b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n"


def test_a_connection_that_sends_nothing_is_closed(impatient: Guarded) -> None:
    with _connect(impatient.port) as sock:
        assert _until_closed(sock) == b""


def test_a_request_head_sent_a_line_at_a_time_is_closed(impatient: Guarded) -> None:
    with _connect(impatient.port) as sock:
        assert _trickled_until_closed(sock, b"POST /graphql HTTP/1.1\r\nHost: hub\r\n")


def test_the_next_head_on_a_kept_alive_connection_has_the_same_limit(impatient: Guarded) -> None:
    with _connect(impatient.port) as sock:
        sock.sendall(HEALTH)
        received = b""
        while b'"status":"ok"' not in received:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received
        assert _trickled_until_closed(sock, b"GET /healthz HTTP/1.1\r\n")


@contextlib.asynccontextmanager
async def _graphql_socket(live: LiveServer) -> AsyncIterator[ClientConnection]:
    """A council's graphql-transport-ws connection, acknowledged."""
    url = live.graphql_url.replace("http://", "ws://")
    token = live.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    async with connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), HANG))["type"] == "connection_ack"
        yield ws


async def test_a_subscription_socket_outlives_the_header_timeout(impatient: Guarded) -> None:
    async with _graphql_socket(impatient.live) as ws:
        await asyncio.sleep(3 * HEADER_TIMEOUT)  # past the limit a request head would have
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), HANG))["type"] == "pong"


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.02)


async def test_a_client_past_its_connections_is_refused_until_one_closes(capped: Guarded) -> None:
    async with _graphql_socket(capped.live) as ws:
        held = [_connect(capped.port) for _ in range(3)]  # with the WebSocket, four
        try:
            _wait_for(lambda: capped.slots.open[LOCAL] == 4)
            with _connect(capped.port) as fifth:
                refusal = _until_closed(fifth)
            assert refusal.startswith(b"HTTP/1.1 503"), refusal
            assert capped.slots.refused == 1
            # The four it holds still work.
            held[0].sendall(HEALTH_THEN_CLOSE)
            assert _until_closed(held[0]).startswith(b"HTTP/1.1 200")
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), HANG))["type"] == "pong"
        finally:
            for sock in held[1:]:
                sock.close()
    # Every slot freed, the WebSocket's too: a new connection is served.
    _wait_for(lambda: capped.slots.open[LOCAL] == 0)
    with _connect(capped.port) as again:
        again.sendall(HEALTH_THEN_CLOSE)
        assert _until_closed(again).startswith(b"HTTP/1.1 200")
    assert capped.slots.refused == 1


READ = "query Read($id: ID!) { incident(id: $id) { id type } }"


async def _post(live: LiveServer, role: Role, org: str, query: str, variables: Any) -> Any:
    # A client per request: the test-sized timeouts close idle pooled connections quickly.
    async with httpx.AsyncClient(timeout=HANG) as http:
        response = await http.post(
            live.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {live.token(role, org)}"},
        )
    return response.json()


@contextlib.asynccontextmanager
async def _chain_head_held(db: Database) -> AsyncIterator[None]:
    """Another connection holding what an audit append waits for, until the block ends."""
    async with db.transaction(write=True) as session:
        if is_postgres():
            await session.execute(sa.text("SELECT * FROM audit_chain_head WHERE id = 1 FOR UPDATE"))
        else:
            await session.execute(sa.text("SELECT 1"))  # the BEGIN IMMEDIATE takes the lock
        yield


async def test_a_read_whose_audit_cannot_get_the_chain_head_is_refused(
    impatient: Guarded, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    live = impatient.live
    pushed = await _post(
        live, Role.POLICE_OFFICER, FORCE, REPORT_INCIDENT, {"input": incident(unique("LOCK"))}
    )
    assert "errors" not in pushed, pushed
    read = {"id": pushed["data"]["reportIncident"]["id"]}
    with caplog.at_level(logging.ERROR, logger="hub.graphql"):
        async with _chain_head_held(db):
            body = await asyncio.wait_for(
                _post(live, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, READ, read), HANG
            )
    assert body["data"] is None, body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["AUDIT_UNAVAILABLE"]
    [logged] = [r.getMessage() for r in caplog.records if "audit write failed" in r.getMessage()]
    assert logged.endswith(": AuditWriteFailed"), logged  # the type only, no database text
    body = await _post(live, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, READ, read)
    assert "errors" not in body, body
    assert body["data"]["incident"] == {**read, "type": "DOMESTIC_ABUSE"}


@pytest.mark.skipif(not is_postgres(), reason="lock_timeout is PostgreSQL's")
async def test_the_append_bounds_only_its_own_wait(session: AsyncSession) -> None:
    """The append sets lock_timeout for the head's lock, then puts the session's value back:
    whatever the transaction does after it waits as it always did."""
    before = (await session.execute(sa.text("SHOW lock_timeout"))).scalar_one()
    draft = consulted("Bounded", "req-bounded", served(1))
    await service.record_many(session, [draft], lock_timeout=0.25)
    assert (await session.execute(sa.text("SHOW lock_timeout"))).scalar_one() == before


@pytest.mark.skipif(not is_postgres(), reason="lock_timeout is PostgreSQL's")
async def test_the_append_puts_back_the_transactions_own_wait(session: AsyncSession) -> None:
    """A transaction that set its own lock_timeout has it back after the append, not the
    server's default."""
    await session.execute(sa.text("SET LOCAL lock_timeout = '7s'"))
    draft = consulted("Bounded", "req-bounded-own", served(1))
    await service.record_many(session, [draft], lock_timeout=0.25)
    assert (await session.execute(sa.text("SHOW lock_timeout"))).scalar_one() == "7s"


def test_a_hub_sets_the_gils_turns_from_its_settings(database_url: str, data_dir: Path) -> None:
    """The lifespan hands the GIL over as often as `switch_interval_seconds` says: a setting
    ignored would leave whatever was set before. Unset, a SQLite hub takes 0.0005 s and a
    PostgreSQL one leaves the interpreter's as it was."""
    from hub.app import SQLITE_SWITCH_INTERVAL  # noqa: PLC0415

    before, elsewhere = sys.getswitchinterval(), 0.004  # neither a hub's nor Python's own
    unset = SQLITE_SWITCH_INTERVAL if database_url.startswith("sqlite") else elsewhere
    try:
        for wanted, given in ((0.002, {"switch_interval_seconds": 0.002}), (unset, {})):
            sys.setswitchinterval(elsewhere)
            with _guarded(database_url, data_dir, **given):
                assert sys.getswitchinterval() == pytest.approx(wanted)
    finally:
        sys.setswitchinterval(before)
