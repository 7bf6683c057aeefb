"""The report's tables and notes as plain text cells, shared by the Markdown and HTML renderings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from hub.timeliness import formatting as fmt
from hub.timeliness.report_data import ReportData
from hub.timeliness.stats import StageStats
from hub.timeliness.targets import Target


@dataclass(frozen=True, slots=True)
class Table:
    id: str  # the HTML element id
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # columns to right-align
    hidden: int = 0  # rows left out for length; the CSV holds them all


_STATS = ("Records", "Open", "Median", "90th pct", "Maximum", "Within target", "Breaches")


def _stat_cells(row: StageStats) -> tuple[str, ...]:
    return (
        str(row.count),
        str(row.open),
        fmt.hours(row.median_hours),
        fmt.hours(row.p90_hours),
        fmt.hours(row.max_hours),
        fmt.share(row.share_within),
        fmt.breaches_text(row),
    )


def _stats_table(
    table_id: str, leading: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], StageStats]]
) -> Table:
    body = tuple((*cells, *_stat_cells(row)) for cells, row in rows)
    numeric = frozenset(range(len(leading), len(leading) + len(_STATS)))
    return Table(table_id, (*leading, *_STATS), body, numeric)


def _target_order(data: ReportData) -> dict[str | None, int]:
    order: dict[str | None, int] = {t.id: i for i, t in enumerate(data.targets.targets)}
    order[None] = len(order)
    return order


def summary_table(data: ReportData) -> Table:
    """Every target (and every stage without one) over the whole scope, per kind of record."""
    order = _target_order(data)
    rows = sorted(data.by_kind, key=lambda row: order.get(row.target_id, len(order)))
    targets = {t.id: t for t in data.targets.targets}

    def leading(row: StageStats) -> tuple[str, ...]:
        target = targets.get(row.target_id or "")
        limit = target.limit_text if target else fmt.DASH
        return (row.target_id or fmt.DASH, fmt.kind(row.group.kind), fmt.stage(row.stage), limit)

    return _stats_table(
        "summary", ("Target", "Kind", "Stage", "Limit"), ((leading(r), r) for r in rows)
    )


def force_table(data: ReportData, target: Target) -> Table:
    rows = [r for r in data.by_force if r.target_id == target.id]
    return _stats_table(
        f"by-force-{target.id}",
        ("Force",),
        (((fmt.org(r.group.force_code, data.names),), r) for r in rows),
    )


def month_table(data: ReportData, target: Target) -> Table:
    rows = [r for r in data.by_month if r.target_id == target.id]
    return _stats_table(
        f"by-month-{target.id}", ("Month",), (((r.group.month or fmt.DASH,), r) for r in rows)
    )


def council_table(data: ReportData) -> Table:
    order = _target_order(data)
    rows = sorted(
        (r for r in data.by_council if r.target_id is not None),
        key=lambda r: (r.group.council_code or "", order.get(r.target_id, len(order))),
    )
    return _stats_table(
        "by-council",
        ("Council", "Target"),
        (((fmt.org(r.group.council_code, data.names), r.target_id or ""), r) for r in rows),
    )


def breach_table(data: ReportData, max_rows: int) -> Table:
    """The longest delays first; children appear only by pseudonym."""
    shown = data.breaches[:max_rows]
    rows = tuple(
        (
            b.target_id,
            fmt.org(b.force_code, data.names),
            fmt.org(b.council_code, data.names),
            b.record_id,
            b.child or fmt.DASH,
            fmt.local_time(b.start),
            fmt.local_time(b.deadline),
            fmt.local_time(b.end) if not b.open else "not yet",
            ("at least " if b.open else "") + fmt.hours(b.delay_hours),
        )
        for b in shown
    )
    headers = ("Target", "Force", "Council", "Record", "Child (pseudonym)", "Start", "Deadline")
    return Table(
        "breaches",
        (*headers, "Ended", "Delay"),
        rows,
        frozenset({8}),
        hidden=data.breach_count - len(shown),
    )


def batching_table(data: ReportData) -> Table:
    ordered = sorted(data.batching_scores, key=lambda s: (-s.score, s.force_code))
    rows = tuple(
        (fmt.org(s.force_code, data.names), str(s.records), str(s.in_bursts), fmt.share(s.score))
        for s in ordered
    )
    return Table(
        "batching-scores", ("Force", "Records", "In bursts", "Score"), rows, frozenset({1, 2, 3})
    )


def burst_table(data: ReportData) -> Table:
    rows = tuple(
        (
            fmt.org(b.force_code, data.names),
            fmt.org(b.council_code, data.names),
            fmt.local_time(b.start),
            fmt.local_time(b.end),
            str(b.count),
            fmt.local_time(b.event_start),
            fmt.local_time(b.event_end),
            fmt.hours(b.median_lag_hours),
        )
        for b in data.bursts
    )
    headers = ("Force", "Council", "Shared from", "Shared to", "Records", "Events from")
    return Table("bursts", (*headers, "Events to", "Median lag"), rows, frozenset({4, 7}))


def targets_table(data: ReportData) -> Table:
    rows = tuple(
        (
            t.id,
            fmt.kind(t.kind),
            fmt.stage(t.stage),
            t.limit_text,
            t.description,
            t.source,
            "UNCONFIRMED" if t.unconfirmed else "confirmed",
        )
        for t in data.targets.targets
    )
    headers = ("Target", "Kind", "Stage", "Limit", "Description", "Source", "Status")
    return Table("targets", headers, rows)


def scope_lines(data: ReportData) -> list[str]:
    scope = data.scope
    return [
        f"Events from {data.period_from:%d %B %Y} to {data.period_to:%d %B %Y}.",
        (
            f"Force: {fmt.org(scope.force_code, data.names)}. "
            f"Council: {fmt.org(scope.council_code, data.names)}. Kind: {fmt.kind(scope.kind)}."
        ),
        f"Figures as of {fmt.local_time(data.as_of)}.",
    ]


def method_notes(data: ReportData) -> list[str]:
    params = data.batching_params
    return [
        (
            "Delays are real elapsed hours from the start of a stage to its end. Working days "
            "(England or Wales bank holidays of the receiving council, from the maintained "
            "holidays library) and school days decide only the deadlines."
        ),
        (
            "Median: the middle delay, or the mean of the two middle delays for an even count. "
            "90th percentile: nearest rank, the smallest delay that at least 90% of records took "
            "no longer than."
        ),
        (
            f"A stage not ended by {fmt.local_time(data.as_of)} is open: it is left out of the "
            "delay figures; once its deadline has passed it counts as a breach, with its delay so "
            "far ('at least'). Share within target leaves out open stages not yet due."
        ),
        (
            "A school day is a working day (weekends and bank holidays are not); school terms are "
            "not modelled."
        ),
        (
            f"A burst is at least {params.min_records} records from one force shared within "
            f"{params.window.total_seconds() / 60:g} minutes of the first, whose events span at "
            f"least {params.min_event_span.total_seconds() / 3600:g} hours and whose median lag "
            f"is at least {params.min_median_lag.total_seconds() / 3600:g} hours; overlapping "
            "bursts are merged. A force's batching score is the share of its records in bursts."
        ),
        (
            "Targets marked UNCONFIRMED have no primary text behind their figure: they are local "
            "choices of the sharing agreement."
        ),
        "Children appear only as pseudonyms. Times are shown in UK time (GMT or BST).",
    ]


def footer_text(data: ReportData) -> str:
    agreement = data.agreement_version or "not given"
    return (
        f"Generated {fmt.local_time(data.generated_at)} by the safeguarding hub. "
        f"Targets version {data.targets.short_version} "
        f"(SHA-256 of {PurePath(data.targets.origin).name}); "
        f"agreement version {agreement}."
    )
