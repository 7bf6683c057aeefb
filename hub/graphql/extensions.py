"""Schema extensions: the request's transaction and error codes a client can rely on."""

from __future__ import annotations

import logging
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
        # Validation and variable coercion errors: about the request, never about data.
        if error.message.startswith("Variable "):
            return "INVALID_INPUT"
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
