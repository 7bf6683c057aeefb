"""Police checks on carers and adopters, over real HTTP: request, completion, scope, audit, figures.

A council (Birmingham) asks a force (West Midlands) to check an applicant; the force answers with
an outcome category. Only those two see the check; everyone else finds nothing, or is refused
the field by the agreement. Every name, date and postcode here is invented.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.audit.models import AuditEvent, AuditEventChild
from hub.changes.models import RecordChange
from hub.db import Database
from hub.vetting.models import VettingCheck
from tests.conftest import LiveServer, audit_events_of, cli_settings, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL, OTHER_FORCE, THIRD_COUNCIL, iso
from tests.scenario import SCHOOL, World

CHECK_FIELDS = """
    id councilReference purpose status outcome requestedAt sharedAt completedAt
    council { id } force { id }
    applicant { reference givenName familyName dateOfBirth postcode previousPostcodes }
"""
REQUEST = f"""
mutation Request($input: RequestVettingCheckInput!) {{
  requestVettingCheck(input: $input) {{ {CHECK_FIELDS} }}
}}"""
COMPLETE = f"""
mutation Complete($input: CompleteVettingCheckInput!) {{
  completeVettingCheck(input: $input) {{ {CHECK_FIELDS} }}
}}"""
ONE = f"query($id: ID!) {{ vettingCheck(id: $id) {{ {CHECK_FIELDS} }} }}"
LIST = """
query($filter: VettingCheckFilterInput, $first: Int, $after: String) {
  vettingChecks(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id councilReference status purpose } }
    pageInfo { hasNextPage endCursor }
  }
}"""
FIGURES = """
query($force: String, $council: String) {
  vettingFigures(force: $force, council: $council) {
    asOf target { id limit source }
    byForce { organisation { id } open completed openMedianAgeDays openOldestAgeDays
              openOverTarget completedWithinTarget shareWithinTarget carersWaiting adoptersWaiting }
    byCouncil { organisation { id } open completed openMedianAgeDays openOldestAgeDays
                openOverTarget completedWithinTarget shareWithinTarget carersWaiting
                adoptersWaiting }
  }
}"""
WANDSWORTH, MET = "E09000032", "MET"
DORSET_COUNCIL, DORSET_FORCE = "E06000059", "DORSET"


def days_ago(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=days)


def vetting_request(
    reference: str,
    *,
    force: str = FORCE,
    purpose: str = "FOSTER_CARER",
    requested: dt.datetime | None = None,
    applicant: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "councilReference": reference,
        "applicant": {
            "reference": applicant or f"APP-{reference}",
            "givenName": "Morgan",
            "familyName": "Testperson",
            "dateOfBirth": "1984-05-17",
            "postcode": "b15 2tt",
            "previousPostcodes": ["SW18 4AB", "m1 1ae"],
        },
        "purpose": purpose,
        "force": force,
        "requestedAt": iso(requested or days_ago(1)),
        **extra,
    }


class Caller:
    """One role at one organisation, posting GraphQL with a request id of its own each time."""

    def __init__(self, http: httpx.AsyncClient, server: LiveServer, role: Role, org: str) -> None:
        self.http, self.server = http, server
        purpose = (
            "carer_vetting" if role in {Role.POLICE_OFFICER, Role.COUNCIL_SOCIAL_WORKER} else ""
        )
        self.token = server.token(role, org, purpose=purpose)
        self.last_request_id = ""

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self.last_request_id = str(uuid.uuid4())
        response = await self.http.post(
            self.server.graphql_url,
            headers={"Authorization": f"Bearer {self.token}", "X-Request-Id": self.last_request_id},
            json={"query": query, "variables": variables or {}},
        )
        assert response.status_code in {200, 400}, response.text
        assert "Traceback" not in response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def council(http: httpx.AsyncClient, live_server: LiveServer) -> Caller:
    return Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)


@pytest.fixture
def force(http: httpx.AsyncClient, live_server: LiveServer) -> Caller:
    return Caller(http, live_server, Role.POLICE_OFFICER, FORCE)


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def _request(council: Caller, payload: dict[str, Any]) -> dict[str, Any]:
    body = await council(REQUEST, {"input": payload})
    assert "errors" not in body, body
    check: dict[str, Any] = body["data"]["requestVettingCheck"]
    return check


async def _complete(
    force: Caller,
    check_id: str,
    outcome: str = "NO_INFORMATION_HELD",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    return await force(
        COMPLETE,
        {"input": {"id": check_id, "outcome": outcome, "completedAt": iso(at or days_ago(0.5))}},
    )


async def _stored(db: Database, **where: Any) -> list[VettingCheck]:
    async with db.transaction(write=False) as session:
        query = sa.select(VettingCheck).where(
            *(getattr(VettingCheck, name) == value for name, value in where.items())
        )
        return list((await session.execute(query)).scalars())


# --- request and completion ----------------------------------------------------------------


async def test_a_council_requests_and_the_force_completes(
    council: Caller, force: Caller, db: Database
) -> None:
    reference = unique("VET")
    requested = days_ago(3)
    check = await _request(council, vetting_request(reference, requested=requested))
    assert check["status"] == "OPEN"
    assert check["outcome"] is None
    assert check["completedAt"] is None
    assert check["council"]["id"] == COUNCIL
    assert check["force"]["id"] == FORCE
    assert check["purpose"] == "FOSTER_CARER"
    assert dt.datetime.fromisoformat(check["requestedAt"]) == requested
    # Postcodes are normalised as the police systems match them.
    assert check["applicant"]["postcode"] == "B15 2TT"
    assert check["applicant"]["previousPostcodes"] == ["SW18 4AB", "M1 1AE"]
    assert check["applicant"]["dateOfBirth"] == "1984-05-17"

    done = await _complete(force, check["id"], "INFORMATION_TO_BE_DISCLOSED", days_ago(1))
    assert "errors" not in done, done
    completed = done["data"]["completeVettingCheck"]
    assert completed["status"] == "COMPLETED"
    assert completed["outcome"] == "INFORMATION_TO_BE_DISCLOSED"
    # The council reads the answer; the hub holds nothing but its category.
    read = await council(ONE, {"id": check["id"]})
    assert read["data"]["vettingCheck"]["outcome"] == "INFORMATION_TO_BE_DISCLOSED"
    (row,) = await _stored(db, council_reference=reference)
    assert (row.status, row.outcome, row.completed_by_client) == (
        "completed",
        "information_to_be_disclosed",
        "test-police_officer",
    )


async def test_retries_never_duplicate_and_other_content_conflicts(
    council: Caller, force: Caller, db: Database
) -> None:
    reference, key = unique("VET-IDEM"), unique("KEY")
    payload = vetting_request(reference, idempotencyKey=key)
    first = await _request(council, payload)
    again = await _request(council, payload)
    assert again["id"] == first["id"]
    # The same content under the same idempotency key but another reference: the stored one.
    renamed = await council(REQUEST, {"input": {**payload, "councilReference": unique("VET-X")}})
    assert _codes(renamed) == ["CONFLICT"], "the reference is content: another one conflicts"
    changed = await council(REQUEST, {"input": {**payload, "purpose": "ADOPTER"}})
    assert _codes(changed) == ["CONFLICT"]
    assert "council reference or idempotency key" in changed["errors"][0]["message"]
    assert "ADOPTER" not in json.dumps(changed)
    (row,) = await _stored(db, council_reference=reference)
    assert row.purpose == "foster_carer", "a conflicting push changed nothing"

    at = days_ago(0.2)
    done = await _complete(force, first["id"], "NO_INFORMATION_HELD", at)
    assert done["data"]["completeVettingCheck"]["status"] == "COMPLETED"
    replay = await _complete(force, first["id"], "NO_INFORMATION_HELD", at)
    assert "errors" not in replay, replay
    assert replay["data"]["completeVettingCheck"]["outcome"] == "NO_INFORMATION_HELD"
    other = await _complete(force, first["id"], "INFORMATION_TO_BE_DISCLOSED", at)
    assert _codes(other) == ["CONFLICT"]
    later = await _complete(force, first["id"], "NO_INFORMATION_HELD", days_ago(0.1))
    assert _codes(later) == ["CONFLICT"]
    (row,) = await _stored(db, council_reference=reference)
    assert row.outcome == "no_information_held"
    assert row.completed_at == at


async def test_concurrent_identical_requests_store_one(council: Caller, db: Database) -> None:
    payload = vetting_request(unique("VET-RACE"))
    bodies = await asyncio.gather(*(council(REQUEST, {"input": payload}) for _ in range(6)))
    ids = {b["data"]["requestVettingCheck"]["id"] for b in bodies if not b.get("errors")}
    assert len(ids) == 1, bodies
    assert len(await _stored(db, council_reference=payload["councilReference"])) == 1


# --- bad input -----------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("empty reference", {"councilReference": "  "}, "input.councilReference"),
    ("long reference", {"councilReference": "R" * 65}, "input.councilReference"),
    ("unknown force", {"force": "NOWHERE_POLICE"}, "input.force"),
    ("a council as force", {"force": OTHER_COUNCIL}, "input.force"),
    ("future request", {"requestedAt": iso(days_ago(-2))}, "input.requestedAt"),
    ("naive time", {"requestedAt": "2026-01-05T09:00:00"}, "input.requestedAt"),
    ("empty key", {"idempotencyKey": " "}, "input.idempotencyKey"),
    ("no name", {"applicant.givenName": ""}, "input.applicant.givenName"),
    ("long name", {"applicant.familyName": "N" * 101}, "input.applicant.familyName"),
    ("no applicant ref", {"applicant.reference": ""}, "input.applicant.reference"),
    ("unborn", {"applicant.dateOfBirth": "2999-01-01"}, "input.applicant.dateOfBirth"),
    ("ancient", {"applicant.dateOfBirth": "1850-01-01"}, "input.applicant.dateOfBirth"),
    ("bad postcode", {"applicant.postcode": "NOT A CODE"}, "input.applicant.postcode"),
    (
        "bad previous postcode",
        {"applicant.previousPostcodes": ["B1 1AA", "12345"]},
        "input.applicant.previousPostcodes.1",
    ),
    (
        "too many postcodes",
        {"applicant.previousPostcodes": ["B1 1AA"] * 11},
        "input.applicant.previousPostcodes",
    ),
]


def _with(payload: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    payload = {**payload, "applicant": dict(payload["applicant"])}
    for name, value in changes.items():
        if name.startswith("applicant."):
            payload["applicant"][name.removeprefix("applicant.")] = value
        else:
            payload[name] = value
    return payload


@pytest.mark.parametrize(
    ("case", "changes", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
async def test_a_bad_request_names_its_field_and_stores_nothing(
    council: Caller, db: Database, case: str, changes: dict[str, Any], field: str
) -> None:
    del case
    reference = unique("VET-BAD")
    payload = _with(vetting_request(reference), {"councilReference": reference, **changes})
    body = await council(REQUEST, {"input": payload})
    assert body["data"] is None or body["data"]["requestVettingCheck"] is None, body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}
    for value in changes.values():  # the input's text is never echoed back
        if isinstance(value, str) and len(value) > 3:
            assert value not in error["message"]
    assert await _stored(db, council_reference=payload["councilReference"].strip()) == []


async def test_a_bad_completion_is_refused_and_changes_nothing(
    council: Caller, force: Caller, db: Database
) -> None:
    check = await _request(council, vetting_request(unique("VET-BC"), requested=days_ago(2)))
    for at, field in [
        (days_ago(3), "input.completedAt"),  # before the request
        (days_ago(-1), "input.completedAt"),  # in the future
    ]:
        body = await _complete(force, check["id"], at=at)
        assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": field}
    naive = await force(
        COMPLETE,
        {
            "input": {
                "id": check["id"],
                "outcome": "NO_INFORMATION_HELD",
                "completedAt": "2026-01-01T10:00:00",
            }
        },
    )
    assert naive["errors"][0]["extensions"]["field"] == "input.completedAt"
    missing = await _complete(force, str(uuid.uuid4()))
    assert missing["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "input.id"}
    (row,) = await _stored(db, id=check["id"])
    assert (row.status, row.outcome, row.completed_at) == ("open", None, None)


# --- scope: every role ---------------------------------------------------------------------

# (role, organisation, sees the check): a council or force not party to it finds nothing.
PARTIES = [
    (Role.COUNCIL_SOCIAL_WORKER, COUNCIL, True),
    (Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL, False),
    (Role.POLICE_OFFICER, FORCE, True),
    (Role.POLICE_OFFICER, OTHER_FORCE, False),
]
# Roles the agreement gives no vetting check at all: the root fields are refused.
REFUSED = [
    (Role.SCHOOL_DSL, SCHOOL),
    (Role.AUDITOR, "OFSTED"),
    (Role.DPO, COUNCIL),
    (Role.DPO, FORCE),
    (Role.HUB_ADMIN, "HUB"),
]


@pytest.fixture
async def a_check(council: Caller, world: World) -> dict[str, Any]:
    del world  # the schools and organisations the callers below belong to
    return await _request(council, vetting_request(unique("VET-SCOPE"), requested=days_ago(5)))


@pytest.mark.parametrize(("role", "org", "sees"), PARTIES, ids=str)
async def test_only_the_two_parties_see_a_check(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    a_check: dict[str, Any],
    role: Role,
    org: str,
    sees: bool,
) -> None:
    caller = Caller(http, live_server, role, org)
    one = await caller(ONE, {"id": a_check["id"]})
    assert "errors" not in one, one
    listed = await caller(LIST, {"first": 100, "filter": {"statuses": ["OPEN"]}})
    ids = {e["node"]["id"] for e in listed["data"]["vettingChecks"]["edges"]}
    if not sees:
        assert one["data"]["vettingCheck"] is None
        assert a_check["id"] not in ids
        return
    record = one["data"]["vettingCheck"]
    # Every field the agreement gives the parties, the applicant's identity included.
    assert record["applicant"]["familyName"] == "Testperson"
    assert record["councilReference"] == a_check["councilReference"]
    assert a_check["id"] in ids


@pytest.mark.parametrize(("role", "org"), REFUSED, ids=str)
async def test_other_roles_are_refused_every_vetting_read_and_write(
    http: httpx.AsyncClient, live_server: LiveServer, a_check: dict[str, Any], role: Role, org: str
) -> None:
    caller = Caller(http, live_server, role, org)
    one = await caller(ONE, {"id": a_check["id"]})
    assert _codes(one) == ["FORBIDDEN_FIELD"]
    assert one["data"]["vettingCheck"] is None
    listed = await caller(LIST)
    assert _codes(listed) == ["FORBIDDEN_FIELD"]
    assert "Testperson" not in json.dumps(one) + json.dumps(listed)
    for query, variables in [
        (REQUEST, {"input": vetting_request(unique("VET-NO"))}),
        (
            COMPLETE,
            {
                "input": {
                    "id": a_check["id"],
                    "outcome": "NO_INFORMATION_HELD",
                    "completedAt": iso(days_ago(0.1)),
                }
            },
        ),
    ]:
        body = await caller(query, variables)
        assert _codes(body) == ["FORBIDDEN"], body


async def test_a_force_completes_only_checks_asked_of_it_and_councils_never(
    http: httpx.AsyncClient, live_server: LiveServer, a_check: dict[str, Any], db: Database
) -> None:
    other_force = Caller(http, live_server, Role.POLICE_OFFICER, OTHER_FORCE)
    body = await _complete(other_force, a_check["id"])
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    council = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    assert _codes(await _complete(council, a_check["id"])) == ["FORBIDDEN"]
    force = Caller(http, live_server, Role.POLICE_OFFICER, FORCE)
    assert _codes(await force(REQUEST, {"input": vetting_request(unique("VET-P"))})) == [
        "FORBIDDEN"
    ]
    (row,) = await _stored(db, id=a_check["id"])
    assert row.status == "open"


async def test_another_council_may_reuse_a_reference(
    http: httpx.AsyncClient, live_server: LiveServer, council: Caller, db: Database
) -> None:
    """A council's reference is its own: the same text from another council is another check."""
    reference = unique("VET-SAME")
    mine = await _request(council, vetting_request(reference))
    other = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    theirs = await _request(other, vetting_request(reference, force=OTHER_FORCE))
    assert mine["id"] != theirs["id"]
    assert len(await _stored(db, council_reference=reference)) == 2


