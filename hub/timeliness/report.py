"""The sharing-delays report in Markdown, CSV and HTML, from one ``ReportData``.

CSV layout: one table with one header, so that any spreadsheet or ``csv.DictReader`` reads it
whole. The ``section`` column says what a row is, and only that section's columns are filled:

* ``report``: the period, scope filters (force_code, council_code, kind), as_of, generated_at
  and the targets and agreement versions; one row.
* ``target``: each target with its limit, description and source.
* ``stats``: one row per group x stage x target; ``grouping`` names the key (force, council,
  kind or month) and the statistics are raw numbers (hours, share as a fraction 0-1).
* ``breach``: every breach (not cut short as in the HTML), children by pseudonym.
* ``burst``: each burst: shared from ``start`` to ``end``, its events from ``event_start`` to
  ``event_end``, ``records`` and ``median_lag_hours``.
* ``batching_score``: per force, ``records``, ``in_bursts`` and ``batching_score`` (0-1).
* ``attendance``, ``joint_visits``, ``protections``: the partnership counts per ``grouping``
  (force, council, month or total; ``kind`` and ``pre_birth`` say which meetings), and
  ``protection_finding``: each police protection without prior discussion, the child by
  pseudonym (`hub.partnership.tables`).

Times are ISO 8601 UTC. Text that a spreadsheet would run as a formula is prefixed with "'".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Literal

from hub.partnership import tables as partnership_tables
from hub.partnership.figures import Grouping
from hub.timeliness import decisions_tables as decisions
from hub.timeliness import formatting as fmt
from hub.timeliness import report_tables as tables
from hub.timeliness.report_data import ReportData, ReportScope, build_report
from hub.timeliness.report_html import render_html
from hub.timeliness.report_tables import Table
from hub.timeliness.stats import StageStats

Format = Literal["md", "html", "csv"]

_BASE_COLUMNS = (
    "section",
    "grouping",
    "force_code",
    "council_code",
    "kind",
    "month",
    "stage",
    "target_id",
    "count",
    "open",
    "median_hours",
    "p90_hours",
    "max_hours",
    "within",
    "breached",
    "share_within",
    "record_id",
    "child",
    "start",
    "end",
    "deadline",
    "delay_hours",
    "still_open",
    "event_start",
    "event_end",
    "records",
    "median_lag_hours",
    "in_bursts",
    "batching_score",
    "limit",
    "description",
    "source",
    "period_from",
    "period_to",
    "as_of",
    "generated_at",
    "targets_version",
    "agreement_version",
    *partnership_tables.CSV_COLUMNS,
)
# The decisions' own columns; those they share (force_code, open...) are the ones above.
CSV_COLUMNS: tuple[str, ...] = (
    *_BASE_COLUMNS,
    *(c for c in decisions.CSV_COLUMNS if c not in _BASE_COLUMNS),
)

__all__ = [
    "CSV_COLUMNS",
    "Format",
    "ReportData",
    "ReportScope",
    "build_report",
    "render",
    "render_csv",
    "render_html",
    "render_markdown",
]


# The breaches Markdown and HTML list, longest first; the CSV lists every one.
SHOWN_BREACHES = 500


def render(data: ReportData, report_format: Format) -> str:
    renderers = {"md": render_markdown, "html": render_html, "csv": render_csv}
    return renderers[report_format](data)


# Markdown ----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "[": "\\[",
        "]": "\\]",
        # Markdown passes HTML through: a name such as <script> must stay text.
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "\n": " ",
        "\r": " ",
    }
)


def _md(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def _md_table(table: Table) -> list[str]:
    if not table.rows:
        return ["None.", ""]
    align = ["---:" if i in table.numeric else "---" for i in range(len(table.headers))]
    lines = [
        "| " + " | ".join(_md(h) for h in table.headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in table.rows]
    if table.hidden:
        lines += ["", f"{table.hidden} more not shown here: the CSV lists them all."]
    return [*lines, ""]


def render_markdown(data: ReportData, *, max_breach_rows: int = SHOWN_BREACHES) -> str:
    title = f"Sharing delays, {data.period_from:%d %B %Y} to {data.period_to:%d %B %Y}"
    lines = [f"# {title}", "", *(_md(line) for line in tables.scope_lines(data)), ""]
    lines += ["## Summary against each target", "", *_md_table(tables.summary_table(data))]
    for target in data.targets.targets:
        flag = " **UNCONFIRMED**" if target.unconfirmed else ""
        lines += [f"## {_md(target.id)}: {_md(target.description)}", ""]
        lines += [
            (
                f"{_md(fmt.kind(target.kind))}, {_md(fmt.stage(target.stage))}: "
                f"{_md(target.limit_text)}.{flag}"
            ),
            "",
        ]
        lines += [f"Source: {_md(target.source)}", ""]
        lines += ["### By force", "", *_md_table(tables.force_table(data, target))]
        lines += ["### By month", "", *_md_table(tables.month_table(data, target))]
    lines += ["## By council", "", *_md_table(tables.council_table(data))]
    lines += [f"## Breaches ({data.breach_count})", ""]
    lines += _md_table(tables.breach_table(data, max_breach_rows))
    lines += ["## Batching", "", *_md_table(tables.batching_table(data))]
    lines += ["### Bursts", "", *_md_table(tables.burst_table(data))]
    lines += _markdown_partnership(data, max_breach_rows)
    lines += ["## Decisions and checks: closures, vetting, escalations", ""]
    for title, table in decisions.tables(data.decisions, data.names):
        lines += [f"### {_md(title)}", "", *_md_table(table)]
    lines += ["## Targets and their sources", "", *_md_table(tables.targets_table(data))]
    lines += ["## How the figures are made", ""]
    lines += [f"- {_md(note)}" for note in tables.method_notes(data)]
    lines += [f"- {_md(note)}" for note in partnership_tables.method_notes()]
    lines += ["", "---", "", _md(tables.footer_text(data)), ""]
    return "\n".join(lines)


def _markdown_partnership(data: ReportData, max_rows: int) -> list[str]:
    figures, names = data.partnership, data.names
    lines = ["## Working together", ""]
    sections = (
        ("Police attendance at meetings", partnership_tables.attendance_table),
        ("Joint visit requests", partnership_tables.joint_visit_table),
        ("Police protection", partnership_tables.protection_table),
    )
    for title, table in sections:
        lines += [f"### {title}", ""]
        for grouping in partnership_tables.REPORT_GROUPINGS:
            lines += [f"#### {partnership_tables.GROUPING_TITLES[grouping]}", ""]
            lines += _md_table(table(figures, grouping, names))
        if table is partnership_tables.attendance_table:
            lines += [f"#### {partnership_tables.SENIORITY_TITLE}", ""]
            lines += _md_table(partnership_tables.seniority_table(figures, names))
    total = sum(r.without_discussion for r in figures.protections_by(Grouping.TOTAL))
    lines += [f"### Protections without prior discussion ({total})", ""]
    return lines + _md_table(partnership_tables.findings_table(figures, names, max_rows))


# CSV ---------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _safe(text: str | None) -> str:
    """Text as data: a cell starting = + - @ (or a tab or CR) would run as a spreadsheet formula."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text or ""


