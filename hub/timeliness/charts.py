"""SVG charts drawn in Python: no scripts, fonts or stylesheets, so a report is one file.

Each public function returns one ``<svg>`` element, ready to inline in the HTML report or in
the dashboard page. Every chart carries ``data-chart`` (and ``data-target`` where it has one)
and every series is drawn with at least one ``<rect>`` or ``<path>`` marked ``data-series``, so
a browser test can check that it drew. Styling uses presentation attributes only (no ``style``),
so the charts survive a Content-Security-Policy that forbids inline styles. Hover text is SVG
``<title>``; all text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hub.timeliness import formatting as fmt
from hub.timeliness.batching import BatchingScore
from hub.timeliness.stats import StageStats
from hub.timeliness.targets import Target

# Okabe-Ito: distinguishable with colour-blindness and still apart in greyscale print.
MEDIAN = "#0072B2"
P90 = "#56B4E9"
TARGET = "#D55E00"
SHARE = "#009E73"
BATCHING = "#E69F00"
GRID = "#d9d9d9"
INK = "#222222"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"

WIDTH = 760
_ROW = 24
_LABEL_CHARS = 30
_SMALL = 11


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(value: float) -> str:
    """A coordinate: short and stable in the markup."""
    return f"{value:.1f}".removesuffix(".0")


def svg(chart: str, height: float, title: str, body: list[str], target: str | None = None) -> str:
    target_attr = f' data-target="{_e(target)}"' if target is not None else ""
    return (
        f'<svg data-chart="{_e(chart)}"{target_attr} viewBox="0 0 {WIDTH} {_n(height)}" '
        f'width="100%" role="img" font-family="{FONT}" font-size="12" fill="{INK}">'
        f"<title>{_e(title)}</title>{''.join(body)}</svg>"
    )


def svg_text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}">{_e(text)}</text>'
    )


def rect(x: float, y: float, w: float, h: float, *, fill: str, series: str, tip: str) -> str:
    return (
        f'<rect data-series="{series}" x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0.5))}" '
        f'height="{_n(h)}" fill="{fill}"><title>{_e(tip)}</title></rect>'
    )


def _path(d: str, *, stroke: str, series: str, tip: str, dash: bool = False, width: int = 2) -> str:
    dashed = ' stroke-dasharray="5 4"' if dash else ""
    return (
        f'<path data-series="{series}" d="{d}" fill="none" stroke="{stroke}" '
        f'stroke-width="{width}"{dashed}><title>{_e(tip)}</title></path>'
    )


def _grid_line(d: str) -> str:
    return f'<path d="{d}" stroke="{GRID}"/>'


def nice_axis(value: float, ticks: int = 4) -> list[float]:
    """Tick values from 0 to a round number at or above ``value`` (1, 2, 2.5 or 5 x 10^k)."""
    value = value if value > 0 else 1.0
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= raw)
    return [step * i for i in range(math.ceil(value / step - 1e-9) + 1)]


def no_data(chart: str, title: str, target: str | None = None) -> str:
    message = svg_text(WIDTH / 2, 24, "No records in this period.", anchor="middle")
    return svg(chart, 40, title, [message], target)


def legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    """Colour keys, as (label, colour)."""
    body: list[str] = []
    for label, colour in items:
        body.append(f'<rect x="{_n(x)}" y="{_n(y - 9)}" width="16" height="10" fill="{colour}"/>')
        body.append(svg_text(x + 20, y, label))
        x += 28 + 7 * len(label)
    return body


@dataclass(frozen=True, slots=True)
class Bars:
    """A horizontal bar chart's frame: one row per organisation, values from 0 to ``top_value``."""

    rows: int
    top_value: float
    left: float = 210.0
    right: float = 130.0
    top: float = 56.0

    @property
    def width(self) -> float:
        return WIDTH - self.left - self.right

    @property
    def bottom(self) -> float:
        return self.top + _ROW * self.rows

    @property
    def height(self) -> float:
        return self.bottom + 24

    def x(self, value: float) -> float:
        # Values beyond the axis are pinned to its end: the axis follows the 90th percentile so
        # that one extreme record does not flatten every other organisation's bars.
        return self.left + self.width * min(max(value, 0.0), self.top_value) / self.top_value

    def y(self, index: int) -> float:
        return self.top + _ROW * index

    def grid(self, ticks: Sequence[float], label: Callable[[float], str]) -> list[str]:
        body: list[str] = []
        for tick in ticks:
            x = self.x(tick)
            body.append(_grid_line(f"M{_n(x)} {_n(self.top - 6)}V{_n(self.bottom)}"))
            body.append(svg_text(x, self.bottom + 14, label(tick), anchor="middle", size=_SMALL))
        return body

    def label(self, index: int, name: str) -> str:
        short = name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "\u2026"
        text = svg_text(self.left - 8, self.y(index) + 12, short, anchor="end")
        return f"<g><title>{_e(name)}</title>{text}</g>"

    def bar(
        self, index: int, value: float, *, inset: float, colour: str, series: str, tip: str
    ) -> str:
        width = self.x(value) - self.left
        return rect(
            self.left,
            self.y(index) + inset,
            width,
            18 - 2 * inset,
            fill=colour,
            series=series,
            tip=tip,
        )

    def note(self, index: int, text: str) -> str:
        return svg_text(self.left + self.width + 10, self.y(index) + 13, text, size=_SMALL)


