"""The inspectorate's letter, built through the API and found in the report.

Each pattern is pushed as councils and forces would push it, over real HTTP with real tokens:
Dorset Police absent from a third of Dorset's initial child protection conferences; Cleveland
Police sending written reports only to Stockton-on-Tees' strategy discussions and never attending
its pre-birth conferences, though it attends the others; Southend-on-Sea's joint visit requests
to Essex Police left unanswered past the time they were needed by; Devon and Cornwall Police
taking a Torbay child into police protection without any discussion with children's services.
Then the report (GraphQL for the inspectorate, a force and a council; the CLI in CSV, Markdown
and HTML) must show each with its figures, and never a child's identity.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hub.access.models import Role
from hub.audit.service import pseudonym
from hub.cli import app
from tests.conftest import LiveServer, cli_settings, unique
from tests.factories import REPORT_INCIDENT, child, hours_ago, incident, iso
from tests.meeting_pushes import RECORD_ATTENDANCE, SCHEDULE_MEETING, SUBMIT_REPORT, call

DORSET_POLICE, DORSET = "DORSET", "E06000059"
CLEVELAND_POLICE, STOCKTON = "CLEVELAND", "E06000004"
ESSEX_POLICE, SOUTHEND = "ESSEX", "E06000033"
DEVON_CORNWALL_POLICE, TORBAY = "DEVON_CORNWALL", "E06000027"
ICPC, SD = "initial_child_protection_conference", "strategy_discussion"

REQUEST_JOINT_VISIT = """
mutation Ask($input: RequestJointVisitInput!) { requestJointVisit(input: $input) { id } }"""
RECORD_PROTECTION = """
mutation Protect($input: RecordPoliceProtectionInput!) {
  recordPoliceProtection(input: $input) { id child { id } }
}"""
FIGURES = """query($from: Date!, $to: Date!, $force: String, $council: String, $kind: String) {
  sharingReport(from: $from, to: $to, force: $force, council: $council, kind: $kind) {
    attendance {
      grouping force council month kind preBirth invitations inPerson video phone virtual
      writtenReportOnly apologies didNotAttend notRecorded absent shareAttended shareAbsent
      reportsSubmitted reportsOnTime
    }
    jointVisits {
      grouping force council month requests answered officerAssigned notAvailable unanswered
      overdue heldJointly socialWorkerAlone cancelled shareAnswered shareFulfilled
      medianAnswerHours
    }
    policeProtections {
      grouping force council month protections withoutDiscussion noAlternativesConsidered
      shareWithoutDiscussion
    }
    protectionFindings(first: 1000) {
      recordId force council month takenAt placedIn alternativesConsidered child
    }
    charts { chart targetId svg }
  }
}"""


async def _ok(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: dict[str, Any],
) -> dict[str, Any]:
    body = await call(http, server, role, org, query, variables)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _child_of(http: httpx.AsyncClient, server: LiveServer, force: str, council: str) -> str:
    """A child the council sees: the force shares an incident about it."""
    reference = unique("LETTER")
    pushed = await _ok(
        http,
        server,
        Role.POLICE_OFFICER,
        force,
        REPORT_INCIDENT,
        {
            "input": incident(
                reference,
                council=council,
                children=[{"child": child(f"{reference}-C", council=council), "present": True}],
            )
        },
    )
    child_id: str = pushed["reportIncident"]["children"][0]["child"]["id"]
    return child_id


class _Council:
    """A council convening meetings over the API and recording who attended."""

    def __init__(self, http: httpx.AsyncClient, server: LiveServer, code: str) -> None:
        self.http, self.server, self.code = http, server, code

    async def meeting(
        self,
        kind: str,
        *,
        force: str,
        hours: float,
        children: list[dict[str, Any]],
        discussion: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "councilReference": unique("MTG"),
            "kind": kind.upper(),
            "scheduledAt": iso(hours_ago(hours)),
            "mode": "IN_PERSON",
            "recordedAt": iso(hours_ago(hours + 24)),
            "children": children,
            "invitedForces": [force],
        }
        if discussion is not None:
            payload["strategyDiscussionId"] = discussion
        data = await _ok(
            self.http,
            self.server,
            Role.COUNCIL_SOCIAL_WORKER,
            self.code,
            SCHEDULE_MEETING,
            {"input": payload},
        )
        meeting_id: str = data["scheduleMeeting"]["id"]
        return meeting_id

    async def attended(
        self, meeting_id: str, force: str, attendance: str, role: str = "SERGEANT"
    ) -> None:
        entry: dict[str, Any] = {"force": force, "attendance": attendance}
        if attendance in {"IN_PERSON", "VIDEO", "PHONE"}:
            entry["attendeeRole"] = role
        # Held now (a report sent a moment ago arrived before it).
        held = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        await _ok(
            self.http,
            self.server,
            Role.COUNCIL_SOCIAL_WORKER,
            self.code,
            RECORD_ATTENDANCE,
            {"input": {"meetingId": meeting_id, "heldAt": iso(held), "attendance": [entry]}},
        )


# Who Dorset Police sent to the meetings it attended: a sergeant to the strategy discussion,
# then to the conferences (in `_dorset`'s order) officers of these ranks.
DORSET_ROLES = {
    "IN_PERSON": ["INSPECTOR", "SUPERINTENDENT_OR_ABOVE"],
    "VIDEO": ["CONSTABLE"],
    "PHONE": ["POLICE_STAFF"],
}


async def _dorset(http: httpx.AsyncClient, server: LiveServer) -> None:
    """Six initial conferences; Dorset Police at four of them (in person or by video)."""
    council = _Council(http, server, DORSET)
    kids = [{"childId": await _child_of(http, server, DORSET_POLICE, DORSET)}]
    discussion = await council.meeting(SD, force=DORSET_POLICE, hours=60, children=kids)
    await council.attended(discussion, DORSET_POLICE, "IN_PERSON")
    roles = {attendance: iter(sent) for attendance, sent in DORSET_ROLES.items()}
    for hours, attendance in enumerate(
        ["IN_PERSON", "VIDEO", "APOLOGIES", "IN_PERSON", "DID_NOT_ATTEND", "PHONE"], start=30
    ):
        conference = await council.meeting(
            "INITIAL_CHILD_PROTECTION_CONFERENCE",
            force=DORSET_POLICE,
            hours=hours,
            children=kids,
            discussion=discussion,
        )
        role = next(roles[attendance]) if attendance in roles else "SERGEANT"
        await council.attended(conference, DORSET_POLICE, attendance, role)


async def _cleveland(http: httpx.AsyncClient, server: LiveServer) -> None:
    """Written reports only to strategy discussions; absent from both pre-birth conferences,
    present at the conference about a born child."""
    council = _Council(http, server, STOCKTON)
    born = [{"childId": await _child_of(http, server, CLEVELAND_POLICE, STOCKTON)}]
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=70)).date().isoformat()
    unborn = [{"expectedDeliveryDate": due, "motherCouncil": STOCKTON}]
    discussions = []
    for hours, kids in ((70, born), (69, unborn)):
        discussion = await council.meeting(SD, force=CLEVELAND_POLICE, hours=hours, children=kids)
        await _ok(
            http,
            server,
            Role.POLICE_OFFICER,
            CLEVELAND_POLICE,
            SUBMIT_REPORT,
            {"input": {"meetingId": discussion, "report": "Synthetic written contribution."}},
        )
        await council.attended(discussion, CLEVELAND_POLICE, "WRITTEN_REPORT_ONLY")
        discussions.append(discussion)
    conference = await council.meeting(
        "INITIAL_CHILD_PROTECTION_CONFERENCE",
        force=CLEVELAND_POLICE,
        hours=40,
        children=born,
        discussion=discussions[0],
    )
    await council.attended(conference, CLEVELAND_POLICE, "IN_PERSON")
    for hours, attendance in ((38, "APOLOGIES"), (36, "DID_NOT_ATTEND")):
        conference = await council.meeting(
            "INITIAL_CHILD_PROTECTION_CONFERENCE",
            force=CLEVELAND_POLICE,
            hours=hours,
            children=unborn,
            discussion=discussions[1],
        )
        await council.attended(conference, CLEVELAND_POLICE, attendance)


async def _southend(http: httpx.AsyncClient, server: LiveServer) -> None:
    """Three joint visit requests to Essex Police, none answered, each needed hours ago."""
    kid = await _child_of(http, server, ESSEX_POLICE, SOUTHEND)
    for hours in (40, 35, 30):
        request = {
            "councilReference": unique("JV"),
            "childId": kid,
            "force": ESSEX_POLICE,
            "kind": "VISIT",
            "urgency": "WITHIN_24_HOURS",
            "neededBy": iso(hours_ago(hours - 24)),
            "recordedAt": iso(hours_ago(hours)),
        }
        await _ok(
            http,
            server,
            Role.COUNCIL_SOCIAL_WORKER,
            SOUTHEND,
            REQUEST_JOINT_VISIT,
            {"input": request},
        )


async def _torbay(http: httpx.AsyncClient, server: LiveServer) -> str:
    """Two police protections of Torbay children: one after talking to the emergency duty team,
    one with no discussion and no alternative considered. Returns the second child's id."""
    taken: list[str] = []
    for consulted in (True, False):
        reference = unique("PP")
        protection: dict[str, Any] = {
            "policeReference": reference,
            "child": child(f"{reference}-C", council=TORBAY),
            "takenAt": iso(hours_ago(10)),
            "recordedAt": iso(hours_ago(9)),
            "placedIn": "POLICE_STATION",
            "consultedBefore": consulted,
            "alternativesConsidered": ["FAMILY_OR_FRIENDS"] if consulted else ["NONE"],
        }
        if consulted:
            protection |= {
                "consultedAt": iso(hours_ago(11)),
                "consultedCouncil": TORBAY,
                "consultedRole": "EMERGENCY_DUTY_TEAM",
            }
        data = await _ok(
            http,
            server,
            Role.POLICE_OFFICER,
            DEVON_CORNWALL_POLICE,
            RECORD_PROTECTION,
            {"input": protection},
        )
        taken.append(data["recordPoliceProtection"]["child"]["id"])
    return taken[1]


