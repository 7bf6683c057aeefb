"""Webhooks over real HTTP: a hub served by uvicorn POSTs to a receiver on loopback over TLS
(its certificate from a CA made here; the hub trusts that CA through HUB_WEBHOOK_CA_FILE).

The receiver verifies every delivery as a client system must (signature, timestamp, replayed
id). Each test registers its own clients' endpoints through the API and removes them after.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access import clients
from hub.access.agreement import Agreement, default_path
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.audit.models import AuditEvent
from hub.changes import service as changes
from hub.db import Database, utcnow
from hub.demo import EXAMPLE_PURPOSE
from hub.graphql.schema import build_schema
from hub.limits.rate import RoleLimit
from hub.settings import Settings
from hub.webhooks import signing
from hub.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from hub.webhooks.receiver import Receiver, TlsFiles, make_tls, serving
from tests.conftest import LiveServer, free_port, is_postgres, scratch_database, serve, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL, REPORT_INCIDENT, incident

ROOT = Path(__file__).resolve().parents[1]
WAIT = 20.0  # seconds: generous on a busy machine; a pass takes well under one
MAX_ATTEMPTS = 3
REGISTER = """mutation Register($url: String!) {
  registerWebhook(url: $url) { secret webhook { id url purpose onBehalfOf } }
}"""
WEBHOOKS = "{ webhooks { id url purpose onBehalfOf pending delivered deadLetters } }"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def receiver(tls: TlsFiles) -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serving(endpoint, tls) as url:
        yield endpoint, url


@pytest.fixture(scope="module")
async def hub_database(data_dir: Path) -> AsyncIterator[str]:
    """A database of these tests' own: no other hub's dispatcher delivers from it."""
    async with scratch_database(data_dir, "hub_webhooks") as url:
        yield url


def _settings(url: str, data_dir: Path, tls: TlsFiles, port: int) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        issuer=f"http://127.0.0.1:{port}",
        rate_limits={"default": RoleLimit(rate=1000, burst=1000, in_flight=100)},
        webhook_ca_file=tls.ca_file,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_backoff_seconds=0.05,
        webhook_backoff_max_seconds=0.2,
        webhook_poll_seconds=0.1,
        webhook_read_timeout_seconds=10.0,
        change_poll_seconds=0.5,
        client_status_ttl_seconds=0.2,
    )


@pytest.fixture(scope="module")
def hub(hub_database: str, data_dir: Path, tls: TlsFiles) -> Iterator[LiveServer]:
    from hub.access.keys import KeySet  # noqa: PLC0415
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = _settings(hub_database, data_dir, tls, port)
    app = create_app(settings)
    server, thread = serve(app, port, settings)
    yield LiveServer(
        settings=settings,
        url=f"http://127.0.0.1:{port}",
        app=app,
        keys=KeySet.for_settings(settings),
    )
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def hub_db(hub_database: str) -> AsyncIterator[Database]:
    database = Database(hub_database)
    yield database
    async with database.transaction(write=True) as session:  # the next test starts without any
        await session.execute(sa.delete(WebhookDelivery))
        await session.execute(sa.delete(WebhookEndpoint))
    await database.dispose()


def _token(server: LiveServer, role: Role, org: str, client_id: str) -> str:
    return issue_access_token(
        settings=server.settings,
        keys=server.keys,
        client_id=client_id,
        organisation_code=org,
        role=role,
        user="case-worker-7",
        purpose=EXAMPLE_PURPOSE[role],
    )


async def _graphql(
    http: httpx.AsyncClient, server: LiveServer, token: str, query: str, variables: Any = None
) -> dict[str, Any]:
    response = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": variables or {}},
    )
    body: dict[str, Any] = response.json()
    return body


async def _register(
    http: httpx.AsyncClient,
    server: LiveServer,
    receiver: tuple[Receiver, str],
    *,
    role: Role = Role.COUNCIL_SOCIAL_WORKER,
    org: str = COUNCIL,
) -> tuple[str, str, str]:
    """A new client's endpoint on the receiver: (client id, receiver path, endpoint id)."""
    endpoint, base = receiver
    client_id = f"wh-{uuid.uuid4().hex[:12]}"
    path = f"hooks/{client_id}"
    token = _token(server, role, org, client_id)
    body = await _graphql(http, server, token, REGISTER, {"url": f"{base}/{path}?t=abc"})
    assert "errors" not in body, body
    registered = body["data"]["registerWebhook"]
    assert registered["secret"].startswith("whsec_")
    assert registered["webhook"]["purpose"] == EXAMPLE_PURPOSE[role]
    assert registered["webhook"]["onBehalfOf"] == "case-worker-7"
    endpoint.expect(path, registered["secret"])
    return client_id, path, registered["webhook"]["id"]


