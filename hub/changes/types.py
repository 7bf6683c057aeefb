"""`recordChanges`: records delivered to their subscribers as they are pushed.

A police record arrives in `record` (a closure review with its investigation); a meeting in
`meeting` and a council's other records (a joint visit request) in `councilRecord`, each only to a
subscription that selects that field, so one written before councils pushed is sent what it
always was. Which records reach a caller is each record type's own scope (its loader), as for a
query.

Police records go to the councils and schools whose rows reach them (and to the pushing force);
a meeting goes to the convening council, to the councils of its children and to each invited
force, the moment it is scheduled or changed. Each change is read from the outbox in order and,
if the caller's row scope reaches the record, delivered with the fields the agreement allows.
A meeting is delivered in `meeting` (a police record in `record`), and only to a subscription
that selects `meeting`: one written before meetings existed is sent what it always was.

Every delivery is a disclosure in the audit log, written before the message leaves
(`RequestTransaction.on_stream_result`): if it cannot be written, the subscriber gets an error
instead of the record. A subscriber that reconnects passes the last `cursor` it received as `after`
and misses nothing. The subscription ends when the caller's token expires; the client reconnects
with a fresh one and resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import strawberry
from graphql import FieldNode, VariableNode, print_ast
from strawberry.types.nodes import SelectedField
from strawberry.utils.str_converters import to_camel_case

from hub.access.identity import Principal
from hub.access.permissions import AgreementListsField, NamesPurposeAndPerson
from hub.access.policy import effective_purpose
from hub.changes import fanout as fanout_
from hub.changes import service as changes
from hub.changes.models import ChangeKind, RecordChange
from hub.closures.types import ClosureReview
from hub.db import utcnow
from hub.escalation.types import Escalation
from hub.graphql.audit_trail import Recipient
from hub.graphql.context import HubContext, Info
from hub.graphql.entity import CouncilRecord, PoliceRecord
from hub.incidents.types import Incident
from hub.investigations.types import Investigation
from hub.joint_visits.types import JointVisitRequest
from hub.meetings.types import Meeting
from hub.missing.types import MissingEpisode
from hub.protection.types import PoliceProtection
from hub.vetting.types import VettingCheck

ChangeKindType = strawberry.enum(ChangeKind, name="ChangeKind")
RECORD_TYPES: dict[str, type[PoliceRecord]] = {
    "Incident": Incident,
    "MissingEpisode": MissingEpisode,
    "Investigation": Investigation,
    "PoliceProtection": PoliceProtection,
}
COUNCIL_RECORD_TYPES: dict[str, type[CouncilRecord]] = {
    "JointVisitRequest": JointVisitRequest,
}
BATCH = 100


@strawberry.type(name="RecordChange", description="A record created or changed.")
class RecordChangeEvent:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this change.")
    change: ChangeKindType  # type: ignore[valid-type]
    occurred_at: dt.datetime
    record: PoliceRecord | None = strawberry.field(
        description="A police record; for a closure review, its investigation; else null."
    )
    closure_review: ClosureReview | None = strawberry.field(
        default=None,
        description="For a change to a closure review (a council asked for its view of a "
        "closure, its answer, the force's answer): the review; `record` is its investigation.",
    )
    meeting: Meeting | None = strawberry.field(
        default=None,
        description="A meeting scheduled or changed (its invitations, answers, reports, "
        "attendance); else null. Sent only to subscriptions that select this field.",
    )
    council_record: CouncilRecord | None = strawberry.field(
        default=None,
        description="A council's record (a joint visit request); null for a police record. "
        "Sent only to subscriptions that select this field.",
    )
    vetting_check: VettingCheck | None = strawberry.field(
        default=None,
        description="A police check asked for or completed: to the council that asked and the "
        "force asked. Sent only to subscriptions that select this field.",
    )
    escalation: Escalation | None = strawberry.field(
        default=None,
        description="A stage past its deadline, raised once: to the organisation that owes the "
        "answer and the one waiting. Sent only to subscriptions that select this field.",
    )


def _expired(info: Info) -> bool:
    expires_at = info.context.principal.expires_at
    return expires_at is not None and utcnow() >= expires_at


@dataclasses.dataclass
class _Stream:
    """Where a subscriber is: the last change it has had (sent, or not in its view)."""

    seen: int


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Records in the caller's view as police push them, oldest first.",
        # The purpose first, as for a query: a refusal says what to name, not what is hidden.
        permission_classes=[NamesPurposeAndPerson, AgreementListsField],
    )
    async def record_changes(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[RecordChangeEvent, None]:
        context = info.context
        internal = _internal_stream(info)
        if internal is not None:
            async for event in internal:
                yield event
            return
        hub = context.hub
        cursors = context.cursors(info.field_name)
        position = cursors.open(after)
        start = changes.seq_of(position) if position is not None else None
        if start is None:
            async with hub.db.transaction(write=False) as session:
                start = await changes.latest(session)
        await hub.notifier.listen()
        stream = _Stream(start)
        fanout = hub.settings.subscription_fanout
        # On its own until it has every change the fan-out has started on; then with its group.
        member = None
        while member is None and not _expired(info):
            async for event in _own(info, stream, until_caught_up=fanout):
                yield event
            if not fanout:
                return
            member = _join(info, seen=stream.seen)
        if member is None:
            return
        try:
            async for shared in _shared(info, member):
                context.replaying = True
                try:
                    yield cast("RecordChangeEvent", shared)
                finally:
                    context.replaying = False
        finally:
            hub.fanout.leave(member)


def _internal_stream(info: Info) -> AsyncIterator[RecordChangeEvent] | None:
    """The hub's own streams, not a subscriber's: a fan-out group's, or a webhook delivery's."""
    context = info.context
    if context.webhook is not None:  # a webhook delivery: its one change, if in view
        return _for_webhook(info)
    if context.fanout_group is not None:  # a group's own stream: what the fan-out feeds it
        return _for_group(info, context.fanout_group)
    return None


async def _own(
    info: Info, stream: _Stream, *, until_caught_up: bool
) -> AsyncIterator[RecordChangeEvent]:
    """The per-subscriber path: each change read, resolved and audited for this caller alone."""
    context = info.context
    hub = context.hub
    cursors = context.cursors(info.field_name)
    while not _expired(info):
        mark = hub.notifier.mark()
        async with hub.db.transaction(write=False) as session:
            batch = await changes.after(session, stream.seen, limit=BATCH)
        if not batch:
            if until_caught_up:
                return
            await hub.notifier.wait(mark)
            continue
        for change in batch:
            stream.seen = change.seq or stream.seen
            if _expired(info):
                return
            # Each change in a transaction of its own, left open while the event's fields
            # resolve and its audit is written; the stream-result hook commits it before
            # the message leaves (and it closes here when the subscriber goes).
            async with context.event_transaction():
                event = await _in_scope(info, change, cursors.seal(str(stream.seen)))
                if event is None:  # not the caller's: nothing delivered, nothing logged
                    continue
                yield event


async def _for_webhook(info: Info) -> AsyncIterator[RecordChangeEvent]:
    """A webhook delivery (`hub.webhooks.payload`): its change resolved for the client, and the
    attempt counted in the transaction that audits it, as any subscription event is audited."""
    context = info.context
    attempt = context.webhook
    assert attempt is not None  # noqa: S101 - the caller checked
    change = attempt.change
    async with context.event_transaction() as session:
        cursor = context.cursors(info.field_name).seal(str(change.seq))
        event = await _in_scope(info, change, cursor)
        if event is None:  # not the client's: nothing delivered, nothing logged
            attempt.out_of_scope = True
            return
        if not await attempt.begin(context.hub.db, session):
            return  # another hub process made this attempt
        yield event


async def _shared(info: Info, member: fanout_.Member) -> AsyncIterator[fanout_.Replayed]:
    """What the subscriber's group resolved and audited for it, change by change: sent from
    here when the socket allows (`fanout.Outlet`), else yielded to go through the schema."""
    hub = info.context.hub
    outlet = fanout_.OUTLET.get()
    deliveries = member.deliveries
    while not _expired(info):
        try:
            delivery = deliveries.get_nowait()
        except asyncio.QueueEmpty:
            try:
                # A deadline on this task's own wait: `wait_for` made a task of the `get`, and
                # woke two tasks for each delivery to each subscriber.
                async with asyncio.timeout(hub.settings.change_poll_seconds):
                    delivery = await deliveries.get()
            except TimeoutError:
                continue
            if _expired(info):
                return
        if outlet is not None and delivery.sent_as_is:
            # Its group's stream wrote the event naming this subscriber, and committed it,
            # before the delivery was queued: nothing is left to do for it but send it.
            if not await outlet.send(delivery):
                return  # the socket is gone: nothing more to send on it
            continue
        yield fanout_.Replayed(delivery.result)
        if delivery.last:
            return


async def _for_group(info: Info, group: fanout_.Group) -> AsyncIterator[RecordChangeEvent]:
    """A group's stream: each change it is fed, resolved once for all its recipients."""
    context = info.context
    cursors = context.cursors(info.field_name)
    async for pending in group.feed():
        change = pending.change
        async with context.event_transaction():
            event = await _in_scope(info, change, cursors.seal(str(change.seq)))
            if event is None:
                group.skipped(pending)
                continue
            context.recipients = pending.recipients
            yield event


