"""Delay figures on small data worked out by hand (all synthetic)."""

import dataclasses
import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

import pytest

from hub.timeliness.stats import (
    Group,
    GroupKey,
    StageDelay,
    aggregate,
    breaches,
    compute_stats,
    measure,
    nearest_rank,
)
from hub.timeliness.targets import parse_targets

LONDON = ZoneInfo("Europe/London")
TARGETS = parse_targets(
    """
schema = 1

[[targets]]
id = "DAY"
kind = "incident"
stage = "event_to_shared"
unit = "hours"
limit = 24
description = "Within a day."
source = "Test."

[[targets]]
id = "SCHOOL"
kind = "domestic_abuse"
stage = "event_to_shared"
unit = "next_school_day"
description = "Before the next school day."
source = "Test."

[[targets]]
id = "DA-DAY"
kind = "domestic_abuse"
stage = "event_to_shared"
unit = "hours"
limit = 24
description = "Within a day."
source = "Test."
"""
)


def uk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=LONDON).astimezone(dt.UTC)


AS_OF = uk(2025, 3, 31, 12)
BASE = uk(2025, 3, 4, 10)


def delay(
    force: str,
    record: str,
    hours: float | None,
    *,
    month: str = "2025-03",
    start: dt.datetime = BASE,
    kind: str = "incident",
    stage: str = "event_to_shared",
) -> StageDelay:
    end = None if hours is None else start + dt.timedelta(hours=hours)
    return StageDelay(
        kind=kind,
        force_code=force,
        council_code=f"COUNCIL_{force}",
        month=month,
        stage=stage,
        start=start,
        end=end,
        nation="england",
        record_id=record,
        child_id=f"child-of-{record}",
    )


def pseudonym(child_id: str) -> str:
    return "P-" + hashlib.sha256(child_id.encode()).hexdigest()[:8]


ROWS = [
    delay("ALPHA", "a-2", 2, month="2025-02"),
    delay("ALPHA", "a-6", 6, month="2025-02"),
    delay("ALPHA", "a-10", 10),
    delay("ALPHA", "a-late", 30),
    # Open, deadline passed (30 hours old at AS_OF): a breach already.
    delay("ALPHA", "a-open", None, start=AS_OF - dt.timedelta(hours=30)),
    # Open, 2 hours old: pending, neither within nor breached.
    delay("ALPHA", "a-pending", None, start=AS_OF - dt.timedelta(hours=2)),
    delay("BRAVO", "b-1", 1),
    delay("BRAVO", "b-3", 3),
    delay("BRAVO", "b-5", 5),
]


# Percentiles ------------------------------------------------------------------------------


def test_nearest_rank_by_hand() -> None:
    one_to_ten = [float(v) for v in range(1, 11)]
    assert nearest_rank(one_to_ten, 90) == 9  # rank ceil(9.0) = 9
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 90) == 4  # rank ceil(3.6) = 4
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2  # rank ceil(2.0) = 2
    assert nearest_rank([7.0], 90) == 7
    assert nearest_rank(one_to_ten, 100) == 10
    assert nearest_rank(one_to_ten, 1) == 1


def test_nearest_rank_does_not_trip_on_floating_point() -> None:
    # 0.9 * 70 is 63.00000000000001 in floating point: the rank is still 63.
    assert nearest_rank([float(v) for v in range(1, 71)], 90) == 63


def test_nearest_rank_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        nearest_rank([], 90)
    with pytest.raises(ValueError, match="percent"):
        nearest_rank([1.0], 0)
    with pytest.raises(ValueError, match="percent"):
        nearest_rank([1.0], 101)


# Figures per group ------------------------------------------------------------------------