async def _push(http: httpx.AsyncClient, server: LiveServer, payload: dict[str, Any]) -> str:
    token = server.token(Role.POLICE_OFFICER, FORCE)
    body = await _graphql(http, server, token, REPORT_INCIDENT, {"input": payload})
    assert "errors" not in body, body
    incident_id: str = body["data"]["reportIncident"]["id"]
    return incident_id


async def _until(check: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(0.05)
    pytest.fail("timed out waiting")


async def _deliveries(db: Database, endpoint_id: str) -> list[WebhookDelivery]:
    async with db.transaction(write=False) as session:
        query = sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        return list((await session.execute(query)).scalars())


def _record(received: Any) -> dict[str, Any]:
    body = json.loads(received.body)
    assert "errors" not in body, body
    record: dict[str, Any] = body["data"]["recordChanges"]["record"]
    return record


async def test_a_council_is_sent_only_its_records_signed_and_each_delivery_is_audited(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    endpoint, _ = receiver
    client_id, path, endpoint_id = await _register(http, hub, receiver)
    # Another council's child first: it must never reach this council's endpoint.
    await _push(http, hub, incident(unique("WH-X"), council=OTHER_COUNCIL))
    ours = unique("WH")
    incident_id = await _push(http, hub, incident(ours, operationalNotes="police only"))
    (delivered,) = await _until(lambda: endpoint.accepted(path))
    await asyncio.sleep(0.5)  # anything else sent would have arrived by now
    assert len(endpoint.at(path)) == 1
    # The receiver verified it; the same bytes verify here with the client's secret.
    record = _record(delivered)
    assert (record["__typename"], record["id"], record["policeReference"]) == (
        "Incident",
        incident_id,
        ours,
    )
    assert "operationalNotes" not in record  # outside the council's view: never selected
    assert record["children"][0]["child"]["familyName"]
    body = json.loads(delivered.body)
    assert body["data"]["recordChanges"]["change"] == "COLLECTED"
    message_id = delivered.headers["webhook-id"]
    assert delivered.headers["webhook-signature"].startswith("v1,")
    assert abs(int(delivered.headers["webhook-timestamp"]) - time.time()) < 60

    (row,) = await _deliveries(hub_db, endpoint_id)  # the other council's change: no row
    assert (row.id, row.state, row.attempts, row.last_status_code) == (
        message_id,
        DeliveryState.DELIVERED,
        1,
        200,
    )
    async with hub_db.transaction(write=False) as session:
        events = list(
            (
                await session.execute(
                    sa.select(AuditEvent).where(AuditEvent.request_id == f"{message_id}:1")
                )
            ).scalars()
        )
    (event,) = events
    assert (event.operation, event.operation_kind, event.outcome) == (
        "disclosure",
        "subscription",
        "served",
    )
    assert (event.client_id, event.organisation_code, event.user, event.purpose) == (
        client_id,
        COUNCIL,
        "case-worker-7",
        EXAMPLE_PURPOSE[Role.COUNCIL_SOCIAL_WORKER],
    )
    assert incident_id in (event.records or "")
    detail = event.detail_data or {}
    assert detail["channel"] == "webhook"
    assert detail["webhook"] == {"endpoint": endpoint_id, "delivery": message_id, "attempt": 1}
    assert "127.0.0.1" not in (event.detail or "")  # the endpoint by id, never its address
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"webhook delivery {message_id}" in logged  # the dispatcher's line, by id
    assert f'{receiver[1]}/{path} "HTTP/1.1 200' in logged  # httpx's line, without the query
    assert "t=abc" not in logged  # the address's query string: never
    assert endpoint.secrets[path] not in logged
    async with hub_db.transaction(write=False) as session:
        stored = await session.get(WebhookEndpoint, endpoint_id)
    assert stored is not None
    assert "whsec_" not in stored.secret  # sealed: a copy of the database signs nothing
    assert stored.url.endswith("?t=abc")


async def test_the_verifier_refuses_an_old_timestamp_a_reused_id_and_a_changed_body(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
    tls: TlsFiles,
) -> None:
    endpoint, base = receiver
    _, path, _ = await _register(http, hub, receiver)
    await _push(http, hub, incident(unique("WH-R")))
    (delivered,) = await _until(lambda: endpoint.accepted(path))
    secret = endpoint.secrets[path]
    stamp = int(delivered.headers["webhook-timestamp"])
    headers = {k: v for k, v in delivered.headers.items() if k.startswith("webhook-")}

    assert signing.verify(secret, headers, delivered.body, now=stamp + 10)
    with pytest.raises(signing.WebhookVerificationError, match="tolerance"):
        signing.verify(secret, headers, delivered.body, now=stamp + 301)
    with pytest.raises(signing.WebhookVerificationError, match="no signature"):
        signing.verify(secret, headers, delivered.body.replace(b"COLLECTED", b"ALTERED"))
    with pytest.raises(signing.WebhookVerificationError, match="no signature"):
        signing.verify(signing.new_secret(), headers, delivered.body)
    guard = signing.ReplayGuard()
    signing.verify(secret, headers, delivered.body, replays=guard)
    with pytest.raises(signing.WebhookVerificationError, match="replay"):
        signing.verify(secret, headers, delivered.body, replays=guard)

    # The same request sent again, byte for byte, within the tolerance: the receiver refuses it.
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=tls.ca_file)) as client:
        again = await client.post(f"{base}/{path}", content=delivered.body, headers=headers)
    assert again.status_code == 400
    assert endpoint.at(path)[-1].refused == "this webhook-id was already accepted (a replay)"


