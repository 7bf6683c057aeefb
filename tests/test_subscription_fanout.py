"""Subscriptions fanned out per scope (`hub.changes.fanout`): subscribers sent the same message
share one resolution and one audit event naming each of them, and each is sent exactly what the
per-subscriber path sends it; if that event cannot be written, none of them gets the record.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from graphql import ExecutionResult
from websockets.asyncio.client import ClientConnection, connect

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.audit.models import AuditEvent
from hub.audit.service import accesses_of
from hub.changes import fanout
from hub.changes import service as changes
from hub.changes.models import ChangeKind
from hub.db import Database
from hub.graphql.audit_trail import Recipient
from hub.settings import Settings
from tests.conftest import LiveServer, free_port, serve, unique
from tests.factories import COUNCIL, OTHER_COUNCIL, incident
from tests.test_audit_trail import unwritable_audit
from tests.test_subscriptions import CHANGES, WAIT, _latest_cursor, _push

PURPOSE = "section_47_enquiry"
OTHER_PURPOSE = "strategy_discussion"
# (user, organisation, purpose): two share a group; the others differ in scope or purpose.
SUBSCRIBERS = [
    ("sw-a", COUNCIL, PURPOSE),
    ("sw-b", COUNCIL, PURPOSE),
    ("sw-c", COUNCIL, OTHER_PURPOSE),
    ("sw-d", OTHER_COUNCIL, PURPOSE),
]


@pytest.fixture(scope="module")
def fanout_server(database_url: str, data_dir: Path) -> Iterator[LiveServer]:
    """A hub of its own with fan-out on (the default): subscribers sent the same message share
    one resolution and one audit event per change."""
    yield from _hub(database_url, data_dir, fanout=True)


@pytest.fixture(scope="module")
def per_subscriber_server(database_url: str, data_dir: Path) -> Iterator[LiveServer]:
    """The same hub with fan-out off: each subscriber reads and is audited on its own."""
    yield from _hub(database_url, data_dir, fanout=False)


def _hub(database_url: str, data_dir: Path, *, fanout: bool) -> Iterator[LiveServer]:
    from hub.app import create_app  # noqa: PLC0415 - as conftest's live_server

    port = free_port()
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        issuer=f"http://127.0.0.1:{port}",
        subscription_fanout=fanout,
    )
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


async def _council_sockets(
    stack: AsyncExitStack, server: LiveServer, users: tuple[str, ...], after: str
) -> list[ClientConnection]:
    """A council subscriber's socket for each user, open until `stack` closes."""
    return [
        (await stack.enter_async_context(_subscriber(server, user, COUNCIL, PURPOSE, after)))[0]
        for user in users
    ]


@asynccontextmanager
async def _subscriber(
    server: LiveServer, user: str, organisation: str, purpose: str, after: str
) -> AsyncIterator[tuple[ClientConnection, str]]:
    request_id = str(uuid.uuid4())
    token = server.token(Role.COUNCIL_SOCIAL_WORKER, organisation, user=user, purpose=purpose)
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    url = server.graphql_url.replace("http://", "ws://")
    async with connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws, request_id


async def _members(server: LiveServer) -> int:
    groups = server.app.app.state.hub.fanout.groups
    return sum(len(group.members) for group in list(groups.values()))


async def _joined(server: LiveServer, count: int) -> None:
    """Wait until `count` subscribers have caught up and joined their groups."""
    deadline = time.monotonic() + WAIT
    while await _members(server) < count:
        assert time.monotonic() < deadline, "subscribers did not join the fan-out"
        await asyncio.sleep(0.05)


