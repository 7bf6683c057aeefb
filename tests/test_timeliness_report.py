"""The report in HTML, CSV and Markdown, from synthetic data with a hostile organisation name."""

import csv
import dataclasses
import datetime as dt
import hashlib
import io
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hub.closures import figures as closure_figures
from hub.escalation.service import EscalationCount
from hub.timeliness import charts
from hub.timeliness.decisions import DecisionsData
from hub.timeliness.report import (
    CSV_COLUMNS,
    ReportData,
    ReportScope,
    build_report,
    render,
    render_csv,
    render_html,
    render_markdown,
)
from hub.timeliness.report_types import report_charts
from hub.timeliness.stats import StageDelay
from hub.timeliness.targets import load_targets
from hub.vetting import figures as vetting_figures

TARGETS = load_targets(Path(__file__).resolve().parents[1] / "auth" / "targets.toml")
UTC = dt.UTC
AS_OF = dt.datetime(2025, 3, 3, 12, tzinfo=UTC)
EVIL = "<script>alert('x')</script>"
NAMES = {"PROMPT": "Prompt Constabulary", "WEEKLY": "Weekly Police", "EVIL": EVIL}


def pseudonym(child_id: str) -> str:
    return "P-" + hashlib.sha256(child_id.encode()).hexdigest()[:8]


def _incident(force: str, n: int, event: dt.datetime, lag: dt.timedelta) -> list[StageDelay]:
    record, child = f"{force}-da-{n}", f"child-{force}-{n}"
    shared = event + lag
    common = {
        "kind": "domestic_abuse",
        "force_code": force,
        "council_code": "W06000015" if force == "PROMPT" else "E06000001",
        "month": event.strftime("%Y-%m"),
        "nation": "wales" if force == "PROMPT" else "england",
        "record_id": record,
        "child_id": child,
    }
    acknowledged = shared + dt.timedelta(hours=3 if n % 4 else 40)
    return [
        StageDelay(stage="event_to_shared", start=event, end=shared, **common),
        StageDelay(stage="shared_to_acknowledged", start=shared, end=acknowledged, **common),
    ]


def _missing(force: str, n: int, event: dt.datetime, lag: dt.timedelta | None) -> StageDelay:
    return StageDelay(
        kind="missing_episode",
        force_code=force,
        council_code="E06000001",
        month=event.strftime("%Y-%m"),
        stage="event_to_shared",
        start=event,
        end=None if lag is None else event + lag,
        nation="england",
        record_id=f"{force}-me-{n}",
        child_id=f"child-{force}-me-{n}",
    )