# --- lists ---------------------------------------------------------------------------------


async def test_filters_and_sealed_cursors(
    http: httpx.AsyncClient, live_server: LiveServer, force: Caller
) -> None:
    # A council of its own, so the list holds only this test's checks.
    council = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, THIRD_COUNCIL)
    made = [
        await _request(
            council,
            vetting_request(
                unique("VET-LIST"), force=FORCE, purpose=purpose, requested=days_ago(days)
            ),
        )
        for purpose, days in [("ADOPTER", 40), ("FOSTER_CARER", 30), ("ADOPTER", 20), ("OTHER", 10)]
    ]
    assert "errors" not in await _complete(force, made[1]["id"], at=days_ago(25))
    everything = await council(LIST, {"first": 50})
    assert [e["node"]["id"] for e in everything["data"]["vettingChecks"]["edges"]] == [
        c["id"] for c in reversed(made)
    ], "newest request first"
    adopters = await council(LIST, {"filter": {"purposes": ["ADOPTER"]}})
    assert {e["node"]["id"] for e in adopters["data"]["vettingChecks"]["edges"]} == {
        made[0]["id"],
        made[2]["id"],
    }
    done = await council(LIST, {"filter": {"statuses": ["COMPLETED"]}})
    assert [e["node"]["id"] for e in done["data"]["vettingChecks"]["edges"]] == [made[1]["id"]]
    window = {"requestedFrom": iso(days_ago(35)), "requestedTo": iso(days_ago(15))}
    between = await council(LIST, {"filter": window})
    assert {e["node"]["id"] for e in between["data"]["vettingChecks"]["edges"]} == {
        made[1]["id"],
        made[2]["id"],
    }
    page = await council(LIST, {"first": 2})
    info = page["data"]["vettingChecks"]["pageInfo"]
    assert info["hasNextPage"] is True
    rest = await council(LIST, {"first": 2, "after": info["endCursor"]})
    assert [e["node"]["id"] for e in rest["data"]["vettingChecks"]["edges"]] == [
        made[1]["id"],
        made[0]["id"],
    ]
    # A cursor is the caller's and the list's: another council cannot use it.
    other = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    stolen = await other(LIST, {"first": 2, "after": info["endCursor"]})
    assert stolen["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "after"}
    naive = await council(LIST, {"filter": {"requestedFrom": "2026-01-01T00:00:00"}})
    assert naive["errors"][0]["extensions"]["field"] == "filter.requestedFrom"


# --- audit and changes ---------------------------------------------------------------------


async def test_every_push_and_read_is_audited_and_no_child_is_indexed(
    http: httpx.AsyncClient, live_server: LiveServer, council: Caller, force: Caller, db: Database
) -> None:
    check = await _request(council, vetting_request(unique("VET-AUD")))
    (pushed,) = await audit_events_of(db, council.last_request_id)
    assert pushed.operation == "collection"
    records = json.loads(pushed.records)
    assert [(r["type"], r["id"], r["owner"], r["children"]) for r in records] == [
        ("VettingCheck", check["id"], COUNCIL, [])
    ]
    assert "applicant" in records[0]["fields"]
    assert pushed.purpose == "carer_vetting"
    assert pushed.child_ids == "[]"
    await force(ONE, {"id": check["id"]})
    (read,) = await audit_events_of(db, force.last_request_id)
    assert read.operation == "consultation"
    assert read.organisation_code == FORCE
    assert json.loads(read.records)[0]["id"] == check["id"]
    assert "Testperson" not in read.records, "the audit names fields, never their values"
    await _complete(force, check["id"])
    (completed,) = await audit_events_of(db, force.last_request_id)
    assert completed.operation == "alteration"
    # Applicants are not children: nothing of theirs enters the child index.
    seqs = [pushed.seq, read.seq, completed.seq]
    async with db.transaction(write=False) as session:
        indexed = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEventChild)
            .where(AuditEventChild.seq.in_(seqs))  # type: ignore[attr-defined]
        )
        changes = (
            await session.execute(
                sa.select(RecordChange.change)
                .where(RecordChange.record_id == check["id"])
                .order_by(RecordChange.seq)  # type: ignore[arg-type]
            )
        ).scalars()
        published = list(changes)
    assert indexed == 0
    # The force's systems are told of the request, the council of the completion.
    assert published == ["collected", "altered"]
    # An auditor sees that the check was accessed, never who it is about.
    auditor = Caller(http, live_server, Role.AUDITOR, "OFSTED")
    history = await auditor(
        """query($id: ID!) { recordAccessHistory(recordType: "VettingCheck", recordId: $id) {
             edges { node { recordType recordOwner { id } fields children } } } }""",
        {"id": check["id"]},
    )
    nodes = [e["node"] for e in history["data"]["recordAccessHistory"]["edges"]]
    assert len(nodes) >= 3, history
    assert {n["recordOwner"]["id"] for n in nodes} == {COUNCIL}
    assert all(n["children"] == [] for n in nodes)
    assert "Testperson" not in json.dumps(history)


