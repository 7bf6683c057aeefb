"""The batching detector on synthetic forces whose behaviour is known by construction."""

import datetime as dt

import pytest

from hub.timeliness.batching import (
    BatchingParams,
    SharedRecord,
    detect_batching,
    shared_records,
)
from hub.timeliness.stats import StageDelay

UTC = dt.UTC
# January: UK time is UTC, so the hand-worked times below read the same either way.
MONDAY = dt.datetime(2025, 1, 6, tzinfo=UTC)


def record(
    force: str, n: int, event: dt.datetime, shared: dt.datetime, council: str = "C1"
) -> SharedRecord:
    return SharedRecord(force, council, "domestic_abuse", f"{force}-{n}", event, shared)


def realtime_force(force: str = "PROMPT", days: int = 21) -> list[SharedRecord]:
    """A record every 2 hours for three weeks, each shared 5 minutes after its event."""
    events = [MONDAY + dt.timedelta(hours=2 * i) for i in range(12 * days)]
    return [record(force, i, e, e + dt.timedelta(minutes=5)) for i, e in enumerate(events)]


def weekly_force(force: str = "WEEKLY", weeks: int = 3) -> list[SharedRecord]:
    """Four events a day (00:00, 06:00, 12:00, 18:00), all shared the next Monday from 09:00,
    ten seconds apart: record i of a week happened 6i hours after its Monday began."""
    records: list[SharedRecord] = []
    for week in range(weeks):
        week_start = MONDAY + dt.timedelta(weeks=week)
        upload = week_start + dt.timedelta(weeks=1, hours=9)
        for i in range(28):
            event = week_start + dt.timedelta(hours=6 * i)
            shared = upload + dt.timedelta(seconds=10 * i)
            records.append(record(force, 28 * week + i, event, shared))
    return records


def test_a_force_sharing_each_record_as_it_happens_scores_zero() -> None:
    result = detect_batching(realtime_force())
    assert result.bursts == ()
    (score,) = result.scores
    assert (score.force_code, score.records, score.in_bursts, score.score) == ("PROMPT", 252, 0, 0)


def test_a_force_sending_each_week_on_monday_morning_scores_one() -> None:
    result = detect_batching(weekly_force())
    assert len(result.bursts) == 3  # one a week
    first = result.bursts[0]
    assert first.force_code == "WEEKLY"
    assert first.council_code is None
    assert first.count == 28
    assert first.start == dt.datetime(2025, 1, 13, 9, tzinfo=UTC)
    assert first.end == dt.datetime(2025, 1, 13, 9, 4, 30, tzinfo=UTC)  # 27 x 10 s
    assert first.event_start == MONDAY
    assert first.event_end == MONDAY + dt.timedelta(hours=6 * 27)
    # Lag of record i: 177 h - i x (6 h - 10 s). Median of 28: records 13 and 14, so
    # 177 h - 13.5 x 21,590 s = 637,200 s - 291,465 s = 345,735 s = 96.0375 h.
    assert first.median_lag_hours == pytest.approx(96.0375)
    (score,) = result.scores
    assert (score.records, score.in_bursts, score.score) == (84, 84, 1.0)


def test_forces_are_scored_separately() -> None:
    result = detect_batching(realtime_force() + weekly_force())
    assert {s.force_code: s.score for s in result.scores} == {"PROMPT": 0.0, "WEEKLY": 1.0}
    assert {b.force_code for b in result.bursts} == {"WEEKLY"}


def test_a_busy_force_sharing_promptly_is_not_batching() -> None:
    # Ten records within ten minutes, events spread over two days, but each shared within
    # an hour (median lag far under 24 hours): busy, not late.
    start = MONDAY + dt.timedelta(days=2)
    records = [
        record(
            "BUSY",
            i,
            start - dt.timedelta(hours=48 if i == 0 else 0.5),
            start + dt.timedelta(minutes=i),
        )
        for i in range(10)
    ]
    assert detect_batching(records).bursts == ()


# Borderline -------------------------------------------------------------------------------

T = MONDAY + dt.timedelta(days=3)
# Five records shared 150 s apart (0 to exactly 10 minutes), with lags 30 h, 28 h, 24 h,
# 12 h and 6 h 10 min: median lag exactly 24 h; events from T - 30 h to T - 6 h, exactly 24 h.
LAGS = [
    dt.timedelta(hours=30),
    dt.timedelta(hours=28),
    dt.timedelta(hours=24),
    dt.timedelta(hours=12),
    dt.timedelta(hours=6, minutes=10),
]
BORDERLINE = [
    record("EDGE", i, T + dt.timedelta(seconds=150 * i) - lag, T + dt.timedelta(seconds=150 * i))
    for i, lag in enumerate(LAGS)
]


def test_exactly_at_every_threshold_is_a_burst() -> None:
    (burst,) = detect_batching(BORDERLINE).bursts
    assert burst.count == 5
    assert burst.median_lag_hours == 24
    assert burst.event_end - burst.event_start == dt.timedelta(hours=24)
    assert burst.end - burst.start == dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    "params",
    [
        BatchingParams(window=dt.timedelta(minutes=10) - dt.timedelta(seconds=1)),
        BatchingParams(min_records=6),
        BatchingParams(min_event_span=dt.timedelta(hours=24, seconds=1)),
        BatchingParams(min_median_lag=dt.timedelta(hours=24, seconds=1)),
    ],
    ids=["window", "min_records", "min_event_span", "min_median_lag"],
)
def test_just_past_any_threshold_is_no_burst(params: BatchingParams) -> None:
    result = detect_batching(BORDERLINE, params)
    assert result.bursts == ()
    assert result.scores[0].score == 0