async def _received(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    messages = []
    for _ in range(count):
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert message["type"] == "next", message
        messages.append(message["payload"])
    return messages


def _without_cursor(payload: dict[str, Any]) -> dict[str, Any]:
    """A message as compared across paths: cursors are sealed afresh each time (a nonce)."""
    data = payload.get("data") or {}
    change = dict(data.get("recordChanges") or {})
    change.pop("cursor", None)
    return {**payload, "data": {"recordChanges": change} if data else payload.get("data")}


async def _disclosures(db: Database, after_seq: int) -> list[AuditEvent]:
    async with db.transaction(write=False) as session:
        query = (
            sa.select(AuditEvent)
            .where(AuditEvent.seq > after_seq, AuditEvent.operation_kind == "subscription")
            .order_by(AuditEvent.seq)
        )
        return list((await session.execute(query)).scalars())


async def _audit_head(db: Database) -> int:
    async with db.transaction(write=False) as session:
        found = (await session.execute(sa.select(sa.func.max(AuditEvent.seq)))).scalar()
        return int(found or 0)


async def test_fanned_out_deliveries_are_the_per_subscriber_ones_and_name_every_recipient(
    http: httpx.AsyncClient,
    fanout_server: LiveServer,
    per_subscriber_server: LiveServer,
    live_server: LiveServer,
    db: Database,
) -> None:
    audited_from = await _audit_head(db)
    sent: dict[str, dict[str, list[dict[str, Any]]]] = {}
    request_ids: dict[str, dict[str, str]] = {"fanout": {}, "own": {}}
    async with AsyncExitStack() as stack:
        sockets: dict[tuple[str, str], ClientConnection] = {}
        for name, server in (("fanout", fanout_server), ("own", per_subscriber_server)):
            for user, organisation, purpose in SUBSCRIBERS:
                after = await _latest_cursor(db, server, organisation=organisation)
                ws, request_id = await stack.enter_async_context(
                    _subscriber(server, user, organisation, purpose, after)
                )
                sockets[(name, user)] = ws
                request_ids[name][user] = request_id
        await _joined(fanout_server, len(SUBSCRIBERS))
        ours = [
            await _push(http, live_server, incident(unique("FAN-A"))),
            await _push(http, live_server, incident(unique("FAN-X"), council=OTHER_COUNCIL)),
            await _push(http, live_server, incident(unique("FAN-B"))),
        ]
        for (name, user), ws in sockets.items():
            count = 1 if user == "sw-d" else 2
            sent.setdefault(name, {})[user] = await _received(ws, count)

    for user, _, _ in SUBSCRIBERS:
        fanned = [_without_cursor(p) for p in sent["fanout"][user]]
        assert fanned == [_without_cursor(p) for p in sent["own"][user]], user
        assert all("errors" not in p for p in fanned), fanned
    assert [p["data"]["recordChanges"]["record"]["id"] for p in sent["fanout"]["sw-a"]] == [
        ours[0],
        ours[2],
    ]
    assert [p["data"]["recordChanges"]["record"]["id"] for p in sent["fanout"]["sw-d"]] == [ours[1]]

    events = await _disclosures(db, audited_from)
    fanned_ids = set(request_ids["fanout"].values())
    # Per record: who it was disclosed to through the fan-out, and with which fields.
    disclosed: dict[str, list[tuple[tuple[str, ...], list[str]]]] = {}
    own_fields: dict[tuple[str, str], list[str]] = {}
    for event in events:
        detail = event.detail_data or {}
        recipients = detail.get("recipients")
        for access in accesses_of(event):
            assert access.record_id is not None
            if recipients is None:  # the per-subscriber path: one event per subscriber
                assert event.request_id not in fanned_ids
                own_fields[(str(event.user), access.record_id)] = list(access.fields)
                continue
            assert isinstance(recipients, list)
            assert {r["request_id"] for r in recipients} <= fanned_ids
            users = tuple(sorted(str(r["user"]) for r in recipients))
            disclosed.setdefault(access.record_id, []).append((users, list(access.fields)))
            assert event.operation == "disclosure"
            assert event.purpose == {r["purpose"] for r in recipients}.pop()
            if len(recipients) > 1:
                assert event.user is None, "an event for several names each in its recipients"
            else:
                assert event.user == recipients[0]["user"]
                assert event.request_id == recipients[0]["request_id"]
    fields = ["id", "policeReference", "summary", "type"]
    # sw-a and sw-b share one event per record; sw-c (another purpose) has its own.
    assert sorted(disclosed[ours[0]]) == [(("sw-a", "sw-b"), fields), (("sw-c",), fields)]
    assert sorted(disclosed[ours[2]]) == [(("sw-a", "sw-b"), fields), (("sw-c",), fields)]
    assert disclosed[ours[1]] == [(("sw-d",), fields)]
    # The per-subscriber path audited the same fields for each of them.
    for user, _, _ in SUBSCRIBERS:
        for record_id in (ours[1],) if user == "sw-d" else (ours[0], ours[2]):
            assert own_fields[(user, record_id)] == fields


async def test_a_group_whose_audit_cannot_be_written_is_sent_no_record(
    http: httpx.AsyncClient, fanout_server: LiveServer, db: Database
) -> None:
    incident_id = await _push(http, fanout_server, incident(unique("FAN-FAIL")))
    after = await _latest_cursor(db, fanout_server)
    async with AsyncExitStack() as stack:
        sockets = await _council_sockets(stack, fanout_server, ("sw-e", "sw-f"), after)
        await _joined(fanout_server, 2)
        async with unwritable_audit(db):
            # A change to the record, as a push would publish it (the push's own audit would
            # fail too while the log is unwritable).
            async with db.transaction(write=True) as session:
                await changes.publish(session, [("Incident", incident_id, ChangeKind.ALTERED)])
            failed = [(await _received(ws, 1))[0] for ws in sockets]
    for message in failed:
        assert message["data"] is None
        assert [e["extensions"]["code"] for e in message["errors"]] == ["AUDIT_UNAVAILABLE"]
        assert incident_id not in json.dumps(message)


async def test_a_subscriber_too_far_behind_is_ended_not_buffered_without_end() -> None:
    """A slow subscriber's backlog is bounded: past it, its stream ends (it resumes from its
    cursor, the outbox keeping every change) and its group goes on without it."""

    class Resolved(fanout.Group):
        async def resolve(self, change: Any, members: Any) -> ExecutionResult:  # noqa: ARG002
            return ExecutionResult(data={"recordChanges": {"change": "ALTERED"}})

    hub = SimpleNamespace()
    fan = fanout.Fanout(hub)  # type: ignore[arg-type]
    key = fanout.GroupKey("council_social_worker", COUNCIL, PURPOSE, "doc", None, "{}")
    group = Resolved(key, None, lambda *_: None)  # type: ignore[arg-type]
    slow, quick = (
        fanout.Member(Recipient(user, "c", PURPOSE, user), after=0) for user in ("slow", "quick")
    )
    group.members += [slow, quick]
    fan.groups[key] = group
    for seq in range(1, fanout.MAX_BACKLOG + 1):
        slow.deliveries.put_nowait(fanout.Delivery(seq, ExecutionResult(data=None)))
    await fan._send(SimpleNamespace(seq=fanout.MAX_BACKLOG + 1))  # type: ignore[arg-type]
    last = list(slow.deliveries._queue)[-1]  # type: ignore[attr-defined]
    assert last.last
    assert last.result.data is None
    assert [e.extensions["code"] for e in last.result.errors] == ["INTERNAL"]
    assert group.members == [quick]
    delivered = quick.deliveries.get_nowait()
    assert delivered.result.data == {"recordChanges": {"change": "ALTERED"}}
    assert not delivered.last


async def test_a_fanned_out_delivery_is_sent_as_its_group_resolved_it_not_run_again(
    http: httpx.AsyncClient,
    fanout_server: LiveServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over graphql-transport-ws each member is sent its group's audited result as strawberry
    would send it (`fanout.Outlet`): the same message, byte for byte, with no second pass through
    the schema for each subscriber."""
    replayed: list[int] = []
    replay = fanout._Replay.execute_operation

    def counted(self: Any, serially: bool | None = None) -> ExecutionResult:
        replayed.append(1)
        return replay(self, serially)

    monkeypatch.setattr(fanout._Replay, "execute_operation", counted)
    after = await _latest_cursor(db, fanout_server)
    async with AsyncExitStack() as stack:
        sockets = await _council_sockets(stack, fanout_server, ("sw-g", "sw-h"), after)
        await _joined(fanout_server, 2)
        incident_id = await _push(http, fanout_server, incident(unique("FAN-OUT")))
        raw = [await asyncio.wait_for(ws.recv(), WAIT) for ws in sockets]
    messages = [json.loads(text) for text in raw]
    for text, message in zip(raw, messages, strict=True):
        assert message["type"] == "next"
        assert message["payload"]["data"]["recordChanges"]["record"]["id"] == incident_id
        assert set(message["payload"]) == {"data"}
        assert text == json.dumps(message, separators=(",", ":"))  # strawberry's encoding
    assert replayed == []


async def test_an_outlet_whose_socket_is_gone_says_so_and_sends_nothing_more() -> None:
    from strawberry.http.exceptions import WebSocketDisconnected  # noqa: PLC0415

    class Gone:
        id = "1"

        async def send_operation_message(self, message: Any) -> None:  # noqa: ARG002
            raise WebSocketDisconnected

    delivery = fanout.Delivery(1, ExecutionResult(data={"recordChanges": None}))
    assert delivery.sent_as_is
    assert not await fanout.Outlet(Gone()).send(delivery)  # type: ignore[arg-type]
    assert not fanout.Delivery(1, ExecutionResult(data=None), last=True).sent_as_is
