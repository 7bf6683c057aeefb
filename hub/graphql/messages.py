"""Error messages about input, built from where the value is and what it should be.

graphql-core and the scalars quote what they were given ("Invalid isoformat string: 'Jane'"),
and input can be personal data. Rather than scrubbing their words, the hub writes its own: the
input path, the expected type and the kind of problem, read from graphql-core's fixed phrases.
"""

from __future__ import annotations

import re

from graphql import GraphQLError, GraphQLSchema, ObjectFieldNode, ValueNode, VariableNode
from graphql.language import DocumentNode

from hub.graphql.inputs import literal_at, variable_type_at

# graphql-core 3.3: "Variable '$input' has invalid value at .a[0].b: reason" (3.2 said "got").
_COERCION = re.compile(
    r"^Variable '\$(?P<variable>\w+)' (?:has|got) invalid value"
    r"(?: at (?P<path>\S+?))?: (?P<reason>.*)$",
    re.DOTALL,
)
# Names in these phrases are the schema's (`\w+` only), never the caller's.
_REQUIRED_FIELD = re.compile(r"(?:required field|Field) '(?P<name>\w+)'(?:,| of required type)")
_UNKNOWN_FIELD = "not to include unknown field"
_MISSING = ("not to be None", "to be provided", "not to be null", "was not provided")

SYNTAX_MESSAGE = "Syntax Error: the query is not valid GraphQL (see locations)."


def _steps(path: str | None) -> list[str]:
    """`.children[0].child` -> `children`, `0`, `child`."""
    return [step for step in re.split(r"[.\[\]]+", path or "") if step]


def _problem(reason: str, expected: str | None) -> tuple[str | None, str]:
    """A missing field's name, if the reason names one, and the problem in the hub's words."""
    if _UNKNOWN_FIELD in reason:
        return None, f"it has a field {expected or 'its type'} does not define"
    required = _REQUIRED_FIELD.search(reason)
    if required is not None:
        return required["name"], "a value is required"
    if any(phrase in reason for phrase in _MISSING):
        return None, "a value is required"
    return None, f"expected {expected}" if expected else "the value is not valid here"


def _invalid(message: str, field: str, error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        message, nodes=error.nodes, extensions={"code": "INVALID_INPUT", "field": field}
    )


def coercion_error(
    error: GraphQLError, schema: GraphQLSchema, document: DocumentNode | None
) -> GraphQLError | None:
    """A variable that does not fit its type: INVALID_INPUT naming the field, without its value."""
    match = _COERCION.match(error.message)
    if match is None:
        return None
    variable, steps = match["variable"], _steps(match["path"])
    expected = variable_type_at(schema, document, variable, steps) if document else None
    missing, problem = _problem(match["reason"], expected)
    field = ".".join([variable, *steps, *([missing] if missing else [])])
    return _invalid(f"Variable '${variable}' is invalid at {field}: {problem}.", field, error)


def literal_error(
    error: GraphQLError, schema: GraphQLSchema, document: DocumentNode | None
) -> GraphQLError | None:
    """A value written into the query that does not fit its type (a validation error)."""
    node = error.nodes[0] if error.nodes else None
    # An unknown field is reported on its ObjectFieldNode, a wrong value on its ValueNode.
    if (
        error.path is not None
        or document is None
        or not isinstance(node, ValueNode | ObjectFieldNode)
    ):
        return None
    if isinstance(node, VariableNode):
        return None  # about a variable's declaration or use, not a value
    located = literal_at(schema, document, node)
    if located is None:
        return None
    where, expected = located
    missing, problem = _problem(error.message, expected)
    field = ".".join([step for step in (where, missing) if step])
    message = f"The value written at {field or 'an argument'} is invalid: {problem}."
    return _invalid(message, field, error)


def without_values(message: str) -> str:
    """A backstop for validation messages not rewritten above: graphql-core prints a value it
    refuses after "found:" and in double quotes (names and types it puts in single quotes)."""
    message = re.sub(r",? found: .*$", ".", message, flags=re.DOTALL)
    return re.sub(r'"(?:[^"\\]|\\.)*"', "<withheld>", message)


def syntax_error(error: GraphQLError) -> GraphQLError:
    """The lexer quotes the token it stopped at, which can be a string the caller wrote."""
    return GraphQLError(
        SYNTAX_MESSAGE,
        source=error.source,
        positions=error.positions,
        extensions={"code": "GRAPHQL_PARSE_FAILED"},
    )
