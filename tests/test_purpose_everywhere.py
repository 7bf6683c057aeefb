"""Every operation that reads or changes case data names a permitted purpose and a person
(subscriptions, pushes and acknowledgements as well as queries), and in production the contract
is the gateway's alone and errors suggest no names. Real HTTP and websockets through uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from hub.access.agreement import Agreement, AgreementInvalid, default_path
from hub.access.keys import KeySet, rotate
from hub.access.models import Role
from hub.access.permissions import NamesPurposeAndPerson
from hub.db import Database
from hub.graphql.schema import Subscription, build_schema
from hub.incidents import service as incidents
from hub.settings import Mode, Settings
from hub.timeliness.models import RecordReceipt
from tests.conftest import LiveServer, free_port, serve, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, incident
from tests.test_audit_trail import _events
from tests.test_subscriptions import CHANGES, WAIT, _latest_cursor, _push, _ws_url

SCHEMA = build_schema(Settings())._schema
ACKNOWLEDGE = """mutation($type: String!, $id: ID!) {
  acknowledge(recordType: $type, id: $id) { acknowledgedAt acknowledgedBy } }"""
SDL = "{ _service { sdl } }"


# -- subscriptions -----------------------------------------------------------------------------


@asynccontextmanager
async def _subscribed(
    server: LiveServer, token: str, *, after: str, request_id: str
) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    async with connect(
        _ws_url(server), subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


@pytest.mark.parametrize(
    ("user", "purpose", "code"),
    [
        ("sw-1", None, "PURPOSE_REQUIRED"),
        ("sw-1", "curiosity", "PURPOSE_UNKNOWN"),
        ("sw-1", "inspection", "PURPOSE_NOT_PERMITTED"),
        (None, "section_47_enquiry", "ON_BEHALF_OF_REQUIRED"),
    ],
)
async def test_a_subscription_without_a_permitted_purpose_and_a_person_is_refused_and_sent_nothing(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    user: str | None,
    purpose: str | None,
    code: str,
) -> None:
    request_id = str(uuid.uuid4())
    after = await _latest_cursor(db, live_server)
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, user=user, purpose=purpose)
    async with _subscribed(live_server, token, after=after, request_id=request_id) as ws:
        # In the council's rows and after its cursor: a live subscription would be sent it.
        pushed = await _push(http, live_server, incident(unique("SUB-PURPOSE")))
        refusal = await _receive(ws)
        await ws.send(json.dumps({"type": "ping"}))
        following = await _receive(ws)
    assert refusal["type"] == "error", refusal
    assert [e["extensions"]["code"] for e in refusal["payload"]] == [code]
    assert pushed not in json.dumps(refusal)
    assert following == {"type": "pong"}, "the refused subscription sends nothing more"
    # The refusal is an event, as a query's is; nothing was disclosed.
    events = await _events(db, request_id)
    assert [(e.outcome, e.operation_kind, e.record_id) for e in events] == [
        ("denied", "subscription", None)
    ]
    assert json.loads(events[0].detail)["denied"] == [code]


def test_every_subscription_field_checks_the_purpose_and_the_person() -> None:
    fields = Subscription.__strawberry_definition__.fields  # type: ignore[attr-defined]
    assert fields
    for field in fields:
        assert NamesPurposeAndPerson in field.permission_classes, field.name


# -- pushes and acknowledgements ---------------------------------------------------------------


async def _post(
    http: httpx.AsyncClient,
    server: LiveServer,
    token: str,
    query: str,
    variables: dict[str, Any],
    *,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if request_id is not None:
        sent["X-Request-Id"] = request_id
    response = await http.post(
        server.graphql_url, json={"query": query, "variables": variables}, headers=sent
    )
    body: dict[str, Any] = response.json()
    return body


async def _stored(db: Database, reference: str) -> bool:
    async with db.transaction(write=False) as session:
        found = await incidents.get_by_reference(
            session, force_code=FORCE, police_reference=reference
        )
    return found is not None


@pytest.mark.parametrize(
    ("user", "headers", "code"),
    [
        # Neither header nor claim: the role's default purpose stands in, the person does not.
        (None, {}, "ON_BEHALF_OF_REQUIRED"),
        ("officer-1", {"Hub-Purpose": "curiosity"}, "PURPOSE_UNKNOWN"),
        ("officer-1", {"Hub-Purpose": "operation_encompass"}, "PURPOSE_NOT_PERMITTED"),
    ],
)
async def test_a_push_without_a_person_or_with_a_purpose_it_may_not_give_stores_nothing(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    user: str | None,
    headers: dict[str, str],
    code: str,
) -> None:
    reference = unique("PUSH-PURPOSE")
    token = live_server.token(Role.POLICE_OFFICER, FORCE, user=user, purpose=None)
    body = await _post(
        http, live_server, token, REPORT_INCIDENT, {"input": incident(reference)}, headers=headers
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert body.get("data") is None
    assert reference not in json.dumps(body)
    assert not await _stored(db, reference), "a refused push stores nothing"


async def test_a_police_push_without_a_purpose_is_recorded_under_the_roles_default(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    default = Agreement.load(default_path(), SCHEMA).policy(Role.POLICE_OFFICER).default_purpose
    assert default == "police_investigation"
    request_id = str(uuid.uuid4())
    reference = unique("PUSH-DEFAULT")
    token = live_server.token(Role.POLICE_OFFICER, FORCE, user="officer-1", purpose=None)
    body = await _post(
        http,
        live_server,
        token,
        REPORT_INCIDENT,
        {"input": incident(reference)},
        request_id=request_id,
    )
    assert "errors" not in body, body
    assert body["data"]["reportIncident"]["policeReference"] == reference
    events = await _events(db, request_id)
    assert events, "the push is audited"
    assert {(e.purpose, e.user) for e in events} == {(default, "officer-1")}


@pytest.mark.parametrize(
    ("user", "purpose", "code"),
    [
        (None, None, "PURPOSE_REQUIRED"),
        ("sw-1", None, "PURPOSE_REQUIRED"),
        (None, "section_47_enquiry", "ON_BEHALF_OF_REQUIRED"),
    ],
)
async def test_an_acknowledgement_needs_a_purpose_and_a_person(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    user: str | None,
    purpose: str | None,
    code: str,
) -> None:
    pushed = await _push(http, live_server, incident(unique("ACK-PURPOSE")))
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, user=user, purpose=purpose)
    body = await _post(http, live_server, token, ACKNOWLEDGE, {"type": "Incident", "id": pushed})
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert body.get("data") is None
    async with db.transaction(write=False) as session:
        receipts = await session.execute(
            sa.select(RecordReceipt).where(RecordReceipt.record_id == pushed)  # type: ignore[arg-type]
        )
        assert [r for r in receipts.scalars() if r.acknowledged_at is not None] == []


# -- production: the contract and suggestions ----------------------------------------------------


@pytest.fixture(scope="module")
def production_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from hub.app import create_app  # noqa: PLC0415 - as conftest's live_server

    directory = tmp_path_factory.mktemp("hub-production")
    keys_file = directory / "keys.json"
    rotate(keys_file, development=False)
    port = free_port()
    settings = Settings(
        mode=Mode.PRODUCTION,
        database_url=database_url,
        data_dir=directory,
        signing_keys_file=keys_file,
        pseudonym_key="test-only-production-pseudonym-key",
        issuer=f"http://127.0.0.1:{port}",
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


async def test_in_production_only_the_gateway_reads_the_contract(
    http: httpx.AsyncClient, production_server: LiveServer
) -> None:
    council = production_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    refused = await _post(http, production_server, council, SDL, {})
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert "type Incident" not in json.dumps(refused)
    # The gateway's client names no person or purpose: the contract discloses nobody.
    gateway = production_server.token(Role.HUB_ADMIN, "HUB", user=None, purpose=None)
    served = await _post(http, production_server, gateway, SDL, {})
    assert "errors" not in served, served
    assert "type Incident" in served["data"]["_service"]["sdl"]


async def test_in_development_every_caller_reads_the_contract(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    council = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    served = await _post(http, live_server, council, SDL, {})
    assert "type Incident" in served["data"]["_service"]["sdl"]


MISSPELT = [
    # A field and an argument, each one letter out. (A misspelt enum value is input: its error
    # names the field and the expected type, and suggests nothing anywhere: test_error_leaks.)
    ("{ incidnts { edges { node { id } } } }", "'incidents'"),
    ("{ incidents(frist: 1) { edges { node { id } } } }", "'first'"),
]


@pytest.mark.parametrize(("query", "suggested"), MISSPELT)
async def test_errors_suggest_names_in_development_only(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    production_server: LiveServer,
    query: str,
    suggested: str,
) -> None:
    def messages(body: dict[str, Any]) -> str:
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
        return " ".join(e["message"] for e in body["errors"])

    development = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    suggesting = messages(await _post(http, live_server, development, query, {}))
    assert "Did you mean" in suggesting
    assert suggested in suggesting
    production = production_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    plain = messages(await _post(http, production_server, production, query, {}))
    assert "Did you mean" not in plain
    assert suggested not in plain


# -- the agreement's new terms ------------------------------------------------------------------


def _agreement_with(tmp_path: Path, old: str, new: str) -> Path:
    shipped = default_path().read_text()
    assert old in shipped
    path = tmp_path / "agreement.toml"
    path.write_text(shipped.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'default_purpose = "police_investigation"',
            'default_purpose = "inspection"',
            "role police_officer: default_purpose 'inspection' is not one of the role's purposes",
        ),
        (
            'rows = "school_pupils"',
            'rows = "school_pupils"\ndefault_purpose = "operation_encompass"',
            (
                "role school_dsl: default_purpose 'operation_encompass': only a role "
                "that pushes records may have a default purpose"
            ),
        ),
        (
            'gateway_role = "hub_admin"',
            'gateway_role = "gateway"',
            "[federation] gateway_role 'gateway' is unknown",
        ),
    ],
)
def test_the_new_terms_are_checked_at_load(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    with pytest.raises(AgreementInvalid) as caught:
        Agreement.load(_agreement_with(tmp_path, old, new), SCHEMA)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