def _join(info: Info, *, seen: int) -> fanout_.Member | None:
    """Join the caller's group in this process's fan-out (None: catch up first)."""
    context = info.context
    principal = context.principal
    purpose = effective_purpose(context, mutation=False)
    raw = info._raw_info  # noqa: SLF001 - the operation as graphql-core holds it
    document = "\n".join(
        [print_ast(raw.operation), *(print_ast(f) for _, f in sorted(raw.fragments.items()))]
    )
    operation_name = raw.operation.name.value if raw.operation.name else None
    cursor_variable = _cursor_variable(raw.field_nodes[0])
    variables = {
        name: None if name == cursor_variable else value
        for name, value in info.variable_values.items()
    }
    key = fanout_.GroupKey(
        role=principal.role.value,
        organisation_code=principal.organisation_code,
        purpose=purpose,
        document=document,
        operation_name=operation_name,
        variables=fanout_.canonical_variables(variables, without=cursor_variable),
    )
    recipient = Recipient(
        user=principal.user,
        client_id=principal.client_id,
        purpose=purpose,
        request_id=context.request_id,
    )
    schema = info.schema
    hub = context.hub

    async def open_stream(group: fanout_.Group, principal: Principal) -> AsyncIterator[Any]:
        group_context = HubContext(
            request=None,
            response=None,
            hub=hub,
            request_id=fanout_.new_group_request_id(),
            identity=principal,
            fanout_group=group,
        )
        results = await schema.subscribe(
            document,
            variable_values=variables,
            context_value=group_context,
            operation_name=operation_name,
        )
        async with aclosing(results):
            async for result in results:
                yield result

    # The group's stream runs as the first member's principal (the same role, organisation
    # and purpose as every member); its events name their recipients instead.
    group_principal = dataclasses.replace(principal, purpose=purpose, expires_at=None)
    return hub.fanout.join(
        key, recipient, seen=seen, principal=group_principal, open_stream=open_stream
    )


