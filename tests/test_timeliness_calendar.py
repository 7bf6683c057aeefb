"""Working days and school days, with dates checked by hand against the published bank holidays."""

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import holidays
import pytest

from hub.timeliness import calendar
from hub.timeliness.calendar import (
    add_working_days,
    bank_holidays,
    is_working_day,
    local_date,
    month_of,
    next_school_day_start,
    working_days_between,
    working_time_between,
)

LONDON = ZoneInfo("Europe/London")


def uk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A UK wall-clock time, handed to the code as UTC as the hub stores it."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=LONDON).astimezone(dt.UTC)


# Working days -----------------------------------------------------------------------------


@pytest.mark.parametrize("nation", ["england", "wales"])
def test_weekends_are_not_working_days(nation: str) -> None:
    assert not is_working_day(dt.date(2025, 1, 4), nation)  # Saturday
    assert not is_working_day(dt.date(2025, 1, 5), nation)  # Sunday
    assert is_working_day(dt.date(2025, 1, 6), nation)  # Monday
    assert is_working_day(dt.date(2025, 1, 10), nation)  # Friday


@pytest.mark.parametrize("nation", ["england", "wales"])
@pytest.mark.parametrize(
    "day",
    [
        dt.date(2025, 1, 1),  # New Year's Day
        dt.date(2025, 4, 18),  # Good Friday
        dt.date(2025, 4, 21),  # Easter Monday
        dt.date(2025, 5, 5),  # Early May bank holiday
        dt.date(2025, 5, 26),  # Spring bank holiday
        dt.date(2025, 8, 25),  # Summer bank holiday: last Monday in August
        dt.date(2025, 12, 25),
        dt.date(2025, 12, 26),
        dt.date(2026, 12, 28),  # Boxing Day 2026 is a Saturday: substitute Monday
        dt.date(2023, 5, 8),  # Coronation of King Charles III: a one-off bank holiday
    ],
)
def test_bank_holidays_are_not_working_days(nation: str, day: dt.date) -> None:
    assert day.weekday() < 5
    assert not is_working_day(day, nation)


@pytest.mark.parametrize("nation", ["england", "wales"])
def test_scottish_bank_holidays_are_working_days(nation: str) -> None:
    # Scotland has 2 January and the first Monday of August; England and Wales do not.
    assert is_working_day(dt.date(2025, 1, 2), nation)
    assert is_working_day(dt.date(2025, 8, 4), nation)
    assert dt.date(2025, 8, 4) in holidays.country_holidays("GB", subdiv="SCT", years=2025)


def test_st_davids_day_is_a_working_day_in_wales() -> None:
    # 1 March 2024 was a Friday: not a bank holiday in Wales (proposals have not become law).
    assert is_working_day(dt.date(2024, 3, 1), "wales")


def test_england_and_wales_share_their_bank_holidays_in_the_library() -> None:
    # The `holidays` data has no England/Wales difference; the calendars stay separate so a
    # future Welsh holiday applies to Wales alone (see the next test).
    for year in range(2015, 2031):
        assert bank_holidays("england", year) == bank_holidays("wales", year)


@pytest.fixture
def welsh_only_holiday(monkeypatch: pytest.MonkeyPatch) -> Iterator[dt.date]:
    """The library as if the Senedd had made 3 March 2031 a Welsh bank holiday."""
    day = dt.date(2031, 3, 3)
    real = holidays.country_holidays

    def fake(country: str, *, subdiv: str, years: int) -> holidays.HolidayBase:
        result = real(country, subdiv=subdiv, years=years)
        if subdiv == "WLS":
            result[day] = "Welsh holiday"
        return result

    calendar.bank_holidays.cache_clear()
    monkeypatch.setattr(holidays, "country_holidays", fake)
    yield day
    calendar.bank_holidays.cache_clear()


