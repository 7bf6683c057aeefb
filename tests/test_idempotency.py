"""Retries never duplicate: the same push returns the same record; a different one conflicts."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa

from hub.access.models import Role
from hub.children.models import Child, ChildReference
from hub.db import Database
from hub.incidents.models import Incident
from hub.investigations.models import InvestigationTransition
from tests.conftest import LiveServer, unique
from tests.factories import (
    FORCE,
    OTHER_FORCE,
    RECORD_MISSING,
    REPORT_INCIDENT,
    UPDATE_INVESTIGATION,
    incident,
    missing_episode,
    status_change,
)


async def _push(
    http: httpx.AsyncClient, server: LiveServer, query: str, payload: dict, force: str = FORCE
) -> dict:
    response = await http.post(
        server.graphql_url,
        json={"query": query, "variables": {"input": payload}},
        headers={"Authorization": f"Bearer {server.token(Role.POLICE_OFFICER, force)}"},
    )
    body: dict = response.json()
    return body


async def _count(db: Database, model: type, *where: sa.ColumnElement[bool]) -> int:
    async with db.transaction(write=False) as session:
        return int(
            await session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0
        )


async def test_same_incident_twice_is_one_record(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    payload = incident(unique("IDEM"))
    first = await _push(http, live_server, REPORT_INCIDENT, payload)
    again = await _push(http, live_server, REPORT_INCIDENT, payload)
    assert first["data"]["reportIncident"]["id"] == again["data"]["reportIncident"]["id"]
    assert await _count(db, Incident, Incident.police_reference == payload["policeReference"]) == 1


async def test_same_reference_different_content_conflicts(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    payload = incident(unique("CONF"))
    await _push(http, live_server, REPORT_INCIDENT, payload)
    clash = await _push(http, live_server, REPORT_INCIDENT, {**payload, "dashRisk": "HIGH"})
    assert clash["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert await _count(db, Incident, Incident.police_reference == payload["policeReference"]) == 1


async def test_idempotency_key_identifies_the_push(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    key = unique("KEY")
    payload = incident(unique("K1"), idempotencyKey=key)
    first = await _push(http, live_server, REPORT_INCIDENT, payload)
    replay = await _push(http, live_server, REPORT_INCIDENT, payload)
    assert first["data"]["reportIncident"]["id"] == replay["data"]["reportIncident"]["id"]
    other = await _push(
        http, live_server, REPORT_INCIDENT, incident(unique("K2"), idempotencyKey=key)
    )
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_references_are_per_force(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    reference = unique("SHARED")
    ours = await _push(http, live_server, REPORT_INCIDENT, incident(reference))
    theirs = await _push(http, live_server, REPORT_INCIDENT, incident(reference), OTHER_FORCE)
    assert ours["data"]["reportIncident"]["force"]["id"] == FORCE
    assert theirs["data"]["reportIncident"]["force"]["id"] == OTHER_FORCE
    assert ours["data"]["reportIncident"]["id"] != theirs["data"]["reportIncident"]["id"]


async def test_the_same_child_is_found_again(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    person = unique("PERSON")
    first = await _push(
        http,
        live_server,
        REPORT_INCIDENT,
        incident(unique("A"), children=[{"child": {**_child(person)}, "present": True}]),
    )
    second = await _push(
        http, live_server, RECORD_MISSING, missing_episode(unique("M"), child_input=_child(person))
    )
    child_id = first["data"]["reportIncident"]["children"][0]["child"]["id"]
    assert second["data"]["recordMissingEpisode"]["child"]["id"] == child_id
    assert await _count(db, ChildReference, ChildReference.value == person) == 1


def _child(reference: str) -> dict:
    return {
        "policeReference": reference,
        "givenName": "Sam",
        "familyName": "Sample",
        "dateOfBirth": "2016-07-08",
        "responsibleCouncil": "E08000025",
    }


async def test_ten_concurrent_identical_pushes_create_one_record(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    person = unique("RACE-P")
    payload = incident(unique("RACE"), children=[{"child": _child(person), "victim": True}])
    results = await asyncio.gather(
        *(_push(http, live_server, REPORT_INCIDENT, payload) for _ in range(10))
    )
    ids = {r["data"]["reportIncident"]["id"] for r in results if r.get("data")}
    assert [r.get("errors") for r in results] == [None] * 10
    assert len(ids) == 1
    assert await _count(db, Incident, Incident.police_reference == payload["policeReference"]) == 1
    assert await _count(db, ChildReference, ChildReference.value == person) == 1
    async with db.transaction(write=False) as session:
        children = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Child)
            .join(ChildReference, ChildReference.child_id == Child.id)
            .where(ChildReference.value == person)
        )
    assert children == 1


async def test_concurrent_status_changes_record_one_transition(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("INVRACE")
    payload = status_change(reference, "OPEN", hours=2)
    results = await asyncio.gather(
        *(_push(http, live_server, UPDATE_INVESTIGATION, payload) for _ in range(10))
    )
    assert [r.get("errors") for r in results] == [None] * 10
    assert len({r["data"]["updateInvestigationStatus"]["id"] for r in results}) == 1
    investigation_id = results[0]["data"]["updateInvestigationStatus"]["id"]
    transitions = await _count(
        db, InvestigationTransition, InvestigationTransition.investigation_id == investigation_id
    )
    assert transitions == 1


async def test_status_replay_adds_no_history_and_a_clash_conflicts(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    reference = unique("INV")
    await _push(http, live_server, UPDATE_INVESTIGATION, status_change(reference, "OPEN", hours=3))
    change = status_change(reference, "CHARGED", hours=2, reason="Charged with an offence")
    await _push(http, live_server, UPDATE_INVESTIGATION, change)
    replay = await _push(http, live_server, UPDATE_INVESTIGATION, change)
    assert len(replay["data"]["updateInvestigationStatus"]["history"]) == 2
    clash = await _push(http, live_server, UPDATE_INVESTIGATION, {**change, "reason": "Other"})
    assert clash["errors"][0]["extensions"]["code"] == "CONFLICT"
    stale = await _push(
        http, live_server, UPDATE_INVESTIGATION, status_change(reference, "CLOSED", hours=5)
    )
    assert stale["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "input.changedAt"}
