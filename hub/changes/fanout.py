"""Fanning changes out per scope: each change resolved and audited once per group of subscribers.

Subscribers that would receive exactly the same message (the same role, organisation, purpose
and selection) form a group. A process reads the outbox once for all its subscribers; for each
change, each group resolves the record once, through the schema as any subscription event is
(the agreement's field checks, the request's transaction), and writes one disclosure event that
lists its recipients (`audit_trail.Recipient`), committed before any of them is sent the result.
If the audit cannot be written, every recipient in the group gets AUDIT_UNAVAILABLE and no data:
fail-closed per group.

Over graphql-transport-ws a member is sent its group's message straight from the queue, as
strawberry sends an event without errors (`Outlet`): the group's stream already ran it through
the schema and its extensions and committed its audit, so the subscriber's own stream does not
resolve it again. A message with errors, or one that ends the stream, still goes through the
subscriber's own stream (its error hooks restate codes on its own copy).

A subscriber first catches up on its own (the per-subscriber path, one transaction per change),
then joins its group at the fan-out's position, so nothing is missed or sent twice: it joins only
once it has seen every change the fan-out has started on, and is sent only later ones.

The outbox's seq order is its commit order (a push appends its audit, holding the chain's head,
before it publishes, and keeps the head until it commits), so reading "after the last seq" skips
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import NextMessage

from hub.changes import service as changes
from hub.changes.models import RecordChange
from hub.graphql.audit_trail import Recipient

if TYPE_CHECKING:
    from hub.access.identity import Principal
    from hub.app import HubState

log = logging.getLogger("hub.changes")

BATCH = 100
MAX_BACKLOG = 1000  # changes waiting for one slow subscriber before its stream is ended
BEHIND_MESSAGE = (
    "The subscription fell too far behind and was ended. Subscribe again with your last cursor."
)
CLOSE_SECONDS = 10.0  # a group's stream finishing the change in hand before it is cut off
FAILED_MESSAGE = (
    "Internal error: the subscription stopped. Subscribe again with your last cursor to resume."
)


@dataclasses.dataclass(frozen=True)
class GroupKey:
    """What makes two subscribers' messages the same: who they are as far as the agreement is
    concerned (role, organisation, purpose) and what they asked for (the operation, and its
    variables apart from the resume cursor, which only says where a subscriber starts)."""

    role: str
    organisation_code: str
    purpose: str | None
    document: str
    operation_name: str | None
    variables: str


@dataclasses.dataclass(frozen=True)
class Replayed:
    """A subscription event already resolved and audited for the subscriber's group."""

    result: ExecutionResult


class FanoutExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, except that a `Replayed` event is not resolved again: the
    subscriber is sent (a copy of) what its group resolved and audited for it."""

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, Replayed):
            return _Replay(payload.result)
        return super().build_per_event_executor(payload)


class _Replay:
    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:  # noqa: ARG002 - graphql-core's signature
        # Each subscriber's error hooks restate codes on their own copies, never on a sibling's.
        errors = [_copy(error) for error in self.result.errors or []] or None
        return ExecutionResult(data=self.result.data, errors=errors)


def _copy(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=dict(error.extensions or {}),
    )


@dataclasses.dataclass(frozen=True)
class Delivery:
    seq: int
    result: ExecutionResult
    last: bool = False  # the group failed: the subscriber's stream ends after this

    @property
    def sent_as_is(self) -> bool:
        """Whether an `Outlet` may send it: data its group audited, nothing to restate."""
        return not self.last and not self.result.errors


class Outlet:
    """A graphql-transport-ws subscription's own operation, to send it what its group resolved
    and audited: the `next` message strawberry sends for an event without errors or extensions
    (the hub's extensions add none), without running the event through the schema again for
    each subscriber."""

    def __init__(self, operation: Operation[Any, Any]) -> None:
        self._operation = operation

    async def send(self, delivery: Delivery) -> bool:
        """Send it; False if the socket is gone (the handler ends the operation)."""
        message = NextMessage(
            id=self._operation.id, type="next", payload={"data": delivery.result.data}
        )
        try:
            await self._operation.send_operation_message(message)
        except WebSocketDisconnected:
            return False
        return True


# Set in each graphql-transport-ws operation's own task (`OutletHandler`), so a subscription
# finds its own operation and no other; unset elsewhere (a subscription run without a socket).
OUTLET: contextvars.ContextVar[Outlet | None] = contextvars.ContextVar("outlet", default=None)


class OutletHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's graphql-transport-ws handler, giving each operation's task its `Outlet`."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        OUTLET.set(Outlet(operation))
        await super().run_operation(operation)


@dataclasses.dataclass(eq=False)
class Member:
    recipient: Recipient
    after: int  # sent only changes after this seq: it had every one up to it when it joined
    deliveries: asyncio.Queue[Delivery] = dataclasses.field(default_factory=asyncio.Queue)


@dataclasses.dataclass(eq=False)
class _Pending:
    change: RecordChange
    recipients: tuple[Recipient, ...]
    result: asyncio.Future[ExecutionResult | None]


# Opens a group's own subscription stream through the schema, given the group and its context.
StreamFactory = Callable[["Group", "Principal"], AsyncIterator[Any]]


class Group:
    """One group's subscription stream, run through the schema with the group's principal.

    Its `recordChanges` resolver takes changes from `feed` rather than reading the outbox; each
    event it yields is resolved, audited for `current.recipients` and committed by the request
    extensions before the stream hands the result back here.
    """

    def __init__(self, key: GroupKey, principal: Principal, open_stream: StreamFactory) -> None:
        self.key = key
        self.principal = principal
        self.members: list[Member] = []
        self.current: _Pending | None = None
        self._feed: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._open_stream = open_stream
        self._driver: asyncio.Task[None] | None = None

    async def feed(self) -> AsyncIterator[_Pending]:
        while (pending := await self._feed.get()) is not None:
            self.current = pending
            yield pending

    def skipped(self, pending: _Pending) -> None:
        """The change is not in the group's rows: nothing to send, nothing to log."""
        self.current = None
        if not pending.result.done():
            pending.result.set_result(None)

    async def resolve(
        self, change: RecordChange, members: Sequence[Member]
    ) -> ExecutionResult | None:
        pending = _Pending(
            change,
            tuple(member.recipient for member in members),
            asyncio.get_running_loop().create_future(),
        )
        if self._driver is None:
            self._driver = asyncio.create_task(self._drive())
        self._feed.put_nowait(pending)
        return await pending.result

    async def _drive(self) -> None:
        stream = self._open_stream(self, self.principal)
        try:
            async for result in stream:
                pending, self.current = self.current, None
                if pending is None or pending.result.done():
                    # A result for no change (the stream refused or failed on its own).
                    log.error("fan-out group stream answered out of turn: stopping it")
                    break
                pending.result.set_result(result)
        except Exception as error:  # noqa: BLE001 - whatever it was, the group is closed
            log.error("fan-out group stream failed: %s", type(error).__name__)  # noqa: TRY400 - the type only: a traceback can carry data
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            for pending in (self.current, *_drain(self._feed)):
                if pending is not None and not pending.result.done():
                    pending.result.set_exception(GroupFailed())

    async def close(self) -> None:
        """End the group's stream between changes (so no transaction is cut off midway)."""
        if self._driver is None:
            return
        self._feed.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._driver, timeout=CLOSE_SECONDS)


def _drain(queue: asyncio.Queue[_Pending | None]) -> list[_Pending | None]:
    drained = []
    while not queue.empty():
        drained.append(queue.get_nowait())
    return drained


class GroupFailed(Exception):
    pass


