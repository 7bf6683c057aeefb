"""Meetings on the changes feed, over graphql-transport-ws: the invited force (now a subscriber)
and the councils are told at once; an uninvited force is not, nor of other forces' records; each
delivery is audited as a disclosure; a subscription that does not ask for meetings is unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from hub.access.models import Role
from hub.db import Database
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_COUNCIL,
    OTHER_FORCE,
    REPORT_INCIDENT,
    hours_ago,
    incident,
    iso,
)
from tests.meeting_pushes import RESPOND, call, meeting, schedule
from tests.scenario import World
from tests.test_audit_trail import _events
from tests.test_subscriptions import CHANGES, _latest_cursor, _next, _ws_url

MEETING_CHANGES = """
subscription($after: String) {
  recordChanges(after: $after) {
    cursor change
    record { __typename id }
    meeting { id kind invitations { force { id } response reportText } }
  }
}"""


@asynccontextmanager
async def _subscribed(
    server: LiveServer,
    db: Database,
    role: Role,
    org: str,
    *,
    query: str = MEETING_CHANGES,
    request_id: str | None = None,
) -> AsyncIterator[ClientConnection]:
    after = await _latest_cursor(db, server, role, org)
    headers = {
        "Authorization": f"Bearer {server.token(role, org)}",
        "X-Request-Id": request_id or str(uuid.uuid4()),
    }
    async with connect(
        _ws_url(server), subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _incident(http: httpx.AsyncClient, server: LiveServer, force: str, council: str) -> str:
    body = await call(
        http,
        server,
        Role.POLICE_OFFICER,
        force,
        REPORT_INCIDENT,
        {"input": incident(unique("MC-INC"), council=council)},
    )
    assert "errors" not in body, body
    return str(body["data"]["reportIncident"]["id"])


def _what(payload: dict[str, Any]) -> tuple[str, str, str]:
    assert "errors" not in payload, payload
    event = payload["data"]["recordChanges"]
    if event["meeting"] is not None:
        assert event["record"] is None
        return ("Meeting", event["meeting"]["id"], event["change"])
    return (event["record"]["__typename"], event["record"]["id"], event["change"])


async def test_the_invited_force_and_the_council_are_told_and_no_one_else(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    police, council = Role.POLICE_OFFICER, Role.COUNCIL_SOCIAL_WORKER
    invited_request = str(uuid.uuid4())
    async with AsyncExitStack() as stack:
        invited = await stack.enter_async_context(
            _subscribed(live_server, db, police, FORCE, request_id=invited_request)
        )
        uninvited = await stack.enter_async_context(
            _subscribed(live_server, db, police, OTHER_FORCE)
        )
        convening = await stack.enter_async_context(_subscribed(live_server, db, council, COUNCIL))
        stored = await schedule(
            http, live_server, meeting(unique("MC"), children=[{"childId": world.inside.child}])
        )
        ours = await _incident(http, live_server, FORCE, COUNCIL)
        theirs = await _incident(http, live_server, OTHER_FORCE, OTHER_COUNCIL)
        meeting_id = stored["id"]

        first = await _next(invited)
        assert _what(first) == ("Meeting", meeting_id, "COLLECTED")
        assert first["data"]["recordChanges"]["meeting"]["invitations"] == [
            {"force": {"id": FORCE}, "response": None, "reportText": None}
        ]
        # Its own incident next; the other force's is not its to see.
        assert _what(await _next(invited)) == ("Incident", ours, "COLLECTED")
        # The uninvited force is sent neither the meeting nor the other force's incident.
        assert _what(await _next(uninvited)) == ("Incident", theirs, "COLLECTED")
        assert _what(await _next(convening)) == ("Meeting", meeting_id, "COLLECTED")
        assert _what(await _next(convening)) == ("Incident", ours, "COLLECTED")

        answer = {"meetingId": meeting_id, "response": "WILL_ATTEND",
                  "respondedAt": iso(hours_ago(0.01))}  # fmt: skip
        body = await call(http, live_server, police, FORCE, RESPOND, {"input": answer})
        assert "errors" not in body, body
        changed = await _next(convening)
        assert _what(changed) == ("Meeting", meeting_id, "ALTERED")
        assert changed["data"]["recordChanges"]["meeting"]["invitations"][0]["response"] == (
            "WILL_ATTEND"
        )
        assert _what(await _next(invited)) == ("Meeting", meeting_id, "ALTERED")
    deliveries = [
        (a.operation, a.operation_kind, a.record_type, a.record_id)
        for a in await _events(db, invited_request)
    ]
    assert deliveries == [
        ("disclosure", "subscription", "Meeting", meeting_id),
        ("disclosure", "subscription", "Incident", ours),
        ("disclosure", "subscription", "Meeting", meeting_id),
    ]


async def test_a_subscription_that_does_not_ask_for_meetings_is_not_sent_them(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    async with _subscribed(
        live_server, db, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, query=CHANGES
    ) as ws:
        await schedule(
            http, live_server, meeting(unique("MC-O"), children=[{"childId": world.inside.child}])
        )
        ours = await _incident(http, live_server, FORCE, COUNCIL)
        delivered = await _next(ws)
    assert delivered["data"]["recordChanges"]["record"]["id"] == ours