def synthetic_rows() -> list[StageDelay]:
    rows: list[StageDelay] = []
    start = dt.datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
    for n in range(7 * 4 * 6):  # six weeks, four events a day
        event = start + dt.timedelta(hours=6 * n)
        if event >= AS_OF - dt.timedelta(days=7):
            break
        rows += _incident("PROMPT", n, event, dt.timedelta(minutes=20 + n % 7))
        # WEEKLY sends each week's incidents the following Monday at 09:00, 10 s apart.
        week_start = start + dt.timedelta(weeks=(event - start).days // 7)
        upload = week_start + dt.timedelta(weeks=1, hours=9, seconds=10 * (n % 28))
        rows += _incident("WEEKLY", n, event, upload - event)
        rows += _incident("EVIL", n, event, dt.timedelta(hours=2 + n % 30))
    for n in range(6):
        event = start + dt.timedelta(days=5 * n, hours=3)
        rows.append(_missing("PROMPT", n, event, dt.timedelta(minutes=30)))
        rows.append(_missing("WEEKLY", n, event, dt.timedelta(hours=5)))
    rows.append(_missing("WEEKLY", 99, AS_OF - dt.timedelta(hours=3), None))  # open, overdue
    return rows


@pytest.fixture(scope="module")
def data() -> ReportData:
    return build_report(
        synthetic_rows(),
        TARGETS,
        period_from=dt.date(2025, 1, 1),
        period_to=dt.date(2025, 2, 28),
        as_of=AS_OF,
        pseudonymise=pseudonym,
        generated_at=AS_OF + dt.timedelta(minutes=1),
        agreement_version="agreement-abc123",
        names=NAMES,
    )


class Markup(HTMLParser):
    """Collects what a browser test would look for, and checks every element is closed."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.unbalanced: list[str] = []
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.charts: list[dict[str, str | None]] = []
        self.series: dict[int, set[tuple[str, str | None]]] = defaultdict(set)
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        values = dict(attrs)
        self.attributes += [(tag, name, value) for name, value in attrs]
        if values.get("id"):
            self.ids.append(values["id"] or "")
        if tag == "svg":
            self.charts.append(values)
        elif "svg" in self.stack and "data-series" in values:
            self.series[len(self.charts) - 1].add((tag, values["data-series"]))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.unbalanced.append(tag)
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def page(data: ReportData) -> tuple[str, Markup]:
    text = render_html(data)
    markup = Markup()
    markup.feed(text)
    markup.close()
    return text, markup


# HTML -------------------------------------------------------------------------------------


def test_html_is_well_formed(page: tuple[str, Markup]) -> None:
    text, markup = page
    assert text.startswith("<!DOCTYPE html>")
    assert markup.unbalanced == []
    assert markup.stack == []
    assert len(markup.ids) == len(set(markup.ids))


def test_html_draws_every_chart(data: ReportData, page: tuple[str, Markup]) -> None:
    _, markup = page
    kinds = Counter(chart["data-chart"] for chart in markup.charts)
    # The partnership charts say they have no records: this report has none of them.
    partnership = {
        "attendance-by-force": 4,
        "joint-visits-by-council": 1,
        "protections-by-force": 1,
    }
    # So do the decisions charts (closures, vetting, escalations).
    decided = {
        "closures-by-force": 1,
        "closures-by-council": 1,
        "vetting-by-force": 1,
        "vetting-by-council": 1,
        "escalations-by-target": 1,
    }
    # A section per target the report measures (not requests: checks, challenges), with data or not.
    every = len(TARGETS.of_shared_records().targets)
    assert kinds == {
        "delay-by-force": every,
        "monthly-trend": every,
        "batching-score": 1,
        **partnership,
        **decided,
    }
    with_data = {r.target_id for r in data.by_force if r.count}
    assert with_data == {"T8", "T9", "DA-ACK", "T6"}
    expected = {
        "delay-by-force": {("rect", "median"), ("rect", "p90"), ("path", "max")},
        "monthly-trend": {("path", "median"), ("path", "p90"), ("path", "share-within")},
        "batching-score": {("rect", "score")},
    }
    for index, chart in enumerate(markup.charts):
        drawn = markup.series[index]
        if chart.get("data-target") in with_data or chart["data-chart"] == "batching-score":
            assert expected[chart["data-chart"] or ""] <= drawn, chart
            hours_target = chart.get("data-target") in {"T9", "T6"}
            assert (("path", "target") in drawn) == hours_target, chart
        else:
            assert drawn == set(), chart


def test_html_escapes_a_hostile_name(page: tuple[str, Markup]) -> None:
    text, markup = page
    assert markup.tags["script"] == 0
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert any(EVIL in chunk for chunk in markup.text)  # shown as text


def test_html_is_self_contained(page: tuple[str, Markup]) -> None:
    text, markup = page
    assert "http://" not in text
    assert "https://" not in text
    assert "url(" not in text
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(markup.tags)
    assert not [a for a in markup.attributes if a[1] in {"src", "href", "xlink:href"}]
    csp = [v for tag, name, v in markup.attributes if tag == "meta" and name == "content"]
    assert "default-src 'none'; style-src 'unsafe-inline'" in csp


def test_html_shows_breaches_batching_targets_and_footer(
    data: ReportData, page: tuple[str, Markup]
) -> None:
    text, markup = page
    assert {"summary", "breaches", "bursts", "batching-scores", "targets"} <= set(markup.ids)
    breach = data.breaches[0]
    assert breach.child is not None
    assert breach.child in text
    assert "child-" not in text  # no raw child id anywhere
    for target in TARGETS.of_shared_records().targets:  # requests' (T11) have their own figures
        assert f'id="target-{target.id}"' in text
    assert "Victims and Prisoners Act 2024" in text
    assert "UNCONFIRMED" in text
    assert TARGETS.short_version in text
    assert "agreement-abc123" in text
    assert "Generated 2025-03-03 12:01 GMT" in text


def test_the_report_tells_the_story(data: ReportData) -> None:
    scores = {s.force_code: s.score for s in data.batching_scores}
    assert scores["WEEKLY"] > 0.9
    assert scores["PROMPT"] == 0
    assert scores["EVIL"] == 0
    assert {b.force_code for b in data.bursts} == {"WEEKLY"}
    t9 = {r.group.force_code: r for r in data.by_force if r.target_id == "T9"}
    assert t9["PROMPT"].share_within == 1
    assert t9["WEEKLY"].share_within is not None
    assert t9["WEEKLY"].share_within < 0.3
    assert any(b.open and b.target_id == "T6" for b in data.breaches)


def test_breach_rows_are_cut_short_in_html_only(data: ReportData) -> None:
    assert len(data.breaches) > 10
    text = render_html(data, max_breach_rows=10)
    assert f"{len(data.breaches) - 10} more not shown here" in text
    breach_rows = [
        r for r in csv.DictReader(io.StringIO(render_csv(data))) if r["section"] == "breach"
    ]
    assert len(breach_rows) == len(data.breaches)


# CSV --------------------------------------------------------------------------------------


def test_csv_parses_with_the_expected_header(data: ReportData) -> None:
    reader = csv.DictReader(io.StringIO(render_csv(data)))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    assert Counter(r["section"] for r in rows).keys() == {
        "report",
        "target",
        "stats",
        "breach",
        "burst",
        "batching_score",
    }
    (report,) = [r for r in rows if r["section"] == "report"]
    assert report["targets_version"] == TARGETS.version
    assert report["as_of"] == "2025-03-03T12:00:00Z"
    t9_prompt = next(
        r
        for r in rows
        if r["section"] == "stats"
        and r["grouping"] == "force"
        and r["force_code"] == "PROMPT"
        and r["target_id"] == "T9"
    )
    expected = next(
        s for s in data.by_force if s.group.force_code == "PROMPT" and s.target_id == "T9"
    )
    assert int(t9_prompt["count"]) == expected.count
    assert float(t9_prompt["median_hours"]) == pytest.approx(expected.median_hours, abs=1e-4)
    assert float(t9_prompt["share_within"]) == 1
    assert {r["grouping"] for r in rows if r["section"] == "stats"} == {
        "force",
        "council",
        "kind",
        "month",
    }
    weekly = next(
        r for r in rows if r["section"] == "batching_score" and r["force_code"] == "WEEKLY"
    )
    assert float(weekly["batching_score"]) > 0.9
    assert "child-" not in render_csv(data)


def test_csv_defuses_spreadsheet_formulas(data: ReportData) -> None:
    hostile = dataclasses.replace(data.breaches[0], force_code="=HYPERLINK(1)")
    text = render_csv(dataclasses.replace(data, breaches=(hostile,)))
    (row,) = [r for r in csv.DictReader(io.StringIO(text)) if r["section"] == "breach"]
    assert row["force_code"] == "'=HYPERLINK(1)"


# Markdown ---------------------------------------------------------------------------------


def test_markdown_holds_the_tables(data: ReportData) -> None:
    text = render_markdown(data)
    lines = text.splitlines()
    assert lines[0] == "# Sharing delays, 01 January 2025 to 28 February 2025"
    assert "## Summary against each target" in lines
    assert any(line.startswith("| Target | Kind | Stage | Limit | Records |") for line in lines)
    assert any(line.startswith("| Force | Records | Open | Median |") for line in lines)
    assert any(line.startswith("| Target | Force | Council | Record |") for line in lines)
    assert any(line.startswith("| Force | Records | In bursts | Score |") for line in lines)
    assert "| --- | ---: | ---: |" in text
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "child-" not in text
    assert TARGETS.short_version in lines[-1]


def test_render_picks_the_format(data: ReportData) -> None:
    assert render(data, "md") == render_markdown(data)
    assert render(data, "csv") == render_csv(data)
    assert render(data, "html") == render_html(data)


# Scope, empty data and charts on their own -------------------------------------------------


def test_scope_keeps_rows_outside_it_out() -> None:
    scoped = build_report(
        synthetic_rows(),
        TARGETS,
        period_from=dt.date(2025, 1, 1),
        period_to=dt.date(2025, 2, 28),
        as_of=AS_OF,
        pseudonymise=pseudonym,
        scope=ReportScope(council_code="W06000015"),
    )
    assert {r.group.force_code for r in scoped.by_force} == {"PROMPT"}
    assert "Council: W06000015" in render_markdown(scoped)


def test_an_empty_report_still_renders() -> None:
    empty = build_report(
        [],
        TARGETS,
        period_from=dt.date(2025, 1, 1),
        period_to=dt.date(2025, 1, 31),
        as_of=AS_OF,
        pseudonymise=pseudonym,
    )
    markup = Markup()
    markup.feed(render_html(empty))
    assert markup.unbalanced == []
    assert {c["data-chart"] for c in markup.charts} == {
        "delay-by-force",
        "monthly-trend",
        "batching-score",
        "attendance-by-force",
        "joint-visits-by-council",
        "protections-by-force",
        "closures-by-force",
        "closures-by-council",
        "vetting-by-force",
        "vetting-by-council",
        "escalations-by-target",
    }
    assert "No records in this period." in render_html(empty)
    assert next(iter(csv.DictReader(io.StringIO(render_csv(empty)))))["section"] == "report"


def test_report_data_refuses_naive_times_and_reversed_periods(data: ReportData) -> None:
    with pytest.raises(ValueError, match="naive"):
        dataclasses.replace(data, generated_at=dt.datetime(2025, 3, 3))  # noqa: DTZ001
    with pytest.raises(ValueError, match="before"):
        dataclasses.replace(data, period_to=dt.date(2024, 12, 31))


def test_charts_can_be_used_alone(data: ReportData) -> None:
    svg = charts.delay_by_force_chart(data.by_force, TARGETS.get("T9"), NAMES)
    assert svg.startswith('<svg data-chart="delay-by-force" data-target="T9"')
    assert svg.endswith("</svg>")
    assert "xmlns" not in svg  # inline SVG in HTML needs none, and it would be an http URL
    assert charts.batching_chart([]).count("<rect") == 0


def test_nice_axis() -> None:
    assert charts.nice_axis(24) == [0, 10, 20, 30]
    assert charts.nice_axis(100) == [0, 25, 50, 75, 100]
    assert charts.nice_axis(0.7) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert charts.nice_axis(0) == [0, 0.25, 0.5, 0.75, 1.0]


def test_html_draws_closures_vetting_and_escalations(data: ReportData) -> None:
    reviews = [
        closure_figures.Figures("CLEVELAND", "E06000001", closures=3, agreed=1, challenged=2,
                                challenges_answered=1, challenges_open=1, reopened=1,
                                hours_to_answer=[30.0]),
        closure_figures.Figures("PROMPT", "W06000015", closures=1, awaiting_response=1),
    ]  # fmt: skip
    backlog = vetting_figures.GroupFigures(
        organisation_code="WANDS", open=23, completed=4, open_median_age_days=40.0,
        open_oldest_age_days=90.0, open_over_target=20, completed_within_target=1,
        carers_waiting=23, adopters_waiting=0,
    )  # fmt: skip
    council = dataclasses.replace(backlog, organisation_code="E09000032")
    raised = [
        EscalationCount("T11", "vetting_check", "requested_to_completed", "WANDS", "E09000032", 20),
        EscalationCount("T12", "closure_challenge", "x", "CLEVELAND", "E06000001", 1),
    ]
    decided = dataclasses.replace(
        data,
        decisions=DecisionsData(
            closures=reviews, vetting_by_force=(backlog,), vetting_by_council=(council,),
            vetting_target="T11", escalations=raised,
        ),
    )  # fmt: skip
    text = render_html(decided)
    markup = Markup()
    markup.feed(text)
    assert markup.unbalanced == []
    series = {
        chart["data-chart"]: markup.series[index] for index, chart in enumerate(markup.charts)
    }
    assert series["closures-by-force"] == {
        ("rect", "agreed"), ("rect", "challenged"), ("rect", "no-response"),
    }  # fmt: skip
    assert series["closures-by-council"] == series["closures-by-force"]
    assert series["vetting-by-force"] == {
        ("rect", "completed-in-time"), ("rect", "completed-late"),
        ("rect", "open-in-time"), ("rect", "open-overdue"),
    }  # fmt: skip
    assert series["escalations-by-target"] == {("rect", "target-T11"), ("rect", "target-T12")}
    body = "".join(markup.text)
    assert "2 challenged, 1 answered, 1 reopened; answer 30" in body
    assert "23 open, median 40 days; 25% in time" in body
    assert "waiting: 23 carers, 0 adopters" in body
    assert "20 raised" in body
    # The same charts reach the dashboard through the report's `charts` field.
    charted = {c.chart: c.target_id for c in report_charts(decided)}
    assert charted["vetting-by-force"] == "T11"
    assert {"closures-by-council", "escalations-by-target"} <= charted.keys()
    # The tables too: in the HTML, in Markdown, and as CSV rows of their own.
    assert 'id="vetting-force-table"' in text
    markdown = render_markdown(decided)
    assert "## Decisions and checks: closures, vetting, escalations" in markdown
    assert "| WANDS | 23 | 20 | 40.0 | 90.0 | 4 | 25" in markdown
    rows = list(csv.DictReader(io.StringIO(render_csv(decided))))
    sections = Counter(row["section"] for row in rows)
    assert sections["closures"] == 2
    assert sections["vetting_checks"] == 2
    assert sections["escalations"] == 2
    cleveland = next(r for r in rows if r["section"] == "closures" and r["reopened"] == "1")
    assert (cleveland["force_code"], cleveland["median_hours_to_answer"]) == ("CLEVELAND", "30")
    wands = next(r for r in rows if r["section"] == "vetting_checks" and r["grouping"] == "force")
    assert (wands["open_over_target"], wands["share_within_target"]) == ("20", "0.25")