async def test_a_failing_endpoint_is_retried_with_the_same_id_until_it_answers(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
) -> None:
    endpoint, _ = receiver
    _, path, endpoint_id = await _register(http, hub, receiver)
    endpoint.script(path, 500, 503)
    await _push(http, hub, incident(unique("WH-RT")))
    await _until(lambda: endpoint.accepted(path))
    attempts = endpoint.at(path)
    assert [r.status for r in attempts] == [500, 503, 200]
    assert {r.headers["webhook-id"] for r in attempts} == {attempts[0].headers["webhook-id"]}
    assert all(r.refused is None for r in attempts)  # each attempt signed afresh, all valid
    (row,) = await _until(lambda: _delivered(hub_db, endpoint_id))
    assert (row.attempts, row.last_status_code, row.last_error) == (3, 200, None)


async def _delivered(db: Database, endpoint_id: str) -> list[WebhookDelivery]:
    rows = await _deliveries(db, endpoint_id)
    return rows if rows and all(r.state == DeliveryState.DELIVERED for r in rows) else []


def _cli(database_url: str, data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environment |= {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(data_dir)}
    return subprocess.run(  # noqa: S603 - our own CLI, with arguments from this file
        [sys.executable, "-m", "hub", "webhooks", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=environment,
        check=False,
    )


async def test_a_delivery_is_parked_after_the_last_attempt_and_replayed_from_the_cli(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    hub_database: str,
    data_dir: Path,
    receiver: tuple[Receiver, str],
) -> None:
    endpoint, _ = receiver
    client_id, path, endpoint_id = await _register(http, hub, receiver)
    endpoint.script(path, *[500] * MAX_ATTEMPTS)
    await _push(http, hub, incident(unique("WH-DL")))

    async def dead() -> list[WebhookDelivery]:
        rows = await _deliveries(hub_db, endpoint_id)
        return [r for r in rows if r.state == DeliveryState.DEAD]

    (parked,) = await _until(dead)
    assert (parked.attempts, parked.last_status_code, parked.last_error) == (
        MAX_ATTEMPTS,
        500,
        "status",
    )
    assert len(endpoint.at(path)) == MAX_ATTEMPTS
    await asyncio.sleep(0.5)
    assert len(endpoint.at(path)) == MAX_ATTEMPTS  # parked: no more attempts

    listed = await asyncio.to_thread(_cli, hub_database, data_dir, "dead-letters")
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if parked.id in row]
    assert client_id in line
    assert f"attempts {MAX_ATTEMPTS}" in line
    assert "status 500" in line
    assert "127.0.0.1" not in listed.stdout + listed.stderr  # no address (nor its query string)

    unknown = await asyncio.to_thread(_cli, hub_database, data_dir, "replay", "msg_unknown")
    assert unknown.returncode == 1
    assert "msg_unknown" not in unknown.stderr
    assert await dead()  # still parked: nothing replayed

    replayed = await asyncio.to_thread(_cli, hub_database, data_dir, "replay", parked.id)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 delivery" in replayed.stdout
    (delivered,) = await _until(lambda: endpoint.accepted(path))
    assert delivered.headers["webhook-id"] == parked.id
    (row,) = await _until(lambda: _delivered(hub_db, endpoint_id))
    assert (row.attempts, row.last_status_code) == (1, 200)
    empty = await asyncio.to_thread(_cli, hub_database, data_dir, "dead-letters")
    assert parked.id not in empty.stdout
    none_left = await asyncio.to_thread(_cli, hub_database, data_dir, "replay", "--all")
    assert "replayed 0 deliveries" in none_left.stdout
    both = await asyncio.to_thread(_cli, hub_database, data_dir, "replay", parked.id, "--all")
    assert both.returncode == 2
    listed = await asyncio.to_thread(_cli, hub_database, data_dir, "list")
    (line,) = [row for row in listed.stdout.splitlines() if endpoint_id in row]
    assert "delivered 1" in line
    assert "dead 0" in line
    assert "127.0.0.1" not in listed.stdout


async def test_finished_deliveries_are_pruned_after_the_days_kept_and_dead_letters_stay(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    hub_database: str,
    data_dir: Path,
    receiver: tuple[Receiver, str],
) -> None:
    *_, endpoint_id = await _register(http, hub, receiver)
    for _ in range(3):
        await _push(http, hub, incident(unique("WH-PR")))

    async def three_delivered() -> list[WebhookDelivery]:
        rows = await _delivered(hub_db, endpoint_id)
        return rows if len(rows) == 3 else []  # the three pushes above

    old, parked, recent = sorted(await _until(three_delivered), key=lambda r: r.change_seq)
    long_ago = utcnow() - dt.timedelta(days=40)
    async with hub_db.transaction(write=True) as session:
        for row, state in ((old, DeliveryState.DELIVERED), (parked, DeliveryState.DEAD)):
            await session.execute(
                sa.update(WebhookDelivery)
                .where(WebhookDelivery.id == row.id)
                .values(state=state.value, updated_at=long_ago)
            )

    pruned = await asyncio.to_thread(_cli, hub_database, data_dir, "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 delivery" in pruned.stdout  # the 40-day-old delivered one, not the dead one
    assert {r.id for r in await _deliveries(hub_db, endpoint_id)} == {parked.id, recent.id}

    everything = await asyncio.to_thread(_cli, hub_database, data_dir, "prune", "--keep-days", "0")
    assert "pruned 1 delivery" in everything.stdout  # the recent one; a dead letter waits
    assert [r.id for r in await _deliveries(hub_db, endpoint_id)] == [parked.id]
    again = await asyncio.to_thread(_cli, hub_database, data_dir, "prune")
    assert "pruned 0 deliveries" in again.stdout


async def test_a_slow_endpoint_delays_neither_pushes_nor_another_endpoint(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
) -> None:
    endpoint, _ = receiver
    # The force's own system answers after 3 s; the council's at once. Both get the incident.
    _, slow, _ = await _register(http, hub, receiver, role=Role.POLICE_OFFICER, org=FORCE)
    _, fast, _ = await _register(http, hub, receiver)
    endpoint.script(slow, 200, 200, 200, delay=3.0)
    await _push(http, hub, incident(unique("WH-SLOW")))  # the slow endpoint is now busy
    started = time.monotonic()
    incident_id = await _push(http, hub, incident(unique("WH-FAST")))
    pushed = time.monotonic() - started
    await _until(lambda: [r for r in endpoint.accepted(fast) if _record(r)["id"] == incident_id])
    fast_seconds = time.monotonic() - started
    assert pushed < 1.5
    assert fast_seconds < 2.5, fast_seconds
    assert not endpoint.at(slow)  # still waiting for the first answer
    await _until(lambda: len(endpoint.accepted(slow)) == 2, timeout=WAIT + 6)


async def test_registration_refuses_bad_addresses_a_second_endpoint_and_other_roles(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
) -> None:
    client_id = f"wh-{uuid.uuid4().hex[:12]}"
    token = _token(hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client_id)
    for url in [
        "http://127.0.0.1:9/hook",
        "ftp://example.org/x",
        "https://user:pw@example.org/",
        "not a url",
        "https://",
    ]:
        body = await _graphql(http, hub, token, REGISTER, {"url": url})
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "INVALID_INPUT", "field": "url"}, body
        assert url not in error["message"]
    listed = await _graphql(http, hub, token, WEBHOOKS)
    assert listed["data"]["webhooks"] == []  # nothing stored

    _, base = receiver
    first = await _graphql(http, hub, token, REGISTER, {"url": f"{base}/one"})
    assert "errors" not in first, first
    second = await _graphql(http, hub, token, REGISTER, {"url": f"{base}/two"})
    assert [e["extensions"]["code"] for e in second["errors"]] == ["CONFLICT"]
    listed = await _graphql(http, hub, token, WEBHOOKS)
    (webhook,) = listed["data"]["webhooks"]
    assert webhook["url"] == f"{base}/one"
    assert (webhook["pending"], webhook["delivered"], webhook["deadLetters"]) == (0, 0, 0)

    removed = await _graphql(http, hub, token, "mutation { removeWebhook { id } }")
    assert removed["data"]["removeWebhook"]["id"] == webhook["id"]
    gone = await _graphql(http, hub, token, "mutation { removeWebhook { id } }")
    assert [e["extensions"]["code"] for e in gone["errors"]] == ["NOT_FOUND"]

    # A school's system may not: the agreement lists the mutation for councils and forces only.
    school = _token(hub, Role.SCHOOL_DSL, "SCH-TEST-1", f"wh-{uuid.uuid4().hex[:12]}")
    refused = await _graphql(http, hub, school, REGISTER, {"url": f"{base}/school"})
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]


