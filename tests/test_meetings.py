"""Meetings over real HTTP with real tokens: a council convenes, forces answer and report, the
council records attendance; every push validated and idempotent, every read scoped and audited.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.changes.models import RecordChange
from hub.db import Database
from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation
from tests.conftest import LiveServer, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL, OTHER_FORCE, hours_ago, iso
from tests.meeting_pushes import (
    MEETING,
    RECORD_ATTENDANCE,
    RESPOND,
    SCHEDULE_MEETING,
    SUBMIT_REPORT,
    call,
    days_ahead,
    meeting,
    schedule,
    strategy_discussion,
    unborn,
)
from tests.scenario import ORGANISATION_OF, World
from tests.test_audit_trail import _events

THIRD_FORCE = "MERSEYSIDE"  # never invited below


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).select_from(model).where(*where)
        return int((await session.execute(query)).scalar_one())


async def _stored(db: Database, reference: str) -> int:
    return await _count(db, Meeting, Meeting.council_reference == reference)


async def _changes(db: Database, meeting_id: str) -> int:
    return await _count(db, RecordChange, RecordChange.record_id == meeting_id)


def _error(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body["data"] is None or next(iter(body["data"].values())) is None, body
    (error,) = body["errors"]
    return error["extensions"]["code"], error["extensions"].get("field")


async def _police(
    http: httpx.AsyncClient, server: LiveServer, query: str, payload: dict[str, Any], force: str
) -> dict[str, Any]:
    return await call(http, server, Role.POLICE_OFFICER, force, query, {"input": payload})


async def _council(
    http: httpx.AsyncClient,
    server: LiveServer,
    query: str,
    payload: dict[str, Any],
    council: str = COUNCIL,
) -> dict[str, Any]:
    return await call(http, server, Role.COUNCIL_SOCIAL_WORKER, council, query, {"input": payload})


# --- scheduling -----------------------------------------------------------------------------


async def test_a_council_schedules_a_meeting_and_a_retry_stores_nothing_more(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    reference = unique("MTG")
    payload = meeting(
        reference,
        children=[{"childId": world.inside.child}, unborn()],
        forces=[FORCE, OTHER_FORCE],
        idempotencyKey=unique("KEY"),
    )
    stored = await schedule(http, live_server, payload)
    assert stored["councilReference"] == reference
    assert (stored["kind"], stored["mode"], stored["preBirth"]) == (
        "STRATEGY_DISCUSSION",
        "VIDEO",
        True,
    )
    assert stored["council"] == {"id": COUNCIL}
    assert stored["heldAt"] is None
    kids = sorted(stored["children"], key=lambda c: c["unborn"])
    assert kids[0]["child"] == {"id": world.inside.child}
    assert kids[1]["child"] is None
    assert kids[1]["motherCouncil"] == {"id": COUNCIL}
    assert kids[1]["expectedDeliveryDate"] == payload["children"][1]["expectedDeliveryDate"]
    invited = {i["force"]["id"]: i for i in stored["invitations"]}
    assert set(invited) == {FORCE, OTHER_FORCE}
    assert all(
        i["invitedAt"] == stored["sharedAt"] and i["response"] is None for i in invited.values()
    )
    # The same push again, its lists in another order: the stored meeting, nothing added.
    again = dict(payload, children=payload["children"][::-1], invitedForces=[OTHER_FORCE, FORCE])
    retried = await schedule(http, live_server, again)
    assert retried["id"] == stored["id"]
    assert retried["sharedAt"] == stored["sharedAt"]
    assert await _stored(db, reference) == 1
    assert await _count(db, MeetingChild, MeetingChild.meeting_id == stored["id"]) == 2
    assert await _count(db, MeetingInvitation, MeetingInvitation.meeting_id == stored["id"]) == 2
    assert await _changes(db, stored["id"]) == 1


async def test_concurrent_identical_pushes_store_one_meeting(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    reference = unique("MTG-RACE")
    payload = meeting(reference, children=[{"childId": world.inside.child}, unborn()])
    bodies = await asyncio.gather(
        *(_council(http, live_server, SCHEDULE_MEETING, payload) for _ in range(6))
    )
    assert all("errors" not in b for b in bodies), bodies
    assert len({b["data"]["scheduleMeeting"]["id"] for b in bodies}) == 1
    assert await _stored(db, reference) == 1
    (meeting_id,) = {b["data"]["scheduleMeeting"]["id"] for b in bodies}
    assert await _count(db, MeetingChild, MeetingChild.meeting_id == meeting_id) == 2
    assert await _changes(db, meeting_id) == 1


async def test_different_content_under_the_same_reference_or_key_is_a_conflict(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    reference, key = unique("MTG-C"), unique("KEY")
    payload = meeting(reference, children=[{"childId": world.inside.child}], idempotencyKey=key)
    stored = await schedule(http, live_server, payload)
    changed = dict(payload, mode="PHONE")
    body = await _council(http, live_server, SCHEDULE_MEETING, changed)
    assert _error(body) == ("CONFLICT", None)
    assert "council reference" in body["errors"][0]["message"]
    other_reference = dict(payload, councilReference=unique("MTG-C2"))
    body = await _council(http, live_server, SCHEDULE_MEETING, other_reference)
    assert _error(body) == ("CONFLICT", None)
    assert await _stored(db, other_reference["councilReference"]) == 0
    # Another council may use the same reference for its own meeting.
    theirs = await strategy_discussion(
        http, live_server, world.outside.child, council=OTHER_COUNCIL
    )
    assert theirs["id"] != stored["id"]
    body = await call(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, MEETING, {"id": stored["id"]}
    )
    assert body["data"]["meeting"]["mode"] == "VIDEO"


async def test_a_conference_follows_the_councils_strategy_discussion(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    discussion = await strategy_discussion(http, live_server, world.inside.child)
    kids = [{"childId": world.inside.child}]
    review = meeting(
        unique("RCPC"),
        kind="REVIEW_CHILD_PROTECTION_CONFERENCE",
        children=kids,
        strategyDiscussionId=discussion["id"],
        scheduledAt=iso(days_ahead(90)),
    )
    body = await _council(http, live_server, SCHEDULE_MEETING, review)
    assert _error(body) == ("INVALID_INPUT", "input.strategyDiscussionId")
    assert await _stored(db, review["councilReference"]) == 0
    initial = await schedule(
        http,
        live_server,
        meeting(
            unique("ICPC"),
            kind="INITIAL_CHILD_PROTECTION_CONFERENCE",
            children=kids,
            strategyDiscussionId=discussion["id"],
        ),
    )
    assert initial["strategyDiscussion"] == {"id": discussion["id"]}
    stored = await schedule(http, live_server, review)
    assert stored["kind"] == "REVIEW_CHILD_PROTECTION_CONFERENCE"
    assert stored["strategyDiscussion"] == {"id": discussion["id"]}


def _bad_payloads(world: World, ids: dict[str, str]) -> list[tuple[str, dict[str, Any], str]]:
    """(case, changes to a good strategy discussion push, the field named)."""
    ours = [{"childId": world.inside.child}]
    icpc = "INITIAL_CHILD_PROTECTION_CONFERENCE"
    return [
        ("no children", {"children": []}, "input.children"),
        ("another council's child", {"children": [{"childId": world.outside.child}]},
         "input.children.0.childId"),
        ("no such child", {"children": [{"childId": str(uuid.uuid4())}]},
         "input.children.0.childId"),
        ("a child twice", {"children": ours * 2}, "input.children.1.childId"),
        ("born and unborn at once",
         {"children": [{"childId": world.inside.child, **unborn()}]}, "input.children.0"),
        ("an unborn child without the mother's council",
         {"children": [{"expectedDeliveryDate": days_ahead(30).date().isoformat()}]},
         "input.children.0.motherCouncil"),
        ("an unknown mother's council",
         {"children": [unborn(mother_council="NOT-A-COUNCIL-X")]},
         "input.children.0.motherCouncil"),
        ("a due date years away", {"children": [unborn(due_in_days=900)]},
         "input.children.0.expectedDeliveryDate"),
        ("no force", {"invitedForces": []}, "input.invitedForces"),
        ("an unknown force", {"invitedForces": ["NOT-A-FORCE-X"]}, "input.invitedForces.0"),
        ("a council as a force", {"invitedForces": [COUNCIL]}, "input.invitedForces.0"),
        ("a force twice", {"invitedForces": [FORCE, FORCE]}, "input.invitedForces.1"),
        ("recorded in the future", {"recordedAt": iso(days_ahead(1))}, "input.recordedAt"),
        ("a time without a zone", {"scheduledAt": "2026-12-24T10:00:00"}, "input.scheduledAt"),
        ("scheduled years ahead", {"scheduledAt": iso(days_ahead(800))}, "input.scheduledAt"),
        ("an empty reference", {"councilReference": "   "}, "input.councilReference"),
        ("a reference too long", {"councilReference": "R" * 65}, "input.councilReference"),
        ("a key too long", {"idempotencyKey": "K" * 129}, "input.idempotencyKey"),
        ("a discussion naming a discussion", {"strategyDiscussionId": ids["ours"]},
         "input.strategyDiscussionId"),
        ("a conference without its discussion", {"kind": icpc}, "input.strategyDiscussionId"),
        ("a conference after another council's discussion",
         {"kind": icpc, "strategyDiscussionId": ids["theirs"]}, "input.strategyDiscussionId"),
        ("a conference after a conference",
         {"kind": icpc, "strategyDiscussionId": ids["conference"]}, "input.strategyDiscussionId"),
        ("a conference before its discussion",
         {"kind": icpc, "strategyDiscussionId": ids["ours"], "scheduledAt": iso(hours_ago(40))},
         "input.scheduledAt"),
    ]  # fmt: skip


async def test_each_bad_push_is_named_and_stores_nothing(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    ours = await strategy_discussion(http, live_server, world.inside.child)
    theirs = await strategy_discussion(
        http, live_server, world.outside.child, council=OTHER_COUNCIL, forces=[OTHER_FORCE]
    )
    conference = await schedule(
        http,
        live_server,
        meeting(
            unique("ICPC"),
            kind="INITIAL_CHILD_PROTECTION_CONFERENCE",
            children=[{"childId": world.inside.child}],
            strategyDiscussionId=ours["id"],
        ),
    )
    ids = {"ours": ours["id"], "theirs": theirs["id"], "conference": conference["id"]}
    before = await _count(db, Meeting)
    for case, changes, field in _bad_payloads(world, ids):
        reference = unique("BAD")
        payload = {**meeting(reference, children=[{"childId": world.inside.child}]), **changes}
        body = await _council(http, live_server, SCHEDULE_MEETING, payload)
        assert _error(body) == ("INVALID_INPUT", field), case
        message = body["errors"][0]["message"]
        assert "NOT-A-" not in message, case
        assert world.outside.child not in message, case
        assert await _stored(db, reference) == 0, case
    assert await _count(db, Meeting) == before


# --- the invited force's side ---------------------------------------------------------------


async def test_an_invited_force_answers_and_reports_and_sees_only_its_own_invitation(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    stored = await schedule(
        http,
        live_server,
        meeting(unique("MTG-R"), children=[{"childId": world.inside.child}],
                forces=[FORCE, OTHER_FORCE]),
    )  # fmt: skip
    meeting_id = stored["id"]
    answer = {
        "meetingId": meeting_id,
        "response": "CANNOT_ATTEND",
        "reason": "NO_OFFICER_AVAILABLE",
        # Within the clock skew the hub allows before the invitation it just sent.
        "respondedAt": iso(hours_ago(0.02)),
    }
    body = await _police(http, live_server, RESPOND, answer, FORCE)
    assert "errors" not in body, body
    (invitation,) = body["data"]["respondToMeetingInvitation"]["invitations"]
    assert invitation["force"] == {"id": FORCE}
    assert (invitation["response"], invitation["responseReason"]) == (
        "CANNOT_ATTEND",
        "NO_OFFICER_AVAILABLE",
    )
    changes = await _changes(db, meeting_id)
    assert "errors" not in await _police(http, live_server, RESPOND, answer, FORCE)
    assert await _changes(db, meeting_id) == changes, "a replayed answer changes nothing"
    later = {"meetingId": meeting_id, "response": "WILL_ATTEND",
             "respondedAt": iso(hours_ago(0.01))}  # fmt: skip
    body = await _police(http, live_server, RESPOND, later, FORCE)
    (invitation,) = body["data"]["respondToMeetingInvitation"]["invitations"]
    assert (invitation["response"], invitation["responseReason"]) == ("WILL_ATTEND", None)
    # The first answer again, now older than the one recorded: refused.
    assert _error(await _police(http, live_server, RESPOND, answer, FORCE)) == ("CONFLICT", None)
    for bad, field in [
        ({**later, "response": "CANNOT_ATTEND"}, "input.reason"),
        ({**later, "reason": "OTHER"}, "input.reason"),
        ({**later, "respondedAt": iso(days_ahead(1))}, "input.respondedAt"),
    ]:
        assert _error(await _police(http, live_server, RESPOND, bad, FORCE)) == (
            "INVALID_INPUT",
            field,
        )
    report = {"meetingId": meeting_id, "report": "Synthetic written contribution."}
    body = await _police(http, live_server, SUBMIT_REPORT, report, FORCE)
    (invitation,) = body["data"]["submitMeetingReport"]["invitations"]
    assert invitation["reportText"] == report["report"]
    arrived = invitation["reportSubmittedAt"]
    assert arrived is not None
    body = await _police(http, live_server, SUBMIT_REPORT, report, FORCE)
    assert body["data"]["submitMeetingReport"]["invitations"][0]["reportSubmittedAt"] == arrived
    changed = {**report, "report": "Another text."}
    assert _error(await _police(http, live_server, SUBMIT_REPORT, changed, FORCE)) == (
        "CONFLICT",
        None,
    )
    assert _error(
        await _police(http, live_server, SUBMIT_REPORT, {**report, "report": " "}, FORCE)
    ) == ("INVALID_INPUT", "input.report")
    # The other invited force sees the meeting and its own invitation, not this force's report.
    body = await call(
        http, live_server, Role.POLICE_OFFICER, OTHER_FORCE, MEETING, {"id": meeting_id}
    )
    (theirs,) = body["data"]["meeting"]["invitations"]
    assert theirs["force"] == {"id": OTHER_FORCE}
    assert report["report"] not in json.dumps(body)
    # The council sees both forces' answers and the report.
    body = await call(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, MEETING, {"id": meeting_id}
    )
    invited = {i["force"]["id"]: i for i in body["data"]["meeting"]["invitations"]}
    assert invited[FORCE]["reportText"] == report["report"]
    assert invited[OTHER_FORCE]["response"] is None


async def test_a_force_cannot_answer_a_meeting_it_is_not_invited_to(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    stored = await strategy_discussion(http, live_server, world.inside.child)
    answer = {"meetingId": stored["id"], "response": "WILL_ATTEND",
              "respondedAt": iso(hours_ago(0.1))}  # fmt: skip
    report = {"meetingId": stored["id"], "report": "Synthetic."}
    missing = {**answer, "meetingId": str(uuid.uuid4())}
    answers = [
        await _police(http, live_server, RESPOND, answer, THIRD_FORCE),
        await _police(http, live_server, SUBMIT_REPORT, report, THIRD_FORCE),
        await _police(http, live_server, RESPOND, missing, FORCE),
    ]
    assert [_error(b) for b in answers] == [("NOT_FOUND", "input.meetingId")] * 3
    # Indistinguishable: the same message for another's meeting as for none.
    assert answers[0]["errors"][0]["message"] == answers[2]["errors"][0]["message"]
    async with db.transaction(write=False) as session:
        rows = (
            await session.execute(
                sa.select(MeetingInvitation).where(MeetingInvitation.meeting_id == stored["id"])
            )
        ).scalars()
        assert [(r.force_code, r.response, r.report_text) for r in rows] == [(FORCE, None, None)]


# --- after the meeting ----------------------------------------------------------------------


async def test_the_council_records_attendance_once(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    stored = await schedule(
        http,
        live_server,
        meeting(unique("MTG-A"), children=[{"childId": world.inside.child}],
                forces=[FORCE, OTHER_FORCE], scheduledAt=iso(hours_ago(3))),
    )  # fmt: skip
    held = iso(hours_ago(2))
    record = {
        "meetingId": stored["id"],
        "heldAt": held,
        "attendance": [
            {"force": FORCE, "attendance": "IN_PERSON", "attendeeRole": "SERGEANT"},
            {"force": OTHER_FORCE, "attendance": "WRITTEN_REPORT_ONLY"},
        ],
    }
    first, second = record["attendance"]
    for bad, field in [
        ({**record, "heldAt": iso(days_ahead(1))}, "input.heldAt"),
        ({**record, "attendance": [first]}, "input.attendance"),
        ({**record, "attendance": [first, first]}, "input.attendance.1.force"),
        ({**record, "attendance": [{**first, "force": THIRD_FORCE}, second]},
         "input.attendance.0.force"),
        ({**record, "attendance": [{**first, "attendeeRole": None}, second]},
         "input.attendance.0.attendeeRole"),
        ({**record, "attendance": [first, {**second, "attendeeRole": "CONSTABLE"}]},
         "input.attendance.1.attendeeRole"),
    ]:  # fmt: skip
        body = await _council(http, live_server, RECORD_ATTENDANCE, bad)
        assert _error(body) == ("INVALID_INPUT", field)
    async with db.transaction(write=False) as session:
        untouched = await session.get(Meeting, stored["id"])
        assert untouched is not None
        assert untouched.held_at is None
    body = await _council(http, live_server, RECORD_ATTENDANCE, record, council=OTHER_COUNCIL)
    assert _error(body) == ("NOT_FOUND", "input.meetingId")
    body = await _council(http, live_server, RECORD_ATTENDANCE, record)
    assert "errors" not in body, body
    done = body["data"]["recordMeetingAttendance"]
    assert done["heldAt"] is not None
    invited = {i["force"]["id"]: i for i in done["invitations"]}
    assert (invited[FORCE]["attendance"], invited[FORCE]["attendeeRole"]) == (
        "IN_PERSON",
        "SERGEANT",
    )
    assert (invited[OTHER_FORCE]["attendance"], invited[OTHER_FORCE]["attendeeRole"]) == (
        "WRITTEN_REPORT_ONLY",
        None,
    )
    changes = await _changes(db, stored["id"])
    again = await _council(http, live_server, RECORD_ATTENDANCE, {
        **record, "attendance": [second, first]})  # fmt: skip
    assert again["data"]["recordMeetingAttendance"]["heldAt"] == done["heldAt"]
    assert await _changes(db, stored["id"]) == changes
    different = {**record, "attendance": [{**first, "attendance": "VIDEO"}, second]}
    assert _error(await _council(http, live_server, RECORD_ATTENDANCE, different)) == (
        "CONFLICT",
        None,
    )
    # Once held, the invitation is closed to answers.
    late = {"meetingId": stored["id"], "response": "WILL_ATTEND",
            "respondedAt": iso(hours_ago(0.01))}  # fmt: skip
    assert _error(await _police(http, live_server, RESPOND, late, FORCE)) == ("CONFLICT", None)


# --- reading --------------------------------------------------------------------------------

LIST = """
query($filter: MeetingFilterInput, $first: Int, $after: String) {
  meetings(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id kind scheduledAt } } pageInfo { hasNextPage endCursor }
  }
}"""


async def _sees(
    http: httpx.AsyncClient, server: LiveServer, role: Role, org: str, meeting_id: str
) -> bool | str:
    """True/False: whether the caller gets the meeting; else the refusal's code."""
    body = await call(http, server, role, org, MEETING, {"id": meeting_id})
    if body.get("errors"):
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert body["data"] is None or body["data"]["meeting"] is None
        return codes.pop() if len(codes) == 1 else str(sorted(codes))
    listed = await call(http, server, role, org, LIST, {"first": 100})
    ids = {e["node"]["id"] for e in listed["data"]["meetings"]["edges"]}
    assert (meeting_id in ids) == (body["data"]["meeting"] is not None), (role, org)
    return body["data"]["meeting"] is not None