def _cursor_variable(field: FieldNode) -> str | None:
    """The variable the resume cursor (`after`) is given in, if it is one."""
    for argument in field.arguments or ():
        if argument.name.value == "after" and isinstance(argument.value, VariableNode):
            return argument.value.name.value
    return None


async def _in_scope(info: Info, change: RecordChange, cursor: str) -> RecordChangeEvent | None:
    """The change's event for the caller, or None if its record is outside the caller's rows
    (each record type's loader applies the caller's scope, as a query's would)."""
    found = await _found(info, change)
    if found is None:
        return None
    return RecordChangeEvent(
        cursor=cursor, change=ChangeKind(change.change), occurred_at=change.occurred_at, **found
    )


# Records that are not police records: each delivered in a field of its own, and only to a
# subscription that selects it (one written before they existed is sent what it always was).
# Keyed by record type: the event's attribute that carries it, and its GraphQL type.
OWN_FIELDS: dict[str, tuple[str, Any]] = {
    "Meeting": ("meeting", Meeting),
    "VettingCheck": ("vetting_check", VettingCheck),
    "Escalation": ("escalation", Escalation),
    **{name: ("council_record", kind) for name, kind in COUNCIL_RECORD_TYPES.items()},
}


async def _found(info: Info, change: RecordChange) -> dict[str, Any] | None:
    """The event's record fields (Python names), if the caller's scope reaches the record."""
    record_type, record_id = change.record_type, change.record_id
    if (own := OWN_FIELDS.get(record_type)) is not None:
        attribute, kind = own
        # The schema's own name for the field (strawberry's converter, so the two never differ).
        if not _selects(info, to_camel_case(attribute)):
            return None
        node = await kind.resolve_reference(info, strawberry.ID(record_id))
        return None if node is None else {"record": None, attribute: node}
    extra: dict[str, Any] = {}
    if record_type == "ClosureReview":
        row = await info.context.loaders.closure_review.load(record_id)
        if row is None:
            return None
        extra["closure_review"] = ClosureReview.of(row)
        record_type, record_id = "Investigation", row.investigation_id
    police = RECORD_TYPES.get(record_type)
    if police is None:
        return None
    record = await police.resolve_reference(info, strawberry.ID(record_id))
    return None if record is None else {"record": record, **extra}


def _selects(info: Info, name: str) -> bool:
    """Whether the subscription asks for the field `name` (directly or in a fragment)."""
    pending = list(info.selected_fields[0].selections if info.selected_fields else ())
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField):
            if selection.name == name:
                return True
        else:
            pending.extend(selection.selections)
    return False
