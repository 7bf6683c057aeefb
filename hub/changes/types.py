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

from hub.access.permissions import AgreementListsField, NamesPurposeAndPerson
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
        # The purpose first, as for a query: a refusal says what to name, not what is hidden.
        permission_classes=[NamesPurposeAndPerson, AgreementListsField],
    )
    async def record_changes(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[RecordChangeEvent, None]:
        context = info.context
        hub = context.hub
        cursors = context.cursors(info.field_name)
        position = cursors.open(after)
        start = changes.seq_of(position) if position is not None else None
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
                # Each change in a transaction of its own, left open while the event's fields
                # resolve and its audit is written; the stream-result hook commits it before
                # the message leaves (and it closes here when the subscriber goes).
                async with context.event_transaction():
                    record = await _in_scope(info, change)
                    if record is None:  # not the caller's: nothing delivered, nothing logged
                        continue
                    yield RecordChangeEvent(
                        cursor=cursors.seal(str(seen)),
                        change=ChangeKind(change.change),
                        occurred_at=change.occurred_at,
                        record=record,
                    )


async def _in_scope(info: Info, change: RecordChange) -> PoliceRecord | None:
    kind = RECORD_TYPES.get(change.record_type)
    if kind is None:
        return None
    return await kind.resolve_reference(info, strawberry.ID(change.record_id))
