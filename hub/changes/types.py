"""`recordChanges`: police records delivered to a council or school as they are pushed.

Each change is read from the outbox in order and, if the caller's row scope reaches the record,
delivered with the fields the agreement allows. Every delivery is a disclosure in the audit log,
written before the message leaves (`RequestTransaction.on_stream_result`): if it cannot be
written, the subscriber gets an error instead of the record. A subscriber that reconnects passes
the last `cursor` it received as `after` and misses nothing. The subscription ends when the
caller's token expires; the client reconnects with a fresh one and resumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator

import strawberry

from hub.access.permissions import AgreementListsField
from hub.changes import service as changes
from hub.changes.models import ChangeKind, RecordChange
from hub.db import utcnow
from hub.graphql.context import Info
from hub.graphql.entity import PoliceRecord
from hub.incidents.types import Incident
from hub.investigations.types import Investigation
from hub.missing.types import MissingEpisode

ChangeKindType = strawberry.enum(ChangeKind, name="ChangeKind")
RECORD_TYPES: dict[str, type[Incident | MissingEpisode | Investigation]] = {
    "Incident": Incident,
    "MissingEpisode": MissingEpisode,
    "Investigation": Investigation,
}
BATCH = 100


@strawberry.type(name="RecordChange", description="A police record created or changed.")
class RecordChangeEvent:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this change.")
    change: ChangeKindType  # type: ignore[valid-type]
    occurred_at: dt.datetime
    record: PoliceRecord | None


def _expired(info: Info) -> bool:
    expires_at = info.context.principal.expires_at
    return expires_at is not None and utcnow() >= expires_at


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Records in the caller's view as police push them, oldest first.",
        permission_classes=[AgreementListsField],
    )
    async def record_changes(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[RecordChangeEvent, None]:
        context = info.context
        hub = context.hub
        start = changes.decode_cursor(after) if after is not None else None
        if start is None:
            async with hub.db.transaction(write=False) as session:
                start = await changes.latest(session)
        await hub.notifier.listen()
        seen = start
        while not _expired(info):
            mark = hub.notifier.mark()
            async with hub.db.transaction(write=False) as session:
                batch = await changes.after(session, seen, limit=BATCH)
            if not batch:
                await hub.notifier.wait(mark)
                continue
            for change in batch:
                seen = change.seq or seen
                if _expired(info):
                    return
                async for event in _delivered(info, change):
                    yield event


async def _delivered(info: Info, change: RecordChange) -> AsyncGenerator[RecordChangeEvent, None]:
    """One change in a transaction of its own, if the caller may see the record.

    The transaction stays open while the event's fields resolve and its audit is written; the
    stream-result hook commits it before the message leaves.
    """
    context = info.context
    kind = RECORD_TYPES.get(change.record_type)
    if kind is None:
        return
    async with context.event_transaction() as _:
        record = await kind.resolve_reference(info, strawberry.ID(change.record_id))
        if record is None:  # outside the caller's scope: nothing to deliver, nothing to log
            return
        yield RecordChangeEvent(
            cursor=changes.encode_cursor(change.seq or 0),
            change=ChangeKind(change.change),
            occurred_at=change.occurred_at,
            record=record,
        )