async def test_a_refused_read_is_audited_as_a_denial(
    http: httpx.AsyncClient, live_server: LiveServer, a_check: dict[str, Any], db: Database
) -> None:
    school = Caller(http, live_server, Role.SCHOOL_DSL, SCHOOL)
    await school(ONE, {"id": a_check["id"]})
    (denied,) = await audit_events_of(db, school.last_request_id)
    assert denied.outcome == "denied"
    assert "FORBIDDEN_FIELD Query.vettingCheck" in denied.detail


# --- figures -------------------------------------------------------------------------------


async def test_figures_are_each_partys_own_and_the_inspectorates_national(
    http: httpx.AsyncClient, live_server: LiveServer, a_check: dict[str, Any], db: Database
) -> None:
    del a_check  # at least one open check at West Midlands for Birmingham
    police = Caller(http, live_server, Role.POLICE_OFFICER, FORCE)
    own = await police(FIGURES)
    assert [g["organisation"]["id"] for g in own["data"]["vettingFigures"]["byForce"]] == [FORCE]
    assert _codes(await police(FIGURES, {"force": OTHER_FORCE})) == ["FORBIDDEN"]
    council = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    theirs = await council(FIGURES)
    by_council = theirs["data"]["vettingFigures"]["byCouncil"]
    assert [g["organisation"]["id"] for g in by_council] == [COUNCIL]
    assert by_council[0]["open"] >= 1
    assert _codes(await council(FIGURES, {"council": OTHER_COUNCIL})) == ["FORBIDDEN"]
    auditor = Caller(http, live_server, Role.AUDITOR, "OFSTED")
    national = await auditor(FIGURES)
    assert "errors" not in national, national
    forces = {g["organisation"]["id"] for g in national["data"]["vettingFigures"]["byForce"]}
    assert FORCE in forces
    assert national["data"]["vettingFigures"]["target"]["id"] == "T11"
    assert "parliamentary answers" in national["data"]["vettingFigures"]["target"]["source"]
    (disclosed,) = await audit_events_of(db, auditor.last_request_id)
    assert disclosed.operation == "disclosure"
    assert json.loads(disclosed.detail)["report"] == "vetting figures"
    for role, org in [(Role.SCHOOL_DSL, SCHOOL), (Role.DPO, COUNCIL), (Role.HUB_ADMIN, "HUB")]:
        refused = await Caller(http, live_server, role, org)(FIGURES)
        assert _codes(refused) == ["FORBIDDEN_FIELD"], (role, refused)


