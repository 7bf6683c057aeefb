"""`safeguarding-hub serve --workers N`: N processes on one PostgreSQL database, one hub.

A subscriber on one process is sent what is pushed to any of them (LISTEN/NOTIFY, not the
minute-long poll this test sets), and every process's audit events are indexed once. SQLite
has one writer and no NOTIFY: more than one worker is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.audit import chain
from hub.bench import UNLIMITED
from hub.changes import service as changes
from hub.cursors import Caller, CursorSeal
from hub.db import Database
from hub.demo import EXAMPLE_PURPOSE
from hub.settings import Settings
from tests.conftest import free_port, is_postgres, scratch_database, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, incident
from tests.test_subscriptions import CHANGES, WAIT

ROOT = Path(__file__).resolve().parents[1]
PUSHES = 8  # each on a connection of its own: the kernel hands them to either process
SUBSCRIBERS = 4


def _environment(url: str, data_dir: Path, issuer: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {
        **kept,
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_ISSUER": issuer,
        "HUB_CHANGE_POLL_SECONDS": "600",  # only a notification delivers in time
        "HUB_AUDIT_INDEX_DELAY_SECONDS": "0",
        # One client pushes from eight connections at once: the per-client cap is not the test.
        "HUB_RATE_LIMITS": UNLIMITED,
    }


@pytest.fixture
def two_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Settings]]:
    if not is_postgres():
        pytest.skip("more than one worker needs PostgreSQL")
    # This process's settings (the tokens it issues) as the server's: from no HUB_ variable an
    # earlier test left behind (`demo` sets some for the process).
    for name in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(name)

    async def create() -> Any:
        context = scratch_database(tmp_path, "hub_workers")
        return context, await context.__aenter__()

    loop = asyncio.new_event_loop()
    context, url = loop.run_until_complete(create())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=url, data_dir=tmp_path, issuer=base)
    KeySet.for_settings(settings)  # written before the processes start: they load them
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "hub", "serve", "--port", str(port), "--workers", "2"],
        env=_environment(url, tmp_path, base),
        cwd=ROOT,
    )
    try:
        loop.run_until_complete(_ready(base, process))
        yield base, settings
    finally:
        process.terminate()
        process.wait(timeout=30)
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


async def _ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert process.poll() is None, "the hub exited during start-up"
            try:
                if (await client.get(f"{base}/readyz")).status_code == httpx.codes.OK:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("the hub did not become ready")


def _token(settings: Settings, role: Role, organisation: str) -> str:
    return issue_access_token(
        settings=settings,
        keys=KeySet.for_settings(settings),
        client_id=f"test-{role.value}",
        organisation_code=organisation,
        role=role,
        user="test-user",
        purpose=EXAMPLE_PURPOSE[role],
    )


async def _push_alone(base: str, token: str) -> str:
    async with httpx.AsyncClient(timeout=30) as client:  # a new connection each time
        body = (
            await client.post(
                f"{base}/graphql",
                headers={"Authorization": f"Bearer {token}"},
                json={"query": REPORT_INCIDENT, "variables": {"input": incident(unique("WRK"))}},
            )
        ).json()
    assert "errors" not in body, body
    pushed: str = body["data"]["reportIncident"]["id"]
    return pushed


async def _subscribe(base: str, token: str, after: str) -> ClientConnection:
    ws = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": CHANGES, "variables": {"after": after}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def _delivered(ws: ClientConnection, count: int) -> set[str]:
    delivered = set()
    for _ in range(count):
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert message["type"] == "next", message
        delivered.add(message["payload"]["data"]["recordChanges"]["record"]["id"])
    return delivered


async def test_every_worker_s_pushes_reach_every_subscriber_and_are_indexed(
    two_workers: tuple[str, Settings],
) -> None:
    """Subscribers and pushes, each on a connection of its own opened together, land on both
    processes: each subscriber must be sent every push, whichever process took it."""
    base, settings = two_workers
    db = Database(settings.database_url)
    try:
        async with db.transaction(write=False) as session:
            seq = await changes.latest(session)
        seal = CursorSeal.from_secret(settings.pseudonym_key.get_secret_value())
        caller = Caller(COUNCIL, Role.COUNCIL_SOCIAL_WORKER.value)
        after = seal.for_list("recordChanges", caller).seal(str(seq))
        council = _token(settings, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
        police = _token(settings, Role.POLICE_OFFICER, FORCE)
        subscribers = await asyncio.gather(
            *(_subscribe(base, council, after) for _ in range(SUBSCRIBERS))
        )
        try:
            pushed = set(await asyncio.gather(*(_push_alone(base, police) for _ in range(PUSHES))))
            received = await asyncio.gather(*(_delivered(ws, PUSHES) for ws in subscribers))
        finally:
            await asyncio.gather(*(ws.close() for ws in subscribers))
        assert all(delivered == pushed for delivered in received)
        await _until_indexed(db)
    finally:
        await db.dispose()


async def _until_indexed(db: Database) -> None:
    """Every event indexed: the two processes' indexers take turns on one progress row (an
    event indexed twice would break the index's primary key and stop the indexer short)."""
    head = indexed = None
    for _ in range(WAIT * 10):
        async with db.transaction(write=False) as session:
            head = await session.scalar(sa.text("SELECT last_seq FROM audit_chain_head"))
            indexed = await chain.indexed_through(session)
        if indexed == head:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"events indexed through {indexed}, the chain's head is {head}")


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    run = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "hub", "serve", "--workers", "2", "--port", str(free_port())],
        env=_environment(url, tmp_path, "http://127.0.0.1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "PostgreSQL" in run.stderr
