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
from hub.access.policy import effective_purpose
from hub.audit import chain
from hub.audit import service as audit
from hub.audit.models import OperationKind, S62Operation
from hub.audit.service import Actor, AuditWriteFailed
from hub.changes import service as changes
from hub.db import Database, QuerySession
from hub.errors import HubError
from hub.graphql import audit_trail, messages
from hub.graphql.context import HubContext
from hub.graphql.operation import root_fields
from hub.limits.unavailable import any_unavailable, is_transient, unavailable
from hub.timeliness import facts
from hub.timeliness.models import FirstSeen

log = logging.getLogger("hub.graphql")

INTERNAL_MESSAGE = "Internal error: the request was not completed and nothing was changed."


class RequestTransaction(SchemaExtension):
    """One transaction per operation, and the audit of what it released, fail-closed.

    A request is all or nothing, so a failed push in a batch leaves none of it half-written.
    Every record the response carries is in an audit event written before the response leaves,
    in the request's own transaction. A query has none (`Database.query_session`): on
    PostgreSQL its audit is one statement, committed as it runs; on SQLite it is written in a
    write transaction of its own.
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
        db = context.hub.db
        write = mutation or (self.audited and db.audits_reads_in_place)
        session = db.session(write=True) if mutation else db.query_session()
        async with session:
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
        if context.replaying:
            # Its group's stream wrote the event naming this subscriber, and committed it,
            # before handing the result over (fail-closed there: no data if that failed).
            pass
        elif session is None:
            await self._audit_refusal(context, result)
        elif session.in_transaction():
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

    async def _audit_refusal(self, context: HubContext, result: Any) -> None:
        """A subscription refused before it started, logged as a query's refusal is.

        (A query or mutation over the websocket comes here too, already logged by `_finish`.)
        """
        denied = audit_trail.denials(list(getattr(result, "errors", None) or []))
        if not (self.audited and denied):
            return
        if self.execution_context.operation_type is not OperationType.SUBSCRIPTION:
            return
        try:
            async with context.hub.db.transaction(write=True) as session:
                await self._write(context, session, audit_trail.Released(denied=denied))
        except (AuditWriteFailed, SQLAlchemyError) as error:
            result.errors = [self._audit_failure(context, error)]
        else:
            context.hub.indexer.poke()

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
        if not mutation and self.audited and released and self._held(context, released):
            # The gateway's fetch: its events go in its response's one event (the gateway's
            # report), or are written by the hub itself if that never comes.
            await session.rollback()
            return
        # A query changed nothing, so its transaction can carry its events whatever the errors;
        # a failed mutation is undone and its refusals logged in a transaction of their own.
        if write and not (mutation and failed):
            if mutation:
                released = dataclasses.replace(
                    released,
                    combined=audit.combinations(session),
                    altered=audit.alterations(session),
                )
            if mutation:
                # Before the audit's append: its lock on the chain's head is held until the
                # commit, and every other push and audited read waits for it.
                await facts.refresh_before_append(session)
            # A push's changes go in the audit's append, written once it holds the chain's
            # lock: the outbox's seq order is then the order of the commits, which subscribers
            # rely on (one reading past seq 11 while seq 10 is uncommitted would never be
            # sent 10), and the lock is held for that statement and the commit only.
            outbox = changes.outbox(context.served.changes) if mutation else None
            noted = None
            if self.audited and released:
                published, noted = await self._write(context, session, released, outbox=outbox)
                outbox = None if published else outbox
            if outbox is not None:
                await changes.publish_changes(session, context.served.changes)
            await _commit(session)
            context.hub.receipts.committed(noted)
            return
        await session.rollback()
        if mutation:
            _not_stored(result)
        if self.audited and released:
            # In a write transaction of its own (on SQLite, one trip to a connection's thread,
            # whose BEGIN waits for the write lock as long as the append waits for the head).
            _, noted = await self._write(context, context.hub.db, released)
            context.hub.receipts.committed(noted)

    def _held(self, context: HubContext, released: audit_trail.Released) -> bool:
        """Whether a query's events are held for the gateway's report of its response."""
        key = context.gateway_fetch.report if context.gateway_fetch is not None else None
        if key is None or self.execution_context.operation_type is not OperationType.QUERY:
            return False
        facts = self._facts(context)
        drafts, first_seen = audit_trail.events(
            facts=facts, released=released, changes=context.served.changes
        )
        return context.hub.held_fetches.hold(
            key, actor=facts.actor, drafts=drafts, first_seen=first_seen
        )

    async def _write(
        self,
        context: HubContext,
        into: AsyncSession | Database,
        released: audit_trail.Released,
        *,
        outbox: chain.Outbox | None = None,
    ) -> tuple[bool, FirstSeen | None]:
        """Append the request's events; return whether `outbox` went with them, and the
        receipts they noted: once their transaction commits, `NotedReceipts.committed`."""
        lock_timeout = context.hub.settings.audit_lock_timeout_seconds
        drafts, first_seen = audit_trail.events(
            facts=self._facts(context), released=released, changes=context.served.changes
        )
        if not drafts:
            return False, None
        first_seen = context.hub.receipts.unnoted(first_seen)
        await audit.record_many(
            into, drafts, first_seen=first_seen, lock_timeout=lock_timeout, outbox=outbox
        )
        return outbox is not None, first_seen

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
        recipients = context.recipients
        return audit_trail.RequestFacts(
            actor=Actor(
                # A fanned-out delivery's event names what all its recipients share (and lists
                # each of them); a subscriber alone is named as any caller is.
                user=_shared({r.user for r in recipients}, principal.user),
                organisation_code=principal.organisation_code,
                client_id=_shared({r.client_id for r in recipients}, principal.client_id)
                or SEVERAL_CLIENTS,
                role=principal.role.value,
                # What the operation was checked against: for a push, perhaps the default.
                purpose=effective_purpose(context, mutation=kind is OperationKind.MUTATION),
            ),
            kind=kind,
            # Records a subscriber is sent are deliveries: disclosures (s.62), not consultations.
            default_operation=S62Operation.DISCLOSURE
            if kind is OperationKind.SUBSCRIPTION
            else S62Operation.CONSULTATION,
            operation_name=execution.operation_name,
            request_id=_shared({r.request_id for r in recipients}, context.request_id),
            trace_id=telemetry.current_trace_id(),
            agreement_version=context.hub.agreement.version,
            recipients=recipients,
            channel=context.audit_channel(),
        )


SEVERAL_CLIENTS = "*"  # a fanned-out delivery's event, sent through more than one client


def _shared(values: set[str | None], alone: str | None) -> str | None:
    """The one value every recipient has, `alone` when there are none, else None."""
    if not values:
        return alone
    return next(iter(values)) if len(values) == 1 else None


class UnauditedTransaction(RequestTransaction):
    """The same transaction without the audit: only for the benchmark's side-by-side baseline."""

    audited = False


