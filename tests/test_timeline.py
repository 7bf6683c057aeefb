"""Each record's timeline over real HTTP: stages derived from stored times, receipts from the audit,
the councils' acknowledgement and return home interview, and their rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.db import Database
from hub.timeliness.models import FirstSeen, NotedReceipts, RecordReceipt
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_COUNCIL,
    RECORD_MISSING,
    REPORT_INCIDENT,
    UPDATE_MISSING,
    child,
    incident,
    iso,
    missing_episode,
)
from tests.test_audit_trail import unwritable_audit

TIMELINE = """query($id: ID!) { incident(id: $id) { id timeline {
  kind eventAt recordedAt sharedAt
  receipts { organisation { id } firstSeenAt acknowledgedAt acknowledgedBy }
  stages { stage council { id } startedAt endedAt delayHours targetId deadline status met } } } }"""
ACKNOWLEDGE = """mutation($type: String!, $id: ID!) { acknowledge(recordType: $type, id: $id) {
  organisation { id } firstSeenAt acknowledgedAt acknowledgedBy } }"""
INTERVIEW = """mutation($id: ID!, $at: DateTime!) {
  recordReturnInterview(missingEpisodeId: $id, heldAt: $at) { id timeline {
    returnedAt returnInterviewAt stages { stage delayHours targetId status } } } }"""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


async def _push(as_role: Any, query: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = await as_role(Role.POLICE_OFFICER, FORCE)(query, {"input": payload})
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


async def _receipts(db: Database, record_id: str) -> list[RecordReceipt]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            sa.select(RecordReceipt).where(RecordReceipt.record_id == record_id)
        )
        return list(rows.scalars())


async def test_stages_are_derived_from_the_stored_times(as_role: Any) -> None:
    occurred = _now() - dt.timedelta(hours=30)
    pushed = await _push(
        as_role,
        REPORT_INCIDENT,
        incident(
            unique("TL-INC"),
            occurredAt=iso(occurred),
            recordedAt=iso(occurred + dt.timedelta(hours=2, minutes=30)),
        ),
    )
    body = await as_role(Role.POLICE_OFFICER, FORCE)(TIMELINE, {"id": pushed["id"]})
    assert "errors" not in body, body
    timeline = body["data"]["incident"]["timeline"]
    assert timeline["kind"] == "domestic_abuse"
    shared = dt.datetime.fromisoformat(timeline["sharedAt"])
    stages = {(s["stage"], s["targetId"]): s for s in timeline["stages"]}
    assert {s["council"]["id"] for s in timeline["stages"]} == {COUNCIL}
    assert stages["event_to_recorded", None]["delayHours"] == 2.5
    expected = (shared - occurred).total_seconds() / 3600
    assert stages["event_to_shared", "T9"]["delayHours"] == pytest.approx(expected)
    # 30 hours against 24: T9 is breached; its deadline is the event plus 24 hours.
    assert stages["event_to_shared", "T9"]["status"] == "BREACHED"
    assert stages["event_to_shared", "T9"]["met"] is False
    deadline = dt.datetime.fromisoformat(stages["event_to_shared", "T9"]["deadline"])
    assert deadline == occurred + dt.timedelta(hours=24)
    # Not yet seen or acknowledged by the council: open, no delay yet.
    seen = stages["shared_to_first_seen", None]
    assert (seen["endedAt"], seen["delayHours"], seen["status"]) == (None, None, "UNTARGETED")
    assert stages["shared_to_acknowledged", "DA-ACK"]["status"] == "PENDING"


async def test_first_seen_is_the_first_council_read_only(as_role: Any, db: Database) -> None:
    pushed = await _push(as_role, REPORT_INCIDENT, incident(unique("TL-SEEN")))
    police = as_role(Role.POLICE_OFFICER, FORCE)
    await police(TIMELINE, {"id": pushed["id"]})
    assert await _receipts(db, pushed["id"]) == [], "a police read is not a receipt"
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    first = await council(TIMELINE, {"id": pushed["id"]})
    assert "errors" not in first, first
    [receipt] = await _receipts(db, pushed["id"])
    assert receipt.organisation_code == COUNCIL
    assert receipt.first_seen_at >= dt.datetime.fromisoformat(
        first["data"]["incident"]["timeline"]["sharedAt"]
    )
    again = await council(TIMELINE, {"id": pushed["id"]})
    [unchanged] = await _receipts(db, pushed["id"])
    assert unchanged.first_seen_at == receipt.first_seen_at, "a second read moved first sight"
    stages = {
        (s["stage"], s["targetId"]): s for s in again["data"]["incident"]["timeline"]["stages"]
    }
    seen = stages["shared_to_first_seen", None]
    assert dt.datetime.fromisoformat(seen["endedAt"]) == receipt.first_seen_at
    assert seen["delayHours"] == pytest.approx(
        (receipt.first_seen_at - dt.datetime.fromisoformat(seen["startedAt"])).total_seconds()
        / 3600
    )


async def test_a_receipt_is_noted_by_the_first_read_served_and_once(
    as_role: Any, db: Database, live_server: LiveServer
) -> None:
    """Fail-closed for the receipts too: a read whose audit failed served nothing, so nobody
    received anything. Once a read that noted a receipt has committed, the hub knows it is in
    the table and leaves it out of later reads' audits (`NotedReceipts`); it learns it only
    then, so the failed read taught it nothing and the next read notes the receipt."""
    pushed = await _push(as_role, REPORT_INCIDENT, incident(unique("TL-NOTED")))
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    async with unwritable_audit(db):
        failed = await council(TIMELINE, {"id": pushed["id"]})
    assert failed["data"] is None, failed
    assert await _receipts(db, pushed["id"]) == [], "a read served nothing, so no receipt"

    first = await council(TIMELINE, {"id": pushed["id"]})
    assert "errors" not in first, first
    [receipt] = await _receipts(db, pushed["id"])
    assert receipt.organisation_code == COUNCIL

    live_server.statements.clear()
    again = await council(TIMELINE, {"id": pushed["id"]})
    assert "errors" not in again, again
    noting = [s for s in live_server.statements if "INSERT INTO record_receipt" in s]
    assert noting == [], "a receipt known to be in the table was noted again"
    [unchanged] = await _receipts(db, pushed["id"])
    assert unchanged.first_seen_at == receipt.first_seen_at


async def test_acknowledge_keeps_the_first_and_hides_other_councils_records(
    as_role: Any,
) -> None:
    pushed = await _push(as_role, REPORT_INCIDENT, incident(unique("TL-ACK")))
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    first = await council(ACKNOWLEDGE, {"type": "Incident", "id": pushed["id"]})
    assert "errors" not in first, first
    receipt = first["data"]["acknowledge"]
    assert receipt["organisation"]["id"] == COUNCIL
    assert receipt["acknowledgedBy"] == "test-user"
    again = await council(ACKNOWLEDGE, {"type": "Incident", "id": pushed["id"]})
    assert again["data"]["acknowledge"]["acknowledgedAt"] == receipt["acknowledgedAt"]
    # Another council: the record does not exist for it, exactly like a missing one.
    other = as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    hidden = await other(ACKNOWLEDGE, {"type": "Incident", "id": pushed["id"]})
    missing = await other(ACKNOWLEDGE, {"type": "Incident", "id": "no-such-record"})
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert hidden["errors"][0]["message"] == missing["errors"][0]["message"]
    assert hidden["data"] == missing["data"] == {"acknowledge": None}
    refused = await as_role(Role.POLICE_OFFICER, FORCE)(
        ACKNOWLEDGE, {"type": "Incident", "id": pushed["id"]}
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    timeline = await council(TIMELINE, {"id": pushed["id"]})
    stages = {
        (s["stage"], s["targetId"]): s for s in timeline["data"]["incident"]["timeline"]["stages"]
    }
    assert stages["shared_to_acknowledged", "DA-ACK"]["status"] == "WITHIN"


async def test_return_interview_only_after_the_return_and_never_in_the_future(
    as_role: Any,
) -> None:
    reference = unique("TL-MISS")
    reported = _now() - dt.timedelta(hours=20)
    episode = await _push(
        as_role,
        RECORD_MISSING,
        missing_episode(
            reference,
            child_input=child(unique("TL-C")),
            reportedMissingAt=iso(reported),
            recordedAt=iso(reported + dt.timedelta(minutes=20)),
        ),
    )
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)

    async def interview(at: str) -> dict[str, Any]:
        result: dict[str, Any] = await council(INTERVIEW, {"id": episode["id"], "at": at})
        return result

    early = await interview(iso(_now() - dt.timedelta(hours=1)))
    assert early["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "missingEpisodeId",
    }
    returned = reported + dt.timedelta(hours=10)
    await _push(
        as_role,
        UPDATE_MISSING,
        {"policeReference": reference, "status": "RETURNED", "at": iso(returned)},
    )
    before = await interview(iso(returned - dt.timedelta(minutes=5)))
    assert before["errors"][0]["extensions"]["field"] == "heldAt"
    future = await interview(iso(_now() + dt.timedelta(hours=2)))
    assert future["errors"][0]["extensions"]["field"] == "heldAt"
    naive = await interview((returned + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat())
    assert naive["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    held = returned + dt.timedelta(hours=6)
    done = await interview(iso(held))
    assert "errors" not in done, done
    timeline = done["data"]["recordReturnInterview"]["timeline"]
    assert dt.datetime.fromisoformat(timeline["returnInterviewAt"]) == held
    stage = next(s for s in timeline["stages"] if s["stage"] == "returned_to_return_interview")
    assert (stage["delayHours"], stage["targetId"], stage["status"]) == (6.0, "T5", "WITHIN")
    replay = await interview(iso(held))
    assert "errors" not in replay
    clash = await interview(iso(held + dt.timedelta(minutes=1)))
    assert clash["errors"][0]["extensions"]["code"] == "CONFLICT"
    other = await as_role(Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)(
        INTERVIEW, {"id": episode["id"], "at": iso(held)}
    )
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"


INVESTIGATION_TIMELINE = """query($id: ID!) { investigation(id: $id) { timeline {
  kind eventAt stages { stage recordId delayHours targetId council { id } } } } }"""


async def test_an_investigations_status_changes_each_have_their_stage(as_role: Any) -> None:
    from tests.factories import UPDATE_INVESTIGATION, status_change  # noqa: PLC0415

    reference = unique("TL-INV")
    pushed = await _push(as_role, REPORT_INCIDENT, incident(unique("TL-INV-INC")))
    opened = await _push(
        as_role,
        UPDATE_INVESTIGATION,
        status_change(reference, "OPEN", hours=5, incidentReferences=[pushed["policeReference"]]),
    )
    await _push(as_role, UPDATE_INVESTIGATION, status_change(reference, "INVESTIGATING", hours=1))
    body = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        INVESTIGATION_TIMELINE, {"id": opened["id"]}
    )
    assert "errors" not in body, body
    timeline = body["data"]["investigation"]["timeline"]
    assert timeline["kind"] == "investigation_status"
    shares = [s for s in timeline["stages"] if s["stage"] == "event_to_shared"]
    assert len(shares) == 2
    assert {s["targetId"] for s in shares} == {"INV-SHARE"}
    assert len({s["recordId"] for s in shares}) == 2, "each change is measured on its own"
    assert sorted(round(s["delayHours"]) for s in shares) == [1, 5]
    receipts = [s for s in timeline["stages"] if s["stage"] == "shared_to_first_seen"]
    assert [s["recordId"] for s in receipts] == [opened["id"]]
    assert {s["council"]["id"] for s in timeline["stages"]} == {COUNCIL}


def test_noted_receipts_leave_out_only_what_committed_for_that_organisation() -> None:
    at = _now()
    noted = NotedReceipts(most=4)
    seen = FirstSeen.of(COUNCIL, [("Incident", "a"), ("Incident", "b")], at)
    assert noted.unnoted(seen) is seen, "nothing committed yet: all of it is noted"
    assert noted.unnoted(None) is None
    noted.committed(seen)
    assert noted.unnoted(seen) is None
    more = FirstSeen.of(COUNCIL, [("Incident", "a"), ("Incident", "c")], at)
    left = noted.unnoted(more)
    assert left is not None
    assert (left.records, left.organisation_code, left.at) == ((("Incident", "c"),), COUNCIL, at)
    other = FirstSeen.of(OTHER_COUNCIL, [("Incident", "a")], at)
    assert noted.unnoted(other) is other, "another organisation's receipt is its own"
    # Past `most`, the older half is forgotten: noted again, which the table ignores.
    noted.committed(FirstSeen.of(COUNCIL, [("Incident", x) for x in "cdef"], at))
    assert len(noted) <= 4
    assert noted.unnoted(FirstSeen.of(COUNCIL, [("Incident", "a")], at)) is not None
    assert noted.unnoted(FirstSeen.of(COUNCIL, [("Incident", "f")], at)) is None
