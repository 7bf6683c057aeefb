"""Batching: records shared in bursts long after they happened (the inspectorate's weekly batches).

A force that pushes each record as it is made spreads its ``shared_at`` times through the day,
each close to its own event. A force that saves notifications up and sends them once a week
delivers many records within minutes of each other, whose events lie days apart and days ago.

Definition. For every record, take the window of the same force's records (or the same force
and council, with ``per_council``) shared from that record's ``shared_at`` up to ``window``
later, inclusive. The window is a burst when all of these hold:

* it holds at least ``min_records`` records;
* their events span at least ``min_event_span`` (earliest to latest event): many separate
  events, not one incident with several linked records;
* the median lag (``shared_at - event``) is at least ``min_median_lag``: the records are old.

Bursts that share a record are merged, so a batch that takes longer than ``window`` to upload
is one burst, not several. A force's batching score is the share of its records that lie in a
burst: 0 when it shares each record as it happens, 1 when everything arrives in batches. A
record shared with two councils is one push and counts once, except per council, where it
counts once in each council's stream.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hub.timeliness.calendar import require_aware
from hub.timeliness.stats import StageDelay

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class BatchingParams:
    # Ten minutes: an upload job sends a week's notifications within seconds or minutes, while a
    # force sharing as it goes sends one record every few minutes even at the busiest (the
    # largest force makes roughly 30 a hour), and those are recent, so fail the lag test.
    window: dt.timedelta = dt.timedelta(minutes=10)
    min_records: int = 5
    min_event_span: dt.timedelta = dt.timedelta(hours=24)
    # 24 hours matches the domestic abuse notification practice (T9): a burst of records each
    # shared within a day of its event is not the late sharing this looks for.
    min_median_lag: dt.timedelta = dt.timedelta(hours=24)
    per_council: bool = False

    def __post_init__(self) -> None:
        if self.min_records < 2:  # noqa: PLR2004 - one record is never a burst
            raise ValueError("min_records must be at least 2")
        if self.window <= dt.timedelta():
            raise ValueError("window must be positive")


@dataclass(frozen=True, slots=True)
class SharedRecord:
    force_code: str
    council_code: str
    kind: str
    record_id: str
    event_at: dt.datetime
    shared_at: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.event_at, name="event_at")
        require_aware(self.shared_at, name="shared_at")

    @property
    def lag_seconds(self) -> float:
        return (self.shared_at - self.event_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Burst:
    force_code: str
    council_code: str | None  # None unless detected per council
    start: dt.datetime  # first shared_at in the burst
    end: dt.datetime  # last shared_at in the burst
    count: int
    median_lag_hours: float
    event_start: dt.datetime
    event_end: dt.datetime


@dataclass(frozen=True, slots=True)
class BatchingScore:
    force_code: str
    records: int
    in_bursts: int

    @property
    def score(self) -> float:
        return self.in_bursts / self.records if self.records else 0.0


@dataclass(frozen=True, slots=True)
class BatchingResult:
    bursts: tuple[Burst, ...]
    scores: tuple[BatchingScore, ...]


def shared_records(rows: Iterable[StageDelay]) -> list[SharedRecord]:
    """The shared records behind ``event_to_shared`` stages: one per record and council."""
    seen: set[tuple[str, str, str]] = set()
    records: list[SharedRecord] = []
    for row in rows:
        key = (row.kind, row.record_id, row.council_code)
        if row.stage != "event_to_shared" or row.end is None or key in seen:
            continue
        seen.add(key)
        records.append(
            SharedRecord(
                row.force_code, row.council_code, row.kind, row.record_id, row.start, row.end
            )
        )
    return records


def detect_batching(
    records: Iterable[SharedRecord], params: BatchingParams | None = None
) -> BatchingResult:
    params = params or BatchingParams()
    groups: dict[tuple[str, str | None], dict[tuple[str, str], SharedRecord]] = defaultdict(dict)
    for record in records:
        council = record.council_code if params.per_council else None
        # A record shared with two councils is one push: count it once per group.
        groups[record.force_code, council].setdefault((record.kind, record.record_id), record)
    bursts: list[Burst] = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (force, council), unique in sorted(groups.items(), key=lambda item: _group_order(item[0])):
        ordered = sorted(unique.values(), key=lambda record: (record.shared_at, record.record_id))
        found = [_burst(force, council, ordered[a:b]) for a, b in _burst_spans(ordered, params)]
        bursts.extend(found)
        totals[force][0] += len(ordered)
        totals[force][1] += sum(burst.count for burst in found)
    scores = tuple(BatchingScore(force, n, inside) for force, (n, inside) in sorted(totals.items()))
    bursts.sort(key=lambda burst: (burst.force_code, burst.council_code or "", burst.start))
    return BatchingResult(tuple(bursts), scores)


def _burst_spans(ordered: Sequence[SharedRecord], params: BatchingParams) -> list[tuple[int, int]]:
    """Index ranges [a, b) of ``ordered`` (by shared_at) that form bursts, merged on overlap."""
    shared = [record.shared_at for record in ordered]
    # Sorted lags and event times of the current window, kept by insertion: O(window) a step,
    # which stays fast even for a week's batch of a large force.
    lags: list[float] = []
    events: list[float] = []
    spans: list[tuple[int, int]] = []
    end = 0
    for first, record in enumerate(ordered):
        while end < len(ordered) and shared[end] - shared[first] <= params.window:
            bisect.insort(lags, ordered[end].lag_seconds)
            bisect.insort(events, ordered[end].event_at.timestamp())
            end += 1
        if end - first >= params.min_records and _is_burst(lags, events, params):
            if spans and first < spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((first, end))
        del lags[bisect.bisect_left(lags, record.lag_seconds)]
        del events[bisect.bisect_left(events, record.event_at.timestamp())]
    return spans


def _is_burst(lags: list[float], events: list[float], params: BatchingParams) -> bool:
    span = events[-1] - events[0]
    return (
        span >= params.min_event_span.total_seconds()
        and statistics.median(lags) >= params.min_median_lag.total_seconds()
    )


def _group_order(key: tuple[str, str | None]) -> tuple[str, str]:
    return key[0], key[1] or ""


def _burst(force: str, council: str | None, records: Sequence[SharedRecord]) -> Burst:
    return Burst(
        force_code=force,
        council_code=council,
        start=records[0].shared_at,
        end=records[-1].shared_at,
        count=len(records),
        median_lag_hours=statistics.median(record.lag_seconds for record in records) / _HOUR,
        event_start=min(record.event_at for record in records),
        event_end=max(record.event_at for record in records),
    )
