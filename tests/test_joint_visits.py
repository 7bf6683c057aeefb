"""Joint visits and ABE interviews (issue 13, item 2) over real HTTP: a council asks, the force
answers, the council records what happened; every step validated, idempotent and scoped, every
read audited, and the force told at once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from hub.access.models import Role
from hub.db import Database
from hub.joint_visits.models import JointVisitRequest
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_JOINT_VISIT,
    REQUEST_JOINT_VISIT,
    RESPOND_JOINT_VISIT,
    hours_ago,
    incident,
    iso,
    joint_visit,
)
from tests.scenario import World
from tests.test_audit_trail import _events
from tests.test_subscriptions import WAIT, _latest_cursor, _next, _push, _ws_url, subscribed

ONE = """query($id: ID!) { jointVisitRequest(id: $id) {
  id councilReference kind urgency response officerRole outcome outcomeAt child { id } } }"""
LIST = """query($filter: JointVisitRequestFilterInput, $first: Int, $after: String) {
  jointVisitRequests(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id councilReference } } pageInfo { hasNextPage endCursor } } }"""


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


async def _request(as_role: Any, payload: dict[str, Any], council: str = COUNCIL) -> dict[str, Any]:
    body = await as_role(Role.COUNCIL_SOCIAL_WORKER, council)(
        REQUEST_JOINT_VISIT, {"input": payload}
    )
    assert "errors" not in body, body
    request: dict[str, Any] = body["data"]["requestJointVisit"]
    return request


async def _count(db: Database, reference: str) -> int:
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).where(
            JointVisitRequest.council_reference == reference  # type: ignore[arg-type]
        )
        return int((await session.execute(query)).scalar_one())


async def test_a_council_asks_the_force_answers_and_the_council_records_the_visit(
    as_role: Any, world: World
) -> None:
    reference = unique("JV")
    asked = await _request(
        as_role, joint_visit(reference, world.inside.child, kind="ABE_INTERVIEW")
    )
    assert (asked["councilReference"], asked["kind"], asked["urgency"]) == (
        reference,
        "ABE_INTERVIEW",
        "WITHIN_24_HOURS",
    )
    assert (asked["council"]["id"], asked["force"]["id"]) == (COUNCIL, FORCE)
    assert asked["child"]["id"] == world.inside.child
    assert asked["response"] is None
    assert asked["outcome"] is None
    police = as_role(Role.POLICE_OFFICER, FORCE)
    answer = {
        "requestId": asked["id"],
        "response": "OFFICER_ASSIGNED",
        "officerRole": "INSPECTOR",
        "respondedAt": iso(hours_ago(1)),
    }
    answered = await police(RESPOND_JOINT_VISIT, {"input": answer})
    assert "errors" not in answered, answered
    assert answered["data"]["respondToJointVisitRequest"]["officerRole"] == "INSPECTOR"
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    held = {"requestId": asked["id"], "outcome": "HELD_JOINTLY", "at": iso(hours_ago(0.5))}
    recorded = await council(RECORD_JOINT_VISIT, {"input": held})
    assert "errors" not in recorded, recorded
    read = (await council(ONE, {"id": asked["id"]}))["data"]["jointVisitRequest"]
    assert (read["response"], read["officerRole"], read["outcome"]) == (
        "OFFICER_ASSIGNED",
        "INSPECTOR",
        "HELD_JOINTLY",
    )
    # Each step again is a retry: nothing changes, nothing conflicts.
    assert "errors" not in await police(RESPOND_JOINT_VISIT, {"input": answer})
    assert "errors" not in await council(RECORD_JOINT_VISIT, {"input": held})
    # A different answer or outcome afterwards is a CONFLICT, and the first stands.
    other_answer = {**answer, "response": "NOT_AVAILABLE", "officerRole": None}
    other_answer["reason"] = "NO_SPECIALIST_AVAILABLE"
    clash = await police(RESPOND_JOINT_VISIT, {"input": other_answer})
    assert _error(clash)["extensions"]["code"] == "CONFLICT"
    clash = await council(RECORD_JOINT_VISIT, {"input": {**held, "outcome": "CANCELLED"}})
    assert _error(clash)["extensions"]["code"] == "CONFLICT"
    again = (await council(ONE, {"id": asked["id"]}))["data"]["jointVisitRequest"]
    assert again == read


async def test_a_retried_request_is_one_record_and_a_different_one_conflicts(
    as_role: Any, world: World, db: Database
) -> None:
    reference = unique("JV-RETRY")
    payload = joint_visit(reference, world.inside.child, idempotencyKey=unique("KEY"))
    first = await _request(as_role, payload)
    second = await _request(as_role, payload)
    assert first["id"] == second["id"]
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    changed = await council(REQUEST_JOINT_VISIT, {"input": {**payload, "urgency": "IMMEDIATE"}})
    error = _error(changed)
    assert error["extensions"]["code"] == "CONFLICT"
    assert "council reference" in error["message"]
    # The same idempotency key under another reference names the same push.
    keyed = await council(
        REQUEST_JOINT_VISIT, {"input": {**payload, "councilReference": unique("JV-OTHER")}}
    )
    assert _error(keyed)["extensions"]["code"] == "CONFLICT"
    assert await _count(db, reference) == 1
    # References are per council: another council may use the same one.
    theirs = await _request(
        as_role,
        joint_visit(reference, world.outside.child, force=OTHER_FORCE),
        council=OTHER_COUNCIL,
    )
    assert theirs["id"] != first["id"]


async def test_ten_concurrent_identical_requests_store_one(
    as_role: Any, world: World, db: Database
) -> None:
    reference = unique("JV-RACE")
    payload = joint_visit(reference, world.inside.child)
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    bodies = await asyncio.gather(
        *(council(REQUEST_JOINT_VISIT, {"input": payload}) for _ in range(10))
    )
    assert all("errors" not in b for b in bodies), bodies
    assert len({b["data"]["requestJointVisit"]["id"] for b in bodies}) == 1
    assert await _count(db, reference) == 1


BAD_REQUESTS = [
    ({"neededBy": iso(hours_ago(3))}, "input.neededBy"),
    ({"neededBy": iso(hours_ago(-24 * 400))}, "input.neededBy"),
    ({"recordedAt": iso(hours_ago(-2))}, "input.recordedAt"),
    ({"recordedAt": "2026-01-01T09:00:00"}, "input.recordedAt"),
    ({"force": "NO_SUCH_FORCE"}, "input.force"),
    ({"force": OTHER_COUNCIL}, "input.force"),
    ({"councilReference": "   "}, "input.councilReference"),
    ({"childId": "no-such-child"}, "input.childId"),
]


@pytest.mark.parametrize(("change", "field"), BAD_REQUESTS, ids=[f for _, f in BAD_REQUESTS])
async def test_a_bad_request_names_the_field_and_stores_nothing(
    as_role: Any, world: World, db: Database, change: dict[str, Any], field: str
) -> None:
    reference = unique("JV-BAD")
    payload = {**joint_visit(reference, world.inside.child), **change}
    body = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        REQUEST_JOINT_VISIT, {"input": payload}
    )
    error = _error(body)
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}, error
    assert body["data"] == {"requestJointVisit": None}
    for value in change.values():
        if value.strip() and not value[0].isdigit():
            assert value not in error["message"]  # never echoes the input
    assert await _count(db, reference) == 0


async def test_a_council_asks_only_about_children_it_can_see(
    as_role: Any, world: World, db: Database
) -> None:
    reference = unique("JV-THEIRS")
    body = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        REQUEST_JOINT_VISIT, {"input": joint_visit(reference, world.outside.child)}
    )
    assert _error(body)["extensions"] == {"code": "INVALID_INPUT", "field": "input.childId"}
    assert await _count(db, reference) == 0


BAD_ANSWERS = [
    ({"response": "OFFICER_ASSIGNED"}, "input.officerRole"),
    (
        {"response": "OFFICER_ASSIGNED", "officerRole": "SERGEANT", "reason": "OTHER"},
        "input.reason",
    ),
    ({"response": "NOT_AVAILABLE"}, "input.reason"),
    (
        {"response": "NOT_AVAILABLE", "reason": "OTHER", "officerRole": "SERGEANT"},
        "input.officerRole",
    ),
    (
        {"response": "NOT_AVAILABLE", "reason": "OTHER", "respondedAt": iso(hours_ago(-1))},
        "input.respondedAt",
    ),
    (
        {"response": "NOT_AVAILABLE", "reason": "OTHER", "respondedAt": iso(hours_ago(30))},
        "input.respondedAt",
    ),
]


@pytest.mark.parametrize(("answer", "field"), BAD_ANSWERS, ids=[str(i) for i in range(6)])
async def test_a_bad_answer_names_the_field_and_changes_nothing(
    as_role: Any, world: World, answer: dict[str, Any], field: str
) -> None:
    asked = await _request(as_role, joint_visit(unique("JV-ANS"), world.inside.child))
    given = {"requestId": asked["id"], "respondedAt": iso(hours_ago(1)), **answer}
    body = await as_role(Role.POLICE_OFFICER, FORCE)(RESPOND_JOINT_VISIT, {"input": given})
    assert _error(body)["extensions"] == {"code": "INVALID_INPUT", "field": field}
    read = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(ONE, {"id": asked["id"]})
    assert read["data"]["jointVisitRequest"]["response"] is None


async def test_only_the_force_asked_answers_and_only_the_council_that_asked_records(
    as_role: Any, world: World
) -> None:
    asked = await _request(as_role, joint_visit(unique("JV-WHO"), world.inside.child))
    answer = {
        "requestId": asked["id"],
        "response": "NOT_AVAILABLE",
        "reason": "NO_OFFICER_AVAILABLE",
        "respondedAt": iso(hours_ago(1)),
    }
    other_force = as_role(Role.POLICE_OFFICER, OTHER_FORCE)
    refused = await other_force(RESPOND_JOINT_VISIT, {"input": answer})
    missing = await other_force(RESPOND_JOINT_VISIT, {"input": {**answer, "requestId": "nope"}})
    assert _error(refused)["extensions"]["code"] == "NOT_FOUND"
    assert _error(refused)["message"] == _error(missing)["message"]
    assert (await other_force(ONE, {"id": asked["id"]}))["data"] == {"jointVisitRequest": None}
    outcome = {"requestId": asked["id"], "outcome": "CANCELLED", "at": iso(hours_ago(0.5))}
    other_council = as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    refused = await other_council(RECORD_JOINT_VISIT, {"input": outcome})
    assert _error(refused)["extensions"]["code"] == "NOT_FOUND"
    early = {**outcome, "at": iso(hours_ago(5))}
    body = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(RECORD_JOINT_VISIT, {"input": early})
    assert _error(body)["extensions"] == {"code": "INVALID_INPUT", "field": "input.at"}
    # The asked force's answer and the asking council's outcome go through.
    answered = await as_role(Role.POLICE_OFFICER, FORCE)(RESPOND_JOINT_VISIT, {"input": answer})
    assert answered["data"]["respondToJointVisitRequest"]["responseReason"] == (
        "NO_OFFICER_AVAILABLE"
    )
    done = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        RECORD_JOINT_VISIT, {"input": {**outcome, "outcome": "SOCIAL_WORKER_ALONE"}}
    )
    assert done["data"]["recordJointVisit"]["outcome"] == "SOCIAL_WORKER_ALONE"


async def _ids(client: Any, filter_: dict[str, Any]) -> set[str]:
    body = await client(LIST, {"filter": filter_, "first": 50})
    assert "errors" not in body, body
    return {e["node"]["id"] for e in body["data"]["jointVisitRequests"]["edges"]}


async def test_each_role_sees_the_requests_the_agreement_gives_it(
    as_role: Any, world: World
) -> None:
    # About a Birmingham child placed in Leicester: the host council sees it too.
    asked = await _request(as_role, joint_visit(unique("JV-SCOPE"), world.inside.missing_child))
    child = {"childId": world.inside.missing_child}
    assert asked["id"] in await _ids(as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL), child)
    assert asked["id"] in await _ids(as_role(Role.COUNCIL_SOCIAL_WORKER, HOST_COUNCIL), child)
    assert asked["id"] in await _ids(as_role(Role.POLICE_OFFICER, FORCE), child)
    assert not await _ids(as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL), child)
    assert not await _ids(as_role(Role.POLICE_OFFICER, OTHER_FORCE), child)
    for role, org in [
        (Role.SCHOOL_DSL, "TEST-SCHOOL-A"),
        (Role.AUDITOR, "OFSTED"),
        (Role.DPO, COUNCIL),
        (Role.HUB_ADMIN, "HUB"),
    ]:
        body = await as_role(role, org)(LIST, {"filter": child})
        assert body["data"] == {"jointVisitRequests": None}, (role, body)
        assert _error(body)["extensions"]["code"] == "FORBIDDEN_FIELD"
        single = await as_role(role, org)(ONE, {"id": asked["id"]})
        assert single["data"] == {"jointVisitRequest": None}, (role, single)


async def test_filters_and_pages(as_role: Any, world: World) -> None:
    child = world.outside.missing_child  # a Manchester child only these requests are about
    made = []
    for index, kind in enumerate(["VISIT", "ABE_INTERVIEW", "VISIT"]):
        made.append(
            await _request(
                as_role,
                joint_visit(
                    unique("JV-PAGE"),
                    child,
                    force=OTHER_FORCE,
                    kind=kind,
                    recordedAt=iso(hours_ago(3 - index * 0.5)),
                ),
                council=OTHER_COUNCIL,
            )
        )
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    first = await council(LIST, {"filter": {"childId": child}, "first": 2})
    page = first["data"]["jointVisitRequests"]
    assert [e["node"]["id"] for e in page["edges"]] == [made[2]["id"], made[1]["id"]]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await council(
        LIST, {"filter": {"childId": child}, "first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["id"] for e in rest["data"]["jointVisitRequests"]["edges"]] == [made[0]["id"]]
    assert await _ids(council, {"childId": child, "kinds": ["ABE_INTERVIEW"]}) == {made[1]["id"]}
    await as_role(Role.POLICE_OFFICER, OTHER_FORCE)(
        RESPOND_JOINT_VISIT,
        {
            "input": {
                "requestId": made[0]["id"],
                "response": "OFFICER_ASSIGNED",
                "officerRole": "CONSTABLE",
                "respondedAt": iso(hours_ago(1)),
            }
        },
    )
    assert await _ids(council, {"childId": child, "answered": False}) == {
        made[1]["id"],
        made[2]["id"],
    }
    assert await _ids(council, {"childId": child, "responses": ["OFFICER_ASSIGNED"]}) == {
        made[0]["id"]
    }
    # A cursor is this list's and this caller's: another council's is refused.
    stranger = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    assert _error(stranger)["extensions"]["code"] == "INVALID_INPUT"


async def test_every_read_and_push_response_is_audited(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World, as_role: Any
) -> None:
    asked = await _request(as_role, joint_visit(unique("JV-AUDIT"), world.inside.child))
    request_id = str(uuid.uuid4())
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    response = await http.post(
        live_server.graphql_url,
        json={"query": ONE, "variables": {"id": asked["id"]}},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    assert "errors" not in response.json()
    events = await _events(db, request_id)
    visits = [e for e in events if e.record_type == "JointVisitRequest"]
    assert [e.record_id for e in visits] == [asked["id"]]
    (event,) = visits
    assert (event.operation, event.organisation_code, event.record_owner) == (
        "consultation",
        FORCE,
        COUNCIL,
    )
    assert set(json.loads(event.fields)) == {
        "id",
        "councilReference",
        "kind",
        "urgency",
        "response",
        "officerRole",
        "outcome",
        "outcomeAt",
        "child",
    }
    assert json.loads(event.child_ids) == [world.inside.child]


async def test_the_force_asked_is_told_at_once_and_no_other(
    live_server: LiveServer, db: Database, world: World, as_role: Any
) -> None:
    after = await _latest_cursor(db, live_server, Role.POLICE_OFFICER, FORCE)
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    query = """subscription($after: String) { recordChanges(after: $after) {
      change record { id } councilRecord { __typename id councilReference council { id }
        ... on JointVisitRequest { urgency force { id } } } } }"""
    async with connect(
        _ws_url(live_server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        # Asked of another force first: it must not reach this one.
        await _request(
            as_role,
            joint_visit(unique("JV-SUB-X"), world.outside.child, force=OTHER_FORCE),
            council=OTHER_COUNCIL,
        )
        ours = await _request(
            as_role, joint_visit(unique("JV-SUB"), world.inside.child, urgency="IMMEDIATE")
        )
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert message["type"] == "next", message
    event = message["payload"]["data"]["recordChanges"]
    assert event["change"] == "COLLECTED"
    assert event["record"] is None
    assert event["councilRecord"] == {
        "__typename": "JointVisitRequest",
        "id": ours["id"],
        "councilReference": ours["councilReference"],
        "council": {"id": COUNCIL},
        "urgency": "IMMEDIATE",
        "force": {"id": FORCE},
    }


async def test_a_subscription_written_before_councils_pushed_is_sent_what_it_always_was(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World, as_role: Any
) -> None:
    after = await _latest_cursor(db, live_server)
    # Selects `record` only (tests/test_subscriptions.py): a request about the council's child
    # is not sent to it, and the next police record is.
    async with subscribed(live_server, after, request_id=str(uuid.uuid4())) as ws:
        await _request(as_role, joint_visit(unique("JV-OLD"), world.inside.child))
        incident_id = await _push(http, live_server, incident(unique("JV-OLD-INC")))
        delivered = await _next(ws)
    assert delivered["data"]["recordChanges"]["record"]["id"] == incident_id
