"""Schema extensions: the request's transaction and error codes a client can rely on."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from hub.errors import HubError
from hub.graphql.context import HubContext

log = logging.getLogger("hub.graphql")

INTERNAL_MESSAGE = "Internal error: the request was not completed and nothing was changed."


class RequestTransaction(SchemaExtension):
    """One transaction per operation: mutations commit only if every field succeeded.

    A request is all or nothing, so a failed push in a batch leaves none of it half-written.
    Queries run in a read-only transaction.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context: HubContext = self.execution_context.context
        write = self.execution_context.operation_type is OperationType.MUTATION
        async with context.hub.db.session(write=write) as session:
            await session.begin()
            context.open(session)
            try:
                yield
            except BaseException:
                await session.rollback()
                raise
            result = self.execution_context.result
            failed = result is None or bool(getattr(result, "errors", None))
            if write and not failed:
                await session.commit()
            else:
                await session.rollback()


# graphql-core 3.3: "Variable '$input' has invalid value at .a[0].b: reason" (3.2 said "got").
_COERCION = re.compile(
    r"^Variable '\$(?P<variable>\w+)' (?:has|got) invalid value"
    r"(?: at (?P<path>\S+?))?: (?P<reason>.*)$",
    re.DOTALL,
)


def _without_values(reason: str) -> str:
    """graphql-core quotes the offending input; input can be personal data, so drop it."""
    reason = re.sub(r",? found: .*$", ".", reason, flags=re.DOTALL)
    reason = re.sub(r"Value '.*?' ", "The value ", reason, flags=re.DOTALL)
    return re.sub(r'"[^"]*"', "<withheld>", reason)


def _field_path(variable: str, path: str | None) -> str:
    """`.children[0].child.dateOfBirth` of `$input` -> `input.children.0.child.dateOfBirth`."""
    if not path:
        return variable
    return variable + re.sub(r"\[(\d+)\]", r".\1", path)


def _coercion_error(error: GraphQLError) -> GraphQLError | None:
    """A variable that does not fit its type: INVALID_INPUT naming the field, without its value."""
    match = _COERCION.match(error.message)
    if match is None:
        return None
    field = _field_path(match["variable"], match["path"])
    message = (
        f"Variable '${match['variable']}' is invalid at {field}: {_without_values(match['reason'])}"
    )
    return GraphQLError(
        message, nodes=error.nodes, extensions={"code": "INVALID_INPUT", "field": field}
    )


def _code_for(error: GraphQLError) -> str | None:
    """The stable code of an error, or None when it is unexpected and must be masked."""
    original = error.original_error
    if isinstance(original, HubError):
        error.extensions = {**(error.extensions or {}), **original.extensions}
        return original.code
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    if isinstance(original, GraphQLSyntaxError) or isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if original is None:
        # Validation errors: about the request's shape, never about data.
        return "GRAPHQL_VALIDATION_FAILED"
    return None


class ErrorCodes(SchemaExtension):
    """Every error leaves with `extensions.code`; unexpected ones are masked and logged."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        result.errors = [self._coded(e) for e in errors]  # type: ignore[union-attr]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        coerced = _coercion_error(error)
        if coerced is not None:
            return coerced
        code = _code_for(error)
        if code is not None:
            error.extensions = {**(error.extensions or {}), "code": code}
            return error
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "-")
        original = error.original_error
        # Exception messages can carry data (SQL parameters): log the type and frames only.
        frames = "".join(traceback.format_tb(original.__traceback__)) if original else ""
        log.error("unexpected %s in request %s\n%s", type(original).__name__, request_id, frames)
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )
