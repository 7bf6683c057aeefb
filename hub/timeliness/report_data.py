"""Everything one report shows, computed once from the stage delays and rendered in any format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hub.partnership.figures import PartnershipData
from hub.timeliness.batching import (
    BatchingParams,
    BatchingScore,
    Burst,
    detect_batching,
    shared_records,
)
from hub.timeliness.calendar import require_aware
from hub.timeliness.decisions import DecisionsData
from hub.timeliness.stats import Breach, StageDelay, StageStats, aggregate, breaches, measure
from hub.timeliness.targets import TargetSet


@dataclass(frozen=True, slots=True)
class ReportScope:
    """The filters a report was asked for; None means all."""

    force_code: str | None = None
    council_code: str | None = None
    kind: str | None = None

    def admits(self, row: StageDelay) -> bool:
        return (
            self.force_code in {None, row.force_code}
            and self.council_code in {None, row.council_code}
            and self.kind in {None, row.kind}
        )


@dataclass(frozen=True, slots=True)
class ReportData:
    period_from: dt.date  # the events' dates, both inclusive, as the caller selected them
    period_to: dt.date
    scope: ReportScope
    as_of: dt.datetime  # open stages are judged at this moment
    generated_at: dt.datetime
    targets: TargetSet
    by_force: tuple[StageStats, ...]
    by_council: tuple[StageStats, ...]
    by_kind: tuple[StageStats, ...]
    by_month: tuple[StageStats, ...]
    breaches: tuple[Breach, ...]  # the longest first: all of them, or the first `breach_limit`
    bursts: tuple[Burst, ...]
    batching_scores: tuple[BatchingScore, ...]
    batching_params: BatchingParams = field(default_factory=BatchingParams)
    agreement_version: str | None = None
    # Organisation code -> name, for display only; codes are shown when a name is missing.
    names: Mapping[str, str] = field(default_factory=dict)
    # Every breach counted, whether or not `breaches` lists them all (None: it does).
    breaches_total: int | None = None
    # Working together: attendance, joint visits, police protection (`hub.partnership`).
    partnership: PartnershipData = field(default_factory=PartnershipData)
    # Closures, vetting checks and escalations (`hub.timeliness.decisions`).
    decisions: DecisionsData = field(default_factory=DecisionsData)

    @property
    def breach_count(self) -> int:
        return len(self.breaches) if self.breaches_total is None else self.breaches_total

    def __post_init__(self) -> None:
        require_aware(self.as_of, name="as_of")
        require_aware(self.generated_at, name="generated_at")
        if self.period_to < self.period_from:
            raise ValueError("period_to is before period_from")


def build_report(
    rows: Iterable[StageDelay],
    targets: TargetSet,
    *,
    period_from: dt.date,
    period_to: dt.date,
    as_of: dt.datetime,
    pseudonymise: Callable[[str], str],
    scope: ReportScope | None = None,
    generated_at: dt.datetime | None = None,
    agreement_version: str | None = None,
    names: Mapping[str, str] | None = None,
    batching: BatchingParams | None = None,
    breach_limit: int | None = None,
) -> ReportData:
    """Judge every stage once, then group it four ways, list breaches and find bursts.

    ``rows`` should already hold only the period's events (the caller's query chose them); the
    scope is applied again here, so a report never shows rows outside what it says it covers.
    ``breach_limit`` lists only the longest breaches (all are counted in ``breaches_total``).
    """
    scope = scope or ReportScope()
    targets = targets.of_shared_records()
    batching = batching or BatchingParams()
    selected = [row for row in rows if scope.admits(row)]
    measured = measure(selected, targets, as_of=as_of)
    batches = detect_batching(shared_records(selected), batching)
    found = breaches(measured, as_of=as_of, pseudonymise=pseudonymise)
    return ReportData(
        period_from=period_from,
        period_to=period_to,
        scope=scope,
        as_of=as_of,
        generated_at=generated_at or as_of,
        targets=targets,
        by_force=tuple(aggregate(measured, ("force",))),
        by_council=tuple(aggregate(measured, ("council",))),
        by_kind=tuple(aggregate(measured, ("kind",))),
        by_month=tuple(aggregate(measured, ("month",))),
        breaches=tuple(found[:breach_limit]),
        bursts=batches.bursts,
        batching_scores=batches.scores,
        batching_params=batching,
        agreement_version=agreement_version,
        names=dict(names or {}),
        breaches_total=len(found),
    )


def disclosure_detail(data: ReportData, *, report_format: str) -> dict[str, object]:
    """What the audit log records of a report leaving the hub (never a child or a figure)."""
    return {
        "report": "sharing report",
        "period_from": data.period_from.isoformat(),
        "period_to": data.period_to.isoformat(),
        "force": data.scope.force_code,
        "council": data.scope.council_code,
        "kind": data.scope.kind,
        "format": report_format,
        "breaches": data.breach_count,
        "targets_version": data.targets.version,
    }
