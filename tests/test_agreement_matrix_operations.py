"""The agreement matrix beyond queries: what every role is sent by subscriptions and mutations.

A record leaves the hub by three more paths than a query: a subscription's delivery, a mutation's
response and `_entities` (tests/test_agreement_matrix.py covers the last). Generated from
auth/agreement.toml and the schema like the query matrix: for every role, a path it may not use
is refused with no data and nothing stored; a path it may use carries exactly the fields the
agreement lists for it (others null with FORBIDDEN_FIELD), and only records in its rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from graphql import GraphQLInterfaceType, GraphQLObjectType, get_named_type
from websockets.asyncio.client import ClientConnection

from hub.access.models import Role
from hub.db import Database
from hub.incidents.models import Incident
from hub.investigations.models import Investigation
from hub.joint_visits.models import JointVisitRequest
from hub.meetings.models import Meeting
from hub.missing.models import MissingEpisode
from hub.protection.models import PoliceProtection
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_MISSING,
    RECORD_PROTECTION,
    REPORT_INCIDENT,
    REQUEST_JOINT_VISIT,
    UPDATE_INVESTIGATION,
    UPDATE_MISSING,
    child,
    hours_ago,
    incident,
    iso,
    joint_visit,
    missing_episode,
    protection,
    status_change,
)
from tests.meeting_pushes import meeting, schedule
from tests.scenario import ORGANISATION_OF, OTHER_SCHOOL, SCHOOL, World
from tests.test_agreement_matrix import AGREEMENT, SCHEMA, _selection
from tests.test_subscriptions import WAIT, _latest_cursor, _ws_url

RECORD_TYPES = ("Incident", "MissingEpisode", "Investigation", "PoliceProtection")


def _fields_of(type_name: str) -> dict[str, Any]:
    graphql_type = SCHEMA.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType)
    return dict(graphql_type.fields)


def _clashing() -> set[str]:
    """Field names that record types give different types (`status`): one selection may ask
    for them only under aliases (and the query's alias budget is small, so only for these)."""
    typed: dict[str, set[str]] = {}
    for type_name in RECORD_TYPES:
        for name, field in _fields_of(type_name).items():
            typed.setdefault(name, set()).add(str(field.type))
    return {name for name, types in typed.items() if len(types) > 1}


def _aliased(type_name: str) -> str:
    """Every field of the type; a clashing one aliased `Type_field`."""
    clashing = _clashing()
    parts = []
    for name, field in _fields_of(type_name).items():
        composite = isinstance(get_named_type(field.type), GraphQLObjectType | GraphQLInterfaceType)
        alias = f"{type_name}_{name}: " if name in clashing else ""
        parts.append(f"{alias}{name}" + (" { __typename }" if composite else ""))
    return " ".join(parts)


def _unaliased(type_name: str, record: dict[str, Any]) -> dict[str, Any]:
    prefix = f"{type_name}_"
    return {k.removeprefix(prefix): v for k, v in record.items()}


def _record_selection() -> str:
    """Every field of every record type a delivery can carry, each in its own fragment."""
    return " ".join(f"... on {t} {{ {_aliased(t)} }}" for t in RECORD_TYPES)


def _forbidden_at(body: dict[str, Any], base: tuple[Any, ...]) -> set[str]:
    """The fields refused directly under `base` (each error must be a FORBIDDEN_FIELD)."""
    refused = set()
    for error in body.get("errors") or []:
        assert error["extensions"]["code"] == "FORBIDDEN_FIELD", error
        path = tuple(error["path"])
        if path[: len(base)] == base and len(path) == len(base) + 1:
            refused.add(str(path[-1]))
    return refused


def _assert_exactly_allowed(
    role: Role, type_name: str, record: dict[str, Any], refused: set[str]
) -> None:
    names = set(_selection(type_name)[1])
    allowed = AGREEMENT.policy(role).fields.get(type_name, frozenset())
    assert refused == names - allowed, (role, type_name)
    for name in names - allowed:
        assert record[name] is None, f"{type_name}.{name} leaked to {role}"


async def _police(
    http: httpx.AsyncClient,
    server: LiveServer,
    query: str,
    payload: Any,
    *,
    force: str = FORCE,
    role: Role = Role.POLICE_OFFICER,
) -> Any:
    token = server.token(role, force)
    body = (
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": query, "variables": {"input": payload}},
        )
    ).json()
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