async def _commit(session: AsyncSession) -> None:
    """Commit the request's transaction. A query's session has none (`QuerySession`): each of
    its statements, the audit's append included, committed as it ran, so SQLAlchemy's commit
    would send nothing and only run its own bookkeeping; its close returns the connection."""
    if not isinstance(session, QuerySession):
        await session.commit()


async def _rollback(session: AsyncSession) -> None:
    """Undo the transaction; a connection the database dropped has nothing left to undo."""
    try:
        await session.rollback()
    except (SQLAlchemyError, OSError) as error:
        if not is_transient(error):
            raise


NOT_STORED_MESSAGE = (
    "Not stored: another part of this request failed, so none of it was kept. Send it again "
    "without the failing part."
)


def _not_stored(result: Any) -> None:
    """A rolled-back mutation's root fields: none returns data as if it had been saved.

    The one that failed keeps its own error; every other gets NOT_STORED.
    """
    data = getattr(result, "data", None)
    if not data:
        return
    failed = {error.path[0] for error in result.errors or [] if error.path}
    result.errors = [
        *(result.errors or []),
        *(
            GraphQLError(NOT_STORED_MESSAGE, path=[key], extensions={"code": "NOT_STORED"})
            for key in data
            if key not in failed
        ),
    ]
    result.data = dict.fromkeys(data)