async def test_a_revoked_client_is_sent_nothing_more(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
) -> None:
    endpoint, base = receiver
    async with hub_db.transaction(write=True) as session:
        client, _ = await clients.create_client(
            session, organisation_code=COUNCIL, role=Role.COUNCIL_SOCIAL_WORKER, name="wh test"
        )
    token = _token(hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client.client_id)
    path = f"hooks/{client.client_id}"
    body = await _graphql(http, hub, token, REGISTER, {"url": f"{base}/{path}"})
    endpoint.expect(path, body["data"]["registerWebhook"]["secret"])
    await _push(http, hub, incident(unique("WH-BEFORE")))
    await _until(lambda: endpoint.accepted(path))

    async with hub_db.transaction(write=True) as session:
        await clients.revoke_client(session, client_id=client.client_id)
    await asyncio.sleep(hub.settings.client_status_ttl_seconds + 0.2)
    await _push(http, hub, incident(unique("WH-AFTER")))
    await asyncio.sleep(1.5)
    assert len(endpoint.at(path)) == 1  # nothing after the revocation
    endpoint_id = body["data"]["registerWebhook"]["webhook"]["id"]
    states = sorted(r.state for r in await _deliveries(hub_db, endpoint_id))
    assert DeliveryState.DELIVERED in states
    assert all(s in {DeliveryState.DELIVERED, DeliveryState.PENDING} for s in states)