def delay_by_force_chart(
    rows: Sequence[StageStats], target: Target, names: Mapping[str, str] | None = None
) -> str:
    """Median and 90th percentile delay per force as bars, the maximum as a marker, and the
    target as a dashed line when it is a fixed number of hours."""
    names = names or {}
    rows = [r for r in rows if r.target_id == target.id and r.group.force_code is not None]
    title = f"{target.id}: delay per force ({fmt.stage(target.stage)}); target {target.limit_text}"
    if not rows:
        return no_data("delay-by-force", title, target.id)
    ticks = nice_axis(max([r.p90_hours or 0 for r in rows] + [target.limit_hours or 0]))
    frame = Bars(rows=len(rows), top_value=ticks[-1])
    body = legend(frame.left, 16, [("median", MEDIAN), ("90th percentile", P90)])
    body += frame.grid(ticks, lambda tick: f"{tick:g} h")
    for index, row in enumerate(rows):
        body += _force_row(frame, index, row, fmt.org(row.group.force_code, names))
    body += _target_marker(frame, target)
    return svg("delay-by-force", frame.height, title, body, target.id)


def _force_row(frame: Bars, index: int, row: StageStats, name: str) -> list[str]:
    body = [frame.label(index, name)]
    if row.median_hours is not None and row.p90_hours is not None and row.max_hours is not None:
        tip = f"{name}: 90th percentile {fmt.hours(row.p90_hours)} ({row.count} records)"
        body.append(frame.bar(index, row.p90_hours, inset=2, colour=P90, series="p90", tip=tip))
        tip = f"{name}: median {fmt.hours(row.median_hours)}"
        body.append(
            frame.bar(index, row.median_hours, inset=5, colour=MEDIAN, series="median", tip=tip)
        )
        diamond = f"M{_n(frame.x(row.max_hours))} {_n(frame.y(index) + 3)}l4 6l-4 6l-4 -6z"
        tip = f"{name}: maximum {fmt.hours(row.max_hours)}"
        body.append(_path(diamond, stroke=INK, series="max", tip=tip, width=1))
    text = f"{fmt.share(row.share_within)} within" if row.target_id else ""
    if row.open:
        text += f", {row.open} open"
    body.append(frame.note(index, text))
    return body


def _target_marker(frame: Bars, target: Target) -> list[str]:
    if target.limit_hours is None:
        text = f"Deadline varies per record: {target.limit_text}"
        return [svg_text(frame.left, frame.top - 18, text, size=_SMALL)]
    x = frame.x(target.limit_hours)
    tip = f"target {target.limit_text}"
    line = f"M{_n(x)} {_n(frame.top - 10)}V{_n(frame.bottom)}"
    return [
        _path(line, stroke=TARGET, series="target", tip=tip, dash=True),
        svg_text(x, frame.top - 14, tip, anchor="middle", size=_SMALL),
    ]


def batching_chart(scores: Sequence[BatchingScore], names: Mapping[str, str] | None = None) -> str:
    """Each force's batching score: the share of its records that arrived in bursts."""
    names = names or {}
    title = "Batching score per force: share of records shared in bursts"
    if not scores:
        return no_data("batching-score", title)
    ordered = sorted(scores, key=lambda s: (-s.score, s.force_code))
    frame = Bars(rows=len(ordered), top_value=1.0, top=30.0)
    body = frame.grid([0, 0.25, 0.5, 0.75, 1], fmt.share)
    for index, score in enumerate(ordered):
        name = fmt.org(score.force_code, names)
        tip = f"{name}: {fmt.share(score.score)} of {score.records} records in bursts"
        body.append(frame.label(index, name))
        body.append(
            frame.bar(index, score.score, inset=3, colour=BATCHING, series="score", tip=tip)
        )
        body.append(frame.note(index, f"{fmt.share(score.score)} of {score.records}"))
    return svg("batching-score", frame.height, title, body)


