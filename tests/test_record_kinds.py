"""Record kinds learnt from declarations (`hub.timeliness.kinds`): a kind declared alone reaches
timelines and both report paths; meetings, joint visit requests and police protections are
measured by theirs, T4 in working days across Christmas.

The records are written as rows (their own pushes have their own tests), in December 2025 and
January 2026, a period no other test writes events in; the GraphQL timelines are read over real
HTTP. On PostgreSQL the SQL path (the stage facts) gives the Python path's figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.models import Role
from hub.children.models import Child
from hub.children.service import ChildDetails
from hub.db import Database
from hub.incidents import service as incidents
from hub.incidents.models import Incident, IncidentType
from hub.incidents.service import IncidentReport, InvolvedChild
from hub.joint_visits.models import JointVisitRequest
from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation
from hub.protection.models import PoliceProtection
from hub.timeliness import extract, kinds, service
from hub.timeliness.models import RecordReceipt
from hub.timeliness.report_data import ReportData, ReportScope
from hub.timeliness.stats import StageStats
from hub.timeliness.targets import parse_targets
from tests.conftest import is_postgres, unique
from tests.factories import COUNCIL, FORCE, OTHER_FORCE

UTC = dt.UTC
FIRST, LAST = dt.date(2025, 12, 1), dt.date(2026, 1, 31)


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    year = 2025 if month == 12 else 2026
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


async def _report(db: Database, kind: str, *, use_sql: bool, **more: Any) -> ReportData:
    return await extract.report(
        db,
        targets=more.pop("targets", None) or extract.targets_for(_settings()),
        period_from=more.pop("period_from", FIRST),
        period_to=more.pop("period_to", LAST),
        scope=ReportScope(kind=kind),
        as_of=dt.datetime.now(UTC),
        pseudonym_key="test-key",
        use_sql=use_sql,
    )


def _settings() -> Any:
    from hub.settings import get_settings  # noqa: PLC0415

    return get_settings()


def _figures(rows: Sequence[StageStats]) -> dict[tuple[str, str | None], tuple[Any, ...]]:
    return {
        (r.stage, r.target_id): (r.count, r.open, r.within, r.breached, r.median_hours)
        for r in rows
    }


def _ranks(rows: Sequence[StageStats]) -> list[float]:
    return [
        -1.0 if v is None else v for s in rows for v in (s.median_hours, s.p90_hours, s.max_hours)
    ]


async def _both(db: Database, kind: str, **more: Any) -> ReportData:
    """The Python path's report; on PostgreSQL, checked against the SQL path's."""
    python = await _report(db, kind, use_sql=False, **dict(more))
    if is_postgres():
        sql = await _report(db, kind, use_sql=True, **dict(more))
        for name in ("by_force", "by_council", "by_kind", "by_month"):
            got, expected = getattr(sql, name), getattr(python, name)
            assert [
                dataclasses.replace(s, median_hours=None, p90_hours=None, max_hours=None)
                for s in got
            ] == [
                dataclasses.replace(s, median_hours=None, p90_hours=None, max_hours=None)
                for s in expected
            ], name
            assert _ranks(got) == pytest.approx(_ranks(expected)), name
        assert sorted((b.target_id, b.record_id, b.council_code) for b in sql.breaches) == sorted(
            (b.target_id, b.record_id, b.council_code) for b in python.breaches
        )
    return python


# -- a kind declared alone ----------------------------------------------------------------------

_ECHO_TARGETS = """
schema = 1
[[targets]]
id = "ECHO"
kind = "incident_echo"
stage = "echo_recorded_to_shared"
unit = "hours"
limit = 1
description = "Shared within the hour of being recorded."
source = "Synthetic (UNCONFIRMED)."
"""


async def _load_echoes(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    from hub.timeliness.timeline import RecordTimes  # noqa: PLC0415

    query = sa.select(Incident).where(Incident.police_reference.startswith("ECHO-"))  # type: ignore[attr-defined]
    if ids is not None:
        query = query.where(Incident.id.in_(ids))  # type: ignore[attr-defined]
    if period is not None:
        query = query.where(
            Incident.occurred_at >= period.start,  # type: ignore[operator]
            Incident.occurred_at < period.end,  # type: ignore[operator]
            Incident.shared_at <= period.as_of,  # type: ignore[operator]
        )
    return [
        kinds.Loaded(
            "IncidentEcho",
            i.id,
            [
                RecordTimes(
                    "incident_echo", i.id, i.force_code, i.occurred_at, i.recorded_at, i.shared_at
                )
            ],
            named=[(i.location_council_code, None)],
        )
        for i in (await session.execute(query)).scalars()
    ]


ECHO = kinds.RecordKind(
    record_type="IncidentEcho",
    table="incident",
    kinds={"incident_echo": "An incident seen again, declared by a test alone"},
    readings={"event_at": "the incident", "recorded_at": "recorded", "shared_at": "shared"},
    stages=(
        kinds.Stage("echo_recorded_to_shared", "recorded_at", "shared_at", "recorded to shared"),
    ),
    receivers=kinds.Receivers.NAMED,
    load=_load_echoes,
    sql=kinds.FactsSql(
        base="SELECT * FROM incident i WHERE i.police_reference LIKE 'ECHO-%' /*ONLY*/",
        only="i.id",
        records="""SELECT id AS subject_id, id AS record_id, 'incident_echo' AS kind, force_code,
          occurred_at AS event_at, recorded_at, shared_at FROM {base}""",
        named="SELECT id AS subject_id, location_council_code AS council, NULL AS child_id"
        " FROM {base}",
    ),
    models={Incident: "id"},
    position=99,
)


@pytest.fixture
async def echo(db: Database) -> AsyncIterator[kinds.RecordKind]:
    kinds.register(ECHO)
    try:
        yield ECHO
    finally:
        kinds.unregister(ECHO.record_type)
        if is_postgres():
            async with db.transaction(write=True) as session:
                await session.execute(
                    sa.text("DELETE FROM stage_fact WHERE kind = 'incident_echo'")
                )


async def test_a_kind_declared_alone_is_in_timelines_and_report_figures(
    db: Database, echo: kinds.RecordKind
) -> None:
    assert "incident_echo" in kinds.KINDS
    assert kinds.KIND_STAGES["incident_echo"] == ("echo_recorded_to_shared",)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    recorded = now - dt.timedelta(hours=5)
    async with db.transaction(write=True) as session:
        row, _ = await incidents.report(
            session,
            force_code=FORCE,
            client_id="test",
            incident=IncidentReport(
                police_reference=unique("ECHO-"),
                type=IncidentType.NEGLECT,
                occurred_at=recorded - dt.timedelta(hours=1),
                recorded_at=recorded,
                location_council=COUNCIL,
                children=(
                    InvolvedChild(
                        child=ChildDetails(
                            police_reference=unique("ECHO-C"),
                            given_name="Sam",
                            family_name="Example",
                            date_of_birth=dt.date(2014, 3, 1),
                            responsible_council=COUNCIL,
                        )
                    ),
                ),
            ),
        )
    async with db.transaction(write=False) as session:
        found = await service.timelines(session, [("IncidentEcho", row.id)])
    (timeline,) = found.values()
    assert [r.council_code for r in timeline.recipients] == [COUNCIL]
    targets = parse_targets(_ECHO_TARGETS)
    today = now.date()
    data = await _both(
        db,
        "incident_echo",
        targets=targets,
        period_from=today - dt.timedelta(days=2),
        period_to=today,
    )
    (figure,) = [s for s in data.by_kind if s.stage == "echo_recorded_to_shared"]
    assert (figure.target_id, figure.count, figure.breached) == ("ECHO", 1, 1)
    assert figure.median_hours == pytest.approx((row.shared_at - recorded).total_seconds() / 3600)
    assert [b.target_id for b in data.breaches] == ["ECHO"]


def test_a_declaration_that_contradicts_another_is_refused() -> None:
    clash = dataclasses.replace(
        ECHO,
        record_type="Clash",
        kinds={"clash": "x"},
        stages=(kinds.Stage("event_to_shared", "recorded_at", "shared_at", "not the same"),),
    )
    with pytest.raises(kinds.DeclarationError, match="means other readings"):
        kinds.register(clash)
    unknown = dataclasses.replace(ECHO, record_type="Unknown", kinds={"unknown": "x"})
    unknown = dataclasses.replace(
        unknown, stages=(kinds.Stage("unknown_stage", "shared_at", "reading_4_at", "x"),)
    )
    with pytest.raises(kinds.DeclarationError, match="not among its readings"):
        kinds.register(unknown)
    assert "Clash" not in {k.record_type for k in kinds.declared()}


# -- meetings, joint visits, police protections ------------------------------------------------


@dataclasses.dataclass
class Story:
    discussion: str
    within: str  # initial conference held within 15 working days (2 forces invited)
    late: str  # initial conference held a day past them
    requests: tuple[str, str]
    protection: str


async def _child(session: AsyncSession) -> str:
    child = Child(
        given_name="Sam",
        family_name="Example",
        date_of_birth=dt.date(2014, 3, 1),
        responsible_council_code=COUNCIL,
    )
    session.add(child)
    await session.flush()
    return child.id


def _meeting(kind: str, scheduled: dt.datetime, **more: Any) -> Meeting:
    return Meeting(
        council_code=COUNCIL,
        council_reference=unique("MEET-"),
        payload_hash="0" * 64,
        kind=kind,
        scheduled_at=scheduled,
        mode="in_person",
        recorded_at=scheduled - dt.timedelta(days=3),
        shared_at=scheduled - dt.timedelta(days=3),
        **more,
    )


_STORIES: dict[str, Story] = {}


@pytest.fixture
async def story(db: Database, database_url: str) -> Story:
    """The letter's meetings: a strategy discussion on Thursday 18 December 2025; conferences on
    12 January (15 working days later, the Christmas bank holidays skipped) and 14 January.
    Written once per database: the tests read the same figures."""
    if database_url not in _STORIES:
        _STORIES[database_url] = await _write_story(db)
    return _STORIES[database_url]


async def _write_story(db: Database) -> Story:
    async with db.transaction(write=True) as session:
        child = await _child(session)
        discussion = _meeting("strategy_discussion", at(12, 18), held_at=at(12, 18))
        session.add(discussion)
        await session.flush()
        within = _meeting(
            "initial_child_protection_conference",
            at(1, 12),
            held_at=at(1, 12),
            strategy_discussion_id=discussion.id,
        )
        late = _meeting(
            "initial_child_protection_conference",
            at(1, 14),
            held_at=at(1, 14),
            strategy_discussion_id=discussion.id,
        )
        session.add_all([within, late])
        await session.flush()
        session.add_all(
            [MeetingChild(meeting_id=m.id, child_id=child) for m in (discussion, within, late)]
        )
        session.add_all(
            [
                # The discussion: answered in 2 hours, its written report after the meeting.
                MeetingInvitation(
                    meeting_id=discussion.id,
                    force_code=FORCE,
                    invited_at=at(12, 17, 12),
                    responded_at=at(12, 17, 14),
                    report_submitted_at=at(12, 18, 11),
                ),
                # The first conference: one force answers in 48 hours and reports an hour
                # before; the other never answers nor reports.
                MeetingInvitation(
                    meeting_id=within.id,
                    force_code=FORCE,
                    invited_at=at(12, 22, 9),
                    responded_at=at(12, 24, 9),
                    report_submitted_at=at(1, 12, 9),
                ),
                MeetingInvitation(
                    meeting_id=within.id, force_code=OTHER_FORCE, invited_at=at(12, 22, 9)
                ),
                MeetingInvitation(meeting_id=late.id, force_code=FORCE, invited_at=at(12, 22, 9)),
            ]
        )
        requests = []
        for answered in (at(12, 10, 10, 5), at(12, 11, 8, 5)):  # in 2 hours; in 24
            request = JointVisitRequest(
                council_code=COUNCIL,
                council_reference=unique("JV-"),
                payload_hash="0" * 64,
                force_code=FORCE,
                child_id=child,
                kind="visit",
                urgency="within_24_hours",
                needed_by=at(12, 10, 12),
                recorded_at=at(12, 10, 8),
                shared_at=at(12, 10, 8, 5),
                response="officer_assigned",
                responded_at=answered,
            )
            session.add(request)
            requests.append(request)
        protection = PoliceProtection(
            force_code=FORCE,
            police_reference=unique("PP-"),
            payload_hash="0" * 64,
            child_id=child,
            taken_at=at(12, 5, 20),
            recorded_at=at(12, 5, 20, 30),
            shared_at=at(12, 5, 20, 45),
            placed_in="foster_care",
            consulted_before=False,
            alternatives_considered="none",
            pushed_by_client="test",
        )
        session.add(protection)
        await session.flush()
        session.add(
            RecordReceipt(
                record_type="PoliceProtection",
                record_id=protection.id,
                organisation_code=COUNCIL,
                first_seen_at=at(12, 5, 21),
                acknowledged_at=at(12, 5, 22, 45),
            )
        )
        return Story(
            discussion.id, within.id, late.id, (requests[0].id, requests[1].id), protection.id
        )


def _by_target(data: ReportData) -> dict[tuple[str, str | None], tuple[Any, ...]]:
    return _figures(data.by_kind)


async def test_t4_counts_working_days_across_christmas(db: Database, story: Story) -> None:
    data = await _both(db, "initial_child_protection_conference")
    figures = _by_target(data)
    # Three invitations to the two conferences: two held within 15 working days (25 calendar
    # days, Christmas Day, Boxing Day and New Year's Day skipped), one a day past the deadline.
    count, open_, within, breached, median = figures["discussion_to_conference", "T4"]
    assert (count, open_, within, breached) == (3, 0, 2, 1)
    assert median == 25 * 24
    (late,) = [b for b in data.breaches if b.target_id == "T4"]
    assert late.record_id == story.late
    assert late.deadline == at(1, 13)  # 15 working days after 10:00 on 18 December
    # Answers: one in 48 hours (on the deadline: met); two never (past it: breached).
    assert figures["invitation_to_answer", "ICPC-ANSWER"][:4] == (1, 2, 1, 2)
    # Reports: one an hour before the conference; two never (the conferences are past).
    assert figures["invitation_to_report", "ICPC-REPORT"][:4] == (1, 2, 1, 2)
    forces = {(s.group.force_code, s.stage, s.target_id): s for s in data.by_force}
    assert forces[OTHER_FORCE, "invitation_to_answer", "ICPC-ANSWER"].breached == 1
    assert forces[FORCE, "discussion_to_conference", "T4"].breached == 1


async def test_a_strategy_discussion_report_after_it_is_late(db: Database, story: Story) -> None:
    data = await _both(db, "strategy_discussion")
    figures = _by_target(data)
    assert figures["invitation_to_answer", "SD-ANSWER"] == (1, 0, 1, 0, 2.0)
    assert figures["invitation_to_report", "SD-REPORT"][:4] == (1, 0, 0, 1)
    (late,) = [b for b in data.breaches if b.target_id == "SD-REPORT"]
    assert (late.record_id, late.deadline) == (story.discussion, at(12, 18))
    assert "discussion_to_conference" not in {s.stage for s in data.by_kind}


async def test_joint_visit_answers_are_held_to_hours_and_to_the_needed_by_time(
    db: Database, story: Story
) -> None:
    data = await _both(db, "joint_visit_request")
    figures = _by_target(data)
    assert figures["request_to_answer", "JV-ANSWER"][:4] == (2, 0, 1, 1)
    assert figures["request_to_answer", "JV-NEEDED-BY"][:4] == (2, 0, 1, 1)
    late = {(b.target_id, b.record_id) for b in data.breaches}
    assert late == {("JV-ANSWER", story.requests[1]), ("JV-NEEDED-BY", story.requests[1])}
    (council,) = {s.group.council_code for s in data.by_council}
    assert council == COUNCIL


async def test_a_police_protection_has_the_sharing_stages(db: Database, story: Story) -> None:
    data = await _both(db, "police_protection")
    figures = _by_target(data)
    assert figures["event_to_shared", "PP-SHARE"] == (1, 0, 1, 0, 0.75)
    assert figures["shared_to_acknowledged", "PP-ACK"] == (1, 0, 1, 0, 2.0)
    assert figures["event_to_recorded", None][:4] == (1, 0, 0, 0)
    months = {s.group.month for s in data.by_month}
    assert months == {"2025-12"}
    async with db.transaction(write=False) as session:
        found = await service.timelines(session, [("PoliceProtection", story.protection)])
    (timeline,) = found.values()
    assert [r.council_code for r in timeline.recipients] == [COUNCIL]


MEETING_TIMELINE = """query($id: ID!) { meeting(id: $id) { id timeline {
  kind eventAt sharedAt
  stages { stage force { id } council { id } startedAt endedAt delayHours targetId deadline
    status } } } }"""


async def test_a_meetings_timeline_is_per_force_and_a_force_sees_its_own(
    as_role: Any, story: Story
) -> None:
    council = await as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)(
        MEETING_TIMELINE, {"id": story.within}
    )
    assert "errors" not in council, council
    stages = council["data"]["meeting"]["timeline"]["stages"]
    found = {(s["force"]["id"], s["stage"], s["targetId"]): s for s in stages}
    t4 = found[FORCE, "discussion_to_conference", "T4"]
    assert (t4["status"], t4["delayHours"]) == ("WITHIN", 600.0)
    assert dt.datetime.fromisoformat(t4["deadline"]) == at(1, 13)
    assert found[OTHER_FORCE, "invitation_to_answer", "ICPC-ANSWER"]["status"] == "BREACHED"
    assert found[FORCE, "invitation_to_report", "ICPC-REPORT"]["status"] == "WITHIN"
    assert {s["council"]["id"] for s in stages} == {COUNCIL}
    police = await as_role(Role.POLICE_OFFICER, OTHER_FORCE)(MEETING_TIMELINE, {"id": story.within})
    assert "errors" not in police, police
    theirs = police["data"]["meeting"]["timeline"]["stages"]
    assert theirs, "the invited force sees its own stages"
    assert {s["force"]["id"] for s in theirs} == {OTHER_FORCE}


@pytest.mark.skipif(not is_postgres(), reason="stage facts serve PostgreSQL's report")
async def test_the_new_kinds_facts_kept_on_write_equal_a_rebuild(
    db: Database, story: Story
) -> None:
    from hub.timeliness import facts  # noqa: PLC0415

    columns = ", ".join(facts.COLUMNS)
    query = sa.text(
        f"SELECT {columns} FROM stage_fact WHERE record_type IN"  # noqa: S608 - fixed columns
        " ('Meeting', 'JointVisitRequest', 'PoliceProtection') ORDER BY record_type, record_id,"
        " council_code, force_code"
    )
    async with db.transaction(write=False) as session:
        kept = [dict(r) for r in (await session.execute(query)).mappings()]
    assert {r["record_id"] for r in kept} >= {story.within, story.protection, *story.requests}
    # A strategy discussion held later moves its conferences' T4 start: the facts follow.
    await _discussion_held(db, story, at(12, 19))
    async with db.transaction(write=False) as session:
        moved = (
            await session.execute(
                sa.text("SELECT reading_3_at FROM stage_fact WHERE record_id = :id"),
                {"id": story.late},
            )
        ).scalar_one()
    assert moved == at(12, 19)
    async with db.transaction(write=True) as session:
        kept = [dict(r) for r in (await session.execute(query)).mappings()]
        await session.run_sync(lambda s: facts.rebuild(s.connection()))
        rebuilt = [dict(r) for r in (await session.execute(query)).mappings()]
    assert kept == rebuilt
    await _discussion_held(db, story, at(12, 18))


async def _discussion_held(db: Database, story: Story, held: dt.datetime) -> None:
    async with db.transaction(write=True) as session:
        discussion = await session.get(Meeting, story.discussion)
        assert discussion is not None
        discussion.held_at = held
