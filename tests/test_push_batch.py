"""`reportIncidents`: a force loading its history in batches, each record checked and idempotent,
all or none, and audited as one collection listing every record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub import pushes
from hub.access.models import Role
from hub.audit.models import AuditEvent
from hub.children.models import ChildLink, ChildReference
from hub.children.service import ChildDetails
from hub.db import Database
from hub.incidents.models import DashRisk, Incident, IncidentChild, IncidentType
from hub.incidents.service import IncidentReport, InvolvedChild
from tests.conftest import LiveServer, is_postgres, unique
from tests.factories import FORCE, OTHER_FORCE, REPORT_INCIDENT, child, incident

REPORT_MANY = """mutation($input: [ReportIncidentInput!]!) {
  reportIncidents(input: $input) { id policeReference children { present child { id } } } }"""


async def _push(
    http: httpx.AsyncClient,
    server: LiveServer,
    payload: Any,
    *,
    query: str = REPORT_MANY,
    request_id: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token(Role.POLICE_OFFICER, FORCE)}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = await http.post(
        server.graphql_url, json={"query": query, "variables": {"input": payload}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


async def _stored(db: Database, references: list[str]) -> int:
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).where(col_in(references))
        return int((await session.execute(query)).scalar_one())


def col_in(references: list[str]) -> sa.ColumnElement[bool]:
    return Incident.police_reference.in_(references)  # type: ignore[attr-defined]


async def test_a_batch_is_stored_and_a_retry_stores_nothing_new(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    references = [unique("BATCH") for _ in range(5)]
    batch = [incident(r) for r in references]
    first = await _push(http, live_server, batch)
    assert "errors" not in first, first
    stored = first["data"]["reportIncidents"]
    assert [r["policeReference"] for r in stored] == references
    again = await _push(http, live_server, batch)
    assert [r["id"] for r in again["data"]["reportIncidents"]] == [r["id"] for r in stored]
    assert await _stored(db, references) == len(references)


async def test_a_batch_finds_records_pushed_one_by_one_and_their_children(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """A record pushed alone before is returned, not stored again; a child the force holds is
    found by its person reference, and a child twice in one batch is one child."""
    alone, later = unique("BATCH-ALONE"), unique("BATCH-LATER")
    pushed = incident(alone)
    single = await _push(http, live_server, pushed, query=REPORT_INCIDENT)
    known = pushed["children"][0]["child"]
    shared = child(unique("BATCH-KID"))
    batch = [
        pushed,
        incident(later, children=[{"child": known}, {"child": shared, "present": True}]),
        incident(unique("BATCH-TWIN"), children=[{"child": shared}]),
    ]
    body = await _push(http, live_server, batch)
    assert "errors" not in body, body
    first, second, third = body["data"]["reportIncidents"]
    assert first["id"] == single["data"]["reportIncident"]["id"]
    single_child = single["data"]["reportIncident"]["children"][0]["child"]["id"]
    second_children = {c["child"]["id"] for c in second["children"]}
    (third_child,) = {c["child"]["id"] for c in third["children"]}
    assert second_children == {single_child, third_child}
    async with db.transaction(write=False) as session:
        held = await session.scalar(
            sa.select(sa.func.count())
            .select_from(ChildReference)
            .where(ChildReference.value == shared["policeReference"])  # type: ignore[arg-type]
        )
        links = await session.scalar(
            sa.select(sa.func.count())
            .select_from(IncidentChild)
            .where(IncidentChild.incident_id == second["id"])  # type: ignore[arg-type]
        )
    assert (held, links) == (1, 2)


async def test_a_bad_record_is_named_and_nothing_is_stored(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    references = [unique("BATCH-BAD") for _ in range(3)]
    batch = [incident(r) for r in references]
    batch[2]["occurredAt"] = "2999-01-01T00:00:00Z"
    body = await _push(http, live_server, batch)
    assert body["data"] == {"reportIncidents": None}
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "input.2.occurredAt"
    unknown = [incident(r) for r in references]
    unknown[1]["children"][0]["child"]["responsibleCouncil"] = "E99999999"
    body = await _push(http, live_server, unknown)
    field = "input.1.children.0.child.responsibleCouncil"
    assert body["errors"][0]["extensions"]["field"] == field
    assert await _stored(db, references) == 0


async def test_a_conflict_is_named_and_nothing_is_stored(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    earlier, fresh = unique("BATCH-EARLY"), unique("BATCH-FRESH")
    first = incident(earlier)
    await _push(http, live_server, [first])
    changed = {**first, "summary": "Different synthetic content."}
    body = await _push(http, live_server, [incident(fresh), changed])
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "field": "input.1"}
    same = incident(fresh)
    twice = [same, {**same, "summary": "Different synthetic content."}]
    body = await _push(http, live_server, twice)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "field": "input.1"}
    assert await _stored(db, [fresh]) == 0


async def test_the_batch_size_is_bounded(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    limit = live_server.settings.max_push_batch
    references = [unique("BATCH-MANY") for _ in range(limit + 1)]
    body = await _push(http, live_server, [incident(r) for r in references])
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "input"}
    assert await _stored(db, references) == 0
    body = await _push(http, live_server, [])
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "input"}


async def test_a_batch_is_audited_as_one_collection_listing_every_record(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    request_id = str(uuid.uuid4())
    batch = [incident(unique("BATCH-AUDIT")) for _ in range(4)]
    body = await _push(http, live_server, batch, request_id=request_id)
    ids = {r["id"] for r in body["data"]["reportIncidents"]}
    async with db.transaction(write=False) as session:
        events = (
            (
                await session.execute(
                    sa.select(AuditEvent).where(AuditEvent.request_id == request_id)
                )
            )  # type: ignore[arg-type]
            .scalars()
            .all()
        )
    collections = [e for e in events if e.operation == "collection"]
    assert len(collections) == 1
    listed = json.loads(collections[0].records or "[]")
    assert {r["id"] for r in listed if r["type"] == "Incident"} == ids


def test_fingerprints_are_those_of_pushes_stored_before() -> None:
    """The fingerprint of a push is kept with it: one computed differently would make every
    retry of an earlier push a CONFLICT."""
    at = dt.datetime(2026, 1, 31, 9, 0, tzinfo=dt.UTC)
    kid = ChildDetails("P-1", "Alex", "Example", dt.date(2015, 3, 4), nhs_number="9434765919")
    report = IncidentReport(
        police_reference="R-1",
        type=IncidentType.DOMESTIC_ABUSE,
        occurred_at=at,
        recorded_at=at,
        location_council="E08000025",
        children=(InvolvedChild(kid, present=True), InvolvedChild(dataclasses.replace(kid))),
        dash_risk=DashRisk.HIGH,
        summary='Synthétique ☃ "quoted" \\ \n',  # escaped as `json.dumps` escapes them
        idempotency_key="K-1",
    )
    before = dataclasses.asdict(report)  # how fingerprints were computed until now
    before.pop("idempotency_key")
    canonical = json.dumps(before, sort_keys=True, default=str, separators=(",", ":"))
    assert pushes.fingerprint(report) == hashlib.sha256(canonical.encode()).hexdigest()
    assert "\\u00e9" in canonical  # the text hashed is ASCII, as it always was
    again = dataclasses.replace(report, summary="Other.")  # the same classes, their fields kept
    changed = {**before, "summary": "Other."}
    text = json.dumps(changed, sort_keys=True, default=str, separators=(",", ":"))
    assert pushes.fingerprint(again) == hashlib.sha256(text.encode()).hexdigest()


async def test_a_child_with_an_nhs_number_is_matched_as_in_a_single_push(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """Another force's child with the same NHS number is linked, never returned: the batch's
    child is the pushing force's own, and the combination is audited."""
    nhs = f"9{uuid.uuid4().int % 10**9:09d}"
    theirs = incident(
        unique("BATCH-THEIRS"), children=[{"child": child(unique("BATCH-T"), nhsNumber=nhs)}]
    )
    token = live_server.token(Role.POLICE_OFFICER, OTHER_FORCE)
    other = await http.post(
        live_server.graphql_url,
        json={"query": REPORT_INCIDENT, "variables": {"input": theirs}},
        headers={"Authorization": f"Bearer {token}"},
    )
    their_child = other.json()["data"]["reportIncident"]["children"][0]["child"]["id"]
    request_id = str(uuid.uuid4())
    ours = [
        incident(unique("BATCH-PLAIN")),
        incident(
            unique("BATCH-NHS"), children=[{"child": child(unique("BATCH-O"), nhsNumber=nhs)}]
        ),
    ]
    body = await _push(http, live_server, ours, request_id=request_id)
    assert "errors" not in body, body
    our_child = body["data"]["reportIncidents"][1]["children"][0]["child"]["id"]
    assert our_child != their_child
    async with db.transaction(write=False) as session:
        linked = await session.scalar(
            sa.select(ChildLink.matched_child_id).where(ChildLink.child_id == our_child)  # type: ignore[arg-type]
        )
        operations = (
            await session.execute(
                sa.select(AuditEvent.operation).where(AuditEvent.request_id == request_id)  # type: ignore[arg-type]
            )
        ).scalars()
        combined = set(operations)
    assert linked == their_child
    assert "combination" in combined


@pytest.mark.skipif(not is_postgres(), reason="stage facts serve PostgreSQL's report")
async def test_a_batch_keeps_the_stage_facts_a_single_push_keeps(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    single = await _push(http, live_server, incident(unique("FACT-ONE")), query=REPORT_INCIDENT)
    batch = await _push(http, live_server, [incident(unique("FACT-MANY")) for _ in range(3)])
    ids = [single["data"]["reportIncident"]["id"]]
    ids += [r["id"] for r in batch["data"]["reportIncidents"]]
    async with db.transaction(write=False) as session:
        rows = (
            await session.execute(
                sa.text(
                    "SELECT subject_id, council_code, event_at, shared_at FROM stage_fact "
                    "WHERE record_type = 'Incident' AND subject_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).all()
    councils: dict[str, set[str]] = {i: set() for i in ids}
    for subject, council, *_ in rows:
        councils[subject].add(council)
    assert councils[ids[0]]
    assert all(councils[i] == councils[ids[0]] for i in ids[1:])