@dataclass(frozen=True, slots=True)
class _Panel:
    """One panel of a line chart: 0 to ``top_value`` drawn from ``top + height`` up to ``top``."""

    top: float
    height: float
    top_value: float
    left: float = 64.0
    right: float = WIDTH - 24.0

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - min(max(value, 0.0), self.top_value) / self.top_value)

    def grid(self, ticks: Sequence[float], label: Callable[[float], str]) -> list[str]:
        body: list[str] = []
        for tick in ticks:
            y = self.y(tick)
            body.append(_grid_line(f"M{_n(self.left)} {_n(y)}H{_n(self.right)}"))
            body.append(svg_text(self.left - 6, y + 4, label(tick), anchor="end", size=_SMALL))
        return body

    def series(
        self,
        points: Sequence[tuple[float, float | None]],
        *,
        colour: str,
        series: str,
        tip: Callable[[float], str],
    ) -> list[str]:
        """A line through the points, broken where a value is missing, with a dot on each."""
        d, pen_down = [], False
        for x, value in points:
            if value is not None:
                d.append(f"{'L' if pen_down else 'M'}{_n(x)} {_n(self.y(value))}")
            pen_down = value is not None
        if not d:
            return []
        body = [_path("".join(d), stroke=colour, series=series, tip=series.replace("-", " "))]
        body += [
            f'<circle data-series="{series}" cx="{_n(x)}" cy="{_n(self.y(v))}" r="3" '
            f'fill="{colour}"><title>{_e(tip(v))}</title></circle>'
            for x, v in points
            if v is not None
        ]
        return body


def monthly_trend_chart(rows: Sequence[StageStats], target: Target) -> str:
    """Per month: median and 90th percentile delay (upper panel), share within target (lower)."""
    rows = sorted(
        (r for r in rows if r.target_id == target.id and _is_monthly(r)),
        key=lambda r: r.group.month or "",
    )
    title = f"{target.id}: monthly median delay and share within target ({target.limit_text})"
    if not rows:
        return no_data("monthly-trend", title, target.id)
    ticks = nice_axis(max([r.p90_hours or 0 for r in rows] + [target.limit_hours or 0]))
    upper = _Panel(top=40, height=140, top_value=ticks[-1])
    lower = _Panel(top=220, height=90, top_value=1.0)
    xs = [upper.left + (upper.right - upper.left) * (i + 0.5) / len(rows) for i in range(len(rows))]
    body = legend(upper.left, 16, [("median", MEDIAN), ("90th percentile", P90)])
    body += legend(upper.left + 300, 16, [("share within target", SHARE)])
    body += upper.grid(ticks, lambda tick: f"{tick:g} h") + lower.grid([0, 0.5, 1], fmt.share)
    if target.limit_hours is not None:
        line = f"M{_n(upper.left)} {_n(upper.y(target.limit_hours))}H{_n(upper.right)}"
        tip = f"target {target.limit_text}"
        body.append(_path(line, stroke=TARGET, series="target", tip=tip, dash=True))
    body += upper.series(
        list(zip(xs, [r.p90_hours for r in rows], strict=True)),
        colour=P90,
        series="p90",
        tip=lambda v: f"90th percentile {fmt.hours(v)}",
    )
    body += upper.series(
        list(zip(xs, [r.median_hours for r in rows], strict=True)),
        colour=MEDIAN,
        series="median",
        tip=lambda v: f"median {fmt.hours(v)}",
    )
    body += lower.series(
        list(zip(xs, [r.share_within for r in rows], strict=True)),
        colour=SHARE,
        series="share-within",
        tip=lambda v: f"within target {fmt.share(v)}",
    )
    # At most about twelve month labels, so that a long period's labels do not overlap.
    every = math.ceil(len(rows) / 12)
    body += [
        svg_text(
            x, lower.top + lower.height + 18, row.group.month or "", anchor="middle", size=_SMALL
        )
        for index, (x, row) in enumerate(zip(xs, rows, strict=True))
        if index % every == 0
    ]
    return svg("monthly-trend", lower.top + lower.height + 28, title, body, target.id)


def _is_monthly(row: StageStats) -> bool:
    group = row.group
    return group.month is not None and group.force_code is None and group.council_code is None