def _asks_for_entities(execution: Any) -> bool:
    return "_entities" in (root_fields(execution) or [])


def _code_for(error: GraphQLError) -> str | None:
    """The stable code of an error, or None when it is unexpected and must be masked."""
    original = error.original_error
    if isinstance(original, HubError):
        # Its extensions, not its class's code: a purpose refusal carries one of several.
        error.extensions = {**(error.extensions or {}), **original.extensions}
        return str(error.extensions["code"])
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    if original is None:
        # Validation errors: about the request's shape, never about data.
        return "GRAPHQL_VALIDATION_FAILED"
    return None


# graphql-core's `did_you_mean`: " Did you mean 'a', 'b', or 'c'?" ends a message.
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?$")


class ErrorCodes(SchemaExtension):
    """Every error leaves with `extensions.code`; unexpected ones are masked and logged.

    This is the one place errors are logged (`HubSchema.process_errors` logs nothing): one line
    each, with the code and the exception's type, never a message.
    """

    suggestions = True

    def on_operation(self) -> Iterator[None]:
        yield
        self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each subscription event's errors, before it is sent."""
        self._code(result)
        yield

    def _about_input(self, error: GraphQLError) -> GraphQLError | None:
        """An error about a value the caller sent, in the hub's words, or None."""
        if isinstance(error, GraphQLSyntaxError) or isinstance(
            error.original_error, GraphQLSyntaxError
        ):
            return messages.syntax_error(error)
        execution = self.execution_context
        schema = execution.schema._schema  # noqa: SLF001 - graphql-core's schema, for the types
        document = execution.graphql_document
        return messages.coercion_error(error, schema, document) or messages.literal_error(
            error, schema, document
        )

    def _code(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            unavailable_now = any_unavailable(e.original_error for e in errors)
            result.errors = [self._coded(e, unavailable_now=unavailable_now) for e in errors]

    def _coded(self, error: GraphQLError, *, unavailable_now: bool = False) -> GraphQLError:
        if not self.suggestions:
            error.message = _SUGGESTION.sub("", error.message)
        request_id = getattr(self.execution_context.context, "request_id", "-")
        if error.original_error is not None and (
            is_transient(error.original_error)
            # Once the request's connection failed, its other statements fail because of it
            # (a session awaiting rollback): the same retryable answer, not INTERNAL.
            or (unavailable_now and isinstance(error.original_error, SQLAlchemyError))
        ):
            # Retryable, and said so; the driver's message can carry SQL parameters.
            retry = unavailable()
            log.info(
                "%s (%s) in request %s", retry.code, type(error.original_error).__name__, request_id
            )
            return GraphQLError(
                retry.message, nodes=error.nodes, path=error.path, extensions=retry.extensions
            )
        original = error.original_error
        kind = type(original or error).__name__
        coded = self._about_input(error)
        if coded is None:
            code = _code_for(error)
            if code is not None:
                error.extensions = {**(error.extensions or {}), "code": code}
                if code == "GRAPHQL_VALIDATION_FAILED":
                    error.message = messages.without_values(error.message)
                coded = error
        if coded is not None:
            # The code and the type only: a message or an exception's text can carry input.
            log.info(
                "%s (%s) in request %s", (coded.extensions or {}).get("code"), kind, request_id
            )
            return coded
        # Exception messages can carry data (SQL parameters): log the type and frames only.
        frames = "".join(traceback.format_tb(original.__traceback__)) if original else ""
        log.error("unexpected %s in request %s\n%s", kind, request_id, frames)
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )


class ErrorCodesWithoutSuggestions(ErrorCodes):
    """Production: no "Did you mean ...?", which would spell out the schema name by name."""

    suggestions = False
