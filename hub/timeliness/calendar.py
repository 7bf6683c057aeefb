"""Working days and school days in England and in Wales, on the clock of Europe/London.

Bank holidays come from the maintained `holidays` library (country ``GB``, subdivisions
``ENG`` and ``WLS``), never from a hand-written list. The two nations keep separate calendars
even though, as of holidays 0.109, England and Wales share every bank holiday: the Senedd could
add a Welsh one (a St David's Day holiday has been proposed more than once) and the library
would then carry it. Scotland's and Northern Ireland's calendars are never used.

Conventions, all in Europe/London wall-clock time, timezone-aware UTC in and out:

* A working day is Monday to Friday and not a bank holiday in that nation.
* Working time runs like a stopped clock: it advances during working days, midnight to
  midnight, and stands still on weekends and bank holidays.
  ``working_time_between(start, end)`` is the working time elapsed between the two moments,
  ``add_working_days(moment, n)`` is the earliest moment at which n x 24 hours of working time
  have elapsed since ``moment``, and ``working_days_between`` counts the whole working days
  elapsed (the working time, rounded down). So Friday 16:00 + 1 working day is Monday 16:00,
  and an event on Saturday has until the end of Monday for one working day (the FOI Act's
  "working day following the date of receipt" convention, for moments on non-working days).
  A count on dates alone can differ from this by one.
* UK clocks change at 01:00 on a Sunday, never a working day, so wall-clock and elapsed
  working time always agree, and every moment these functions return exists exactly once.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")
SCHOOL_DAY_START = dt.time(8, 30)
NATIONS = ("england", "wales")

# The `holidays` subdivision codes (ISO 3166-2:GB) for each nation the hub serves.
_SUBDIVISIONS = {"england": "ENG", "wales": "WLS"}
_ONE_DAY = dt.timedelta(days=1)


def require_aware(moment: dt.datetime, *, name: str = "moment") -> dt.datetime:
    """``moment`` in UTC; a naive datetime is refused, because its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime: give a timezone-aware UTC time")
    return moment.astimezone(dt.UTC)


def check_nation(nation: str) -> str:
    if nation not in _SUBDIVISIONS:
        raise ValueError(f"unknown nation {nation!r}: expected one of {', '.join(NATIONS)}")
    return nation


@cache
def bank_holidays(nation: str, year: int) -> frozenset[dt.date]:
    """The nation's bank holidays in ``year`` (cached: the library builds a year at a time)."""
    calendar = holidays.country_holidays(
        "GB", subdiv=_SUBDIVISIONS[check_nation(nation)], years=year
    )
    return frozenset(calendar.keys())


def is_working_day(day: dt.date, nation: str) -> bool:
    # A datetime is a date too; its UTC date can be the wrong local day, so make callers choose.
    if isinstance(day, dt.datetime):
        raise TypeError("is_working_day takes a date: use local_date(moment) for a datetime")
    return day.weekday() < 5 and day not in bank_holidays(nation, day.year)  # noqa: PLR2004 - Mon-Fri


def local_date(moment: dt.datetime) -> dt.date:
    """The date in England and Wales at ``moment``."""
    return require_aware(moment).astimezone(LONDON).date()


def month_of(moment: dt.datetime) -> str:
    """``YYYY-MM`` of ``moment`` in England and Wales: the month a report files it under."""
    return local_date(moment).strftime("%Y-%m")


def next_working_day(day: dt.date, nation: str) -> dt.date:
    """The first working day strictly after ``day``."""
    day += _ONE_DAY
    while not is_working_day(day, nation):
        day += _ONE_DAY
    return day


def _wall_clock(moment: dt.datetime) -> dt.datetime:
    return require_aware(moment).astimezone(LONDON).replace(tzinfo=None)


def _from_wall_clock(local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=LONDON).astimezone(dt.UTC)


def _midnight_after(local: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(local.date() + _ONE_DAY, dt.time())


def add_working_days(moment: dt.datetime, n: int, nation: str) -> dt.datetime:
    """The earliest moment at which ``n`` working days of working time have run since ``moment``."""
    check_nation(nation)
    if n < 0:
        raise ValueError("n must be zero or more working days")
    if n == 0:
        return require_aware(moment)
    local, remaining = _wall_clock(moment), dt.timedelta(days=n)
    while True:
        day_end = _midnight_after(local)
        if is_working_day(local.date(), nation):
            left_today = day_end - local
            if remaining <= left_today:
                return _from_wall_clock(local + remaining)
            remaining -= left_today
        local = day_end


def working_time_between(start: dt.datetime, end: dt.datetime, nation: str) -> dt.timedelta:
    """Working time elapsed from ``start`` to ``end`` (which must not be earlier)."""
    check_nation(nation)
    local, local_end = _wall_clock(start), _wall_clock(end)
    if local_end < local:
        raise ValueError("end is earlier than start")
    elapsed = dt.timedelta()
    while local < local_end:
        day_end = min(_midnight_after(local), local_end)
        if is_working_day(local.date(), nation):
            elapsed += day_end - local
        local = day_end
    return elapsed


def working_days_between(start: dt.datetime, end: dt.datetime, nation: str) -> int:
    """Whole working days elapsed from ``start`` to ``end``: working time rounded down."""
    return working_time_between(start, end, nation) // _ONE_DAY


def next_school_day_start(
    moment: dt.datetime, nation: str, start_time: dt.time = SCHOOL_DAY_START
) -> dt.datetime:
    """When the next school day starts after ``moment`` (Operation Encompass's deadline).

    A school day is a working day: weekends and bank holidays are not school days. School terms
    and INSET days differ by school and are out of scope, so a school holiday weekday counts as
    a school day, which can only make the deadline earlier, never excuse a late notification.
    A moment before ``start_time`` on a school day gives that same morning.
    """
    if start_time.tzinfo is not None:
        raise ValueError("start_time is a Europe/London wall-clock time: give it no tzinfo")
    local = _wall_clock(moment)
    day = local.date()
    if not (is_working_day(day, nation) and local.time() < start_time):
        day = next_working_day(day, nation)
    return _from_wall_clock(dt.datetime.combine(day, start_time))