def test_wales_keeps_its_own_calendar(welsh_only_holiday: dt.date) -> None:
    assert is_working_day(welsh_only_holiday, "england")
    assert not is_working_day(welsh_only_holiday, "wales")
    friday = uk(2031, 2, 28, 16)
    assert add_working_days(friday, 1, "england") == uk(2031, 3, 3, 16)
    assert add_working_days(friday, 1, "wales") == uk(2031, 3, 4, 16)
    assert next_school_day_start(friday, "wales") == uk(2031, 3, 4, 8, 30)


def test_scotland_and_unknown_nations_are_refused() -> None:
    for nation in ("scotland", "great_britain", "England"):
        with pytest.raises(ValueError, match="unknown nation"):
            is_working_day(dt.date(2025, 1, 6), nation)


def test_is_working_day_refuses_a_datetime() -> None:
    with pytest.raises(TypeError, match="local_date"):
        is_working_day(uk(2025, 1, 6, 12), "england")


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2025, 1, 6, 12)  # noqa: DTZ001 - the point of the test
    aware = uk(2025, 1, 6, 12)
    with pytest.raises(ValueError, match="naive"):
        add_working_days(naive, 1, "england")
    with pytest.raises(ValueError, match="naive"):
        working_days_between(naive, aware, "england")
    with pytest.raises(ValueError, match="naive"):
        working_days_between(aware, naive, "england")
    with pytest.raises(ValueError, match="naive"):
        next_school_day_start(naive, "england")
    with pytest.raises(ValueError, match="naive"):
        local_date(naive)


# Adding working days ----------------------------------------------------------------------


def test_add_working_days_skips_the_weekend_keeping_the_time() -> None:
    assert add_working_days(uk(2025, 1, 10, 16), 1, "england") == uk(2025, 1, 13, 16)
    assert add_working_days(uk(2025, 1, 6, 9), 5, "england") == uk(2025, 1, 13, 9)


def test_add_working_days_skips_a_bank_holiday() -> None:
    # Friday 23 May 2025, then the weekend and the spring bank holiday on Monday 26 May.
    assert add_working_days(uk(2025, 5, 23, 16), 1, "wales") == uk(2025, 5, 27, 16)
    # Christmas Eve 2025 is a Wednesday; Thursday and Friday are bank holidays.
    assert add_working_days(uk(2025, 12, 24, 12), 1, "england") == uk(2025, 12, 29, 12)


def test_a_start_on_a_non_working_day_runs_from_the_next_working_day() -> None:
    # Saturday 10:00: the clock starts at Monday 00:00, so one working day ends with Monday.
    assert add_working_days(uk(2025, 1, 11, 10), 1, "england") == uk(2025, 1, 14)


def test_the_deadline_is_the_earliest_moment_the_working_time_has_run() -> None:
    # Thursday 00:00 + 2 working days: Thursday and Friday have run by Saturday 00:00.
    assert add_working_days(uk(2025, 1, 9), 2, "england") == uk(2025, 1, 11)


def test_add_working_days_keeps_the_wall_clock_across_the_clock_change() -> None:
    # Clocks went forward on Sunday 30 March 2025: Friday 16:00 GMT to Monday 16:00 BST.
    result = add_working_days(uk(2025, 3, 28, 16), 1, "england")
    assert result == dt.datetime(2025, 3, 31, 15, tzinfo=dt.UTC)
    assert result.tzinfo is dt.UTC


def test_zero_working_days_is_the_moment_itself_and_negative_is_refused() -> None:
    saturday = uk(2025, 1, 11, 10)
    assert add_working_days(saturday, 0, "england") == saturday
    with pytest.raises(ValueError, match="zero or more"):
        add_working_days(saturday, -1, "england")


# Counting working days --------------------------------------------------------------------


