# mypy: disallow-untyped-decorators=False
# (as for every hub.*.types module in pyproject.toml: strawberry-graphql/strawberry#1929)
"""The sharing report in GraphQL: figures per group, breaches by pseudonym, bursts, charts.

Every type is governed by the agreement (auth/agreement.toml), so every field is nullable.
"""

from __future__ import annotations

import datetime as dt

import strawberry

from hub.errors import InvalidInput
from hub.partnership import types as partnership
from hub.partnership.charts import partnership_charts
from hub.partnership.types import (
    AttendanceFigures,
    FigureGrouping,
    JointVisitFigures,
    ProtectionFigures,
    ProtectionFinding,
    SeniorityFigures,
)
from hub.timeliness import charts
from hub.timeliness.decisions import decision_charts
from hub.timeliness.report_data import ReportData
from hub.timeliness.stats import Breach, StageStats


@strawberry.type(description="A timescale target and where its figure comes from.")
class ReportTarget:
    id: str | None
    kind: str | None
    stage: str | None
    limit: str | None
    description: str | None
    source: str | None
    unconfirmed: bool | None


@strawberry.type(description="Delay figures of one stage, against one target, for one group.")
class StageFigures:
    row: strawberry.Private[StageStats]

    @strawberry.field
    def force(self) -> str | None:
        return self.row.group.force_code

    @strawberry.field
    def council(self) -> str | None:
        return self.row.group.council_code

    @strawberry.field
    def kind(self) -> str | None:
        return self.row.group.kind

    @strawberry.field(description="YYYY-MM of the events, in England and Wales.")
    def month(self) -> str | None:
        return self.row.group.month

    @strawberry.field
    def stage(self) -> str | None:
        return self.row.stage

    @strawberry.field
    def target_id(self) -> str | None:
        return self.row.target_id

    @strawberry.field(description="Stages ended: the population of the delay figures.")
    def count(self) -> int | None:
        return self.row.count

    @strawberry.field
    def open(self) -> int | None:
        return self.row.open

    @strawberry.field
    def median_hours(self) -> float | None:
        return self.row.median_hours

    @strawberry.field(description="Nearest rank: 90% took no longer.")
    def p90_hours(self) -> float | None:
        return self.row.p90_hours

    @strawberry.field
    def max_hours(self) -> float | None:
        return self.row.max_hours

    @strawberry.field
    def within(self) -> int | None:
        return self.row.within

    @strawberry.field
    def breached(self) -> int | None:
        return self.row.breached

    @strawberry.field
    def share_within(self) -> float | None:
        return self.row.share_within


@strawberry.type(description="A stage that missed its target; the child only by pseudonym.")
class ReportBreach:
    row: strawberry.Private[Breach]

    @strawberry.field
    def target_id(self) -> str | None:
        return self.row.target_id

    @strawberry.field
    def kind(self) -> str | None:
        return self.row.kind

    @strawberry.field
    def force(self) -> str | None:
        return self.row.force_code

    @strawberry.field
    def council(self) -> str | None:
        return self.row.council_code

    @strawberry.field
    def month(self) -> str | None:
        return self.row.month

    @strawberry.field
    def stage(self) -> str | None:
        return self.row.stage

    @strawberry.field
    def record_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.row.record_id)

    @strawberry.field(description="A keyed pseudonym: the same child, never who.")
    def child(self) -> str | None:
        return self.row.child

    @strawberry.field
    def started_at(self) -> dt.datetime | None:
        return self.row.start

    @strawberry.field
    def ended_at(self) -> dt.datetime | None:
        return self.row.end

    @strawberry.field
    def deadline(self) -> dt.datetime | None:
        return self.row.deadline

    @strawberry.field(description="To the end, or to the report's moment while still open.")
    def delay_hours(self) -> float | None:
        return self.row.delay_hours

    @strawberry.field
    def still_open(self) -> bool | None:
        return self.row.open


@strawberry.type(description="Records a force shared within minutes, long after they happened.")
class ReportBurst:
    force: str | None
    shared_from: dt.datetime | None
    shared_to: dt.datetime | None
    records: int | None
    median_lag_hours: float | None
    events_from: dt.datetime | None
    events_to: dt.datetime | None


@strawberry.type(description="The share of a force's records that arrived in bursts (0 to 1).")
class BatchingFigure:
    force: str | None
    records: int | None
    in_bursts: int | None
    score: float | None


@strawberry.type(description="A chart as self-contained SVG (no scripts, no styles).")
class ReportChart:
    chart: str | None
    target_id: str | None
    svg: str | None


# The most breaches one request lists (the report counts every one: `breachCount`).
BREACH_PAGE = 1000