async def _hold_lease(db: Database, endpoint_id: str, seconds: float) -> None:
    """As a process that claimed the endpoint and died leaves it: leased, to nobody alive."""
    async with db.transaction(write=True) as session:
        await session.execute(
            sa.update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(
                lease_token="a-dead-process", lease_until=utcnow() + dt.timedelta(seconds=seconds)
            )
        )


async def test_a_dead_process_s_lease_and_half_made_attempt_are_resumed_from_stored_state(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
) -> None:
    endpoint, _ = receiver
    _, path, endpoint_id = await _register(http, hub, receiver)
    await _hold_lease(hub_db, endpoint_id, 2.0)
    held = time.monotonic()
    incident_id = await _push(http, hub, incident(unique("WH-LEASE")))
    # A dead process counted attempt 1 of this change's delivery, then died before sending.
    async with hub_db.transaction(write=True) as session:
        seq = await changes.latest(session)
        session.add(
            WebhookDelivery(
                id="msg_" + uuid.uuid4().hex,
                endpoint_id=endpoint_id,
                change_seq=seq,
                state=DeliveryState.PENDING,
                attempts=1,
                next_attempt_at=utcnow() + dt.timedelta(seconds=1),
            )
        )
        await session.execute(
            sa.update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(seen=seq)
        )
    await asyncio.sleep(1.0)
    assert not endpoint.at(path)  # leased to the dead process: nobody delivers yet
    (delivered,) = await _until(lambda: endpoint.accepted(path))
    assert delivered.at - held >= 1.9
    assert _record(delivered)["id"] == incident_id
    (row,) = await _until(lambda: _delivered(hub_db, endpoint_id))
    assert row.attempts == 2  # the dead process's attempt counts
    assert row.id == delivered.headers["webhook-id"]