def test_figures_per_force() -> None:
    alpha, bravo = compute_stats(ROWS, TARGETS, as_of=AS_OF, group_by=("force",))
    assert alpha.group == Group(force_code="ALPHA", kind="incident")
    assert (alpha.stage, alpha.target_id) == ("event_to_shared", "DAY")
    # Ended delays 2, 6, 10, 30: median (6 + 10) / 2; 90th percentile rank ceil(3.6) = 4.
    assert (alpha.count, alpha.open) == (4, 2)
    assert alpha.median_hours == 8
    assert alpha.p90_hours == 30
    assert alpha.max_hours == 30
    # Within: 2, 6, 10. Breached: 30 (ended late) and the open record 30 hours old.
    assert (alpha.within, alpha.breached) == (3, 2)
    assert alpha.share_within == pytest.approx(0.6)
    # 1, 3, 5: median 3; rank ceil(2.7) = 3.
    assert (bravo.count, bravo.open, bravo.median_hours, bravo.p90_hours) == (3, 0, 3, 5)
    assert (bravo.max_hours, bravo.share_within) == (5, 1.0)


def test_figures_over_everything() -> None:
    (everything,) = compute_stats(ROWS, TARGETS, as_of=AS_OF)
    assert everything.group == Group(kind="incident")  # a target's population is one kind
    # 1, 2, 3, 5, 6, 10, 30: median 5; rank ceil(6.3) = 7.
    assert (everything.count, everything.open) == (7, 2)
    assert (everything.median_hours, everything.p90_hours, everything.max_hours) == (5, 30, 30)
    assert everything.share_within == pytest.approx(6 / 8)


def test_figures_per_month() -> None:
    february, march = compute_stats(ROWS, TARGETS, as_of=AS_OF, group_by=("month",))
    assert february.group.month == "2025-02"
    # 2 and 6: an even count, so the median is their mean; rank ceil(1.8) = 2.
    assert (february.count, february.median_hours, february.p90_hours) == (2, 4, 6)
    assert march.group.month == "2025-03"
    # 1, 3, 5, 10, 30: median 5; rank ceil(4.5) = 5. Within 4 of 6 judged.
    assert (march.count, march.open, march.median_hours, march.p90_hours) == (5, 2, 5, 30)
    assert march.share_within == pytest.approx(4 / 6)


def test_any_subset_of_grouping_keys() -> None:
    rows = compute_stats(ROWS, TARGETS, as_of=AS_OF, group_by=("force", "month", "council"))
    keys = [(r.group.force_code, r.group.council_code, r.group.month) for r in rows]
    assert keys == [
        ("ALPHA", "COUNCIL_ALPHA", "2025-02"),
        ("ALPHA", "COUNCIL_ALPHA", "2025-03"),
        ("BRAVO", "COUNCIL_BRAVO", "2025-03"),
    ]
    with pytest.raises(ValueError, match="unknown grouping keys: colour"):
        compute_stats(ROWS, TARGETS, as_of=AS_OF, group_by=("colour",))  # type: ignore[arg-type]


def test_a_group_of_open_records_only_has_no_delay_figures() -> None:
    (row,) = compute_stats(
        [delay("C", "c-1", None, start=AS_OF - dt.timedelta(hours=1))], TARGETS, as_of=AS_OF
    )
    assert (row.count, row.open, row.median_hours, row.p90_hours, row.max_hours) == (
        0,
        1,
        None,
        None,
        None,
    )
    assert row.share_within is None  # pending only: nothing judged yet


def test_an_end_after_as_of_is_still_open() -> None:
    late_end = delay("C", "c-1", 30, start=AS_OF - dt.timedelta(hours=2))
    (row,) = compute_stats([late_end], TARGETS, as_of=AS_OF)
    assert (row.count, row.open, row.within, row.breached) == (0, 1, 0, 0)


def test_a_stage_without_a_target_is_described_without_a_share() -> None:
    rows = [delay("C", "c-1", 2, stage="event_to_recorded"), delay("C", "c-2", 4)]
    untargeted, targeted = compute_stats(rows, TARGETS, as_of=AS_OF)
    assert (untargeted.stage, untargeted.target_id, untargeted.group) == (
        "event_to_recorded",
        None,
        Group(),
    )
    assert (untargeted.count, untargeted.median_hours, untargeted.share_within) == (1, 2, None)
    assert targeted.target_id == "DAY"


