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

import orjson
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


Date = dataclasses.replace(_quiet(DateDefinition, "an ISO 8601 date"), serialize=isoformat)
DateTime = dataclasses.replace(
    _quiet(DateTimeDefinition, "an ISO 8601 date and time"), serialize=isoformat
)

OVERRIDES: dict[object, type | ScalarWrapper | ScalarDefinition] = {
    dt.date: Date,
    dt.datetime: DateTime,
}
