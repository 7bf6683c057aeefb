"""The Date and DateTime scalars write exactly what `isoformat` writes, by whichever path."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from typing import Any

import pytest
from strawberry.schema.types.base_scalars import DateTimeDefinition

from hub.graphql.scalars import _PLAIN_TIME, Date, DateTime, _quiet, isoformat


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


def _answer(parse: Any, value: object) -> tuple[str, object, object, str] | str:
    try:
        parsed = parse(value)
    except Exception as error:  # noqa: BLE001 - the refusal is the answer compared
        return f"refused: {type(error).__name__}: {error}"
    assert isinstance(parsed, dt.datetime)
    return (parsed.isoformat(), parsed.utcoffset(), parsed.tzinfo, type(parsed.tzinfo).__name__)


def _times(count: int) -> list[object]:
    """Times as forces write them, with offsets, fractions and errors, and other forms."""
    chance = random.Random(62)
    offsets = ["Z", "+00:00", "-00:00", "+01:00", "-08:00", "+05:30", "+14:00", "-12:00"]
    fractions = ["", ".000", ".123", ".000001", ".999999", ".5", ".1234567", ","]
    values: list[object] = [
        "2026-01-31T09:00:00Z",
        "2026-01-31T24:00:00Z",  # dateutil reads it as the next midnight
        "2026-02-30T09:00:00Z",
        "2026-13-01T09:00:00Z",
        "2026-01-31T09:60:00Z",
        "2026-01-31T23:59:60Z",
        "2026-01-31 09:00:00Z",
        "2026-01-31T09:00:00z",
        "2026-01-31T09:00:00",
        "2026-01-31T09:00Z",
        "2026-01-31",
        "2026-01-31T09:00:00+0100",
        "2026-01-31T09:00:00+01",
        "２０２６-01-31T09:00:00Z",  # noqa: RUF001 - not ASCII digits
        "",
        20260131,
        None,
    ]
    for _ in range(count):
        values.append(
            f"{chance.randint(1, 9999):04d}-{chance.randint(1, 12):02d}-"
            f"{chance.randint(1, 31):02d}T{chance.randint(0, 24):02d}:"
            f"{chance.randint(0, 59):02d}:{chance.randint(0, 59):02d}"
            f"{chance.choice(fractions)}{chance.choice(offsets)}"
        )
    return values


def test_a_time_is_read_as_strawberrys_parser_reads_it_by_whichever_path() -> None:
    """The plain form by `fromisoformat`, the rest by strawberry's own (dateutil's) parser:
    the same moment, the same offset and kind of offset, or the same refusal."""
    theirs = _quiet(DateTimeDefinition, "an ISO 8601 date and time").parse_value
    ours = DateTime.parse_value
    assert ours is not None
    assert theirs is not None
    values = _times(5_000)
    for value in values:
        assert _answer(ours, value) == _answer(theirs, value), value
    plain = [v for v in values if isinstance(v, str) and _PLAIN_TIME.fullmatch(v)]
    assert len(plain) > 2_000  # the path `fromisoformat` takes, well covered
    assert {type(_answer(ours, v)) for v in plain} == {tuple, str}  # read, and refused
