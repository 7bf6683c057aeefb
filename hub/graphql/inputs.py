"""What a caller sent, checked and located without repeating it.

Every string a request carries, in its variables or written into the query, must be text both
databases can keep: no NUL or other C0 control character (tab, newline and carriage return
excepted) and no lone surrogate. `InputText` refuses the request before any resolver runs, naming
the field, so SQLite and PostgreSQL answer alike. The helpers that find a value's input path and
expected type let error messages say where and what, never the value itself.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    Node,
    ObjectFieldNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableDefinitionNode,
    Visitor,
    get_named_type,
    print_ast,
    type_from_ast,
    visit,
)
from graphql.language import DocumentNode
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def _unsafe_in(value: Any, path: list[str]) -> list[str] | None:
    """The steps to the first string in a JSON value that a database cannot keep."""
    if isinstance(value, str):
        return path if UNSAFE_TEXT.search(value) else None
    items: Iterator[tuple[Any, Any]] = iter(())
    if isinstance(value, dict):
        items = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _unsafe_in(item, [*path, str(key)])
        if found is not None:
            return found
    return None


def _step(node: Node, key: Any) -> str | None:
    """The part of an input path a node adds: an argument, a field, a variable or a list index."""
    if isinstance(node, ArgumentNode | ObjectFieldNode):
        return node.name.value
    if isinstance(node, VariableDefinitionNode):
        return node.variable.name.value
    if isinstance(node, ValueNode) and isinstance(key, int):
        return str(key)
    return None


class _InputPaths(Visitor):
    """Walks a document keeping the input path of the value it is in (`input.children.0`).

    Only steps the schema knows count: inside a scalar such as `_Any` the keys are the caller's.
    """

    def __init__(self, types: TypeInfo) -> None:
        super().__init__()
        self.types = types
        self.steps: list[tuple[str, bool]] = []

    @property
    def path(self) -> str:
        known = []
        for step, typed in self.steps:
            if not typed:
                break
            known.append(step)
        return ".".join(known)

    def enter(self, node: Node, key: Any, *_: Any) -> None:
        step = _step(node, key)
        if step is not None:
            # TypeInfoVisitor has entered the node: the input type is this step's.
            self.steps.append((step, self.types.get_input_type() is not None))
        self.arrive(node)

    def leave(self, node: Node, key: Any, *_: Any) -> None:
        if _step(node, key) is not None:
            self.steps.pop()

    def arrive(self, node: Node) -> None:
        """Called on every node, with `path` leading to it."""


class _UnsafeLiteral(_InputPaths):
    def __init__(self, types: TypeInfo) -> None:
        super().__init__(types)
        self.found: str | None = None

    def arrive(self, node: Node) -> None:
        unsafe = isinstance(node, StringValueNode) and UNSAFE_TEXT.search(node.value)
        if self.found is None and unsafe:
            self.found = self.path


class _LiteralAt(_InputPaths):
    def __init__(self, target: Node, types: TypeInfo) -> None:
        super().__init__(types)
        self.target = target
        self.found: tuple[str, str | None] | None = None

    def arrive(self, node: Node) -> None:
        if self.found is None and _same(node, self.target):
            expected = self.types.get_input_type()
            self.found = (self.path, str(expected) if expected else None)


def _same(node: Node, target: Node) -> bool:
    """The same place in the query. graphql-core reports some values on a copy of the node
    without a location: then the first value written the same way stands for it."""
    if node is target:
        return True
    here, there = node.loc, target.loc
    if there is None:
        return isinstance(node, ValueNode) and print_ast(node) == print_ast(target)
    return here is not None and (here.start, here.end) == (there.start, there.end)


def unsafe_field(
    schema: GraphQLSchema, variables: dict[str, Any] | None, document: DocumentNode | None
) -> str | None:
    """The input path of the first string in the request that a database cannot keep."""
    if document is None:
        return None
    steps = _unsafe_in(variables or {}, [])
    if steps is not None:
        return _known_prefix(schema, document, steps)
    return _unsafe_literal(schema, document)


# The literals are the document's: the same cached document (`hub.graphql.documents`) is
# scanned once, not on every request. Kept with the schema and document themselves, so that an
# id is never taken for another object's; bounded, least recently used out first.
_LITERALS: OrderedDict[tuple[int, int], tuple[GraphQLSchema, DocumentNode, str | None]] = (
    OrderedDict()
)
_LITERALS_KEPT = 256


def _unsafe_literal(schema: GraphQLSchema, document: DocumentNode) -> str | None:
    key = (id(schema), id(document))
    known = _LITERALS.get(key)
    if known is not None and known[0] is schema and known[1] is document:
        _LITERALS.move_to_end(key)
        return known[2]
    types = TypeInfo(schema)
    finder = _UnsafeLiteral(types)
    visit(document, TypeInfoVisitor(types, finder))
    _LITERALS[key] = (schema, document, finder.found)
    while len(_LITERALS) > _LITERALS_KEPT:
        _LITERALS.popitem(last=False)
    return finder.found


def _known_prefix(schema: GraphQLSchema, document: DocumentNode, steps: list[str]) -> str:
    """As much of a variable's path as its type declares: below, keys are the caller's."""
    for end in range(len(steps), 0, -1):
        if variable_type_at(schema, document, steps[0], steps[1:end]) is not None:
            return ".".join(steps[:end])
    return ""


def literal_at(
    schema: GraphQLSchema, document: DocumentNode, node: Node
) -> tuple[str, str | None] | None:
    """Where a value written into the query sits (`input.type`) and the type it must have."""
    types = TypeInfo(schema)
    finder = _LiteralAt(node, types)
    visit(document, TypeInfoVisitor(types, finder))
    return finder.found


def variable_type_at(
    schema: GraphQLSchema, document: DocumentNode, variable: str, steps: list[str]
) -> str | None:
    """The type a variable's value must have at a path inside it (`children`, `0`, `child`)."""
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for declared in definition.variable_definitions or ():
            if declared.variable.name.value == variable:
                return _type_along(type_from_ast(schema, declared.type), steps)
    return None


def _type_along(type_: Any, steps: list[str]) -> str | None:
    for step in steps:
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLList) and step.isdigit():
            type_ = inner.of_type
        elif isinstance(inner, GraphQLInputObjectType) and step in inner.fields:
            type_ = inner.fields[step].type
        else:
            return None
    return str(type_) if type_ is not None and get_named_type(type_) else None


class InputText(SchemaExtension):
    """Refuse a request carrying text a database cannot keep, before anything is resolved."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        schema = execution.schema._schema  # noqa: SLF001 - graphql-core's schema, for the types
        field = unsafe_field(schema, execution.variables, execution.graphql_document)
        if field is not None:
            message = (
                f"{field or 'the request'} contains a character the hub does not accept: "
                "a control character other than tab or newline, or an unpaired surrogate"
            )
            error = GraphQLError(message, extensions={"code": "INVALID_INPUT", "field": field})
            # With a result already set, strawberry does not execute the operation.
            execution.result = ExecutionResult(data=None, errors=[error])
        yield
