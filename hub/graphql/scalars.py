"""Date and DateTime as strawberry defines them, with parse errors that do not quote the value.

strawberry's parsers answer `Value cannot represent a Date: "Jane Doe". Invalid isoformat
string: 'Jane Doe'`, and raise it without the query's node, so a literal's error cannot even be
located. These raise a plain ValueError instead: graphql-core then reports it with the node and
the path, and `hub.graphql.messages` writes the message from those.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

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


Date = _quiet(DateDefinition, "an ISO 8601 date")
DateTime = _quiet(DateTimeDefinition, "an ISO 8601 date and time")

OVERRIDES: dict[object, type | ScalarWrapper | ScalarDefinition] = {
    dt.date: Date,
    dt.datetime: DateTime,
}
