"""Delay figures per group: count, median, 90th percentile, maximum, share within target, breaches.

Conventions (each is what a report states in its notes):

* A delay is the real elapsed time from a stage's start to its end, in hours. Working days
  and school days decide only a target's deadline, never the size of a delay.
* The median is the middle value, or the mean of the two middle values for an even count
  (PostgreSQL ``percentile_cont(0.5)``). The 90th percentile is nearest-rank: the smallest
  delay that at least 90% of records took no longer than, always one of the observed delays
  (PostgreSQL ``percentile_disc(0.9)``), so "90% were shared within X hours" is literally true.
* A stage is open when it has no end, or ends after the report's ``as_of``: its delay is not
  known yet, so it is left out of the count, median, 90th percentile and maximum and counted as
  ``open``. An open stage whose deadline has passed at ``as_of`` is a breach already (a record
  never shared is the worst breach of all); one not yet due is neither within nor breached.
* Share within target = within / (within + breached): records still pending are left out.
* Each row is measured against every target for its kind and stage (a domestic abuse incident
  is held to both T8 and T9). A stage with no target for its kind is still described, with
  ``target_id`` None and no share.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hub.timeliness.calendar import check_nation, require_aware
from hub.timeliness.targets import STAGES, Target, TargetSet, Unit

GroupKey = Literal["force", "council", "kind", "month"]
GROUP_KEYS: tuple[GroupKey, ...] = ("force", "council", "kind", "month")
Status = Literal["within", "breached", "pending", "untargeted"]
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class StageDelay:
    """One stage of one record's timeline, for one receiving council."""

    kind: str
    force_code: str
    council_code: str
    month: str  # YYYY-MM of the event, in England and Wales (calendar.month_of)
    stage: str
    start: dt.datetime
    end: dt.datetime | None  # None: not reached yet (not shared, seen or acknowledged)
    nation: str  # the receiving council's: its working days and school days apply
    record_id: str
    child_id: str | None = None
    # The record's own deadline for the stage, when its kind declares one (`record_deadline`).
    due: dt.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self.start, name="start")
        if self.end is not None:
            require_aware(self.end, name="end")
        check_nation(self.nation)


@dataclass(frozen=True, slots=True)
class Group:
    """The values a row of figures is grouped by; None means every value (not grouped)."""

    force_code: str | None = None
    council_code: str | None = None
    kind: str | None = None
    month: str | None = None


@dataclass(frozen=True, slots=True)
class StageStats:
    group: Group
    stage: str
    target_id: str | None
    count: int  # stages ended by as_of: the population of the delay figures
    open: int
    median_hours: float | None
    p90_hours: float | None
    max_hours: float | None
    within: int
    breached: int  # ended late, or still open past the deadline

    @property
    def share_within(self) -> float | None:
        judged = self.within + self.breached
        return self.within / judged if judged else None


@dataclass(frozen=True, slots=True)
class Breach:
    target_id: str
    kind: str
    force_code: str
    council_code: str
    month: str
    stage: str
    record_id: str
    child: str | None  # the pseudonym, never the child's id
    start: dt.datetime
    end: dt.datetime | None
    deadline: dt.datetime
    delay_hours: float  # to the end, or to as_of while still open ("at least")
    open: bool

    @property
    def overdue_hours(self) -> float:
        return self.delay_hours - (self.deadline - self.start).total_seconds() / _HOUR


@dataclass(frozen=True, slots=True)
class Measured:
    """A row judged against one target (or none) at ``as_of``: computed once, grouped often."""

    row: StageDelay
    target: Target | None
    delay_hours: float | None  # None while open
    deadline: dt.datetime | None
    status: Status


def nearest_rank(values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile of ascending ``values``: the value at rank ceil(p/100 x n)."""
    if not values:
        raise ValueError("no values")
    if not 0 < percent <= 100:  # noqa: PLR2004 - a percentage
        raise ValueError("percent must be in 1..100")
    # Integer arithmetic: 0.9 * 70 is 63.00000000000001 in floating point, and ceil() would
    # then pick rank 64.
    rank = (percent * len(values) + 99) // 100
    return values[rank - 1]


def measure(
    rows: Iterable[StageDelay], targets: TargetSet, *, as_of: dt.datetime
) -> list[Measured]:
    """Judge every row against every target for its kind and stage, at ``as_of``."""
    as_of = require_aware(as_of, name="as_of")
    by_stage: dict[tuple[str, str], list[Target]] = defaultdict(list)
    for target in targets.targets:
        by_stage[target.kind, target.stage].append(target)
    measured: list[Measured] = []
    for row in rows:
        end = row.end if row.end is not None and row.end <= as_of else None
        delay = None if end is None else (end - row.start).total_seconds() / _HOUR
        applicable = by_stage.get((row.kind, row.stage), ())
        if not applicable:
            measured.append(Measured(row, None, delay, None, "untargeted"))
        for target in applicable:
            if target.unit is Unit.RECORD_DEADLINE and row.due is None:
                # No deadline to judge by: counted, neither within nor breached.
                measured.append(Measured(row, target, delay, None, "pending"))
                continue
            deadline = target.deadline(row.start, row.nation, due=row.due)
            measured.append(Measured(row, target, delay, deadline, _status(end, deadline, as_of)))
    return measured


def _status(end: dt.datetime | None, deadline: dt.datetime, as_of: dt.datetime) -> Status:
    if end is not None:
        return "within" if end <= deadline else "breached"
    return "breached" if deadline < as_of else "pending"


# (force, council, kind, month, stage, target id): a plain tuple hashes far faster than a
# dataclass, and a national year has millions of rows.
_Key = tuple[str | None, str | None, str | None, str | None, str, str | None]


@dataclass
class _Tally:
    delays: list[float] = field(default_factory=list)
    open: int = 0
    within: int = 0
    breached: int = 0

    def add(self, item: Measured) -> None:
        if item.delay_hours is None:
            self.open += 1
        else:
            self.delays.append(item.delay_hours)
        self.within += item.status == "within"
        self.breached += item.status == "breached"


def aggregate(measured: Iterable[Measured], group_by: Sequence[GroupKey] = ()) -> list[StageStats]:
    """Figures per group x stage x target, ordered by group, then stage, then target id."""
    unknown = set(group_by) - set(GROUP_KEYS)
    if unknown:
        raise ValueError(f"unknown grouping keys: {', '.join(sorted(unknown))}")
    by_force, by_council, by_kind, by_month = (key in group_by for key in GROUP_KEYS)
    tallies: dict[_Key, _Tally] = defaultdict(_Tally)
    for item in measured:
        row, target = item.row, item.target
        key: _Key = (
            row.force_code if by_force else None,
            row.council_code if by_council else None,
            # A target's population is one kind, so its rows name that kind even ungrouped.
            row.kind if by_kind or target is not None else None,
            row.month if by_month else None,
            row.stage,
            target.id if target is not None else None,
        )
        tallies[key].add(item)
    stage_order = {stage: index for index, stage in enumerate(STAGES)}

    def sort_key(key: _Key) -> tuple[object, ...]:
        *names, stage, target_id = key
        return (*(name or "" for name in names), stage_order.get(stage or "", 99), target_id or "")

    return [_stats(key, tallies[key]) for key in sorted(tallies, key=sort_key)]


def _stats(key: _Key, tally: _Tally) -> StageStats:
    force, council, kind, month, stage, target_id = key
    delays = sorted(tally.delays)
    return StageStats(
        group=Group(force, council, kind, month),
        stage=stage,
        target_id=target_id,
        count=len(delays),
        open=tally.open,
        median_hours=statistics.median(delays) if delays else None,
        p90_hours=nearest_rank(delays, 90) if delays else None,
        max_hours=delays[-1] if delays else None,
        within=tally.within,
        breached=tally.breached,
    )


def breaches(
    measured: Iterable[Measured], *, as_of: dt.datetime, pseudonymise: Callable[[str], str]
) -> list[Breach]:
    """Every breach, longest delay first; children appear only as pseudonyms."""
    as_of = require_aware(as_of, name="as_of")
    found: list[Breach] = []
    for item in measured:
        if item.status != "breached" or item.target is None or item.deadline is None:
            continue
        row = item.row
        delay = item.delay_hours
        if delay is None:
            delay = (as_of - row.start).total_seconds() / _HOUR
        child = pseudonymise(row.child_id) if row.child_id is not None else None
        breach = Breach(
            target_id=item.target.id,
            kind=row.kind,
            force_code=row.force_code,
            council_code=row.council_code,
            month=row.month,
            stage=row.stage,
            record_id=row.record_id,
            child=child,
            start=row.start,
            end=row.end if item.delay_hours is not None else None,
            deadline=item.deadline,
            delay_hours=delay,
            open=item.delay_hours is None,
        )
        found.append(breach)
    found.sort(key=breach_order)
    return found


def breach_order(breach: Breach) -> tuple[float, str, str, str]:
    """Longest first; equal delays by target, record and council (the SQL path sorts alike)."""
    return (-breach.delay_hours, breach.target_id, breach.record_id, breach.council_code)


def compute_stats(
    rows: Iterable[StageDelay],
    targets: TargetSet,
    *,
    as_of: dt.datetime,
    group_by: Sequence[GroupKey] = (),
) -> list[StageStats]:
    """``measure`` then ``aggregate``: for one grouping. Measure once to group several ways."""
    return aggregate(measure(rows, targets, as_of=as_of), group_by)
