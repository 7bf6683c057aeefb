"""Input objects built by a plan made once per type, not by Strawberry's walk of every value.

Strawberry's argument conversion (`convert_argument`) works out each field's type and GraphQL
name again for every value it converts: for a batch of 200 incidents that was 40% of the hub's
time (issue 16). `planned` gives an input type a plan, made on first use: for each field, its
GraphQL name, its Python name and how its value is built. The instance is the one Strawberry
would build (the same fields from the same names, scalars and enums as graphql-core coerced
them, nested inputs and lists of them built by their own plans, a field without a default
None unless given); a type with anything else (`Maybe`, a lazy type, a `GlobalID`) keeps
Strawberry's conversion, field by field. Nothing about validation changes: graphql-core has
checked the value against the schema before, and the services check the content after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from graphql import GraphQLInputObjectType, GraphQLSchema
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.unset import UNSET

T = TypeVar("T")
Build = Callable[[Any], Any]


class _Unplanned(Exception):
    """A field type the plan does not cover: Strawberry converts that type's values."""


@dataclasses.dataclass(frozen=True)
class _Plan:
    cls: type
    fields: tuple[tuple[str, str, Build | None], ...]  # GraphQL name, Python name, builder
    nulls: tuple[str, ...]  # Python names of fields without a default

    def build(self, value: Mapping[str, Any], cls: type | None = None) -> Any:
        kwargs: dict[str, Any] = dict.fromkeys(self.nulls)
        for graphql_name, python_name, build in self.fields:
            if graphql_name in value:
                given = value[graphql_name]
                kwargs[python_name] = given if build is None else build(given)
        return (cls or self.cls)(**kwargs)


_plans: dict[type, _Plan | None] = {}


def planned(cls: type[T]) -> type[T]:
    """Give a `strawberry.input` class a plan: its values, and those of the inputs nested in
    it, are built by one. `plan_inputs` gives one to every input of a schema."""
    definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    definition.from_input = _from_input
    return cls


def plan_inputs(schema: GraphQLSchema) -> int:
    """Every input type of `schema` built by its plan (`planned`); how many were given one.

    A list's filter (`incidents(filter: {occurredTo: ...})`) was converted by Strawberry's walk
    on every read: a twentieth of the hub's work for a council's page of incident ids. An
    input that converts itself already (its own `from_input`) keeps that."""
    given = 0
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLInputObjectType):
            continue
        definition = (type_.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if isinstance(definition, StrawberryObjectDefinition) and definition.from_input is None:
            planned(definition.origin)
            given += 1
    return given


def _from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    plan = _plan(cls, context)
    if plan is None:
        return _as_strawberry_does(cls, value, context)
    return plan.build(value, cls)


def _plan(cls: type, context: InputContext) -> _Plan | None:
    if cls not in _plans:
        try:
            _plans[cls] = _make(cls, context)
        except _Unplanned:
            _plans[cls] = None
    return _plans[cls]


def _make(cls: type, context: InputContext) -> _Plan:
    definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    fields = tuple(
        (
            context.config.name_converter.from_field(field),
            field.python_name,
            _builder(field.resolve_type(type_definition=definition), context),
        )
        for field in definition.fields
    )
    nulls = tuple(
        field.python_name
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    )
    return _Plan(cls=cls, fields=fields, nulls=nulls)


def _builder(type_: Any, context: InputContext) -> Build | None:
    """How a value of `type_` is built; None: it is used as graphql-core gives it."""
    if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
        raise _Unplanned
    if isinstance(type_, StrawberryOptional):
        return _builder(type_.of_type, context)  # None is passed through by every builder
    if isinstance(type_, StrawberryList):
        item = _builder(type_.of_type, context)
        if item is None:
            # Copied: graphql-core gives every request that omits a value the same default.
            return lambda value: value if value is None or value is UNSET else list(value)
        return lambda value: (
            value if value is None or value is UNSET else [item(one) for one in value]
        )
    if (
        is_scalar(type_, context.scalar_registry)
        or isinstance(type_, StrawberryEnumDefinition)
        or has_enum_definition(type_)
    ):
        return None
    if has_object_definition(type_) and type_.__strawberry_definition__.is_input:
        nested = _plan(type_, context)
        if nested is None:
            raise _Unplanned
        return lambda value: value if value is None or value is UNSET else nested.build(value)
    raise _Unplanned


def _as_strawberry_does(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    """Strawberry's own conversion of an input (what it does when `from_input` is not set)."""
    definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }
    for field in definition.fields:
        graphql_name = context.config.name_converter.from_field(field)
        if graphql_name in value:
            kwargs[field.python_name] = context.convert(
                value[graphql_name], field.resolve_type(type_definition=definition), graphql_name
            )
    return cls(**kwargs)
