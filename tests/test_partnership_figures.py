"""The partnership figures' SQL on a designed set of rows, on SQLite and PostgreSQL: each count,
pre-birth apart, reports on time, UK months across the clocks changing, medians of odd and even
counts, overdue requests, protections without discussion, and the scopes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.db import Database, UTCDateTime
from hub.partnership import queries
from hub.partnership.figures import Grouping, Key, PartnershipData
from hub.partnership.queries import Period
from hub.timeliness.report_data import ReportScope, build_report
from tests.conftest import scratch_database

SD, ICPC, RCPC = (
    "strategy_discussion",
    "initial_child_protection_conference",
    "review_child_protection_conference",
)
ATTENDS, WRITES, NOT_PRE_BIRTH = "F_ATTENDS", "F_WRITES", "F_NOT_PRE_BIRTH"
C1, C2 = "C_ONE", "C_TWO"
AS_OF = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


# Only the columns the figures read (the domains' tables have more): the SQL is what is tested.
_metadata = sa.MetaData()
_meeting = sa.Table(
    "meeting", _metadata,
    sa.Column("id", sa.String(36), primary_key=True), sa.Column("council_code", sa.String(32)),
    sa.Column("kind", sa.String(64)), sa.Column("scheduled_at", UTCDateTime()),
    sa.Column("pre_birth", sa.Boolean()), sa.Column("held_at", UTCDateTime(), nullable=True),
)  # fmt: skip
_invitation = sa.Table(
    "meeting_invitation", _metadata,
    sa.Column("meeting_id", sa.String(36)), sa.Column("force_code", sa.String(32)),
    sa.Column("attendance", sa.String(32), nullable=True),
    sa.Column("attendee_role", sa.String(32), nullable=True),
    sa.Column("report_submitted_at", UTCDateTime(), nullable=True),
)  # fmt: skip
_request = sa.Table(
    "joint_visit_request", _metadata,
    sa.Column("council_code", sa.String(32)), sa.Column("force_code", sa.String(32)),
    sa.Column("needed_by", UTCDateTime()), sa.Column("recorded_at", UTCDateTime()),
    sa.Column("shared_at", UTCDateTime()), sa.Column("response", sa.String(32), nullable=True),
    sa.Column("responded_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
)  # fmt: skip
_protection = sa.Table(
    "police_protection", _metadata,
    sa.Column("id", sa.String(36), primary_key=True), sa.Column("force_code", sa.String(32)),
    sa.Column("child_id", sa.String(36)), sa.Column("taken_at", UTCDateTime()),
    sa.Column("placed_in", sa.String(32)),
    sa.Column("placed_council_code", sa.String(32), nullable=True),
    sa.Column("consulted_before", sa.Boolean()), sa.Column("alternatives_considered", sa.Text()),
)  # fmt: skip
_child = sa.Table(
    "child", _metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("responsible_council_code", sa.String(32)),
)  # fmt: skip

MEETINGS = [
    # Each: id, council, kind, when (UTC), whether pre-birth, whether held.
    ("m1", C1, SD, "2026-03-10T10:00", False, True),
    ("m2", C1, ICPC, "2026-03-31T23:30", False, True),  # 00:30 BST on 1 April: April's
    ("m3", C1, ICPC, "2026-04-10T10:00", True, True),
    ("m4", C1, RCPC, "2026-04-12T10:00", True, True),
    ("m5", C1, ICPC, "2026-04-20T10:00", False, False),  # not held yet: not counted
    ("m6", C2, ICPC, "2026-04-21T10:00", False, True),
    ("m7", C1, SD, "2026-02-27T10:00", False, True),  # before the period
]
INVITATIONS = [
    # meeting, force, attendance, report submitted
    ("m1", ATTENDS, "in_person", "2026-03-10T09:00"),
    ("m1", WRITES, "written_report_only", "2026-03-10T11:00"),  # after the meeting
    ("m2", ATTENDS, "video", None),
    ("m2", NOT_PRE_BIRTH, "in_person", None),
    ("m3", NOT_PRE_BIRTH, None, None),  # held, nothing recorded: absent
    ("m3", ATTENDS, "phone", None),
    ("m4", NOT_PRE_BIRTH, "apologies", None),
    ("m5", ATTENDS, None, None),
    ("m6", WRITES, "did_not_attend", None),
    ("m7", ATTENDS, "in_person", None),
]
# Who attended, by how: an officer's rank or role is recorded only for one who attended.
ROLE_SENT = {"in_person": "inspector", "video": "constable", "phone": "police_staff"}
REQUESTS = [
    # Each: council, force, recorded, hours to the answer, the answer, outcome, needed by.
    (C1, ATTENDS, "2026-03-05T10:00", 2, "officer_assigned", "held_jointly", "2026-03-06T10:00"),
    (C1, ATTENDS, "2026-03-06T10:00", 4, "officer_assigned", "social_worker_alone",
     "2026-03-07T10:00"),
    (C1, ATTENDS, "2026-04-02T10:00", 10, "not_available", None, "2026-04-03T10:00"),
    (C2, WRITES, "2026-04-03T10:00", None, None, None, "2026-04-04T10:00"),  # overdue
    (C2, WRITES, "2026-04-05T10:00", None, None, None, "2026-06-01T10:00"),  # not yet due
]  # fmt: skip
PROTECTIONS = [
    # id, force, child, taken, consulted before, alternatives, placed council
    ("p1", ATTENDS, "k1", "2026-03-15T10:00", True, "family_or_friends", None),
    ("p2", WRITES, "k2", "2026-04-15T10:00", False, "none", None),
    ("p3", WRITES, "k3", "2026-04-16T10:00", False, "", C1),  # no responsible council held
]
CHILDREN = [("k1", C1), ("k2", C2)]


@pytest.fixture(scope="module")
async def loaded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    directory: Path = tmp_path_factory.mktemp("partnership")
    async with scratch_database(directory, "partnership", migrate=False) as url:
        db = Database(url)
        try:
            async with db.engine.begin() as connection:
                await connection.run_sync(_metadata.create_all)
                await connection.execute(_meeting.insert(), [_meeting_row(*m) for m in MEETINGS])
                await connection.execute(
                    _invitation.insert(), [_invitation_row(*i) for i in INVITATIONS]
                )
                await connection.execute(_request.insert(), [_request_row(*r) for r in REQUESTS])
                await connection.execute(
                    _protection.insert(), [_protection_row(*p) for p in PROTECTIONS]
                )
                await connection.execute(
                    _child.insert(),
                    [{"id": c, "responsible_council_code": council} for c, council in CHILDREN],
                )
            yield db
        finally:
            await db.dispose()


def _meeting_row(*values: Any) -> dict[str, Any]:
    id_, council, kind, scheduled, pre_birth, held = values
    at = _at(scheduled)
    return {
        "id": id_,
        "council_code": council,
        "kind": kind,
        "scheduled_at": at,
        "pre_birth": pre_birth,
        "held_at": at if held else None,
    }


def _invitation_row(*values: Any) -> dict[str, Any]:
    meeting, force, attendance, report = values
    return {
        "meeting_id": meeting,
        "force_code": force,
        "attendance": attendance,
        "attendee_role": ROLE_SENT.get(attendance),
        "report_submitted_at": _at(report) if report else None,
    }


def _request_row(*values: Any) -> dict[str, Any]:
    council, force, recorded, hours, answer, outcome, needed = values
    shared = _at(recorded) + dt.timedelta(minutes=5)
    return {
        "council_code": council,
        "force_code": force,
        "recorded_at": _at(recorded),
        "shared_at": shared,
        "responded_at": shared + dt.timedelta(hours=hours) if hours is not None else None,
        "response": answer,
        "outcome": outcome,
        "needed_by": _at(needed),
    }


def _protection_row(*values: Any) -> dict[str, Any]:
    id_, force, child, taken, consulted, alternatives, placed = values
    return {
        "id": id_,
        "force_code": force,
        "child_id": child,
        "taken_at": _at(taken),
        "placed_in": "foster_care",
        "placed_council_code": placed,
        "consulted_before": consulted,
        "alternatives_considered": alternatives,
    }


async def _measure(db: Database, scope: ReportScope | None = None) -> PartnershipData:
    period = Period.of(dt.date(2026, 3, 1), dt.date(2026, 4, 30), AS_OF)
    async with db.transaction(write=False) as session:
        return await queries.measure(
            session, period=period, scope=scope or ReportScope(), pseudonymise=lambda c: f"P-{c}"
        )


def _attendance(data: PartnershipData, key: Key) -> dict[tuple[str, bool], tuple[int, ...]]:
    """(kind, pre-birth) -> (invited, in person, virtual, written, absent, reports, on time)."""
    return {
        (a.kind, a.pre_birth): (
            a.invitations,
            a.in_person,
            a.virtual,
            a.written_report_only,
            a.absent,
            a.reports_submitted,
            a.reports_on_time,
        )
        for a in data.attendance
        if a.key == key
    }


async def test_attendance_by_force_with_pre_birth_conferences_apart(loaded: Database) -> None:
    data = await _measure(loaded)
    assert _attendance(data, Key(Grouping.FORCE, ATTENDS)) == {
        (SD, False): (1, 1, 0, 0, 0, 1, 1),
        (ICPC, False): (1, 0, 1, 0, 0, 0, 0),
        (ICPC, True): (1, 0, 1, 0, 0, 0, 0),
    }
    assert _attendance(data, Key(Grouping.FORCE, WRITES)) == {
        (SD, False): (1, 0, 0, 1, 0, 1, 0),  # its report came after the meeting
        (ICPC, False): (1, 0, 0, 0, 1, 0, 0),
    }
    # Attends the conferences for born children, never the pre-birth ones.
    assert _attendance(data, Key(Grouping.FORCE, NOT_PRE_BIRTH)) == {
        (ICPC, False): (1, 1, 0, 0, 0, 0, 0),
        (ICPC, True): (1, 0, 0, 0, 1, 0, 0),
        (RCPC, True): (1, 0, 0, 0, 1, 0, 0),
    }
    absent = next(
        a for a in data.attendance
        if a.key == Key(Grouping.FORCE, NOT_PRE_BIRTH) and a.kind == ICPC and a.pre_birth
    )  # fmt: skip
    assert (absent.not_recorded, absent.apologies, absent.share_absent) == (1, 0, 1.0)


async def test_who_attended_is_counted_per_force_by_rank_or_role(loaded: Database) -> None:
    data = await _measure(loaded)
    found = {
        s.force_code: (s.attended, s.inspector, s.constable, s.police_staff, s.inspector_or_above)
        for s in data.seniority
    }
    # ATTENDS: in person at m1, by video at m2, by phone at m3 (m5 not held, m7 before the
    # period); NOT_PRE_BIRTH in person at m2; WRITES never attended.
    assert found == {ATTENDS: (3, 1, 1, 1, 1), NOT_PRE_BIRTH: (1, 1, 0, 0, 1)}
    council = await _measure(loaded, ReportScope(council_code=C2))
    assert council.seniority == ()  # C2's one meeting held: WRITES did not attend


async def test_attendance_by_month_council_and_in_total(loaded: Database) -> None:
    data = await _measure(loaded)
    # The conference at 23:30 UTC on 31 March was held on 1 April in the UK.
    assert _attendance(data, Key(Grouping.MONTH, "2026-03")) == {(SD, False): (2, 1, 0, 1, 0, 2, 1)}
    assert _attendance(data, Key(Grouping.MONTH, "2026-04")) == {
        (ICPC, False): (3, 1, 1, 0, 1, 0, 0),
        (ICPC, True): (2, 0, 1, 0, 1, 0, 0),
        (RCPC, True): (1, 0, 0, 0, 1, 0, 0),
    }
    assert _attendance(data, Key(Grouping.COUNCIL, C2)) == {(ICPC, False): (1, 0, 0, 0, 1, 0, 0)}
    total = _attendance(data, Key(Grouping.TOTAL, None))
    assert sum(row[0] for row in total.values()) == 8  # nine invitations held, one not yet


async def test_joint_visit_requests_answers_and_median_answer_times(loaded: Database) -> None:
    data = await _measure(loaded)
    rows = {row.key: row for row in data.joint_visits}
    attends = rows[Key(Grouping.FORCE, ATTENDS)]
    assert (attends.requests, attends.answered, attends.unanswered) == (3, 3, 0)
    assert (attends.officer_assigned, attends.not_available) == (2, 1)
    assert (attends.held_jointly, attends.social_worker_alone, attends.cancelled) == (1, 1, 0)
    assert attends.median_answer_hours == pytest.approx(4, abs=1e-6)  # of 2, 4 and 10
    writes = rows[Key(Grouping.FORCE, WRITES)]
    assert (writes.requests, writes.answered, writes.unanswered, writes.overdue) == (2, 0, 2, 1)
    assert writes.median_answer_hours is None
    assert rows[Key(Grouping.MONTH, "2026-03")].median_answer_hours == pytest.approx(3, abs=1e-6)
    assert rows[Key(Grouping.MONTH, "2026-04")].median_answer_hours == pytest.approx(10, abs=1e-6)
    total = rows[Key(Grouping.TOTAL, None)]
    assert (total.requests, total.share_answered) == (5, pytest.approx(0.6))
    assert total.median_answer_hours == pytest.approx(4, abs=1e-6)
    assert rows[Key(Grouping.COUNCIL, C2)].share_fulfilled == 0


async def test_protections_without_discussion_are_counted_and_listed(loaded: Database) -> None:
    data = await _measure(loaded)
    rows = {row.key: row for row in data.protections}
    writes = rows[Key(Grouping.FORCE, WRITES)]
    assert (writes.protections, writes.without_discussion, writes.no_alternatives) == (2, 2, 2)
    assert rows[Key(Grouping.FORCE, ATTENDS)].without_discussion == 0
    # p3's child has no responsible council in the hub: it counts where it was placed.
    one = rows[Key(Grouping.COUNCIL, C1)]
    assert (one.protections, one.without_discussion) == (2, 1)
    assert [(f.record_id, f.council_code, f.child) for f in data.findings] == [
        ("p2", C2, "P-k2"),
        ("p3", C1, "P-k3"),
    ]
    assert data.findings[0].month == "2026-04"


async def test_a_force_and_a_council_read_their_own_figures_only(loaded: Database) -> None:
    force = await _measure(loaded, ReportScope(force_code=NOT_PRE_BIRTH))
    assert {a.key.value for a in force.attendance if a.key.grouping is Grouping.FORCE} == {
        NOT_PRE_BIRTH
    }
    assert not force.joint_visits
    assert not force.protections
    council = await _measure(loaded, ReportScope(council_code=C2))
    assert {a.key.value for a in council.attendance if a.key.grouping is Grouping.COUNCIL} == {C2}
    assert [j.requests for j in council.joint_visits if j.key.grouping is Grouping.TOTAL] == [2]
    assert [f.record_id for f in council.findings] == ["p2"]
    # A council's protections: its children's (p1), and those placed with it of a child with no
    # responsible council held (p3).
    placed = await _measure(loaded, ReportScope(council_code=C1))
    assert [p.protections for p in placed.protections if p.key.grouping is Grouping.TOTAL] == [2]
    assert [f.record_id for f in placed.findings] == ["p3"]


async def test_a_kind_keeps_only_its_own_section(loaded: Database) -> None:
    pre_birth = await _measure(loaded, ReportScope(kind=RCPC))
    assert {a.kind for a in pre_birth.attendance} == {RCPC}
    assert not pre_birth.joint_visits
    assert not pre_birth.findings
    protections = await _measure(loaded, ReportScope(kind="police_protection"))
    assert not protections.attendance
    assert len(protections.findings) == 2
    assert not (await _measure(loaded, ReportScope(kind="domestic_abuse"))).attendance


# Rendering: the figures above in HTML, Markdown and CSV, with a hostile organisation name. -----


async def test_the_report_renders_the_figures_in_every_format(loaded: Database) -> None:
    import csv  # noqa: PLC0415
    import dataclasses  # noqa: PLC0415
    import io  # noqa: PLC0415

    from hub.timeliness.report import render_csv, render_html, render_markdown  # noqa: PLC0415
    from tests.test_timeliness_report import EVIL, TARGETS, Markup, pseudonym  # noqa: PLC0415

    figures = await _measure(loaded)
    empty = build_report(
        [],
        TARGETS,
        period_from=dt.date(2026, 3, 1),
        period_to=dt.date(2026, 4, 30),
        as_of=AS_OF,
        pseudonymise=pseudonym,
        names={NOT_PRE_BIRTH: EVIL},
    )
    data = dataclasses.replace(empty, partnership=figures)
    page = render_html(data)
    markup = Markup()
    markup.feed(page)
    markup.close()
    assert (markup.unbalanced, markup.stack) == ([], [])
    assert len(markup.ids) == len(set(markup.ids))
    assert "<script>" not in page
    drawn = {
        (chart["data-chart"], chart.get("data-target")): markup.series[index]
        for index, chart in enumerate(markup.charts)
    }
    assert {("rect", "absent")} <= drawn["attendance-by-force", "pre_birth_conference"]
    assert ("rect", "written-only") in drawn["attendance-by-force", "strategy_discussion"]
    assert ("rect", "unanswered") in drawn["joint-visits-by-council", None]
    assert ("rect", "without-discussion") in drawn["protections-by-force", None]
    markdown = render_markdown(data)
    assert "### Protections without prior discussion (2)" in markdown
    assert "&lt;script&gt;" in markdown
    rows = list(csv.DictReader(io.StringIO(render_csv(data))))
    findings = [r for r in rows if r["section"] == "protection_finding"]
    assert [(r["record_id"], r["child"], r["taken_at"]) for r in findings] == [
        ("p2", "P-k2", "2026-04-15T10:00:00Z"),
        ("p3", "P-k3", "2026-04-16T10:00:00Z"),
    ]
    total = next(r for r in rows if r["section"] == "joint_visits" and r["grouping"] == "total")
    assert (total["requests"], total["unanswered"], total["median_answer_hours"]) == ("5", "2", "4")
