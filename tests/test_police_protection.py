"""Police protection (issue 13, item 3) over real HTTP: pushed by the force, validated like every
push, idempotent, scoped to the councils concerned, acknowledged by the council, every read
audited, and the child's council told at once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.children.models import Child
from hub.db import Database
from hub.protection.models import PoliceProtection
from hub.timeliness.models import RecordReceipt
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_MISSING,
    RECORD_PROTECTION,
    REQUEST_JOINT_VISIT,
    THIRD_COUNCIL,
    child,
    hours_ago,
    iso,
    joint_visit,
    missing_episode,
    protection,
)
from tests.scenario import World
from tests.test_audit_trail import _events
from tests.test_subscriptions import _latest_cursor, _next, subscribed

ONE = """query($id: ID!) { policeProtection(id: $id) {
  id policeReference consultedBefore placedIn alternativesConsidered child { id } } }"""
LIST = """query($filter: PoliceProtectionFilterInput, $first: Int, $after: String) {
  policeProtections(filter: $filter, first: $first, after: $after) {
    edges { node { id } } pageInfo { hasNextPage endCursor } } }"""
ACKNOWLEDGE = """mutation($id: ID!) { acknowledge(recordType: "PoliceProtection", id: $id) {
  organisation { id } firstSeenAt acknowledgedAt acknowledgedBy } }"""


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


async def _push(as_role: Any, payload: dict[str, Any], force: str = FORCE) -> dict[str, Any]:
    body = await as_role(Role.POLICE_OFFICER, force)(RECORD_PROTECTION, {"input": payload})
    assert "errors" not in body, body
    pushed: dict[str, Any] = body["data"]["recordPoliceProtection"]
    return pushed


async def _count(db: Database, reference: str) -> int:
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).where(
            PoliceProtection.police_reference == reference  # type: ignore[arg-type]
        )
        return int((await session.execute(query)).scalar_one())


async def test_a_protection_is_recorded_once_and_a_different_one_conflicts(
    as_role: Any, db: Database
) -> None:
    reference = unique("PP")
    payload = protection(
        reference,
        alternativesConsidered=[
            "VOLUNTARY_ACCOMMODATION",
            "FAMILY_OR_FRIENDS",
            "FAMILY_OR_FRIENDS",
        ],
        idempotencyKey=unique("PP-KEY"),
    )
    pushed = await _push(as_role, payload)
    assert pushed["policeReference"] == reference
    assert pushed["force"]["id"] == FORCE
    assert (pushed["placedIn"], pushed["placedCouncil"]["id"]) == ("FOSTER_CARE", COUNCIL)
    assert (pushed["consultedBefore"], pushed["consultedRole"]) == (True, "EMERGENCY_DUTY_TEAM")
    assert pushed["consultedCouncil"]["id"] == COUNCIL
    assert pushed["alternativesConsidered"] == ["FAMILY_OR_FRIENDS", "VOLUNTARY_ACCOMMODATION"]
    assert pushed["child"]["responsibleCouncil"]["id"] == COUNCIL
    assert (await _push(as_role, payload))["id"] == pushed["id"]
    police = as_role(Role.POLICE_OFFICER, FORCE)
    changed = await police(RECORD_PROTECTION, {"input": {**payload, "placedIn": "HOSPITAL"}})
    assert _error(changed)["extensions"]["code"] == "CONFLICT"
    keyed = await police(
        RECORD_PROTECTION, {"input": {**payload, "policeReference": unique("PP-OTHER")}}
    )
    assert _error(keyed)["extensions"]["code"] == "CONFLICT"
    assert await _count(db, reference) == 1


async def test_ten_concurrent_identical_pushes_store_one(as_role: Any, db: Database) -> None:
    reference = unique("PP-RACE")
    payload = protection(reference)
    police = as_role(Role.POLICE_OFFICER, FORCE)
    bodies = await asyncio.gather(
        *(police(RECORD_PROTECTION, {"input": payload}) for _ in range(10))
    )
    assert all("errors" not in b for b in bodies), bodies
    assert len({b["data"]["recordPoliceProtection"]["id"] for b in bodies}) == 1
    assert await _count(db, reference) == 1


# Built when the test runs: times are relative to the pushes' own, made then too.
BAD: list[tuple[Callable[[], dict[str, Any]], str]] = [
    (lambda: {"consultedAt": None}, "input.consultedAt"),
    (lambda: {"consultedCouncil": None}, "input.consultedCouncil"),
    (lambda: {"consultedRole": None}, "input.consultedRole"),
    (lambda: {"consultedAt": iso(hours_ago(2.9))}, "input.consultedAt"),
    (lambda: {"consultedBefore": False}, "input.consultedAt"),
    (lambda: {"takenAt": iso(hours_ago(-1))}, "input.takenAt"),
    (lambda: {"takenAt": "2026-01-01T09:00:00"}, "input.takenAt"),
    (lambda: {"recordedAt": iso(hours_ago(4))}, "input.recordedAt"),
    (lambda: {"placedCouncil": "E99999999"}, "input.placedCouncil"),
    (lambda: {"consultedCouncil": FORCE}, "input.consultedCouncil"),
    (lambda: {"alternativesConsidered": []}, "input.alternativesConsidered"),
    (
        lambda: {"alternativesConsidered": ["NONE", "FAMILY_OR_FRIENDS"]},
        "input.alternativesConsidered",
    ),
    (lambda: {"policeReference": " "}, "input.policeReference"),
    (lambda: {"child": child("PP-DOB", dateOfBirth="2099-01-01")}, "input.child.dateOfBirth"),
    (
        lambda: {"child": child("PP-COUNCIL", council="NOT_A_COUNCIL")},
        "input.child.responsibleCouncil",
    ),
]


@pytest.mark.parametrize(("build", "field"), BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)])
async def test_a_bad_push_names_the_field_and_stores_nothing(
    as_role: Any, db: Database, build: Callable[[], dict[str, Any]], field: str
) -> None:
    reference = unique("PP-BAD")
    body = await as_role(Role.POLICE_OFFICER, FORCE)(
        RECORD_PROTECTION, {"input": {**protection(reference), **build()}}
    )
    error = _error(body)
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}, error
    assert body["data"] == {"recordPoliceProtection": None}
    assert "E99999999" not in error["message"]
    assert "NOT_A_COUNCIL" not in error["message"]
    assert await _count(db, reference) == 0


async def test_without_prior_discussion_nothing_about_a_consultation_is_needed(
    as_role: Any,
) -> None:
    pushed = await _push(
        as_role,
        protection(
            unique("PP-NONE"),
            consultedBefore=False,
            consultedAt=None,
            consultedCouncil=None,
            consultedRole=None,
            alternativesConsidered=["NONE"],
            placedIn="POLICE_STATION",
            placedCouncil=None,
        ),
    )
    assert (pushed["consultedBefore"], pushed["consultedAt"], pushed["consultedCouncil"]) == (
        False,
        None,
        None,
    )
    assert pushed["alternativesConsidered"] == ["NONE"]


async def test_a_push_never_reads_nor_changes_another_forces_child(
    as_role: Any, db: Database
) -> None:
    nhs = f"9{uuid.uuid4().int % 10**9:09d}"
    theirs = await as_role(Role.POLICE_OFFICER, OTHER_FORCE)(
        RECORD_MISSING,
        {
            "input": missing_episode(
                unique("PP-THEIRS"),
                child_input=child(unique("PP-TC"), council=OTHER_COUNCIL, nhsNumber=nhs),
                lastSeenCouncil=OTHER_COUNCIL,
            )
        },
    )
    their_child = theirs["data"]["recordMissingEpisode"]["child"]["id"]
    ours = await _push(
        as_role,
        protection(
            unique("PP-OURS"),
            child_input=child(unique("PP-OC"), nhsNumber=nhs, givenName="Robin"),
        ),
    )
    assert ours["child"]["id"] != their_child
    async with db.transaction(write=False) as session:
        kept = await session.get(Child, their_child)
    assert kept is not None
    assert (kept.given_name, kept.responsible_council_code) == ("Alex", OTHER_COUNCIL)


async def _ids(client: Any, filter_: dict[str, Any]) -> set[str]:
    body = await client(LIST, {"filter": filter_, "first": 50})
    assert "errors" not in body, body
    return {e["node"]["id"] for e in body["data"]["policeProtections"]["edges"]}


async def test_each_role_sees_the_protections_the_agreement_gives_it(as_role: Any) -> None:
    # A Birmingham child placed in Leicester after a call to Cornwall's duty team.
    pushed = await _push(
        as_role,
        protection(unique("PP-SCOPE"), placedCouncil=HOST_COUNCIL, consultedCouncil=THIRD_COUNCIL),
    )
    child_filter = {"childId": pushed["child"]["id"]}
    for council in (COUNCIL, HOST_COUNCIL, THIRD_COUNCIL):
        seen = await _ids(as_role(Role.COUNCIL_SOCIAL_WORKER, council), child_filter)
        assert seen == {pushed["id"]}, council
    assert await _ids(as_role(Role.POLICE_OFFICER, FORCE), child_filter) == {pushed["id"]}
    assert not await _ids(as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL), child_filter)
    assert not await _ids(as_role(Role.POLICE_OFFICER, OTHER_FORCE), child_filter)
    for role, org in [
        (Role.SCHOOL_DSL, "TEST-SCHOOL-A"),
        (Role.AUDITOR, "OFSTED"),
        (Role.DPO, COUNCIL),
        (Role.HUB_ADMIN, "HUB"),
    ]:
        body = await as_role(role, org)(LIST, {"filter": child_filter})
        assert body["data"] == {"policeProtections": None}, (role, body)
        assert _error(body)["extensions"]["code"] == "FORBIDDEN_FIELD"
    hidden = await as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)(ONE, {"id": pushed["id"]})
    assert hidden == {"data": {"policeProtection": None}}


async def test_filters_and_pages(as_role: Any) -> None:
    kid = child(unique("PP-PAGE"))
    made = [
        await _push(
            as_role,
            protection(
                unique("PP-PAGE"),
                child_input=kid,
                takenAt=iso(hours_ago(10 - index)),
                recordedAt=iso(hours_ago(9.5 - index)),
                consultedAt=iso(hours_ago(10.5 - index)),
                placedIn=placed,
            ),
        )
        for index, placed in enumerate(["FOSTER_CARE", "HOSPITAL", "FOSTER_CARE"])
    ]
    child_id = made[0]["child"]["id"]
    assert {m["child"]["id"] for m in made} == {child_id}
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    first = (await council(LIST, {"filter": {"childId": child_id}, "first": 2}))["data"]
    page = first["policeProtections"]
    assert [e["node"]["id"] for e in page["edges"]] == [made[2]["id"], made[1]["id"]]
    rest = await council(
        LIST, {"filter": {"childId": child_id}, "after": page["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["id"] for e in rest["data"]["policeProtections"]["edges"]] == [made[0]["id"]]
    assert await _ids(council, {"childId": child_id, "placedIn": ["HOSPITAL"]}) == {made[1]["id"]}
    assert await _ids(council, {"childId": child_id, "takenFrom": iso(hours_ago(9.5))}) == {
        made[1]["id"],
        made[2]["id"],
    }
    assert not await _ids(council, {"childId": child_id, "consultedBefore": False})


async def test_the_council_acknowledges_and_first_sight_comes_from_the_audit(
    as_role: Any, db: Database
) -> None:
    pushed = await _push(as_role, protection(unique("PP-ACK")))
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    read = await council(ONE, {"id": pushed["id"]})
    assert read["data"]["policeProtection"]["id"] == pushed["id"]
    async with db.transaction(write=False) as session:
        receipt = await session.get(RecordReceipt, ("PoliceProtection", pushed["id"], COUNCIL))
    assert receipt is not None
    assert receipt.acknowledged_at is None
    first = await council(ACKNOWLEDGE, {"id": pushed["id"]})
    assert "errors" not in first, first
    ack = first["data"]["acknowledge"]
    assert (ack["organisation"]["id"], ack["acknowledgedBy"]) == (COUNCIL, "test-user")
    assert ack["firstSeenAt"] is not None
    again = await council(ACKNOWLEDGE, {"id": pushed["id"]})
    assert again["data"]["acknowledge"]["acknowledgedAt"] == ack["acknowledgedAt"]
    other = await as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)(
        ACKNOWLEDGE, {"id": pushed["id"]}
    )
    assert _error(other)["extensions"]["code"] == "NOT_FOUND"


async def test_every_read_is_audited(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, as_role: Any
) -> None:
    pushed = await _push(as_role, protection(unique("PP-AUDIT")))
    request_id = str(uuid.uuid4())
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    response = await http.post(
        live_server.graphql_url,
        json={"query": LIST, "variables": {"filter": {"childId": pushed["child"]["id"]}}},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    assert "errors" not in response.json()
    events = await _events(db, request_id)
    assert [(e.record_type, e.record_id) for e in events] == [("PoliceProtection", pushed["id"])]
    (event,) = events
    assert (event.operation, event.organisation_code, event.record_owner) == (
        "consultation",
        COUNCIL,
        FORCE,
    )
    assert json.loads(event.fields) == ["id"]
    assert json.loads(event.child_ids) == [pushed["child"]["id"]]


async def test_the_childs_council_is_told_at_once(
    live_server: LiveServer, db: Database, as_role: Any
) -> None:
    after = await _latest_cursor(db, live_server)
    async with subscribed(live_server, after, request_id=str(uuid.uuid4())) as ws:
        # Another council's child first: it must not reach this council.
        await _push(
            as_role,
            protection(
                unique("PP-SUB-X"),
                child_input=child(unique("PP-X"), council=OTHER_COUNCIL),
                placedCouncil=OTHER_COUNCIL,
                consultedCouncil=OTHER_COUNCIL,
            ),
            force=OTHER_FORCE,
        )
        ours = await _push(as_role, protection(unique("PP-SUB")))
        delivered = await _next(ws)
    record = delivered["data"]["recordChanges"]["record"]
    assert (record["__typename"], record["id"], record["policeReference"]) == (
        "PoliceProtection",
        ours["id"],
        ours["policeReference"],
    )


PAGES = """query($first: Int!) {
  policeProtections(first: $first) { edges { node {
    id force { name } placedCouncil { name } consultedCouncil { name }
    child { givenName responsibleCouncil { name } } } } }
  jointVisitRequests(first: $first) { edges { node {
    id council { name } force { name } child { givenName hostCouncil { name } } } } }
}"""


async def _statements(http: httpx.AsyncClient, server: LiveServer, first: int) -> list[str]:
    """What one council's read of both lists ran, transaction control and the audit left out."""
    token = server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    server.statements.clear()
    body = (
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": PAGES, "variables": {"first": first}},
        )
    ).json()
    assert "errors" not in body, body
    assert len(body["data"]["policeProtections"]["edges"]) == first
    assert len(body["data"]["jointVisitRequests"]["edges"]) == first
    return [
        s
        for s in server.statements
        if not s.startswith(("BEGIN", "COMMIT", "WITH progress AS MATERIALIZED"))
        and "audit_" not in s
        and "record_receipt" not in s
        and "FROM oauth_client" not in s  # the revoked clients, reread when their time is up
    ]


async def test_a_page_costs_the_same_statements_whatever_its_size(
    http: httpx.AsyncClient, live_server: LiveServer, as_role: Any, world: World
) -> None:
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    for _ in range(12):
        await _push(as_role, protection(unique("PP-N")))
        asked = await council(
            REQUEST_JOINT_VISIT, {"input": joint_visit(unique("JV-N"), world.inside.child)}
        )
        assert "errors" not in asked, asked
    small = await _statements(http, live_server, 2)
    large = await _statements(http, live_server, 12)
    assert len(small) == len(large), (small, large)
    # Two roots, then one statement per loader level (organisations, children) below them.
    assert len(large) <= 6, large
