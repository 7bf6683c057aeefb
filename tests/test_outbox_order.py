"""The outbox's seqs follow the order a request's changes are given in, by construction.

Subscribers read the outbox in seq order, so a request's changes are delivered in the order it
made them only if their seqs are numbered in that order; on PostgreSQL the append numbers them
explicitly (the k-th smallest seq drawn to the k-th change), not by trusting the order in which
an INSERT ... SELECT happens to insert its rows.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain, service
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.changes import service as changes
from hub.changes.models import ChangeKind, RecordChange
from tests.test_audit_chain import ACTOR

MANY = 300  # enough rows for a parallel or hashed plan to shuffle them, were order left to it


def _draft() -> service.EventDraft:
    return service.EventDraft(
        actor=ACTOR,
        operation=S62Operation.COLLECTION,
        operation_kind=OperationKind.MUTATION,
        operation_name="Push",
        outcome=Outcome.SERVED,
        records=[],
        request_id="req-outbox-order",
        trace_id=None,
        agreement_version="sha256:test",
    )


async def _published(session: AsyncSession, ids: list[str]) -> list[str]:
    query = (
        sa.select(RecordChange.record_id)
        .where(sa.column("record_id").in_(ids))
        .order_by(sa.column("seq"))
    )
    return list((await session.execute(query)).scalars())


async def test_changes_published_with_the_audit_keep_their_order(session: AsyncSession) -> None:
    ids = [str(uuid.uuid4()) for _ in range(MANY)]
    outbox = chain.Outbox(
        occurred_at=dt.datetime.now(dt.UTC),
        rows=[("Incident", record_id, ChangeKind.COLLECTED.value) for record_id in ids],
        channel=changes.CHANNEL,
    )
    await service.record_many(session, [_draft()], outbox=outbox)
    assert await _published(session, ids) == ids


async def test_changes_published_alone_keep_their_order(session: AsyncSession) -> None:
    ids = [str(uuid.uuid4()) for _ in range(MANY)]
    await changes.publish(session, [("Incident", i, ChangeKind.COLLECTED) for i in ids])
    assert await _published(session, ids) == ids
