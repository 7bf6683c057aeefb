"""What the hub does for the federated graph, without a gateway: a stock graphql-ws client's
credentials in connectionParams, subscriptions refused over HTTP, the audit endpoint only for the
gateway, and the caller's W3C trace joined."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.access.keys import KeySet
from hub.access.models import OAuthClient, Role
from hub.access.tokens import issue_access_token
from hub.audit.models import AuditEvent
from hub.db import _WRITE as WRITE_OPTION
from hub.db import Database
from hub.settings import Settings
from tests.conftest import LiveServer, audit_events_of, free_port, serve, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, child, incident
from tests.test_subscriptions import CHANGES, WAIT, _latest_cursor, _next, _push, _ws_url

GATEWAY_CLIENT = "test-federation-gateway"


async def _init(ws: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    init: dict[str, Any] = {"type": "connection_init"}
    if params is not None:
        init["payload"] = params
    await ws.send(json.dumps(init))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return reply


async def test_a_stock_graphql_ws_client_sends_its_credentials_in_connection_params(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """No headers on the upgrade (a browser cannot set them): the token, purpose and person in
    `connectionParams`, as graphql-ws sends them, are verified and audited like headers."""
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, user=None, purpose=None)
    params = {
        "Authorization": f"Bearer {token}",
        "Hub-Purpose": "missing_child",
        "Hub-On-Behalf-Of": "sw-browser",
    }
    after = await _latest_cursor(db, live_server)
    async with connect(_ws_url(live_server), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        assert (await _init(ws, params))["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        incident_id = await _push(http, live_server, incident(unique("WS-PARAMS")))
        delivered = await _next(ws)
    assert delivered["data"]["recordChanges"]["record"]["id"] == incident_id
    async with db.transaction(write=False) as session:
        event = (
            await session.execute(
                sa.select(AuditEvent)
                .where(AuditEvent.operation_kind == "subscription")
                .where(AuditEvent.records.contains(incident_id))
            )
        ).scalar_one()
    assert (event.user, event.purpose) == ("sw-browser", "missing_child")


@pytest.mark.parametrize(
    "params",
    [None, {}, {"Authorization": "Bearer not-a-token"}, {"token": "not-a-token"}],
    ids=["no-payload", "empty", "bad-header", "bad-token"],
)
async def test_connection_params_without_a_valid_token_are_refused(
    live_server: LiveServer, params: dict[str, Any] | None
) -> None:
    async with connect(_ws_url(live_server), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": params or {}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_subscription_over_http_is_refused_with_a_code_that_says_why(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    response = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": "subscription { recordChanges { cursor } }"},
    )
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SUBSCRIPTION_NEEDS_WEBSOCKET"]


@pytest.fixture(scope="module")
def gateway_trusting_hub(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A hub whose settings name a gateway client (the session's hub names none)."""
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("gateway-trusting-hub"),  # keys of its own
        issuer=f"http://127.0.0.1:{port}",
        federation_gateway_clients=[GATEWAY_CLIENT],
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


def _token(server: LiveServer, client_id: str, role: Role, org: str) -> str:
    return issue_access_token(
        settings=server.settings,
        keys=server.keys,
        client_id=client_id,
        organisation_code=org,
        role=role,
        user="someone",
        purpose="section_47_enquiry" if role is Role.COUNCIL_SOCIAL_WORKER else "hub_operations",
    )


def _report(caller_token: str, request_id: str) -> dict[str, Any]:
    return {
        "caller": {"authorization": f"Bearer {caller_token}", "onBehalfOf": "sw-0007"},
        "requestId": request_id,
        "operationName": "CouncilChild",
        "records": [
            {
                "type": "Child",
                "id": str(uuid.uuid4()),
                "fields": {"council": ["allocatedSocialWorker"], "hub": ["givenName"]},
            }
        ],
    }


