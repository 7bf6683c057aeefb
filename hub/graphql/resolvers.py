"""Record fields called directly: `def summary(self)` is a method call, not strawberry's pipeline.

strawberry calls each field's resolver through a general path (converting arguments, building
the chain of field extensions, wrapping an async one in a coroutine of its own), which a record's
plain fields do not need: they take the object and, at most, `info`, and have no arguments,
permission classes or field extensions. For exactly those fields the schema's resolver is
replaced by one that calls the method directly, with the same `Info` strawberry would give it.
Any field with arguments, extensions or permission classes keeps strawberry's own path.

A record's object field whose resolver reads nothing of `info` but `info.context` (an
organisation, a child, a record's children, each from the request's loaders) is marked
`context_only`: the executor calls it with the request's one `ContextInfo`, where strawberry
would build an `Info` around a resolve info for every field of every record, a hundred a page.
Such a field, and an object attribute (`ObjectAttribute`: an edge's `node`), is read in place by
the function running its parent's selection, which runs the record's own selection from there.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
    is_leaf_type,
)
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types import Info
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]
Function = TypeVar("Function", bound=Callable[..., Any])

_CONTEXT_ONLY = "__hub_context_only__"


def context_only(function: Function) -> Function:
    """Mark a record field's `(self, info)` resolver as reading nothing of `info` but
    `info.context`, nor the helpers it hands `info` to (`organisation_of`, `child_of`): the
    executor may then call it with the request's `ContextInfo`, and anything else read of it
    fails the field. tests/test_lean_fields.py checks every marked resolver's bytecode for it."""
    setattr(function, _CONTEXT_ONLY, True)
    return function


