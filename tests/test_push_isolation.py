"""A push never discloses nor alters a child another organisation holds (issue 12, item 1).

Greater Manchester records a looked-after Manchester child placed in Cornwall; West Midlands
then pushes an incident naming a different, invented child that carries the same NHS number.
The match may be linked (a logged combination), but West Midlands gets a child of its own: it
never reads Greater Manchester's child, and its push changes nothing Greater Manchester recorded.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.audit.models import AuditEvent
from hub.audit.service import Access, accesses_of
from hub.children.models import Child, ChildLink
from hub.db import Database
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_MISSING,
    THIRD_COUNCIL,
    child,
    incident,
    missing_episode,
)
from tests.scenario import OTHER_SCHOOL, SCHOOL, ensure_schools

CHILD_FIELDS = """id givenName familyName dateOfBirth nhsNumber lookedAfter
  responsibleCouncil { id } hostCouncil { id } school { id }
  references { organisationCode kind value }"""
PUSH = f"""
mutation Report($input: ReportIncidentInput!) {{
  reportIncident(input: $input) {{ id children {{ child {{ {CHILD_FIELDS} }} }} }}
}}"""
PUSH_QUIETLY = """
mutation Report($input: ReportIncidentInput!) { reportIncident(input: $input) { id } }"""
# What Greater Manchester recorded: every value here differs from what West Midlands pushes.
THEIRS = {
    "givenName": "Morgan",
    "familyName": "Heldelsewhere",
    "dateOfBirth": "2011-07-19",
    "hostCouncil": THIRD_COUNCIL,
    "lookedAfter": True,
    "school": OTHER_SCHOOL,
}
OURS = {"hostCouncil": HOST_COUNCIL, "lookedAfter": False, "school": SCHOOL}
CARDIFF = "W06000015"  # where West Midlands later says its child is placed


@dataclasses.dataclass(frozen=True)
class Pushed:
    nhs: str
    their_child: str
    their_reference: str
    their_episode: str
    our_reference: str
    request_id: str
    body: dict[str, Any]

    @property
    def our_child(self) -> dict[str, Any]:
        child: dict[str, Any] = self.body["data"]["reportIncident"]["children"][0]["child"]
        return child


async def _post(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: dict[str, Any],
    request_id: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token(role, org)}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = await http.post(
        server.graphql_url, headers=headers, json={"query": query, "variables": variables}
    )
    body: dict[str, Any] = response.json()
    return body


async def _push_as_west_midlands(
    http: httpx.AsyncClient, server: LiveServer, query: str, kid: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    request_id = str(uuid.uuid4())
    payload = incident(unique("WM-INC"), children=[{"child": kid, "present": True}])
    body = await _post(
        http, server, Role.POLICE_OFFICER, FORCE, query, {"input": payload}, request_id
    )
    assert "errors" not in body, body
    return body, request_id


@pytest.fixture
async def pushed(http: httpx.AsyncClient, live_server: LiveServer, db: Database) -> Pushed:
    await ensure_schools(db)
    nhs = f"8{uuid.uuid4().int % 10**9:09d}"  # synthetic: no check digit is claimed
    their_reference = unique("GMP-P")
    theirs = child(their_reference, council=OTHER_COUNCIL, nhsNumber=nhs, **THEIRS)
    episode = await _post(
        http,
        live_server,
        Role.POLICE_OFFICER,
        OTHER_FORCE,
        RECORD_MISSING,
        {
            "input": missing_episode(
                unique("GMP-MISS"),
                child_input=theirs,
                missingFrom="CARE",
                lastSeenCouncil=OTHER_COUNCIL,
            )
        },
    )
    assert "errors" not in episode, episode
    our_reference = unique("WM-P")
    ours = child(our_reference, council=COUNCIL, nhsNumber=nhs, **OURS)
    body, request_id = await _push_as_west_midlands(http, live_server, PUSH, ours)
    recorded = episode["data"]["recordMissingEpisode"]
    return Pushed(
        nhs=nhs,
        their_child=recorded["child"]["id"],
        their_reference=their_reference,
        their_episode=recorded["id"],
        our_reference=our_reference,
        request_id=request_id,
        body=body,
    )


def _theirs_in(text: str, pushed: Pushed) -> list[str]:
    """Whatever of Greater Manchester's child appears in a response's text."""
    values = [
        pushed.their_child,
        pushed.their_reference,
        THEIRS["givenName"],
        THEIRS["familyName"],
        THEIRS["dateOfBirth"],
        THIRD_COUNCIL,
        OTHER_SCHOOL,
        OTHER_COUNCIL,
        OTHER_FORCE,
    ]
    return [str(value) for value in values if str(value) in text]


async def test_the_pusher_never_receives_the_other_forces_child(
    http: httpx.AsyncClient, live_server: LiveServer, pushed: Pushed
) -> None:
    ours = pushed.our_child
    assert _theirs_in(json.dumps(pushed.body), pushed) == []
    assert ours["id"] != pushed.their_child
    assert (ours["givenName"], ours["familyName"], ours["dateOfBirth"]) == (
        "Alex",
        "Example",
        "2015-03-04",
    )
    assert ours["lookedAfter"] is False
    assert ours["references"] == [
        {"organisationCode": FORCE, "kind": "POLICE_PERSON", "value": pushed.our_reference}
    ]

    async def ask(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = await _post(http, live_server, Role.POLICE_OFFICER, FORCE, query, variables)
        assert "errors" not in body, body
        assert _theirs_in(json.dumps(body), pushed) == []
        return body

    child_query = f"query($id: ID!) {{ child(id: $id) {{ {CHILD_FIELDS} }} }}"
    assert (await ask(child_query, {"id": pushed.their_child}))["data"]["child"] is None
    entities = await ask(
        f"query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on Child {{ "
        f"{CHILD_FIELDS} }} }} }}",
        {"r": [{"__typename": "Child", "id": pushed.their_child}]},
    )
    assert entities["data"]["_entities"] == [None]
    listed = await ask(
        "query($child: ID!) { incidents(filter: {childId: $child}) { edges { node { id "
        f"children {{ child {{ {CHILD_FIELDS} }} }} }} }} }} }}",
        {"child": ours["id"]},
    )
    [edge] = listed["data"]["incidents"]["edges"]
    assert [c["child"]["id"] for c in edge["node"]["children"]] == [ours["id"]]


async def _their_child(db: Database, child_id: str) -> Child:
    async with db.transaction(write=False) as session:
        row = await session.get(Child, child_id)
        assert row is not None
        return row


async def test_the_push_changes_nothing_the_other_force_recorded(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, pushed: Pushed
) -> None:
    row = await _their_child(db, pushed.their_child)
    assert (
        row.given_name,
        row.family_name,
        row.date_of_birth.isoformat(),
        row.responsible_council_code,
        row.host_council_code,
        row.school_code,
        row.looked_after,
    ) == (
        THEIRS["givenName"],
        THEIRS["familyName"],
        THEIRS["dateOfBirth"],
        OTHER_COUNCIL,
        THIRD_COUNCIL,
        OTHER_SCHOOL,
        True,
    )

    async def episode_for(council: str) -> Any:
        body = await _post(
            http,
            live_server,
            Role.COUNCIL_SOCIAL_WORKER,
            council,
            "query($id: ID!) { missingEpisode(id: $id) { id child { id } } }",
            {"id": pushed.their_episode},
        )
        assert "errors" not in body, body
        return body["data"]["missingEpisode"]

    assert await episode_for(OTHER_COUNCIL) == {
        "id": pushed.their_episode,
        "child": {"id": pushed.their_child},
    }
    assert await episode_for(COUNCIL) is None
    school = await _post(
        http,
        live_server,
        Role.SCHOOL_DSL,
        SCHOOL,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Child { id } } }",
        {"r": [{"__typename": "Child", "id": pushed.their_child}]},
    )
    assert "errors" not in school, school
    assert school["data"]["_entities"] == [None]


async def _accesses(db: Database, request_id: str) -> list[Access]:
    async with db.transaction(write=False) as session:
        events = (
            await session.execute(
                sa.select(AuditEvent)
                .where(AuditEvent.request_id == request_id)
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        return [access for event in events for access in accesses_of(event)]


async def test_the_match_is_linked_and_logged_as_a_combination(
    db: Database, pushed: Pushed
) -> None:
    combined = [
        a for a in await _accesses(db, pushed.request_id) if a.event.operation == "combination"
    ]
    assert [(a.record_type, a.record_id, a.record_owner) for a in combined] == [
        ("Child", pushed.their_child, OTHER_COUNCIL)
    ]
    assert json.loads(combined[0].event.detail or "{}") == {"matched_by": ["nhs_number"]}
    async with db.transaction(write=False) as session:
        links = (
            await session.execute(
                sa.select(ChildLink).where(ChildLink.matched_child_id == pushed.their_child)
            )
        ).scalars()
        assert [(link.child_id, link.matched_by, link.organisation_code) for link in links] == [
            (pushed.our_child["id"], "nhs_number", FORCE)
        ]


async def test_the_holding_force_extends_and_alters_its_own_child(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, pushed: Pushed
) -> None:
    our_id = pushed.our_child["id"]
    second_reference = unique("WM-P2")
    moved = child(second_reference, council=COUNCIL, nhsNumber=pushed.nhs, hostCouncil=CARDIFF)
    # The response does not carry the child: the alteration is logged all the same.
    _, request_id = await _push_as_west_midlands(http, live_server, PUSH_QUIETLY, moved)
    ours = await _their_child(db, our_id)
    assert ours.host_council_code == CARDIFF
    theirs = await _their_child(db, pushed.their_child)
    assert (theirs.host_council_code, theirs.school_code) == (THIRD_COUNCIL, OTHER_SCHOOL)
    body = await _post(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        "query($id: ID!) { child(id: $id) { id references { value } } }",
        {"id": our_id},
    )
    assert sorted(r["value"] for r in body["data"]["child"]["references"]) == sorted(
        [pushed.our_reference, second_reference]
    )
    accesses = await _accesses(db, request_id)
    altered = [a for a in accesses if a.event.operation == "alteration"]
    assert [(a.record_type, a.record_id, a.fields) for a in altered] == [
        ("Child", our_id, ("hostCouncil",))
    ]
    assert {a.event.user for a in altered} == {"test-user"}
    assert {a.event.organisation_code for a in altered} == {FORCE}
    assert not [a for a in accesses if a.event.operation == "combination"], "its own child"