# A record held to two targets ------------------------------------------------------------


def test_domestic_abuse_is_held_to_both_of_its_targets() -> None:
    friday = delay("D", "friday", 15, kind="domestic_abuse", start=uk(2025, 1, 10, 19))
    monday = delay("D", "monday", 13, kind="domestic_abuse", start=uk(2025, 1, 13, 20))
    as_of = uk(2025, 2, 1)
    day, school = compute_stats([friday, monday], TARGETS, as_of=as_of)
    assert (day.target_id, day.count, day.median_hours, day.share_within) == ("DA-DAY", 2, 14, 1.0)
    # Friday 19:00 shared Saturday 10:00 beats Monday 08:30; Monday 20:00 shared Tuesday 09:00
    # misses Tuesday 08:30.
    assert (school.target_id, school.within, school.breached) == ("SCHOOL", 1, 1)
    (breach,) = breaches(
        measure([friday, monday], TARGETS, as_of=as_of), as_of=as_of, pseudonymise=pseudonym
    )
    assert (breach.target_id, breach.record_id) == ("SCHOOL", "monday")
    assert breach.deadline == uk(2025, 1, 14, 8, 30)
    assert breach.overdue_hours == pytest.approx(0.5)


# Breaches ---------------------------------------------------------------------------------


def test_breaches_list_late_and_overdue_records_with_pseudonyms() -> None:
    found = breaches(measure(ROWS, TARGETS, as_of=AS_OF), as_of=AS_OF, pseudonymise=pseudonym)
    assert [(b.record_id, b.open) for b in found] == [("a-late", False), ("a-open", True)]
    late, still_open = found
    assert late.delay_hours == 30
    assert late.end == BASE + dt.timedelta(hours=30)
    assert late.deadline == BASE + dt.timedelta(hours=24)
    assert late.overdue_hours == 6
    assert still_open.end is None
    assert still_open.delay_hours == 30  # so far, at AS_OF
    assert late.child == pseudonym("child-of-a-late")
    for breach in found:
        assert "child-of" not in repr(breach)


def test_breaches_longest_first() -> None:
    rows = [delay("E", "e-40", 40), delay("E", "e-90", 90), delay("E", "e-25", 25)]
    found = breaches(measure(rows, TARGETS, as_of=AS_OF), as_of=AS_OF, pseudonymise=pseudonym)
    assert [b.record_id for b in found] == ["e-90", "e-40", "e-25"]


def test_a_record_without_a_child_has_no_pseudonym() -> None:
    row = dataclasses.replace(delay("E", "e-1", 30), child_id=None)
    (breach,) = breaches(measure([row], TARGETS, as_of=AS_OF), as_of=AS_OF, pseudonymise=pseudonym)
    assert breach.child is None


# Input checks -----------------------------------------------------------------------------


def test_naive_times_and_unknown_nations_are_refused() -> None:
    naive = dt.datetime(2025, 3, 4, 10)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        delay("F", "f-1", 1, start=naive)
    with pytest.raises(ValueError, match="unknown nation"):
        dataclasses.replace(delay("F", "f-1", 1), nation="scotland")
    with pytest.raises(ValueError, match="naive"):
        measure(ROWS, TARGETS, as_of=dt.datetime(2025, 3, 31))  # noqa: DTZ001


def test_measuring_once_and_grouping_many_ways_agrees_with_compute_stats() -> None:
    measured = measure(ROWS, TARGETS, as_of=AS_OF)
    groupings: list[tuple[GroupKey, ...]] = [
        (),
        ("force",),
        ("month",),
        ("kind",),
        ("force", "month"),
    ]
    for keys in groupings:
        assert aggregate(measured, keys) == compute_stats(ROWS, TARGETS, as_of=AS_OF, group_by=keys)