def test_working_days_between_counts_whole_working_days_elapsed() -> None:
    monday_10 = uk(2025, 1, 6, 10)
    assert working_days_between(monday_10, uk(2025, 1, 7, 9, 59), "england") == 0
    assert working_days_between(monday_10, uk(2025, 1, 7, 10), "england") == 1
    assert working_days_between(monday_10, uk(2025, 1, 13, 10), "england") == 5


def test_the_clock_stops_at_weekends_and_bank_holidays() -> None:
    friday_16 = uk(2025, 5, 23, 16)
    # To Monday 26 May (a bank holiday) 23:00: only Friday's last 8 hours count.
    assert working_time_between(friday_16, uk(2025, 5, 26, 23), "england") == dt.timedelta(hours=8)
    assert working_days_between(friday_16, uk(2025, 5, 27, 15, 59), "england") == 0
    assert working_days_between(friday_16, uk(2025, 5, 27, 16), "england") == 1


def test_counting_and_adding_agree() -> None:
    starts = [uk(2025, 1, 10, 16), uk(2025, 5, 23, 23, 30), uk(2025, 12, 24, 9), uk(2025, 3, 28)]
    for start in starts:
        for n in range(6):
            assert working_days_between(start, add_working_days(start, n, "wales"), "wales") == n


def test_working_days_between_refuses_an_end_before_the_start() -> None:
    with pytest.raises(ValueError, match="earlier"):
        working_days_between(uk(2025, 1, 7), uk(2025, 1, 6), "england")


# The next school day (Operation Encompass) ------------------------------------------------


def test_friday_evening_incident_is_due_monday_morning() -> None:
    assert next_school_day_start(uk(2025, 1, 10, 19), "england") == uk(2025, 1, 13, 8, 30)


def test_before_a_bank_holiday_monday_it_is_due_tuesday() -> None:
    deadline = next_school_day_start(uk(2025, 5, 23, 19), "wales")
    assert deadline == uk(2025, 5, 27, 8, 30)
    assert deadline == dt.datetime(2025, 5, 27, 7, 30, tzinfo=dt.UTC)  # BST


def test_an_early_morning_incident_is_due_the_same_morning() -> None:
    assert next_school_day_start(uk(2025, 1, 7, 7), "england") == uk(2025, 1, 7, 8, 30)


def test_once_the_school_day_has_started_it_is_due_the_next_one() -> None:
    assert next_school_day_start(uk(2025, 1, 7, 8, 30), "england") == uk(2025, 1, 8, 8, 30)
    assert next_school_day_start(uk(2025, 1, 7, 14), "england") == uk(2025, 1, 8, 8, 30)


def test_weekend_and_christmas_incidents() -> None:
    assert next_school_day_start(uk(2025, 1, 11, 3), "england") == uk(2025, 1, 13, 8, 30)
    # Sunday night as the clocks go forward: due Monday 08:30 BST.
    assert next_school_day_start(uk(2025, 3, 30, 23, 30), "england") == uk(2025, 3, 31, 8, 30)
    assert next_school_day_start(uk(2025, 12, 24, 18), "wales") == uk(2025, 12, 29, 8, 30)


def test_the_school_day_start_can_be_set() -> None:
    nine = dt.time(9)
    assert next_school_day_start(uk(2025, 1, 7, 8, 45), "england", nine) == uk(2025, 1, 7, 9)
    with pytest.raises(ValueError, match="wall-clock"):
        next_school_day_start(uk(2025, 1, 7), "england", dt.time(9, tzinfo=dt.UTC))


# Local dates ------------------------------------------------------------------------------


def test_local_dates_and_months_follow_uk_time() -> None:
    late_june = dt.datetime(2025, 6, 30, 23, 30, tzinfo=dt.UTC)  # 00:30 BST on 1 July
    assert local_date(late_june) == dt.date(2025, 7, 1)
    assert month_of(late_june) == "2025-07"
    assert month_of(dt.datetime(2025, 1, 31, 23, 30, tzinfo=dt.UTC)) == "2025-01"  # GMT