async def test_who_sees_a_meeting(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    ours = await strategy_discussion(http, live_server, world.inside.child)
    # Another council's pre-birth discussion where Birmingham is the mother's council.
    mother = await schedule(
        http,
        live_server,
        meeting(unique("PB"), children=[unborn(mother_council=COUNCIL)], forces=[OTHER_FORCE]),
        council=OTHER_COUNCIL,
    )
    police, council = Role.POLICE_OFFICER, Role.COUNCIL_SOCIAL_WORKER
    expected = [
        (council, COUNCIL, ours, True),
        (council, OTHER_COUNCIL, ours, False),
        (council, COUNCIL, mother, True),
        (council, OTHER_COUNCIL, mother, True),
        (police, FORCE, ours, True),
        (police, OTHER_FORCE, ours, False),
        (police, FORCE, mother, False),
        (police, OTHER_FORCE, mother, True),
        (Role.SCHOOL_DSL, ORGANISATION_OF[Role.SCHOOL_DSL], ours, "FORBIDDEN_FIELD"),
        (Role.AUDITOR, ORGANISATION_OF[Role.AUDITOR], ours, "FORBIDDEN_FIELD"),
        (Role.DPO, ORGANISATION_OF[Role.DPO], ours, "FORBIDDEN_FIELD"),
        (Role.HUB_ADMIN, ORGANISATION_OF[Role.HUB_ADMIN], ours, "FORBIDDEN_FIELD"),
    ]
    seen = [
        (role, org, found, await _sees(http, live_server, role, org, found["id"]))
        for role, org, found, _ in expected
    ]
    assert seen == [(r, o, f, s) for r, o, f, s in expected]


async def test_meetings_filter_and_page_with_sealed_cursors(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    council = Role.COUNCIL_SOCIAL_WORKER
    discussion = await strategy_discussion(http, live_server, world.inside.sibling)
    conference = await schedule(
        http,
        live_server,
        meeting(unique("ICPC"), kind="INITIAL_CHILD_PROTECTION_CONFERENCE",
                children=[{"childId": world.inside.sibling}],
                strategyDiscussionId=discussion["id"], scheduledAt=iso(days_ahead(10))),
    )  # fmt: skip
    by_child = {"childId": world.inside.sibling}
    body = await call(http, live_server, council, COUNCIL, LIST, {"filter": by_child, "first": 1})
    page = body["data"]["meetings"]
    assert [e["node"]["id"] for e in page["edges"]] == [conference["id"]]  # newest first
    assert page["pageInfo"]["hasNextPage"] is True
    body = await call(
        http, live_server, council, COUNCIL, LIST,
        {"filter": by_child, "first": 1, "after": page["pageInfo"]["endCursor"]},
    )  # fmt: skip
    assert [e["node"]["id"] for e in body["data"]["meetings"]["edges"]] == [discussion["id"]]
    kinds = {"childId": world.inside.sibling, "kinds": ["STRATEGY_DISCUSSION"]}
    body = await call(http, live_server, council, COUNCIL, LIST, {"filter": kinds})
    assert [e["node"]["id"] for e in body["data"]["meetings"]["edges"]] == [discussion["id"]]
    window = {"childId": world.inside.sibling, "scheduledFrom": iso(days_ahead(5)),
              "scheduledTo": iso(days_ahead(15))}  # fmt: skip
    body = await call(http, live_server, council, COUNCIL, LIST, {"filter": window})
    assert [e["node"]["id"] for e in body["data"]["meetings"]["edges"]] == [conference["id"]]
    # A meetings cursor is sealed to its list and caller.
    cursor = page["pageInfo"]["endCursor"]
    incidents = "query($a: String) { incidents(first: 1, after: $a) { edges { cursor } } }"
    body = await call(http, live_server, council, COUNCIL, incidents, {"a": cursor})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    body = await call(http, live_server, council, OTHER_COUNCIL, LIST, {"after": cursor})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_every_meeting_read_and_push_is_audited(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    pushed_by = str(uuid.uuid4())
    body = await call(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        SCHEDULE_MEETING,
        {"input": meeting(unique("AUD"), children=[{"childId": world.inside.child}, unborn()])},
        request_id=pushed_by,
    )
    meeting_id = body["data"]["scheduleMeeting"]["id"]
    pushed = [(a.operation, a.record_type, a.record_id) for a in await _events(db, pushed_by)]
    assert ("collection", "Meeting", meeting_id) in pushed
    for role, org in [(Role.COUNCIL_SOCIAL_WORKER, COUNCIL), (Role.POLICE_OFFICER, FORCE)]:
        request_id = str(uuid.uuid4())
        query = "query($id: ID!) { meeting(id: $id) { id kind invitations { response } } }"
        body = await call(http, live_server, role, org, query, {"id": meeting_id},
                          request_id=request_id)  # fmt: skip
        assert body["data"]["meeting"]["id"] == meeting_id
        accesses = await _events(db, request_id)
        assert [
            (a.operation, a.record_type, a.record_id, json.loads(a.fields),
             json.loads(a.child_ids), a.record_owner)
            for a in accesses
        ] == [
            ("consultation", "Meeting", meeting_id, ["id", "invitations", "kind"],
             [world.inside.child], COUNCIL)
        ], role  # fmt: skip
    # A read that finds nothing (another force) is no access to the meeting.
    request_id = str(uuid.uuid4())
    await call(
        http, live_server, Role.POLICE_OFFICER, OTHER_FORCE, MEETING, {"id": meeting_id},
        request_id=request_id,
    )  # fmt: skip
    assert [a.record_id for a in await _events(db, request_id)] == []


@pytest.mark.parametrize("role", [Role.POLICE_OFFICER, Role.SCHOOL_DSL, Role.AUDITOR, Role.DPO])
async def test_only_a_council_schedules(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World, role: Role
) -> None:
    reference = unique("FORB")
    payload = meeting(reference, children=[{"childId": world.inside.child}])
    body = await call(
        http, live_server, role, ORGANISATION_OF[role], SCHEDULE_MEETING, {"input": payload}
    )
    assert _error(body) == ("FORBIDDEN", None)
    assert await _stored(db, reference) == 0
