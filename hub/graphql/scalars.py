"""Date and DateTime as strawberry defines them, with parse errors that do not quote the value,
written for the response by orjson where that gives the very text `isoformat` gives.

strawberry's parsers answer `Value cannot represent a Date: "Jane Doe". Invalid isoformat
string: 'Jane Doe'`, and raise it without the query's node, so a literal's error cannot even be
located. These raise a plain ValueError instead: graphql-core then reports it with the node and
the path, and `hub.graphql.messages` writes the message from those.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable

import orjson
from dateutil import tz
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateDefinition, DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition, ScalarWrapper


def _quiet(definition: ScalarDefinition, expected: str) -> ScalarDefinition:
    """strawberry's own parser (the same values accepted), its error without the value."""
    parse = definition.parse_value
    assert parse is not None  # noqa: S101 - strawberry defines both scalars' parsers

    def parse_value(value: object) -> object:
        try:
            return parse(value)
        except StrawberryInputCoercionError:
            msg = f"expected {expected}"
            raise ValueError(msg) from None

    return dataclasses.replace(definition, parse_value=parse_value)


def isoformat(value: object) -> str:
    """`value.isoformat()`, the text strawberry's scalars write: by orjson for a date and a
    datetime in UTC (what the database gives back), the same characters in a third of the time
    (a page of incidents writes sixty times and forty dates); anything else by `isoformat`.

    `datetime.isoformat` formats its UTC offset through C's `snprintf`: a datetime cost more
    than any other value of a page. tests/test_scalars.py compares the two texts."""
    if type(value) is dt.date or (type(value) is dt.datetime and value.tzinfo is dt.UTC):
        return orjson.dumps(value)[1:-1].decode()
    text: str = value.isoformat()  # type: ignore[attr-defined]  # strawberry: date, time ...
    return text


# The form a force's system writes a time in (`2026-01-31T09:00:00Z`, `...09:00:00.123+01:00`):
# ASCII digits, a `T`, seconds, milliseconds or microseconds if any, and its offset.
_PLAIN_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _plain_times_at_once(parse: Callable[[object], object]) -> Callable[[object], object]:
    """strawberry's DateTime parser (dateutil's `isoparse`, in Python), with a time in the
    plain form read by `datetime.fromisoformat` (in C) to the very same value: the same
    moment and the same kind of offset (dateutil's UTC for a zero one, else its fixed
    offset). A batch of pushes parses two times a record. Anything else (another form, a
    value out of range) goes to `parse` as before, which accepts or refuses it as it did;
    tests/test_scalars.py holds the two to the same answers."""

    def parse_value(value: object) -> object:
        if type(value) is str and _PLAIN_TIME.fullmatch(value):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                return parse(value)
            offset = parsed.utcoffset()
            seconds = 0 if offset is None else int(offset.total_seconds())
            zone = tz.UTC if seconds == 0 else tz.tzoffset(None, seconds)
            return parsed.replace(tzinfo=zone)
        return parse(value)

    return parse_value


Date = dataclasses.replace(_quiet(DateDefinition, "an ISO 8601 date"), serialize=isoformat)
_DateTime = _quiet(DateTimeDefinition, "an ISO 8601 date and time")
assert _DateTime.parse_value is not None  # noqa: S101 - `_quiet` gives one
DateTime = dataclasses.replace(
    _DateTime, serialize=isoformat, parse_value=_plain_times_at_once(_DateTime.parse_value)
)

OVERRIDES: dict[object, type | ScalarWrapper | ScalarDefinition] = {
    dt.date: Date,
    dt.datetime: DateTime,
}