@strawberry.type(description="Sharing delays per force, council, kind and month, with breaches.")
class SharingReport:
    data: strawberry.Private[ReportData]

    @strawberry.field
    def period_from(self) -> dt.date | None:
        return self.data.period_from

    @strawberry.field
    def period_to(self) -> dt.date | None:
        return self.data.period_to

    @strawberry.field(description="Open stages are judged at this moment.")
    def as_of(self) -> dt.datetime | None:
        return self.data.as_of

    @strawberry.field
    def force(self) -> str | None:
        return self.data.scope.force_code

    @strawberry.field
    def council(self) -> str | None:
        return self.data.scope.council_code

    @strawberry.field
    def kind(self) -> str | None:
        return self.data.scope.kind

    @strawberry.field(description="SHA-256 of the targets file the figures were measured against.")
    def targets_version(self) -> str | None:
        return self.data.targets.version

    @strawberry.field
    def targets(self) -> list[ReportTarget] | None:
        return [
            ReportTarget(
                id=t.id,
                kind=t.kind,
                stage=t.stage,
                limit=t.limit_text,
                description=t.description,
                source=t.source,
                unconfirmed=t.unconfirmed,
            )
            for t in self.data.targets.targets
        ]

    @strawberry.field
    def by_force(self) -> list[StageFigures] | None:
        return [StageFigures(row=r) for r in self.data.by_force]

    @strawberry.field
    def by_council(self) -> list[StageFigures] | None:
        return [StageFigures(row=r) for r in self.data.by_council]

    @strawberry.field
    def by_kind(self) -> list[StageFigures] | None:
        return [StageFigures(row=r) for r in self.data.by_kind]

    @strawberry.field
    def by_month(self) -> list[StageFigures] | None:
        return [StageFigures(row=r) for r in self.data.by_month]

    @strawberry.field
    def breach_count(self) -> int | None:
        return self.data.breach_count

    @strawberry.field(description="The longest delays first; the CLI's CSV lists every one.")
    def breaches(self, first: int = 100) -> list[ReportBreach] | None:
        if not 0 <= first <= BREACH_PAGE:
            raise InvalidInput("first must be between 0 and 1000", field="first")
        return [ReportBreach(row=b) for b in self.data.breaches[:first]]

    @strawberry.field
    def bursts(self) -> list[ReportBurst] | None:
        return [
            ReportBurst(
                force=b.force_code,
                shared_from=b.start,
                shared_to=b.end,
                records=b.count,
                median_lag_hours=b.median_lag_hours,
                events_from=b.event_start,
                events_to=b.event_end,
            )
            for b in self.data.bursts
        ]

    @strawberry.field
    def batching(self) -> list[BatchingFigure] | None:
        return [
            BatchingFigure(
                force=s.force_code, records=s.records, in_bursts=s.in_bursts, score=s.score
            )
            for s in self.data.batching_scores
        ]

    @strawberry.field(
        description="Police attendance at strategy discussions and initial and review "
        "conferences, by mode, pre-birth apart; reports before the meeting. All groupings "
        "unless `by` names one."
    )
    def attendance(self, by: FigureGrouping | None = None) -> list[AttendanceFigures] | None:
        return partnership.attendance(self.data.partnership, by)

    @strawberry.field(
        description="Per force, who attended the meetings it attended: the attending "
        "officer's rank or role."
    )
    def attendance_seniority(self) -> list[SeniorityFigures] | None:
        return partnership.seniority(self.data.partnership)

    @strawberry.field(description="Joint visit requests: answered, fulfilled, time to answer.")
    def joint_visits(self, by: FigureGrouping | None = None) -> list[JointVisitFigures] | None:
        return partnership.joint_visits(self.data.partnership, by)

    @strawberry.field(description="Police protections, and those without prior discussion.")
    def police_protections(
        self, by: FigureGrouping | None = None
    ) -> list[ProtectionFigures] | None:
        return partnership.protections(self.data.partnership, by)

    @strawberry.field(
        description="Police protections without prior discussion with children's social "
        "care, the earliest first (all are counted in `policeProtections`)."
    )
    def protection_findings(self, first: int = 100) -> list[ProtectionFinding] | None:
        return partnership.findings(self.data.partnership, first)

    @strawberry.field(
        description="The report's charts: delay per force and monthly trend per "
        "target, the batching scores, and the partnership figures."
    )
    def charts(self) -> list[ReportChart] | None:
        return report_charts(self.data)


def report_charts(data: ReportData) -> list[ReportChart]:
    found: list[ReportChart] = []
    for target in data.targets.targets:
        by_force = charts.delay_by_force_chart(data.by_force, target, data.names)
        found.append(ReportChart(chart="delay-by-force", target_id=target.id, svg=by_force))
        trend = charts.monthly_trend_chart(data.by_month, target)
        found.append(ReportChart(chart="monthly-trend", target_id=target.id, svg=trend))
    batching = charts.batching_chart(data.batching_scores, data.names)
    found.append(ReportChart(chart="batching-score", target_id=None, svg=batching))
    found += [
        ReportChart(chart=chart, target_id=target, svg=svg)
        for chart, target, svg in partnership_charts(data.partnership, data.names)
    ]
    found += [
        ReportChart(chart=chart, target_id=target, svg=svg)
        for chart, target, svg in decision_charts(data.decisions, data.names)
    ]
    return found