@pytest.mark.skipif(not is_postgres(), reason="several hub processes share a PostgreSQL")
async def test_two_hub_processes_make_each_attempt_once(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    hub_database: str,
    data_dir: Path,
    tls: TlsFiles,
    receiver: tuple[Receiver, str],
) -> None:
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = _settings(hub_database, data_dir, tls, port)
    server, thread = serve(create_app(settings), port, settings)
    try:
        endpoint, _ = receiver
        paths = [(await _register(http, hub, receiver))[1] for _ in range(4)]
        endpoint.script(paths[0], 500, 500)  # retried: still one request per attempt
        pushed = [await _push(http, hub, incident(unique("WH-2P"))) for _ in range(12)]
        for path in paths:
            await _until(lambda path=path: len(endpoint.accepted(path)) >= len(pushed))
        await asyncio.sleep(1.0)  # a duplicate would have arrived by now
        for path in paths:
            accepted = endpoint.accepted(path)
            assert sorted(_record(r)["id"] for r in accepted) == sorted(pushed)
            ids = [r.headers["webhook-id"] for r in accepted]
            assert len(set(ids)) == len(ids)
        assert len(endpoint.at(paths[0])) == len(pushed) + 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _agreement_without(tmp_path: Path, name: str, old: str, new: str) -> Agreement:
    """The agreement with one term of the council's changed (as if re-signed and restarted)."""
    text = default_path().read_text()
    head, council = text.split("[roles.council_social_worker]", 1)
    council, rest = council.split("[roles.school_dsl]", 1)
    assert old in council
    changed = (
        f"{head}[roles.council_social_worker]{council.replace(old, new)}[roles.school_dsl]{rest}"
    )
    path = tmp_path / name
    path.write_text(changed)
    return Agreement.load(path, build_schema(Settings())._schema)


async def test_a_changed_agreement_changes_what_is_sent_and_a_withdrawn_purpose_stops_it(
    http: httpx.AsyncClient,
    hub: LiveServer,
    hub_db: Database,
    receiver: tuple[Receiver, str],
    tmp_path: Path,
) -> None:
    endpoint, _ = receiver
    _, path, endpoint_id = await _register(http, hub, receiver)
    state = hub.app.app.state.hub
    signed = state.agreement
    try:
        state.agreement = _agreement_without(tmp_path, "no-summary.toml", '"summary", ', "")
        await _push(http, hub, incident(unique("WH-AG")))
        (delivered,) = await _until(lambda: endpoint.accepted(path))
        record = _record(delivered)
        assert "summary" not in record  # withdrawn: no longer selected
        assert record["policeReference"]

        state.agreement = _agreement_without(
            tmp_path, "no-purpose.toml", 'purposes = ["section_47_enquiry", ', "purposes = ["
        )
        await _push(http, hub, incident(unique("WH-AG2")))

        async def refused() -> list[WebhookDelivery]:
            rows = await _deliveries(hub_db, endpoint_id)
            return [r for r in rows if r.state == DeliveryState.REFUSED]

        (row,) = await _until(refused)
        assert (row.attempts, row.last_error) == (0, "PURPOSE_NOT_PERMITTED")
        await asyncio.sleep(0.3)
        assert len(endpoint.at(path)) == 1  # never sent
    finally:
        state.agreement = signed
