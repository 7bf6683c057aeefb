"""Schema extensions: the request's transaction and error codes a client can rely on."""

from __future__ import annotations

import dataclasses
import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from hub import telemetry
from hub.audit import service as audit
from hub.audit.models import OperationKind, S62Operation
from hub.audit.service import Actor, AuditWriteFailed
from hub.changes.service import publish_changes
from hub.errors import HubError
from hub.graphql import audit_trail
from hub.graphql.context import HubContext
from hub.graphql.operation import root_fields
from hub.limits.unavailable import any_unavailable, is_transient, unavailable

log = logging.getLogger("hub.graphql")

INTERNAL_MESSAGE = "Internal error: the request was not completed and nothing was changed."


class RequestTransaction(SchemaExtension):
    """One transaction per operation, and the audit of what it released, fail-closed.

    A request is all or nothing, so a failed push in a batch leaves none of it half-written.
    Every record the response carries is in an audit event written before the response leaves,
    in the request's own transaction (on SQLite, a query's in a write transaction of its own).
    If the audit cannot be written, the caller gets an error and no data.
    """

    audited = True

    async def on_execute(self) -> AsyncIterator[None]:
        context: HubContext = self.execution_context.context
        operation = self.execution_context.operation_type
        if operation is OperationType.SUBSCRIPTION:
            # Each event has its own transaction (`HubContext.event_transaction`), audited in
            # `on_stream_result` before it is sent.
            yield
            return
        mutation = operation is OperationType.MUTATION
        write = mutation or (self.audited and context.hub.db.audits_reads_in_place)
        async with context.hub.db.session(write=write) as session:
            await session.begin()
            context.open(session)
            try:
                yield
            except BaseException:
                await _rollback(session)
                raise
            try:
                await self._finish(
                    context, session, self.execution_context.result, mutation=mutation, write=write
                )
            except (AuditWriteFailed, SQLAlchemyError, OSError) as error:
                await _rollback(session)
                # Raised, not returned: strawberry then answers with this error and no data.
                raise self._audit_failure(context, error) from error
            if mutation:
                context.hub.notifier.poke()  # committed: subscribers may read the changes
            if self.audited:
                context.hub.indexer.poke()  # committed: index the events off the request path

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        """A subscription event: audit what it delivers and commit, before it is sent."""
        context: HubContext = self.execution_context.context
        session = context.event_session
        if session is not None and session.in_transaction():
            try:
                await self._finish(
                    context,
                    session,
                    result,
                    mutation=False,
                    write=context.hub.db.audits_reads_in_place,
                )
            except (AuditWriteFailed, SQLAlchemyError, OSError) as error:
                await _rollback(session)
                result.data = None
                result.errors = [self._audit_failure(context, error)]
            else:
                context.hub.indexer.poke()
        yield

    @staticmethod
    def _audit_failure(context: HubContext, error: Exception) -> GraphQLError:
        # The type only: a database error's text and traceback can carry parameters.
        log.error("audit write failed in request %s: %s", context.request_id, type(error).__name__)
        failure = AuditWriteFailed("the audit log could not be written: nothing was served")
        return GraphQLError(failure.message, extensions=failure.extensions)

    async def _finish(
        self,
        context: HubContext,
        session: AsyncSession,
        result: Any,
        *,
        mutation: bool,
        write: bool,
    ) -> None:
        errors = list(getattr(result, "errors", None) or [])
        failed = result is None or bool(errors)
        data = getattr(result, "data", None)
        released = audit_trail.Released(denied=audit_trail.denials(errors))
        if self.audited and not (mutation and failed):
            records = await context.served.served_records(
                session, data, errors, loaded=context.loaded_children()
            )
            released = dataclasses.replace(
                released, records=records, disclosures=context.served.disclosures(data)
            )
        # A query changed nothing, so its transaction can carry its events whatever the errors;
        # a failed mutation is undone and its refusals logged in a transaction of their own.
        if write and not (mutation and failed):
            if mutation:
                released = dataclasses.replace(
                    released,
                    combined=audit.combinations(session),
                    altered=audit.alterations(session),
                )
            if self.audited and released:
                await self._write(context, session, released)
            if mutation:
                await publish_changes(session, context.served.changes)
            await session.commit()
            return
        await session.rollback()
        if self.audited and released:
            async with context.hub.db.transaction(write=True) as audit_session:
                await self._write(context, audit_session, released)

    async def _write(
        self, context: HubContext, session: AsyncSession, released: audit_trail.Released
    ) -> None:
        await audit_trail.write(
            session,
            facts=self._facts(context),
            released=released,
            changes=context.served.changes,
        )

    def _facts(self, context: HubContext) -> audit_trail.RequestFacts:
        principal = context.principal
        execution = self.execution_context
        kind = (
            OperationKind.MUTATION
            if execution.operation_type is OperationType.MUTATION
            else OperationKind.SUBSCRIPTION
            if execution.operation_type is OperationType.SUBSCRIPTION
            else OperationKind.ENTITIES
            if _asks_for_entities(execution)
            else OperationKind.QUERY
        )
        return audit_trail.RequestFacts(
            actor=Actor(
                user=principal.user,
                organisation_code=principal.organisation_code,
                client_id=principal.client_id,
                role=principal.role.value,
                purpose=principal.purpose,
            ),
            kind=kind,
            # Records a subscriber is sent are deliveries: disclosures (s.62), not consultations.
            default_operation=S62Operation.DISCLOSURE
            if kind is OperationKind.SUBSCRIPTION
            else S62Operation.CONSULTATION,
            operation_name=execution.operation_name,
            request_id=context.request_id,
            trace_id=telemetry.current_trace_id(),
            agreement_version=context.hub.agreement.version,
        )


class UnauditedTransaction(RequestTransaction):
    """The same transaction without the audit: only for the benchmark's side-by-side baseline."""

    audited = False


async def _rollback(session: AsyncSession) -> None:
    """Undo the transaction; a connection the database dropped has nothing left to undo."""
    try:
        await session.rollback()
    except (SQLAlchemyError, OSError) as error:
        if not is_transient(error):
            raise


def _asks_for_entities(execution: Any) -> bool:
    return "_entities" in (root_fields(execution) or [])


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
        self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each subscription event's errors, before it is sent."""
        self._code(result)
        yield

    def _code(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            unavailable_now = any_unavailable(e.original_error for e in errors)
            result.errors = [self._coded(e, unavailable_now=unavailable_now) for e in errors]

    def _coded(self, error: GraphQLError, *, unavailable_now: bool = False) -> GraphQLError:
        coerced = _coercion_error(error)
        if coerced is not None:
            return coerced
        if error.original_error is not None and (
            is_transient(error.original_error)
            # Once the request's connection failed, its other statements fail because of it
            # (a session awaiting rollback): the same retryable answer, not INTERNAL.
            or (unavailable_now and isinstance(error.original_error, SQLAlchemyError))
        ):
            # Retryable, and said so; the driver's message can carry SQL parameters.
            retry = unavailable()
            return GraphQLError(
                retry.message, nodes=error.nodes, path=error.path, extensions=retry.extensions
            )
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
