"""The Date and DateTime scalars write exactly what `isoformat` writes, by whichever path."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest

from hub.graphql.scalars import Date, DateTime, isoformat


def _moments(count: int) -> list[dt.datetime]:
    chance = random.Random(16)
    years = [1, 9, 99, 999, 1000, 1970, 2026, 9999]
    moments = []
    for _ in range(count):
        moments.append(
            dt.datetime(
                chance.choice([*years, chance.randint(1, 9999)]),
                chance.randint(1, 12),
                chance.randint(1, 28),
                chance.randint(0, 23),
                chance.randint(0, 59),
                chance.randint(0, 59),
                chance.choice([0, 1, 999_999, chance.randint(0, 999_999)]),
                tzinfo=dt.UTC,
            )
        )
    return moments


def test_utc_datetimes_and_dates_are_written_as_isoformat_writes_them() -> None:
    for moment in _moments(5_000):
        assert isoformat(moment) == moment.isoformat()
        assert isoformat(moment.date()) == moment.date().isoformat()


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=zoneinfo.ZoneInfo("Europe/London")),
        dt.datetime(2026, 7, 1, 9, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(seconds=3_630))),
        dt.datetime(2026, 7, 1, 9, 0, 0, 120),  # noqa: DTZ001 - a naive one, on purpose
        dt.time(9, 30, 1),
    ],
)
def test_other_values_are_written_by_isoformat(value: dt.datetime | dt.time) -> None:
    assert isoformat(value) == value.isoformat()


def test_the_served_scalars_use_it() -> None:
    assert DateTime.serialize is isoformat
    assert Date.serialize is isoformat