def _stats_row(grouping: str, row: StageStats) -> dict[str, str]:
    group = row.group
    return {
        "grouping": grouping,
        "force_code": _safe(group.force_code),
        "council_code": _safe(group.council_code),
        "kind": _safe(group.kind),
        "month": _safe(group.month),
        "stage": row.stage,
        "target_id": _safe(row.target_id),
        "count": str(row.count),
        "open": str(row.open),
        "median_hours": _number(row.median_hours),
        "p90_hours": _number(row.p90_hours),
        "max_hours": _number(row.max_hours),
        "within": str(row.within) if row.target_id else "",
        "breached": str(row.breached) if row.target_id else "",
        "share_within": _number(row.share_within),
    }


def _csv_rows(data: ReportData) -> Iterator[tuple[str, dict[str, str]]]:
    yield (
        "report",
        {
            "force_code": _safe(data.scope.force_code),
            "council_code": _safe(data.scope.council_code),
            "kind": _safe(data.scope.kind),
            "period_from": data.period_from.isoformat(),
            "period_to": data.period_to.isoformat(),
            "as_of": fmt.utc_iso(data.as_of),
            "generated_at": fmt.utc_iso(data.generated_at),
            "targets_version": data.targets.version,
            "agreement_version": _safe(data.agreement_version),
        },
    )
    for target in data.targets.targets:
        yield (
            "target",
            {
                "target_id": _safe(target.id),
                "kind": target.kind,
                "stage": target.stage,
                "limit": target.limit_text,
                "description": _safe(target.description),
                "source": _safe(target.source),
            },
        )
    groupings = (
        ("force", data.by_force),
        ("council", data.by_council),
        ("kind", data.by_kind),
        ("month", data.by_month),
    )
    for grouping, rows in groupings:
        for row in rows:
            yield "stats", _stats_row(grouping, row)
    for breach in data.breaches:
        yield (
            "breach",
            {
                "target_id": _safe(breach.target_id),
                "force_code": _safe(breach.force_code),
                "council_code": _safe(breach.council_code),
                "kind": _safe(breach.kind),
                "month": _safe(breach.month),
                "stage": breach.stage,
                "record_id": _safe(breach.record_id),
                "child": _safe(breach.child),
                "start": fmt.utc_iso(breach.start),
                "end": fmt.utc_iso(breach.end),
                "deadline": fmt.utc_iso(breach.deadline),
                "delay_hours": _number(breach.delay_hours),
                "still_open": "true" if breach.open else "false",
            },
        )
    for burst in data.bursts:
        yield (
            "burst",
            {
                "force_code": _safe(burst.force_code),
                "council_code": _safe(burst.council_code),
                "start": fmt.utc_iso(burst.start),
                "end": fmt.utc_iso(burst.end),
                "event_start": fmt.utc_iso(burst.event_start),
                "event_end": fmt.utc_iso(burst.event_end),
                "records": str(burst.count),
                "median_lag_hours": _number(burst.median_lag_hours),
            },
        )
    for score in data.batching_scores:
        yield (
            "batching_score",
            {
                "force_code": _safe(score.force_code),
                "records": str(score.records),
                "in_bursts": str(score.in_bursts),
                "batching_score": _number(score.score),
            },
        )


def _cell(value: partnership_tables.Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dt.datetime):
        return fmt.utc_iso(value)
    return _safe(value)


def render_csv(data: ReportData) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for section, row in _csv_rows(data):
        writer.writerow({"section": section, **row})
    for section, values in partnership_tables.csv_rows(data.partnership):
        writer.writerow({"section": section, **{k: _cell(v) for k, v in values.items()}})
    for section, decided in decisions.csv_rows(data.decisions):
        writer.writerow({"section": section, **{k: _cell(v) for k, v in decided.items()}})
    return out.getvalue()
