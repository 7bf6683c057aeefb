"""A planned input is the very instance Strawberry's own conversion builds (`input_plans`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from graphql import GraphQLInputObjectType
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition

from hub.children.types import ChildInput
from hub.graphql.schema import build_schema
from hub.incidents.models import DashRisk, IncidentType
from hub.incidents.types import InvolvedChildInput, ReportIncidentInput
from hub.settings import Settings

SCHEMA = build_schema(Settings())._schema  # gives every input its plan (`plan_inputs`)

CHILD = {"policeReference": "P-1", "givenName": "Ada", "familyName": "Example"}
FULL: dict[str, Any] = {
    "policeReference": "WM-1",
    "type": IncidentType.DOMESTIC_ABUSE,
    "occurredAt": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
    "recordedAt": dt.datetime(2026, 1, 2, 4, 4, tzinfo=dt.UTC),
    "locationCouncil": "E08000025",
    "children": [
        {
            "child": {
                **CHILD,
                "dateOfBirth": dt.date(2015, 5, 6),
                "nhsNumber": "9434765919",
                "hostCouncil": "E08000026",
                "lookedAfter": True,
            },
            "present": True,
            "victim": True,
        },
        {"child": {**CHILD, "dateOfBirth": dt.date(2016, 5, 6)}},
    ],
    "dashRisk": DashRisk.HIGH,
    "summary": "s",
    "operationalNotes": "n",
    "idempotencyKey": "k-1",
}
# As graphql-core gives it when the client sends only what is required (defaults filled in
# where the schema publishes them), and with explicit nulls.
BARE: dict[str, Any] = {
    key: FULL[key]
    for key in ("policeReference", "type", "occurredAt", "recordedAt", "locationCouncil")
} | {
    "children": [{"child": {**CHILD, "dateOfBirth": dt.date(2015, 5, 6)}, "present": False}],
    "dashRisk": None,
    "idempotencyKey": None,
}

PLANNED = (ReportIncidentInput, InvolvedChildInput)
BATCH = StrawberryList(ReportIncidentInput)  # a force's list of incidents


def _convert(value: Any, type_: Any = BATCH) -> Any:
    return convert_argument(
        value, type_, DEFAULT_SCALAR_REGISTRY, StrawberryConfig(), None, path=("input",)
    )


def _strawberry_s(value: Any, monkeypatch: pytest.MonkeyPatch, type_: Any = BATCH) -> Any:
    """`value` as Strawberry's own conversion builds it: every input of the schema unplanned."""
    with monkeypatch.context() as patched:
        for _, cls in _inputs():
            patched.setattr(cls.__strawberry_definition__, "from_input", None)  # type: ignore[attr-defined]
        return _convert(value, type_)


@pytest.mark.parametrize("value", [FULL, BARE], ids=["every field", "required only"])
def test_a_planned_input_is_the_one_strawberry_builds(
    value: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert all(cls.__strawberry_definition__.from_input for cls in PLANNED)  # type: ignore[attr-defined]
    planned = _convert([value, value])
    assert planned == _strawberry_s([value, value], monkeypatch)
    assert isinstance(planned[0].children[0].child, ChildInput)
    assert planned[0].children is not value["children"]  # a list of its own, not the request's


def _inputs() -> list[tuple[str, type]]:
    found = []
    for type_ in SCHEMA.type_map.values():
        if isinstance(type_, GraphQLInputObjectType):
            definition = type_.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
            found.append((type_.name, definition.origin))
    return sorted(found, key=lambda pair: pair[0])


def _sample(type_: Any) -> Any:
    """A value of `type_` as graphql-core hands it over after coercion: every field given."""
    if isinstance(type_, StrawberryOptional):
        return _sample(type_.of_type)
    if isinstance(type_, StrawberryList):
        return [_sample(type_.of_type), _sample(type_.of_type)]
    if has_object_definition(type_):
        definition = type_.__strawberry_definition__
        return {
            StrawberryConfig().name_converter.from_field(field): _sample(
                field.resolve_type(type_definition=definition)
            )
            for field in definition.fields
        }
    enum = getattr(type_, "__strawberry_definition__", None)
    if isinstance(enum, StrawberryEnumDefinition):
        return next(iter(enum.wrapped_cls))
    samples = {
        dt.datetime: dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        dt.date: dt.date(2016, 5, 6),
        bool: True,
        int: 7,
        float: 1.5,
    }
    return samples.get(type_, "synthetic-1")  # text, an ID


@pytest.mark.parametrize(("name", "cls"), _inputs(), ids=[name for name, _ in _inputs()])
def test_every_input_of_the_schema_is_planned_and_built_as_strawberry_builds_it(
    name: str, cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    assert definition.from_input is not None, f"{name} has no plan"
    value = _sample(cls)
    assert value, name
    planned = _convert(value, cls)
    assert planned == _strawberry_s(value, monkeypatch, cls)
    assert type(planned) is cls