async def test_only_the_named_gateway_reports_responses_and_the_caller_is_verified(
    http: httpx.AsyncClient, gateway_trusting_hub: LiveServer, db: Database
) -> None:
    server = gateway_trusting_hub
    caller = _token(server, "a-council-system", Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    url = f"{server.url}/federation/audit"
    request_id = str(uuid.uuid4())
    # A valid client that is not the gateway: refused, nothing written.
    impostor = _token(server, "not-the-gateway", Role.HUB_ADMIN, "HUB")
    refused = await http.post(
        url, json=_report(caller, request_id), headers={"Authorization": f"Bearer {impostor}"}
    )
    assert (refused.status_code, refused.json()["errors"][0]["extensions"]["code"]) == (
        403,
        "FORBIDDEN",
    )
    gateway = _token(server, GATEWAY_CLIENT, Role.HUB_ADMIN, "HUB")
    headers = {"Authorization": f"Bearer {gateway}"}
    # The gateway's word about the caller is not enough: a forged caller token is refused.
    forged = await http.post(url, json=_report("e30.e30.c2ln", request_id), headers=headers)
    assert forged.status_code == 401
    written = await http.post(url, json=_report(caller, request_id), headers=headers)
    assert written.json() == {"written": True}
    events = await audit_events_of(db, request_id)
    assert [(e.operation_kind, e.client_id, e.user, e.purpose) for e in events] == [
        ("federated", "a-council-system", "sw-0007", "section_47_enquiry")
    ]
    assert json.loads(events[0].detail)["served_by"] == {
        "council": ["Child.allocatedSocialWorker"],
        "hub": ["Child.givenName"],
    }


async def test_a_gateway_fetch_without_a_report_is_audited_at_once_marked_only_if_proven(
    http: httpx.AsyncClient, gateway_trusting_hub: LiveServer, db: Database
) -> None:
    """A response the hub alone serves is not reported: the gateway's fetch carries its token
    and no report id, and the hub writes the fetch's event before it answers, marked as the
    gateway's. Another client's token or a forged one in the gateway's header gets the same
    event at once, unmarked: no credential, valid or not, leaves a fetch unaudited."""
    server = gateway_trusting_hub
    police = server.token(Role.POLICE_OFFICER, FORCE)
    reference = unique("ALONE")
    payload = incident(
        reference,
        council=COUNCIL,
        children=[{"child": child(f"{reference}-C1", council=COUNCIL), "present": True}],
    )
    pushed = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {police}"},
        json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
    )
    child_id = pushed.json()["data"]["reportIncident"]["children"][0]["child"]["id"]
    caller = _token(server, "a-council-system", Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    gateway = f"Bearer {_token(server, GATEWAY_CLIENT, Role.HUB_ADMIN, 'HUB')}"
    impostor = f"Bearer {_token(server, 'not-the-gateway', Role.HUB_ADMIN, 'HUB')}"
    marked = {"channel": "gateway", "gateway": GATEWAY_CLIENT}
    cases: list[tuple[dict[str, str], dict[str, str] | None]] = [
        ({"Hub-Gateway-Authorization": gateway}, marked),
        ({"Hub-Gateway-Authorization": gateway, "Hub-Gateway-Report": "not a report id!"}, marked),
        ({"Hub-Gateway-Authorization": impostor}, None),
        ({"Hub-Gateway-Authorization": "Bearer e30.e30.c2ln"}, None),
        ({"Hub-Gateway-Authorization": "Bearer e30.e30.c2ln", "Hub-Gateway-Report": "r-1"}, None),
    ]
    for extra, detail in cases:
        request_id = str(uuid.uuid4())
        response = await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {caller}", "X-Request-Id": request_id, **extra},
            json={
                "query": "query ChildOnly($id: ID!) { child(id: $id) { givenName } }",
                "variables": {"id": child_id},
            },
        )
        assert response.json() == {"data": {"child": {"givenName": "Alex"}}}
        events = await audit_events_of(db, request_id)
        # At once (not held), with the caller as its actor, whatever the gateway header said.
        assert [(e.operation_kind, e.client_id) for e in events] == [
            ("query", "a-council-system")
        ], extra
        assert (json.loads(events[0].detail) if events[0].detail else None) == detail, extra
        assert [r["id"] for r in json.loads(events[0].records)] == [child_id]


async def test_the_hubs_spans_join_the_callers_trace(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    response = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{parent}-01"},
        json={"query": "query Who { viewer { role } }"},
    )
    assert "errors" not in response.json()
    # The server span ends when the app returns, which may be just after the client has the
    # response's last byte (on PostgreSQL the request's commit hooks run on): wait for it.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        provider.force_flush()
        spans = [
            s
            for s in exporter.get_finished_spans()
            if format(s.context.trace_id, "032x") == trace_id
        ]
        server = [s for s in spans if s.name == "POST /graphql"]
        if server or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert len(server) == 1
    assert server[0].parent is not None
    assert format(server[0].parent.span_id, "016x") == parent
    assert "graphql Who" in {s.name for s in spans}, "the operation's span is in the same trace"


async def test_a_revoked_callers_response_is_not_audited_so_the_gateway_sends_nothing(
    http: httpx.AsyncClient, gateway_trusting_hub: LiveServer, db: Database
) -> None:
    """The council subgraph checks only a token's signature; the hub's refusal to write the
    audit for a revoked client is what stops the gateway sending its response (fail-closed)."""
    server = gateway_trusting_hub
    client_id = f"revoked-{uuid.uuid4().hex[:8]}"
    async with db.transaction(write=True) as session:
        session.add(
            OAuthClient(
                client_id=client_id,
                secret_hash="unused",  # no secret: the row only names the client
                organisation_code=COUNCIL,
                role=Role.COUNCIL_SOCIAL_WORKER.value,
                revoked_at=dt.datetime.now(dt.UTC),
            )
        )
    caller = _token(server, client_id, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    gateway = _token(server, GATEWAY_CLIENT, Role.HUB_ADMIN, "HUB")
    request_id = str(uuid.uuid4())
    deadline = asyncio.get_running_loop().time() + 60  # the revocation list's lifetime, at most
    while True:
        refused = await http.post(
            f"{server.url}/federation/audit",
            json=_report(caller, request_id),
            headers={"Authorization": f"Bearer {gateway}"},
        )
        if refused.status_code == 401:
            break
        assert asyncio.get_running_loop().time() < deadline, refused.text
        await asyncio.sleep(0.5)
    assert refused.json()["written"] is False
    assert refused.json()["errors"][0]["extensions"]["reason"] == "revoked_client"


async def test_on_sqlite_a_reports_look_ups_are_made_before_the_write_lock(
    http: httpx.AsyncClient, gateway_trusting_hub: LiveServer
) -> None:
    """SQLite's write lock is held from BEGIN and every response's audit queues on it: the
    report's look-ups run before it. PostgreSQL has no such lock: one transaction does both."""
    server = gateway_trusting_hub
    db = server.app.app.state.hub.db
    on_writer: list[bool] = []  # for each look-up of the reported child: on a write connection?

    def seen(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and " child " in f"{statement} ":
            on_writer.append(bool(connection.get_execution_options().get(WRITE_OPTION)))

    engine = db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        caller = _token(server, "a-council-system", Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
        gateway = _token(server, GATEWAY_CLIENT, Role.HUB_ADMIN, "HUB")
        written = await http.post(
            f"{server.url}/federation/audit",
            json=_report(caller, str(uuid.uuid4())),
            headers={"Authorization": f"Bearer {gateway}"},
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert written.json() == {"written": True}
    assert on_writer, "the reported child was not looked up"
    assert set(on_writer) == {db.audits_reads_in_place}