def test_four_records_are_not_a_burst_by_default() -> None:
    assert (
        detect_batching(BORDERLINE[:4], BatchingParams(min_event_span=dt.timedelta())).bursts == ()
    )


# Merging, councils, duplicates -------------------------------------------------------------


def test_a_long_upload_is_one_burst_not_several() -> None:
    # 40 records, 30 seconds apart: 19.5 minutes, longer than the 10-minute window.
    upload = MONDAY + dt.timedelta(days=8, hours=9)
    records = [
        record("SLOW", i, MONDAY + dt.timedelta(hours=4 * i), upload + dt.timedelta(seconds=30 * i))
        for i in range(40)
    ]
    (burst,) = detect_batching(records).bursts
    assert burst.count == 40
    assert burst.end - burst.start == dt.timedelta(minutes=19, seconds=30)


def test_per_council_bursts_name_the_council() -> None:
    records = [
        SharedRecord(
            "WEEKLY",
            "C2" if r.record_id.endswith(("1", "3", "5", "7", "9")) else "C1",
            r.kind,
            r.record_id,
            r.event_at,
            r.shared_at,
        )
        for r in weekly_force(weeks=1)
    ]
    result = detect_batching(records, BatchingParams(per_council=True))
    assert sorted((b.council_code, b.count) for b in result.bursts) == [("C1", 14), ("C2", 14)]
    assert result.scores[0].score == 1


def test_a_record_shared_with_two_councils_counts_once_per_force() -> None:
    records = weekly_force(weeks=1)
    copies = [
        SharedRecord(r.force_code, "C2", r.kind, r.record_id, r.event_at, r.shared_at)
        for r in records
    ]
    (score,) = detect_batching(records + copies).scores
    assert (score.records, score.in_bursts) == (28, 28)


def test_shared_records_come_from_event_to_shared_stages() -> None:
    start = MONDAY
    end = MONDAY + dt.timedelta(days=1)

    def stage(
        name: str, record_id: str, end_at: dt.datetime | None, council: str = "C1"
    ) -> StageDelay:
        return StageDelay(
            "incident", "F", council, "2025-01", name, start, end_at, "wales", record_id, "c"
        )

    rows = [
        stage("event_to_shared", "r1", end),
        stage("event_to_shared", "r1", end),  # a second child on the same record
        stage("event_to_shared", "r1", end, council="C2"),
        stage("event_to_shared", "r2", None),  # not shared yet
        stage("shared_to_acknowledged", "r3", end),
    ]
    found = shared_records(rows)
    assert [(r.record_id, r.council_code) for r in found] == [("r1", "C1"), ("r1", "C2")]
    assert found[0].shared_at == end


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="min_records"):
        BatchingParams(min_records=1)
    with pytest.raises(ValueError, match="window"):
        BatchingParams(window=dt.timedelta())
    with pytest.raises(ValueError, match="naive"):
        SharedRecord("F", "C", "incident", "r", dt.datetime(2025, 1, 1), MONDAY)  # noqa: DTZ001


def _candidates_by_definition(
    force: list[int], shared: list[int], event: list[int], window: int, least: int, span: int
) -> set[int]:
    """The burst candidates as `burst_candidates` defines them, record by record."""
    n = len(force)

    def within(i: int, low: int, high: int, among: set[int]) -> list[int]:
        return [j for j in among if force[j] == force[i] and low <= shared[j] <= high]

    every = set(range(n))
    dense = [len(within(j, shared[j], shared[j] + window, every)) >= least for j in range(n)]
    covered = {
        i
        for i in range(n)
        if any(dense[j] for j in within(i, shared[i] - window, shared[i], every))
    }
    anchors = set()
    for i in covered:
        members = within(i, shared[i], shared[i] + window, covered)
        events = [event[j] for j in members]
        if len(members) >= least and max(events) - min(events) >= span:
            anchors.add(i)
    return {i for i in covered if within(i, shared[i] - window, shared[i], anchors)}


@pytest.mark.parametrize("seed", range(12))
def test_numpy_burst_candidates_are_the_defined_ones(seed: int) -> None:
    """Random forces with bursts, equal times and lone records: numpy finds exactly the records
    the definition names (the detector's input on PostgreSQL)."""
    import random  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from hub.timeliness.burst_candidates import candidates  # noqa: PLC0415

    rng = random.Random(seed)
    force, shared, event = [], [], []
    for _ in range(rng.randint(0, 160)):
        at = rng.choice([rng.randint(0, 400), rng.randint(0, 40) * 10])  # some equal times
        force.append(rng.randint(1, 3) * 7_919)
        shared.append(1_000 + at)
        event.append(at - rng.choice([0, rng.randint(0, 300)]))
    window, least, span = 20, rng.randint(2, 5), rng.choice([0, 50, 150])
    found = candidates(
        np.asarray(force, dtype=np.int64),
        np.asarray(shared, dtype=np.int64),
        np.asarray(event, dtype=np.int64),
        window=window,
        min_records=least,
        min_span=span,
    )
    expected = _candidates_by_definition(force, shared, event, window, least, span)
    assert sorted(found.tolist()) == sorted(expected)
    assert len(found) == len(set(found.tolist()))
