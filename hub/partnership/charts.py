"""The partnership figures drawn: stacked bars per force or council, in the report's style.

Built on `hub.timeliness.charts` (the same frame, colours, escaping and markers): one ``<svg>``
per chart, ``data-chart`` naming it and ``data-target`` the meeting category, each series a
``<rect>`` marked ``data-series``, presentation attributes only, hover text as ``<title>``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from hub.partnership.figures import (
    CONFERENCES,
    Attendance,
    Grouping,
    JointVisits,
    PartnershipData,
    Protections,
)
from hub.timeliness import charts as base
from hub.timeliness import formatting as fmt

IN_PERSON, VIRTUAL, WRITTEN, ABSENT = base.SHARE, base.MEDIAN, base.BATCHING, base.TARGET
UNANSWERED = "#CC79A7"  # Okabe-Ito reddish purple

# The attendance charts: each a category of meeting, pre-birth conferences apart.
CATEGORIES = {
    "strategy_discussion": "Strategy discussions",
    "initial_conference": "Initial child protection conferences (born children)",
    "review_conference": "Review child protection conferences (born children)",
    "pre_birth_conference": "Pre-birth child protection conferences",
}


def category(row: Attendance) -> str:
    if row.kind not in CONFERENCES:
        return "strategy_discussion"
    if row.pre_birth:
        return "pre_birth_conference"
    return "initial_conference" if row.kind.startswith("initial") else "review_conference"


Segment = tuple[str, str, int]  # (series, colour, count)


def _stacked(
    chart: str,
    title: str,
    rows: Sequence[tuple[str, Sequence[Segment], str]],
    legend: Sequence[tuple[str, str]],
    target: str | None = None,
) -> str:
    """One bar per row, its segments as shares of the row's whole, and a note beside it."""
    if not rows:
        return base.no_data(chart, title, target)
    frame = base.Bars(rows=len(rows), top_value=1.0, right=170.0)
    body = base.legend(frame.left, 16, legend)
    body += frame.grid([0, 0.25, 0.5, 0.75, 1], fmt.share)
    for index, (name, segments, note) in enumerate(rows):
        body.append(frame.label(index, name))
        whole = sum(count for _, _, count in segments) or 1
        done = 0
        for series, colour, count in segments:
            if not count:
                continue
            x = frame.x(done / whole)
            width = frame.x((done + count) / whole) - x
            share = fmt.share(count / whole)
            tip = f"{name}: {series.replace('-', ' ')} {count} of {whole} ({share})"
            body.append(
                base.rect(x, frame.y(index) + 3, width, 12, fill=colour, series=series, tip=tip)
            )
            done += count
        body.append(frame.note(index, note))
    return base.svg(chart, frame.height, title, body, target)


_ATTENDANCE_LEGEND = (
    ("in person", IN_PERSON),
    ("virtual", VIRTUAL),
    ("written only", WRITTEN),
    ("absent", ABSENT),
)


def attendance_chart(
    rows: Sequence[Attendance], chosen: str, names: Mapping[str, str] | None = None
) -> str:
    """Per force, how it took part in one category of meeting held (`CATEGORIES`)."""
    names = names or {}
    totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        if row.key.grouping is Grouping.FORCE and row.key.value and category(row) == chosen:
            tally = totals[row.key.value]
            for i, count in enumerate(
                (row.in_person, row.virtual, row.written_report_only, row.absent)
            ):
                tally[i] += count
    ordered = sorted(totals.items(), key=lambda item: (-_share(item[1], 3), item[0]))
    title = f"Police attendance per force: {CATEGORIES[chosen]}"
    bars = [
        (
            fmt.org(force, names),
            list(zip(("in-person", "virtual", "written-only", "absent"),
                     (IN_PERSON, VIRTUAL, WRITTEN, ABSENT), tally, strict=True)),
            f"{sum(tally)} invited, {fmt.share(_share(tally, 3))} absent",
        )
        for force, tally in ordered
    ]  # fmt: skip
    return _stacked("attendance-by-force", title, bars, _ATTENDANCE_LEGEND, chosen)


def _share(tally: Sequence[int], index: int) -> float:
    return tally[index] / sum(tally) if sum(tally) else 0.0


def joint_visit_chart(rows: Sequence[JointVisits], names: Mapping[str, str] | None = None) -> str:
    """Per council, what became of its joint visit requests."""
    names = names or {}
    mine = sorted(
        (r for r in rows if r.key.grouping is Grouping.COUNCIL and r.key.value),
        key=lambda r: (-(r.unanswered / r.requests if r.requests else 0), r.key.value or ""),
    )
    title = "Joint visit requests per council: held jointly, answered, declined, unanswered"
    bars = [
        (
            fmt.org(r.key.value, names),
            [
                ("held-jointly", IN_PERSON, r.held_jointly),
                ("assigned-not-held-jointly", VIRTUAL, r.officer_assigned - _jointly(r)),
                ("not-available", WRITTEN, r.not_available),
                ("unanswered", UNANSWERED, r.unanswered),
            ],
            f"{r.requests} asked, "
            + (
                f"answer {fmt.hours(r.median_answer_hours)}"
                if r.median_answer_hours is not None
                else "none answered"
            ),
        )
        for r in mine
    ]
    legend = (
        ("held jointly", IN_PERSON),
        ("officer assigned", VIRTUAL),
        ("not available", WRITTEN),
        ("unanswered", UNANSWERED),
    )
    return _stacked("joint-visits-by-council", title, bars, legend)


def _jointly(row: JointVisits) -> int:
    # A visit held jointly had an officer assigned; never more than were assigned.
    return min(row.held_jointly, row.officer_assigned)


def protection_chart(rows: Sequence[Protections], names: Mapping[str, str] | None = None) -> str:
    """Per force, its police protections with and without prior discussion with the council."""
    names = names or {}
    mine = sorted(
        (r for r in rows if r.key.grouping is Grouping.FORCE and r.key.value),
        key=lambda r: (-(r.share_without_discussion or 0), r.key.value or ""),
    )
    title = "Police protections per force: with and without prior discussion"
    bars = [
        (
            fmt.org(r.key.value, names),
            [
                ("discussed", IN_PERSON, r.protections - r.without_discussion),
                ("without-discussion", ABSENT, r.without_discussion),
            ],
            f"{r.without_discussion} of {r.protections} without",
        )
        for r in mine
    ]
    legend = (("discussed before", IN_PERSON), ("without discussion", ABSENT))
    return _stacked("protections-by-force", title, bars, legend)


Chart = tuple[str, str | None, str]  # (chart, target, svg)


def partnership_charts(data: PartnershipData, names: Mapping[str, str]) -> list[Chart]:
    """Every partnership chart, in the report's order (each says so when it has no records)."""
    found: list[Chart] = [
        ("attendance-by-force", chosen, attendance_chart(data.attendance, chosen, names))
        for chosen in CATEGORIES
    ]
    found.append(("joint-visits-by-council", None, joint_visit_chart(data.joint_visits, names)))
    found.append(("protections-by-force", None, protection_chart(data.protections, names)))
    return found