@pytest.fixture(scope="module")
async def letter(live_server: LiveServer) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=60) as http:
        await _dorset(http, live_server)
        await _cleveland(http, live_server)
        await _southend(http, live_server)
        unconsulted = await _torbay(http, live_server)
    return {"unconsulted_child": unconsulted}


def _period() -> dict[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    return {"from": (today - dt.timedelta(days=7)).isoformat(), "to": today.isoformat()}


async def _report(
    http: httpx.AsyncClient, server: LiveServer, role: Role, org: str, **scope: str
) -> dict[str, Any]:
    data = await _ok(http, server, role, org, FIGURES, {**_period(), **scope})
    report: dict[str, Any] = data["sharingReport"]
    return report


def _row(rows: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, found)
    return found[0]


async def test_the_inspectorate_finds_each_pattern_with_its_figures(
    http: httpx.AsyncClient, live_server: LiveServer, letter: dict[str, str]
) -> None:
    report = await _report(http, live_server, Role.AUDITOR, "OFSTED")
    attendance = report["attendance"]
    # Dorset: police absent from a third of initial conferences.
    dorset = _row(attendance, grouping="FORCE", force=DORSET_POLICE, kind=ICPC, preBirth=False)
    assert (dorset["invitations"], dorset["absent"]) == (6, 2)
    assert (dorset["inPerson"], dorset["virtual"], dorset["video"], dorset["phone"]) == (2, 2, 1, 1)
    assert (dorset["apologies"], dorset["didNotAttend"]) == (1, 1)
    assert dorset["shareAbsent"] == pytest.approx(1 / 3)
    assert _row(attendance, grouping="COUNCIL", council=DORSET, kind=ICPC)["absent"] == 2
    # Cleveland: never at a pre-birth conference, though at the born child's.
    pre_birth = _row(attendance, grouping="FORCE", force=CLEVELAND_POLICE, kind=ICPC, preBirth=True)
    assert (pre_birth["invitations"], pre_birth["absent"], pre_birth["shareAttended"]) == (2, 2, 0)
    born = _row(attendance, grouping="FORCE", force=CLEVELAND_POLICE, kind=ICPC, preBirth=False)
    assert (born["invitations"], born["inPerson"], born["absent"]) == (1, 1, 0)
    # ...and written reports only to strategy discussions, each before the meeting.
    written = [
        r
        for r in attendance
        if r["grouping"] == "FORCE" and r["force"] == CLEVELAND_POLICE and r["kind"] == SD
    ]
    assert sum(r["invitations"] for r in written) == 2
    assert sum(r["writtenReportOnly"] for r in written) == 2
    assert sum(r["reportsSubmitted"] for r in written) == 2
    assert sum(r["reportsOnTime"] for r in written) == 2
    assert sum(r["inPerson"] + r["virtual"] for r in written) == 0
    # Southend: joint visit requests unanswered, past the time they were needed by.
    southend = _row(report["jointVisits"], grouping="COUNCIL", council=SOUTHEND)
    assert (southend["requests"], southend["answered"], southend["unanswered"]) == (3, 0, 3)
    assert (southend["overdue"], southend["heldJointly"]) == (3, 0)
    assert southend["shareAnswered"] == 0
    assert southend["medianAnswerHours"] is None
    essex = _row(report["jointVisits"], grouping="FORCE", force=ESSEX_POLICE)
    assert essex["unanswered"] == 3
    # Torbay: a child taken into police protection without any discussion.
    devon = _row(report["policeProtections"], grouping="FORCE", force=DEVON_CORNWALL_POLICE)
    assert (devon["protections"], devon["withoutDiscussion"]) == (2, 1)
    assert devon["noAlternativesConsidered"] == 1
    torbay = _row(report["policeProtections"], grouping="COUNCIL", council=TORBAY)
    assert (torbay["protections"], torbay["withoutDiscussion"]) == (2, 1)
    finding = _row(report["protectionFindings"], force=DEVON_CORNWALL_POLICE)
    assert finding["council"] == TORBAY
    assert (finding["placedIn"], finding["alternativesConsidered"]) == ("police_station", ["none"])
    key = live_server.settings.pseudonym_key.get_secret_value()
    assert finding["child"] == pseudonym(letter["unconsulted_child"], key=key)
    assert letter["unconsulted_child"] not in str(report), "a child's id reached the inspectorate"
    # Drawn: Cleveland's pre-birth bar is all absence.
    charts = {(c["chart"], c["targetId"]): c["svg"] for c in report["charts"]}
    pre_birth_chart = charts["attendance-by-force", "pre_birth_conference"]
    assert "Cleveland Police" in pre_birth_chart
    assert 'data-series="absent"' in pre_birth_chart
    assert 'data-series="unanswered"' in charts["joint-visits-by-council", None]
    assert 'data-series="without-discussion"' in charts["protections-by-force", None]


SENIORITY = """query($from: Date!, $to: Date!, $force: String, $council: String) {
  sharingReport(from: $from, to: $to, force: $force, council: $council) {
    attendanceSeniority {
      force attended constable sergeant inspector chiefInspector superintendentOrAbove
      policeStaff other roleNotRecorded inspectorOrAbove
    }
  }
}"""


async def test_the_report_counts_who_attended_by_rank_or_role(
    http: httpx.AsyncClient, live_server: LiveServer, letter: dict[str, str]
) -> None:
    """The attending officer's rank or role, as the councils recorded it, per force."""
    del letter
    data = await _ok(http, live_server, Role.AUDITOR, "OFSTED", SENIORITY, _period())
    rows = data["sharingReport"]["attendanceSeniority"]
    dorset = _row(rows, force=DORSET_POLICE)
    # Five attended (the discussion and four conferences); the absences name no one.
    assert dorset == {
        "force": DORSET_POLICE,
        "attended": 5,
        "constable": 1,
        "sergeant": 1,
        "inspector": 1,
        "chiefInspector": 0,
        "superintendentOrAbove": 1,
        "policeStaff": 1,
        "other": 0,
        "roleNotRecorded": 0,
        "inspectorOrAbove": 2,
    }
    # Cleveland attended one conference, in person; its written reports are not attendance.
    cleveland = _row(rows, force=CLEVELAND_POLICE)
    assert (cleveland["attended"], cleveland["sergeant"]) == (1, 1)
    # A council reads only its own meetings' attendance.
    variables = {**_period(), "council": STOCKTON}
    scoped = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, STOCKTON, SENIORITY, variables
    )
    assert [r["force"] for r in scoped["sharingReport"]["attendanceSeniority"]] == [
        CLEVELAND_POLICE
    ]


