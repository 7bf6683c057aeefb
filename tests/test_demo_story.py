"""The demo tells the story: after loading it, the report shows a prompt, a late and a batching
force at a glance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hub import demo
from hub.closures import demo_story as closure_story
from hub.db import Database
from hub.partnership.demo_story import ATTENDS, NOT_PRE_BIRTH, UNANSWERED_COUNCIL, WRITES
from hub.partnership.figures import (
    CONFERENCES,
    MEETING_KINDS,
    Attendance,
    Grouping,
    Key,
    PartnershipData,
)
from hub.settings import Settings
from hub.timeliness import extract
from hub.timeliness.decisions import DecisionsData
from hub.timeliness.demo_story import BATCHING, COUNCIL_OF, LATE, PROMPT, next_monday_nine
from hub.timeliness.report_data import ReportScope
from hub.timeliness.report_html import render_html
from hub.vetting import demo_story as vetting_story


def test_uploads_are_on_monday_at_nine_uk_time() -> None:
    summer = next_monday_nine(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))  # a Wednesday, BST
    assert summer == dt.datetime(2026, 7, 6, 8, tzinfo=dt.UTC)
    monday = next_monday_nine(dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC))  # a Monday after nine
    assert monday == dt.datetime(2026, 1, 12, 9, tzinfo=dt.UTC)


async def test_the_demo_shows_late_and_batching_forces(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    settings = Settings(database_url=url, data_dir=tmp_path)
    printed = await demo.load(settings, base_url="http://127.0.0.1:9")
    assert "== auditor (OFSTED)" in printed
    assert "token:" in printed
    db = Database(url)
    today = dt.datetime.now(dt.UTC).date()
    try:
        data = await extract.report(
            db,
            targets=extract.targets_for(settings),
            period_from=today - dt.timedelta(days=190),
            period_to=today,
            scope=ReportScope(),
            as_of=dt.datetime.now(dt.UTC),
            pseudonym_key="demo",
        )
    finally:
        await db.dispose()
    scores = {s.force_code: s.score for s in data.batching_scores}
    assert scores[BATCHING] > 0.9
    assert scores[PROMPT] < 0.02
    assert scores[LATE] < 0.02
    assert {b.force_code for b in data.bursts} == {BATCHING}
    medians = {r.group.force_code: r.median_hours for r in data.by_force if r.target_id == "T9"}
    assert medians[PROMPT] is not None
    assert medians[PROMPT] < 4
    assert medians[LATE] is not None
    assert medians[LATE] > 48
    share = {r.group.force_code: r.share_within for r in data.by_force if r.target_id == "T9"}
    assert share[PROMPT] == 1.0
    assert share[LATE] == 0.0
    _the_partnership_story(data.partnership)
    _the_decisions_story(data.decisions)
    # The HTML report draws both: the backlog in the vetting chart, the reopening in the closures'.
    page = render_html(data)
    vetting = page.split('data-chart="vetting-by-force"', 1)[1].split("</svg>", 1)[0]
    assert "Metropolitan Police Service" in vetting
    assert f"{vetting_story.BACKLOG_CARERS} open, median" in vetting
    assert 'data-series="open-overdue"' in vetting
    by_council = page.split('data-chart="vetting-by-council"', 1)[1].split("</svg>", 1)[0]
    assert f"waiting: {vetting_story.BACKLOG_CARERS} carers, 0 adopters" in by_council
    closures = page.split('data-chart="closures-by-council"', 1)[1].split("</svg>", 1)[0]
    assert "Middlesbrough" in closures
    assert "1 challenged, 1 answered, 1 reopened; answer 48" in closures
    escalated = page.split('data-chart="escalations-by-target"', 1)[1].split("</svg>", 1)[0]
    assert 'data-series="target-T11"' in escalated
    assert "Metropolitan Police Service" in escalated


def _rows(attendance: tuple[Attendance, ...], force: str) -> list[Attendance]:
    return [a for a in attendance if a.key == Key(Grouping.FORCE, force)]


def _the_partnership_story(figures: PartnershipData) -> None:
    """One force attends, one sends written reports only, one never attends pre-birth
    conferences; one council's joint visit requests go unanswered; one force protects a child
    without a discussion."""
    attends = _rows(figures.attendance, ATTENDS)
    assert {a.kind for a in attends} == set(MEETING_KINDS)
    assert all(a.attended == a.invitations > 0 for a in attends)
    writes = _rows(figures.attendance, WRITES)
    assert all(a.written_report_only == a.reports_on_time == a.invitations > 0 for a in writes)
    not_pre_birth = _rows(figures.attendance, NOT_PRE_BIRTH)
    pre_birth = [a for a in not_pre_birth if a.pre_birth and a.kind in CONFERENCES]
    assert pre_birth
    assert all(a.absent == a.invitations > 0 for a in pre_birth)
    born = [a for a in not_pre_birth if not a.pre_birth]
    assert all(a.attended == a.invitations > 0 for a in born)
    visits = {j.key.value: j for j in figures.joint_visits_by(Grouping.COUNCIL)}
    unanswered = visits[UNANSWERED_COUNCIL]
    assert unanswered.unanswered == unanswered.requests > 0
    answered = visits[COUNCIL_OF[ATTENDS]]
    assert answered.held_jointly == answered.requests > 0
    assert answered.median_answer_hours is not None
    assert 1 <= answered.median_answer_hours <= 6
    protections = {p.key.value: p for p in figures.protections_by(Grouping.FORCE)}
    assert protections[WRITES].without_discussion == protections[WRITES].protections == 2
    assert protections[ATTENDS].without_discussion == 0
    assert {f.force_code for f in figures.findings} == {WRITES}


def _the_decisions_story(figures: DecisionsData) -> None:
    """A force with a vetting backlog (Wandsworth-like), adopters waiting in Dorset, a prompt
    force; a closure a council challenged and the force reopened (Cleveland-like)."""
    forces = {f.organisation_code: f for f in figures.vetting_by_force}
    met = forces[vetting_story.BACKLOG_FORCE]
    assert met.open == met.open_over_target == vetting_story.BACKLOG_CARERS
    assert met.completed == 0
    assert met.open_median_age_days is not None
    assert met.open_median_age_days > 14
    prompt = forces[vetting_story.PROMPT_FORCE]
    assert prompt.open == 0
    assert prompt.share_within_target == 1.0
    councils = {f.organisation_code: f for f in figures.vetting_by_council}
    assert councils[vetting_story.BACKLOG_COUNCIL].carers_waiting == vetting_story.BACKLOG_CARERS
    dorset = councils[vetting_story.ADOPTERS_COUNCIL]
    assert dorset.adopters_waiting == vetting_story.ADOPTERS_WAITING
    assert dorset.carers_waiting == 0
    assert figures.vetting_target == "T11"
    reviews = {r.council_code: r for r in figures.closures if r.force_code == closure_story.FORCE}
    challenged = reviews[closure_story.CHALLENGING_COUNCIL]
    assert (challenged.closures, challenged.challenged, challenged.reopened) == (1, 1, 1)
    assert challenged.challenges_answered == 1
    assert challenged.median_hours_to_answer is not None
    assert 47 < challenged.median_hours_to_answer < 49  # answered two days after the challenge
    # The checks waiting past T11 escalated once each when the demo was loaded, owed by the Met.
    owed = sum(
        e.raised
        for e in figures.escalations
        if e.target_id == "T11" and e.owed_by == vetting_story.BACKLOG_FORCE
    )
    assert owed == vetting_story.BACKLOG_CARERS
    agreed = reviews[closure_story.AGREEING_COUNCIL]
    assert (agreed.closures, agreed.agreed, agreed.challenged) == (1, 1, 0)


async def test_each_printed_example_answers_with_records_from_the_demo(tmp_path: Path) -> None:
    """What a newcomer does first: run each role's printed `curl` line against the served demo.
    Each is answered without an error and with records, the school's too (its pupils'
    domestic abuse incidents, and of those only the pupils)."""
    import json  # noqa: PLC0415
    import re  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from hub.app import create_app  # noqa: PLC0415
    from tests.conftest import free_port, serve  # noqa: PLC0415

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    settings = Settings(database_url=url, data_dir=tmp_path, issuer=base)
    printed = await demo.load(settings, base_url=base)
    blocks = re.findall(
        r"^== (\S+) .*?-H 'Authorization: Bearer (\S+)' .*?-H 'Hub-Purpose: (\S+)' .*?-d '(.*?)'\n",
        printed,
        re.DOTALL | re.MULTILINE,
    )
    assert {role for role, *_ in blocks} == {role.value for role in demo.EXAMPLE_PURPOSE}
    server, thread = serve(create_app(settings), port, settings)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for role, token, purpose, payload in blocks:
                response = await http.post(
                    f"{base}/graphql",
                    content=payload,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                        "Hub-On-Behalf-Of": "demo-user-1",
                        "Hub-Purpose": purpose,
                    },
                )
                body = response.json()
                assert "errors" not in body, (role, body)
                answered = {k: v for k, v in body["data"].items() if k != "viewer"}
                lists = [v.get("edges", v) if isinstance(v, dict) else v for v in answered.values()]
                assert all(lists), (role, json.dumps(body)[:300])
                if role == "school_dsl":
                    nodes = [edge["node"] for edge in body["data"]["incidents"]["edges"]]
                    assert {node["type"] for node in nodes} == {"DOMESTIC_ABUSE"}
                    assert all(node["children"] for node in nodes)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