async def test_a_wandsworth_like_backlog_is_found_in_the_figures(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    """23 approved carers wait on checks at one force, all past 14 days (as in Wandsworth)."""
    wandsworth = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, WANDSWORTH)
    met = Caller(http, live_server, Role.POLICE_OFFICER, MET)
    ages = [15 + n for n in range(23)]  # 15 to 37 days
    for n, age in enumerate(ages):
        purpose = "CONNECTED_PERSON" if n % 5 == 0 else "FOSTER_CARER"
        await _request(
            wandsworth,
            vetting_request(unique("WW"), force=MET, purpose=purpose, requested=days_ago(age)),
        )
    # One carer's household is checked at two forces: that carer waits once.
    household = unique("WW-HH")
    for where in (MET, DORSET_FORCE):
        await _request(
            wandsworth,
            vetting_request(unique("WW"), force=where, applicant=household, requested=days_ago(3)),
        )
    # Completed at MET: 4 within 14 days (one at exactly 14), 6 after it. Each completion is
    # measured from its own request's time, not from a second reading of the clock, so the one
    # at the boundary stays at it.
    for n, taken in enumerate([2, 5, 9, 14, 15, 18, 21, 21, 30, 40]):
        requested = days_ago(50 + n)
        check = await _request(
            wandsworth,
            vetting_request(unique("WW-DONE"), force=MET, purpose="ADOPTER", requested=requested),
        )
        done = await _complete(met, check["id"], at=requested + dt.timedelta(days=taken))
        assert "errors" not in done, done
    # Dorset's adopters wait too, at their own force.
    dorset = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, DORSET_COUNCIL)
    for age in (16, 20):
        await _request(
            dorset,
            vetting_request(
                unique("DO"), force=DORSET_FORCE, purpose="ADOPTER", requested=days_ago(age)
            ),
        )

    open_ages = [*ages, 3]  # the household's check at MET
    auditor = Caller(http, live_server, Role.AUDITOR, "OFSTED")
    body = await auditor(FIGURES, {"force": MET})
    assert "errors" not in body, body
    (at_met,) = body["data"]["vettingFigures"]["byForce"]
    assert at_met["organisation"]["id"] == MET
    assert at_met["open"] == 24
    assert at_met["openOverTarget"] == 23
    assert at_met["openMedianAgeDays"] == pytest.approx(statistics.median(open_ages), abs=0.01)
    assert at_met["openOldestAgeDays"] == pytest.approx(37, abs=0.01)
    assert at_met["completed"] == 10
    assert at_met["completedWithinTarget"] == 4
    assert at_met["shareWithinTarget"] == pytest.approx(0.4)
    assert at_met["carersWaiting"] == 24  # 23 carers and the household
    assert at_met["adoptersWaiting"] == 0

    own = await wandsworth(FIGURES)
    (council,) = own["data"]["vettingFigures"]["byCouncil"]
    assert council["organisation"]["id"] == WANDSWORTH
    assert council["open"] == 25  # the household's two checks count as two checks...
    assert council["carersWaiting"] == 24  # ...but one carer waiting
    assert {
        g["organisation"]["id"]: g["open"] for g in own["data"]["vettingFigures"]["byForce"]
    } == {
        MET: 24,
        DORSET_FORCE: 1,
    }
    dorset_figures = await dorset(FIGURES)
    (dorset_council,) = dorset_figures["data"]["vettingFigures"]["byCouncil"]
    assert dorset_council["adoptersWaiting"] == 2
    assert dorset_council["openOverTarget"] == 2
    # The force reads the same backlog, and nothing of Dorset's.
    at_force = await met(FIGURES)
    assert [g["organisation"]["id"] for g in at_force["data"]["vettingFigures"]["byCouncil"]] == [
        WANDSWORTH
    ]
    assert at_force["data"]["vettingFigures"]["byForce"][0]["open"] == 24


