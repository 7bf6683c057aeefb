"""The report as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched.

An inspector attaches it to a letter, so it must open years later on any machine and print
cleanly on A4. A Content-Security-Policy that allows nothing but the inline stylesheet makes the
"nothing fetched, nothing run" promise checkable by the browser itself.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from hub.partnership import charts as partnership_charts
from hub.partnership import tables as partnership_tables
from hub.partnership.figures import Grouping
from hub.timeliness import charts, decisions_tables
from hub.timeliness import formatting as fmt
from hub.timeliness import report_tables as tables
from hub.timeliness.report_data import ReportData
from hub.timeliness.report_tables import Table
from hub.timeliness.targets import Target

_CSP = "default-src 'none'; style-src 'unsafe-inline'"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #222; max-width: 1040px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 18px; border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 4px 0 8px; }
.meta { color: #444; }
.source { color: #444; font-size: 13px; }
.unconfirmed { background: #fff3cd; border: 1px solid #d9b64f; border-radius: 3px;
  padding: 0 4px; font-size: 11px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; margin: 6px 0 16px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 10px 0 14px; }
figure svg { display: block; max-width: 800px; height: auto; }
figcaption { font-size: 12px; color: #555; }
ul.notes li { margin-bottom: 4px; }
footer { margin-top: 36px; border-top: 1px solid #ccc; padding-top: 8px; font-size: 12px;
  color: #555; }
@page { size: A4; margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  h2, h3 { break-after: avoid; }
  figure, tr { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(table: Table, *, caption: str | None = None) -> str:
    if not table.rows:
        return f'<p id="{_e(table.id)}" class="meta">None.</p>'

    def cell(tag: str, index: int, text: str) -> str:
        css = ' class="num"' if index in table.numeric else ""
        return f"<{tag}{css}>{_e(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(table.headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, text) for i, text in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    caption_html = f"<caption>{_e(caption)}</caption>" if caption else ""
    more = ""
    if table.hidden:
        more = f'<p class="meta">{table.hidden} more not shown here: the CSV lists them all.</p>'
    return (
        f'<table id="{_e(table.id)}">{caption_html}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>{more}"
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _badge(target: Target) -> str:
    return ' <span class="unconfirmed">UNCONFIRMED</span>' if target.unconfirmed else ""


def _target_section(data: ReportData, target: Target) -> str:
    by_force = charts.delay_by_force_chart(data.by_force, target, data.names)
    trend = charts.monthly_trend_chart(data.by_month, target)
    return (
        f'<section class="target" id="target-{_e(target.id)}">'
        f"<h2>{_e(target.id)}: {_e(target.description)}</h2>"
        f"<p><strong>{_e(fmt.kind(target.kind))}</strong>, {_e(fmt.stage(target.stage))}: "
        f"{_e(target.limit_text)}.{_badge(target)}</p>"
        f'<p class="source">Source: {_e(target.source)}</p>'
        f"<h3>Delay per force</h3>"
        + _figure(by_force, "Bars: median and 90th percentile; diamond: maximum; dashed: target.")
        + _table(tables.force_table(data, target))
        + "<h3>Month by month</h3>"
        + _figure(trend, "Upper: median and 90th percentile delay. Lower: share within target.")
        + _table(tables.month_table(data, target))
        + "</section>"
    )


def _batching_section(data: ReportData) -> str:
    return (
        '<section id="batching"><h2>Batching: records shared in bursts long after the event</h2>'
        + _figure(
            charts.batching_chart(data.batching_scores, data.names),
            "Share of each force's records that reached the hub inside a burst.",
        )
        + _table(tables.batching_table(data))
        + "<h3>Bursts</h3>"
        + _table(tables.burst_table(data))
        + "</section>"
    )


_CHART_CAPTIONS = {
    "attendance-by-force": "Each force's invitations to meetings held: in person, virtual "
    "(video or phone), a written report only, absent.",
    "joint-visits-by-council": "What became of each council's joint visit requests; beside "
    "each bar the median time the force took to answer.",
    "protections-by-force": "Each force's police protections, with and without prior "
    "discussion with children's social care.",
}


def _partnership_section(data: ReportData, max_rows: int) -> str:
    figures, names = data.partnership, data.names
    drawn = {
        (chart, target): svg
        for chart, target, svg in partnership_charts.partnership_charts(figures, names)
    }

    def grouped(table: Callable[..., Table]) -> str:
        return "".join(
            f"<h4>{_e(partnership_tables.GROUPING_TITLES[g])}</h4>"
            + _table(table(figures, g, names))
            for g in partnership_tables.REPORT_GROUPINGS
        )

    attendance = "".join(
        f"<h3>{_e(title)}</h3>" + _figure(drawn["attendance-by-force", chosen],
                                          _CHART_CAPTIONS["attendance-by-force"])
        for chosen, title in partnership_charts.CATEGORIES.items()
    )  # fmt: skip
    total = sum(r.without_discussion for r in figures.protections_by(Grouping.TOTAL))
    return (
        '<section id="partnership"><h2>Working together: meetings, joint visits, protection</h2>'
        + attendance
        + grouped(partnership_tables.attendance_table)
        + f"<h4>{_e(partnership_tables.SENIORITY_TITLE)}</h4>"
        + _table(partnership_tables.seniority_table(figures, names))
        + "<h3>Joint visit requests</h3>"
        + _figure(
            drawn["joint-visits-by-council", None], _CHART_CAPTIONS["joint-visits-by-council"]
        )
        + grouped(partnership_tables.joint_visit_table)
        + "<h3>Police protection</h3>"
        + _figure(drawn["protections-by-force", None], _CHART_CAPTIONS["protections-by-force"])
        + grouped(partnership_tables.protection_table)
        + f"<h3>Protections without prior discussion ({total})</h3>"
        + _table(partnership_tables.findings_table(figures, names, max_rows))
        + "</section>"
    )


def render_html(data: ReportData, *, max_breach_rows: int = 500) -> str:
    title = f"Sharing delays, {data.period_from:%d %B %Y} to {data.period_to:%d %B %Y}"
    breaches = tables.breach_table(data, max_breach_rows)
    notes = "".join(f"<li>{_e(note)}</li>" for note in tables.method_notes(data))
    partnership_notes = "".join(f"<li>{_e(n)}</li>" for n in partnership_tables.method_notes())
    return (
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        + "".join(f'<p class="meta">{_e(line)}</p>' for line in tables.scope_lines(data))
        + "</header>"
        '<section id="overview"><h2>Summary against each target</h2>'
        + _table(tables.summary_table(data))
        + "</section>"
        + "".join(_target_section(data, target) for target in data.targets.targets)
        + '<section id="councils"><h2>By council</h2>'
        + _table(tables.council_table(data))
        + "</section>"
        + f'<section id="breach-list"><h2>Breaches ({data.breach_count})</h2>'
        + _table(breaches)
        + "</section>"
        + _batching_section(data)
        + _partnership_section(data, max_breach_rows)
        + decisions_tables.html_section(data.decisions, data.names, _table)
        + '<section id="targets-and-sources"><h2>Targets and their sources</h2>'
        + _table(tables.targets_table(data))
        + '</section><section id="method"><h2>How the figures are made</h2>'
        + f'<ul class="notes">{notes}{partnership_notes}</ul></section>'
        + f"<footer><p>{_e(tables.footer_text(data))}</p></footer></body></html>\n"
    )