async def test_a_force_and_a_council_find_their_own_pattern_only(
    http: httpx.AsyncClient, live_server: LiveServer, letter: dict[str, str]
) -> None:
    del letter
    cleveland = await _report(http, live_server, Role.POLICE_OFFICER, CLEVELAND_POLICE)
    assert {r["force"] for r in cleveland["attendance"] if r["grouping"] == "FORCE"} == {
        CLEVELAND_POLICE
    }
    assert not cleveland["jointVisits"]
    assert not cleveland["protectionFindings"]
    southend = await _report(http, live_server, Role.COUNCIL_SOCIAL_WORKER, SOUTHEND)
    assert {r["council"] for r in southend["jointVisits"] if r["grouping"] == "COUNCIL"} == {
        SOUTHEND
    }
    assert not southend["attendance"]
    refused = await call(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        SOUTHEND,
        FIGURES,
        {**_period(), "council": TORBAY},
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    torbay = await _report(http, live_server, Role.COUNCIL_SOCIAL_WORKER, TORBAY)
    assert [f["force"] for f in torbay["protectionFindings"]] == [DEVON_CORNWALL_POLICE]


runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with cli_settings(monkeypatch, database_url, data_dir):
        yield


def _cli(report_format: str, tmp_path: Path) -> str:
    period = _period()
    output = tmp_path / f"letter.{report_format}"
    arguments = ["report", "--from", period["from"], "--to", period["to"]]
    result = runner.invoke(app, [*arguments, "--format", report_format, "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output.read_text(encoding="utf-8")


def test_the_cli_report_shows_each_pattern(
    letter: dict[str, str], cli_env: None, tmp_path: Path
) -> None:
    rows = list(csv.DictReader(io.StringIO(_cli("csv", tmp_path))))
    dorset = [
        r
        for r in rows
        if r["section"] == "attendance"
        and r["grouping"] == "force"
        and r["force_code"] == DORSET_POLICE
        and r["kind"] == ICPC
    ]
    assert [(r["invitations"], r["absent"], r["pre_birth"]) for r in dorset] == [
        ("6", "2", "false")
    ]
    cleveland = next(
        r
        for r in rows
        if r["section"] == "attendance"
        and r["grouping"] == "force"
        and r["force_code"] == CLEVELAND_POLICE
        and r["kind"] == ICPC
        and r["pre_birth"] == "true"
    )
    assert (cleveland["invitations"], cleveland["absent"], cleveland["in_person"]) == (
        "2",
        "2",
        "0",
    )
    southend = next(
        r
        for r in rows
        if r["section"] == "joint_visits"
        and r["grouping"] == "council"
        and r["council_code"] == SOUTHEND
    )
    assert (southend["requests"], southend["unanswered"], southend["overdue"]) == ("3", "3", "3")
    findings = [
        r
        for r in rows
        if r["section"] == "protection_finding" and r["force_code"] == DEVON_CORNWALL_POLICE
    ]
    assert [(f["council_code"], f["alternatives_considered"]) for f in findings] == [
        (TORBAY, "none")
    ]
    seniority = next(
        r
        for r in rows
        if r["section"] == "attendance_seniority" and r["force_code"] == DORSET_POLICE
    )
    assert (seniority["attended"], seniority["inspector"], seniority["police_staff"]) == (
        "5",
        "1",
        "1",
    )
    assert letter["unconsulted_child"] not in str(rows)
    markdown = _cli("md", tmp_path)
    assert "## Working together" in markdown
    seniority_rows = markdown.split("#### Who attended, by rank or role (per force)")[1]
    # Attended, then constable ... other, not recorded, inspector or above.
    assert any(
        line.startswith("| Dorset") and line.endswith(" | 5 | 1 | 1 | 1 | 0 | 1 | 1 | 0 | 0 | 2 |")
        for line in seniority_rows.splitlines()
    ), seniority_rows[:600]
    assert "Initial child protection conference, pre-birth" in markdown
    assert "### Protections without prior discussion" in markdown
    page = _cli("html", tmp_path)
    assert 'data-chart="attendance-by-force" data-target="pre_birth_conference"' in page
    assert "Who attended, by rank or role (per force)" in page
    assert letter["unconsulted_child"] not in page


async def test_a_finding_page_out_of_range_is_refused_by_name(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    query = """query($from: Date!, $to: Date!) {
      sharingReport(from: $from, to: $to) { protectionFindings(first: 5000) { recordId } } }"""
    body = await call(http, live_server, Role.AUDITOR, "OFSTED", query, _period())
    error = body["errors"][0]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("INVALID_INPUT", "first")
    assert "5000" not in error["message"]


async def test_a_kind_keeps_the_report_to_that_record(
    http: httpx.AsyncClient, live_server: LiveServer, letter: dict[str, str]
) -> None:
    del letter
    report = await _report(http, live_server, Role.AUDITOR, "OFSTED", kind="police_protection")
    assert report["attendance"] == []
    assert report["jointVisits"] == []
    devon = _row(report["policeProtections"], grouping="FORCE", force=DEVON_CORNWALL_POLICE)
    assert devon["withoutDiscussion"] == 1