# --- the operator's CLI --------------------------------------------------------------------


def test_the_cli_prints_the_figures_and_logs_the_disclosure(
    live_server: LiveServer, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415 - only this test drives the CLI

    from hub.cli import app  # noqa: PLC0415

    council_code = "E09000033"  # Westminster: no other test asks for its checks
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, council_code, purpose="carer_vetting")
    for purpose, age in [("ADOPTER", 20), ("FOSTER_CARER", 2)]:
        response = httpx.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": REQUEST,
                "variables": {
                    "input": vetting_request(
                        unique("WM-CLI"), force=MET, purpose=purpose, requested=days_ago(age)
                    )
                },
            },
            timeout=30,
        )
        assert "errors" not in response.json(), response.text
    with cli_settings(monkeypatch, database_url, tmp_path):
        result = CliRunner().invoke(
            app, ["vetting-report", "--council", council_code, "--user", "analyst-1"]
        )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Target T11" in out
    assert "parliamentary answers" in out
    (row,) = [line for line in out.splitlines() if line.startswith(f"| {council_code} |")]
    # open, median age, oldest, past target, completed, within, share, carers, adopters
    assert [cell.strip() for cell in row.strip("|").split("|")][1:] == [
        "2", "11.0", "20.0", "1", "0", "0", "-", "1", "1",
    ]  # fmt: skip
    assert "Testperson" not in out
    assert "APP-" not in out
    assert asyncio.run(_cli_disclosures(database_url, "analyst-1")) == 1
    bad = CliRunner().invoke(app, ["vetting-report", "--from", "2026-02-30"])
    assert bad.exit_code == 2


async def _cli_disclosures(database_url: str, user: str) -> int:
    db = Database(database_url)
    try:
        async with db.transaction(write=False) as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.user == user,
                    AuditEvent.operation == "disclosure",
                    AuditEvent.operation_name == "vetting figures",
                )
            )
        return int(count or 0)
    finally:
        await db.dispose()