# --- subscriptions -------------------------------------------------------------------------


async def _subscribe(server: LiveServer, role: Role, after: str) -> Any:
    from websockets.asyncio.client import connect  # noqa: PLC0415 - only these tests use it

    token = server.token(role, ORGANISATION_OF[role])
    connection = connect(
        _ws_url(server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    ws = await connection.__aenter__()
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
    query = (
        "subscription($after: String) { recordChanges(after: $after) "
        f"{{ cursor record {{ __typename {_record_selection()} }} }} }}"
    )
    payload = {"query": query, "variables": {"after": after}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return connection, ws


async def _push_one_of_each(http: httpx.AsyncClient, server: LiveServer) -> dict[str, str]:
    """A notice for the school's pupil, a missing episode, an investigation, a police
    protection: all Birmingham's."""
    reference = unique("MX-INC")
    notice = await _police(
        http,
        server,
        REPORT_INCIDENT,
        incident(
            reference,
            children=[{"child": child(unique("MX-P"), school=SCHOOL), "present": True}],
        ),
    )
    episode = await _police(http, server, RECORD_MISSING, missing_episode(unique("MX-MISS")))
    investigation = await _police(
        http,
        server,
        UPDATE_INVESTIGATION,
        status_change(unique("MX-INV"), "OPEN", hours=1, incidentReferences=[reference]),
    )
    protected = await _police(http, server, RECORD_PROTECTION, protection(unique("MX-PP")))
    return {
        "Incident": notice["id"],
        "MissingEpisode": episode["id"],
        "Investigation": investigation["id"],
        "PoliceProtection": protected["id"],
    }


async def _deliveries_until(ws: ClientConnection, last_id: str) -> list[dict[str, Any]]:
    payloads = []
    for _ in range(50):  # bounded: the pushes above make a handful of changes
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert message["type"] == "next", message
        payloads.append(message["payload"])
        if message["payload"]["data"]["recordChanges"]["record"]["id"] == last_id:
            return payloads
    pytest.fail("the last push was never delivered")


# Which of the pushed records each kind of rows reaches.
REACHED = {
    "own_force": set(RECORD_TYPES),  # all pushed by the subscribing force; not the other's
    "council_children": set(RECORD_TYPES),
    "school_pupils": {"Incident"},
}


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_subscription_deliveries_carry_exactly_the_allowed_fields(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World, role: Role
) -> None:
    del world  # the schools and organisations the pushes below name
    policy = AGREEMENT.policy(role)
    after = await _latest_cursor(db, live_server, role, ORGANISATION_OF[role])
    connection, ws = await _subscribe(live_server, role, after)
    try:
        if "recordChanges" not in policy.fields.get("Subscription", frozenset()):
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            errors = message["payload"] if message["type"] == "error" else None
            if errors is None:
                assert message["payload"].get("data") is None, message
                errors = message["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], message
            return
        pushed = await _push_one_of_each(http, live_server)
        # Another force's notice about another council's child at another school: nobody's here.
        await _police(
            http,
            live_server,
            REPORT_INCIDENT,
            incident(
                unique("MX-OUT"),
                council=OTHER_COUNCIL,
                children=[
                    {
                        "child": child(unique("MX-OP"), council=OTHER_COUNCIL, school=OTHER_SCHOOL),
                        "present": True,
                    }
                ],
            ),
            force=OTHER_FORCE,
        )
        # A last notice everyone who subscribes may see marks the end of the deliveries.
        last = await _police(
            http,
            live_server,
            REPORT_INCIDENT,
            incident(
                unique("MX-LAST"),
                children=[{"child": child(unique("MX-LP"), school=SCHOOL), "present": True}],
            ),
        )
        payloads = await _deliveries_until(ws, last["id"])
    finally:
        await connection.__aexit__(None, None, None)
    reached = REACHED[policy.rows.value]
    delivered = {
        (
            p["data"]["recordChanges"]["record"]["__typename"],
            p["data"]["recordChanges"]["record"]["id"],
        )
        for p in payloads
    }
    assert delivered == {(t, pushed[t]) for t in reached} | {("Incident", last["id"])}
    base = ("recordChanges", "record")
    for payload in payloads:
        record = payload["data"]["recordChanges"]["record"]
        kind = record["__typename"]
        refused = {f.removeprefix(f"{kind}_") for f in _forbidden_at(payload, base)}
        _assert_exactly_allowed(role, kind, _unaliased(kind, record), refused)


# --- mutations -----------------------------------------------------------------------------

# Who may call each mutation: the roles whose `Mutation` fields in the agreement list it (the one
# place that says who may write what). A mutation no role may call is a mistake too.
MUTATION_ROLES = {
    name: frozenset(role for role, rules in AGREEMENT.roles.items() if rules.sees("Mutation", name))
    for name in SCHEMA.mutation_type.fields  # type: ignore[union-attr]
}
# The table where a refused push would have stored its record.
STORED_IN = {
    "reportIncident": Incident,
    "reportIncidents": Incident,
    "recordMissingEpisode": MissingEpisode,
    "updateInvestigationStatus": Investigation,
    "scheduleMeeting": Meeting,
    "requestJointVisit": JointVisitRequest,
    "recordPoliceProtection": PoliceProtection,
}


def test_every_mutation_is_granted_to_some_role() -> None:
    assert [name for name, roles in MUTATION_ROLES.items() if not roles] == []


async def _returned_episode(http: httpx.AsyncClient, server: LiveServer) -> str:
    reference = unique("MX-RET")
    episode = await _police(http, server, RECORD_MISSING, missing_episode(reference))
    await _police(
        http,
        server,
        UPDATE_MISSING,
        {"policeReference": reference, "status": "RETURNED", "at": iso(hours_ago(1))},
    )
    return str(episode["id"])


# The answers to a meeting (its id given): the force's, and the council's after it is held.
MEETING_ANSWERS: dict[str, Any] = {
    "respondToMeetingInvitation": lambda meeting_id: {
        "meetingId": meeting_id,
        "response": "WILL_ATTEND",
        "respondedAt": iso(hours_ago(0.01)),
    },
    "submitMeetingReport": lambda meeting_id: {"meetingId": meeting_id, "report": "Synthetic."},
    "recordMeetingAttendance": lambda meeting_id: {
        "meetingId": meeting_id,
        "heldAt": iso(hours_ago(0.5)),
        "attendance": [{"force": FORCE, "attendance": "VIDEO", "attendeeRole": "INSPECTOR"}],
    },
}


async def _arguments(
    http: httpx.AsyncClient, server: LiveServer, world: World, name: str
) -> tuple[str, str, dict[str, Any], str]:
    """(variable definitions, arguments, variables, police reference or "") for a mutation."""
    if name == "acknowledge":
        return (
            "$t: String!, $id: ID!",
            "recordType: $t, id: $id",
            {"t": "Incident", "id": world.inside.incident},
            "",
        )
    if name in {"respondToJointVisitRequest", "recordJointVisit"}:
        request = await _police(
            http,
            server,
            REQUEST_JOINT_VISIT,
            joint_visit(unique("MX-JV"), world.inside.child),
            force=COUNCIL,
            role=Role.COUNCIL_SOCIAL_WORKER,
        )
        answers = {
            "respondToJointVisitRequest": {
                "requestId": request["id"],
                "response": "OFFICER_ASSIGNED",
                "officerRole": "SERGEANT",
                "respondedAt": iso(hours_ago(1)),
            },
            "recordJointVisit": {
                "requestId": request["id"],
                "outcome": "HELD_JOINTLY",
                "at": iso(hours_ago(0.5)),
            },
        }
        argument = SCHEMA.mutation_type.fields[name].args["input"]  # type: ignore[union-attr]
        return f"$input: {argument.type}", "input: $input", {"input": answers[name]}, ""
    if name == "recordReturnInterview":
        episode = await _returned_episode(http, server)
        return (
            "$id: ID!, $at: DateTime!",
            "missingEpisodeId: $id, heldAt: $at",
            {"id": episode, "at": iso(hours_ago(0.5))},
            "",
        )
    reference = unique("MX-MUT")
    payloads: dict[str, dict[str, Any]] = {
        "reportIncident": incident(reference),
        "reportIncidents": [incident(reference)],
        "recordMissingEpisode": missing_episode(reference),
        "updateInvestigationStatus": status_change(reference, "OPEN", hours=1),
        "scheduleMeeting": meeting(reference, children=[{"childId": world.inside.child}]),
        "requestJointVisit": joint_visit(reference, world.inside.child),
        "recordPoliceProtection": protection(reference),
    }
    if name in MEETING_ANSWERS:
        # A meeting of the world's council inviting its force, held an hour ago.
        convened = await schedule(
            http,
            server,
            meeting(unique("MX-MTG"), children=[{"childId": world.inside.child}],
                    scheduledAt=iso(hours_ago(1))),
        )  # fmt: skip
        payloads[name] = MEETING_ANSWERS[name](convened["id"])
    if name == "updateMissingEpisode":
        await _police(http, server, RECORD_MISSING, missing_episode(reference))
        payloads[name] = {"policeReference": reference, "status": "FOUND", "at": iso(hours_ago(1))}
    argument = SCHEMA.mutation_type.fields[name].args["input"]  # type: ignore[union-attr]
    return f"$input: {argument.type}", "input: $input", {"input": payloads[name]}, reference


async def _stored(db: Database, name: str, reference: str) -> int:
    model = STORED_IN.get(name)
    if model is None or not reference:
        return 0
    # A council's push is named by its council reference, a force's by its police reference.
    column = getattr(model, "police_reference", None) or model.council_reference
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).where(column == reference)
        return int((await session.execute(query)).scalar_one())


@pytest.mark.parametrize(("role", "name"), [(r, m) for r in Role for m in MUTATION_ROLES], ids=str)
async def test_mutation_responses_carry_exactly_the_allowed_fields(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    world: World,
    role: Role,
    name: str,
) -> None:
    mutation = SCHEMA.mutation_type
    assert mutation is not None
    returned = get_named_type(mutation.fields[name].type)
    assert isinstance(returned, GraphQLObjectType)
    inner, _ = _selection(returned.name)
    definitions, arguments, variables, reference = await _arguments(http, live_server, world, name)
    token = live_server.token(role, ORGANISATION_OF[role])
    body = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": str(uuid.uuid4())},
            json={
                "query": f"mutation({definitions}) {{ {name}({arguments}) {{ {inner} }} }}",
                "variables": variables,
            },
        )
    ).json()
    if role not in MUTATION_ROLES[name]:
        assert body["data"] is None or body["data"][name] is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
        assert await _stored(db, name, reference) == 0
        return
    record = body["data"][name]
    assert record is not None, body
    place: tuple[Any, ...] = (name,)
    if isinstance(record, list):  # a batch push (`reportIncidents`): its one record
        (record,) = record
        place = (name, 0)
    _assert_exactly_allowed(role, returned.name, record, _forbidden_at(body, place))
    if name in STORED_IN:
        assert await _stored(db, name, reference) == 1