class ContextInfo:
    """What a `context_only` resolver is handed by the executor: the request's context alone,
    one for the whole request."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def lean_resolvers(schema: GraphQLSchema, info_class: type[Info[Any, Any]] = Info) -> int:
    """Give each plain record field a direct resolver; how many were given one."""
    replaced = 0
    for type_ in schema.type_map.values():
        if (
            not isinstance(type_, GraphQLObjectType)
            or type_.name.startswith("__")
            or type_ is schema.subscription_type  # its fields are event streams
        ):
            continue
        for field in type_.fields.values():
            resolver = _lean(field, info_class)
            if resolver is not None:
                field.resolve = resolver
                replaced += 1
    return replaced


def _lean(field: GraphQLField, info_class: type[Info[Any, Any]]) -> Resolver | None:
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or field.resolve is None:
        return None
    if getattr(field.resolve, "_is_default", False):
        return _attribute(field, definition)
    return _method(field, definition, info_class)


def _method(
    field: GraphQLField, definition: StrawberryField, info_class: type[Info[Any, Any]]
) -> Resolver | None:
    resolver = definition.base_resolver
    if (
        resolver is None
        or definition.extensions
        or definition.permission_classes
        or field.args
        or resolver.arguments
        or resolver.self_parameter is None
    ):
        return None
    function = resolver.wrapped_func
    if not inspect.isfunction(function) or resolver.is_async:
        return None  # a static or class method: strawberry's path binds it
    names = list(inspect.signature(function).parameters)
    info = resolver.info_parameter
    if names == [resolver.self_parameter.name]:
        # A nullable scalar or enum (a non-null one is wrapped, so not a leaf type here).
        leaf = field.type if is_leaf_type(field.type) else None
        return _of_self(function) if leaf is None else PlainLeaf(function, leaf)
    if info is not None and names == [resolver.self_parameter.name, info.name]:
        kind = ContextResolver if getattr(function, _CONTEXT_ONLY, False) else InfoResolver
        return kind(function, definition, info_class)
    return None


def _attribute(field: GraphQLField, definition: StrawberryField) -> Resolver | None:
    """A scalar or enum attribute (`id: strawberry.ID`, an organisation's `name`), or an object
    one (an edge's `node`), read as strawberry's default resolver reads it, when nothing else
    applies to the field."""
    if definition.extensions or definition.permission_classes or field.args:
        return None
    non_null = isinstance(field.type, GraphQLNonNull)
    leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    # What strawberry's default resolver does, as one C call.
    plain = definition.base_resolver is None and definition.default_resolver is getattr
    if not is_leaf_type(leaf):
        return ObjectAttribute(definition.python_name) if plain else None
    if plain:
        name = definition.python_name
        return PlainLeaf(operator.attrgetter(name), leaf, non_null=non_null, attribute=name)

    def read(source: Any) -> Any:
        return definition.get_result(source, info=None, args=[], kwargs={})

    return PlainLeaf(read, leaf, non_null=non_null)


_AS_IS: dict[GraphQLLeafType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


class PlainLeaf:
    """A scalar or enum read off the object alone: the executor may complete it without
    building the field's resolve info (`HubExecutor.execute_field`). A non-null one that
    reads None goes graphql-core's whole way, which raises its error."""

    __slots__ = ("as_is", "attribute", "coerce", "function", "leaf", "non_null")

    def __init__(
        self,
        function: Resolver,
        leaf: GraphQLLeafType,
        *,
        non_null: bool = False,
        attribute: str | None = None,
    ) -> None:
        self.function = function
        # The attribute `function` reads, where it reads just one (`operator.attrgetter`).
        self.attribute = attribute
        self.leaf = leaf
        self.non_null = non_null
        # The type's own coercion of a value for the response (graphql-core's
        # `complete_leaf_value` calls it, and checks what it returns).
        self.coerce: Callable[[Any], Any] = coercion(leaf)
        # The type of value the coercion hands back untouched, and so need not be called for:
        # text for a String or an ID, a boolean for a Boolean (graphql-core's own scalars).
        self.as_is: type | None = _AS_IS.get(leaf)

    def __call__(self, source: Any, _info: GraphQLResolveInfo[Any]) -> Any:
        return self.function(source)


def coercion(leaf: GraphQLLeafType) -> Callable[[Any], Any]:
    """The type's own coercion of a value for the response; for a strawberry enum, a member's
    name by one dictionary lookup, where strawberry compares the member with each of the
    type's values in turn (`CustomGraphQLEnumType.coerce_output_value`: an incident's type
    and risk, two a record). Anything that is not a member of the enum, or whose value is not
    one of the type's, is coerced by the type itself, which raises its own error."""
    coerce = leaf.coerce_output_value
    if not isinstance(leaf, CustomGraphQLEnumType):
        return coerce
    members = leaf.wrapped_cls
    names: dict[Any, str] = {}
    try:
        for name, value in leaf.values.items():
            names.setdefault(value.value, name)  # the first, as strawberry's loop finds it
    except TypeError:  # a value that cannot be a key: the type's own way, always
        return coerce

    def name_of(value: Any) -> Any:
        if isinstance(value, members):
            name = names.get(value.value)
            if name is not None:
                return name
        return coerce(value)

    return name_of


class ObjectAttribute:
    """An object field read as an attribute (a connection's `edges`, an edge's `node`), as
    strawberry's default resolver reads it, in one C call. It reads nothing of the info: the
    executor's selections read it in place (`selections.kind_of`)."""

    __slots__ = ("attribute", "function")

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute
        self.function: Callable[[Any], Any] = operator.attrgetter(attribute)

    def __call__(self, source: Any, _info: GraphQLResolveInfo[Any]) -> Any:
        return self.function(source)


class InfoResolver:
    """A `(self, info)` method called directly, with the `Info` strawberry would give it."""

    __slots__ = ("definition", "function", "info_class")

    def __init__(
        self, function: Resolver, definition: StrawberryField, info_class: type[Info[Any, Any]]
    ) -> None:
        self.function = function
        self.definition = definition
        self.info_class = info_class

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        return self.function(source, self.info_class(_raw_info=info, _field=self.definition))


class ContextResolver(InfoResolver):
    """A `context_only` field's resolver. Called as a resolver (graphql-core's own way, or a
    test's), it gives the function the `Info` strawberry would; the executor calls `function`
    with its `ContextInfo` instead."""

    __slots__ = ()


def _of_self(function: Resolver) -> Resolver:
    def resolve(source: Any, _info: GraphQLResolveInfo[Any]) -> Any:
        return function(source)

    return resolve
