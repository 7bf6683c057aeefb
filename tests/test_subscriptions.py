"""`recordChanges` over graphql-transport-ws, through uvicorn: delivered in scope, audited as
disclosures before they leave, resumable from a cursor, refused without a token, fail-closed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.access.models import Role
from hub.audit.models import AuditChainHead
from hub.changes import service as changes
from hub.changes.models import ChangeKind
from hub.changes.notifier import ChangeNotifier
from hub.cursors import Caller
from hub.db import Database
from hub.timeliness.models import RecordReceipt
from tests.conftest import LiveServer, is_postgres, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL, REPORT_INCIDENT, incident
from tests.test_audit_trail import _events, unwritable_audit

CHANGES = """
subscription Changes($after: String) {
  recordChanges(after: $after) {
    cursor change
    record { __typename id policeReference ... on Incident { type summary } }
  }
}"""
WAIT = 20  # seconds: generous on a busy machine; a pass takes well under one


def _ws_url(server: LiveServer) -> str:
    return server.graphql_url.replace("http://", "ws://")


@asynccontextmanager
async def subscribed(
    server: LiveServer,
    after: str | None,
    *,
    request_id: str,
    role: Role = Role.COUNCIL_SOCIAL_WORKER,
) -> AsyncIterator[ClientConnection]:
    token = server.token(role, COUNCIL)
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    async with connect(
        _ws_url(server), subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _next(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert message["type"] == "next", message
    payload: dict[str, Any] = message["payload"]
    return payload


async def _latest_cursor(
    db: Database,
    server: LiveServer,
    role: Role = Role.COUNCIL_SOCIAL_WORKER,
    organisation: str = COUNCIL,
) -> str:
    """A resume cursor at the newest change, as the hub would have sealed it for the caller."""
    async with db.transaction(write=False) as session:
        seq = await changes.latest(session)
    caller = Caller(organisation, role.value)
    cursors = server.app.app.state.hub.cursors.for_list("recordChanges", caller)
    cursor: str = cursors.seal(str(seq))
    return cursor


async def _push(http: httpx.AsyncClient, server: LiveServer, payload: dict[str, Any]) -> str:
    token = server.token(Role.POLICE_OFFICER, FORCE)
    body = (
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
        )
    ).json()
    assert "errors" not in body, body
    incident_id: str = body["data"]["reportIncident"]["id"]
    return incident_id


async def test_a_council_is_sent_its_records_as_pushed_and_each_delivery_is_audited(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    request_id = str(uuid.uuid4())
    after = await _latest_cursor(db, live_server)
    async with subscribed(live_server, after, request_id=request_id) as ws:
        # Another council's incident first: it must not reach this council.
        await _push(http, live_server, incident(unique("SUB-X"), council=OTHER_COUNCIL))
        ours = unique("SUB")
        incident_id = await _push(http, live_server, incident(ours))
        delivered = await _next(ws)
    record = delivered["data"]["recordChanges"]["record"]
    assert record["id"] == incident_id
    assert (record["__typename"], record["policeReference"], record["type"]) == (
        "Incident",
        ours,
        "DOMESTIC_ABUSE",
    )
    assert delivered["data"]["recordChanges"]["change"] == "COLLECTED"
    accesses = await _events(db, request_id)
    assert [
        (a.operation, a.operation_kind, a.record_type, a.record_id, json.loads(a.fields))
        for a in accesses
    ] == [
        (
            "disclosure",
            "subscription",
            "Incident",
            incident_id,
            ["id", "policeReference", "summary", "type"],
        )
    ]
    async with db.transaction(write=False) as session:
        seen = await session.get(RecordReceipt, ("Incident", incident_id, COUNCIL))
    assert seen is not None, "a delivery is the council's receipt of the record"


async def test_messages_go_uncompressed_as_text_frames_of_the_same_json(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """The client offers permessage-deflate (websockets does by default): the hub declines it,
    and sends each message as a text frame, its non-ASCII text as written (orjson's UTF-8)."""
    after = await _latest_cursor(db, live_server)
    async with subscribed(live_server, after, request_id=str(uuid.uuid4())) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        summary = "Zoë — « synthetic » ✓"
        await _push(http, live_server, {**incident(unique("SUB-TEXT")), "summary": summary})
        raw = await asyncio.wait_for(ws.recv(), WAIT)
    assert isinstance(raw, str)
    message = json.loads(raw)
    assert message["type"] == "next"
    assert message["payload"]["data"]["recordChanges"]["record"]["summary"] == summary


async def test_a_subscriber_resumes_from_its_cursor_and_misses_nothing(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    after = await _latest_cursor(db, live_server)
    first = await _push(http, live_server, incident(unique("RES-1")))
    async with subscribed(live_server, after, request_id=str(uuid.uuid4())) as ws:
        one = (await _next(ws))["data"]["recordChanges"]
    assert one["record"]["id"] == first
    # Pushed while the council's system was disconnected.
    second = await _push(http, live_server, incident(unique("RES-2")))
    async with subscribed(live_server, one["cursor"], request_id=str(uuid.uuid4())) as ws:
        two = (await _next(ws))["data"]["recordChanges"]
    assert two["record"]["id"] == second


async def test_a_subscription_needs_a_valid_token(live_server: LiveServer) -> None:
    # No token on the upgrade: it may still come in connection_init (test_federation_hub.py);
    # a subscribe without one is refused before anything runs.
    async with connect(_ws_url(live_server), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": CHANGES}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    headers = {"Authorization": "Bearer not-a-token"}
    with pytest.raises(InvalidStatus):
        async with connect(
            _ws_url(live_server), subprotocols=["graphql-transport-ws"], additional_headers=headers
        ):  # type: ignore[list-item]
            pass


async def test_a_role_without_the_subscription_is_refused(live_server: LiveServer) -> None:
    # A council's data protection officer reads the audit, never the records themselves.
    async with subscribed(live_server, None, request_id=str(uuid.uuid4()), role=Role.DPO) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert message["type"] in {"error", "next"}, message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_delivery_that_cannot_be_audited_is_not_sent(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    after = await _latest_cursor(db, live_server)
    incident_id = await _push(http, live_server, incident(unique("SUB-FAIL")))
    async with (
        unwritable_audit(db),
        subscribed(live_server, after, request_id=str(uuid.uuid4())) as ws,
    ):
        failed = await _next(ws)
    assert failed["data"] is None
    assert [e["extensions"]["code"] for e in failed["errors"]] == ["AUDIT_UNAVAILABLE"]
    assert incident_id not in json.dumps(failed)
    async with db.transaction(write=False) as session:
        count = sa.select(sa.func.count()).select_from(AuditChainHead)
        assert (await session.execute(count)).scalar_one() == 1


@pytest.mark.skipif(not is_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's")
async def test_another_process_changes_wake_subscribers_through_notify(database_url: str) -> None:
    """A change committed by another hub process reaches this one's notifier at commit."""
    notifier = ChangeNotifier(database_url, poll_seconds=60)
    other = Database(database_url)  # another process's engine, as far as PostgreSQL can tell
    try:
        await notifier.listen()
        mark = notifier.mark()
        async with other.transaction(write=True) as session:
            await changes.publish(session, [("Incident", str(uuid.uuid4()), ChangeKind.ALTERED)])
            assert not mark.is_set(), "nothing is announced before the commit"
        await asyncio.wait_for(mark.wait(), WAIT)
        assert notifier.mark() is not mark, "the next wait waits for the next change"
    finally:
        await notifier.close()
        await other.dispose()