class Fanout:
    """A process's subscribers in groups, and the one task that reads the outbox for them."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub
        self.groups: dict[GroupKey, Group] = {}
        # The newest change the dispatcher has started on: a subscriber joins once it has it.
        self.head: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def join(
        self,
        key: GroupKey,
        recipient: Recipient,
        *,
        seen: int,
        principal: Principal,
        open_stream: StreamFactory,
    ) -> Member | None:
        """Join `key`'s group, having seen every change up to `seen`; None while the fan-out
        has started on later changes than that (catch up on them first, then join)."""
        if self.head is not None and seen < self.head:
            return None
        if self.head is None:
            self.head = seen
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, principal, open_stream)
        member = Member(recipient, after=seen)
        group.members.append(member)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatch())
        return member

    def leave(self, member: Member) -> None:
        for key, group in list(self.groups.items()):
            if member in group.members:
                group.members.remove(member)
                if not group.members:
                    del self.groups[key]
                    self._close_later(group)

    async def _dispatch(self) -> None:
        notifier = self.hub.notifier
        await notifier.listen()
        while self.groups:
            mark = notifier.mark()
            try:
                async with self.hub.db.transaction(write=False) as session:
                    batch = await changes.after(session, self.head or 0, limit=BATCH)
            except Exception as error:  # noqa: BLE001 - retried at the next wake; nothing is lost
                log.warning("fan-out could not read the outbox: %s", type(error).__name__)
                await notifier.wait(mark)
                continue
            for change in batch:
                await self._send(change)
            if len(batch) < BATCH:
                # Every change committed before the read was in it; one committed since has
                # poked the notifier after the mark (and `wait` returns at once): reading again
                # now would find nothing, for a transaction and its round trips, per change.
                await notifier.wait(mark)
        self.head = None  # nobody left: the next subscriber sets where it starts

    async def _send(self, change: RecordChange) -> None:
        seq = int(change.seq or 0)
        # Set before the members are taken, with no wait between: a subscriber joining later
        # must have this change already.
        self.head = seq
        work = [
            (group, members)
            for group in list(self.groups.values())
            if (members := [m for m in group.members if m.after < seq])
        ]
        results = await asyncio.gather(
            *(group.resolve(change, members) for group, members in work), return_exceptions=True
        )
        for (group, members), result in zip(work, results, strict=True):
            if isinstance(result, BaseException):
                self._fail(group, members, seq)
            elif result is not None:
                for member in members:
                    if member.deliveries.qsize() >= MAX_BACKLOG:
                        self._drop(member, seq)
                    else:
                        member.deliveries.put_nowait(Delivery(seq, result))

    def _drop(self, member: Member, seq: int) -> None:
        """A subscriber this far behind is not held in memory: its stream ends, and it resumes
        from its last cursor (the outbox keeps every change)."""
        behind = ExecutionResult(
            data=None, errors=[GraphQLError(BEHIND_MESSAGE, extensions={"code": "INTERNAL"})]
        )
        member.deliveries.put_nowait(Delivery(seq, behind, last=True))
        self.leave(member)

    def _fail(self, group: Group, members: Sequence[Member], seq: int) -> None:
        """The group's stream broke: its subscribers are told, and resubscribe from a cursor."""
        failed = ExecutionResult(
            data=None, errors=[GraphQLError(FAILED_MESSAGE, extensions={"code": "INTERNAL"})]
        )
        for member in members:
            member.deliveries.put_nowait(Delivery(seq, failed, last=True))
        if self.groups.get(group.key) is group:
            del self.groups[group.key]
        self._close_later(group)

    def _close_later(self, group: Group) -> None:
        # Held until done: the loop keeps only weak references to tasks.
        task = asyncio.get_running_loop().create_task(group.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for group in list(self.groups.values()):
            await group.close()
        self.groups.clear()


def canonical_variables(variables: dict[str, Any], *, without: str | None) -> str:
    return json.dumps(
        {k: v for k, v in variables.items() if k != without}, sort_keys=True, default=str
    )


def new_group_request_id() -> str:
    return f"fanout-{uuid.uuid4()}"
