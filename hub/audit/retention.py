"""Retention: erase the oldest events lawfully, and log the erasure in the chain itself.

Events are erased from the start of the log in seq order up to the first event kept, so what
remains is one unbroken chain. The `erasure` event appended afterwards records the erased range
and its anchor (the hash of the last erased event, which the first kept event links to);
`verify` starts from that anchor, and still reports any deletion no erasure event accounts for.
The range is verified before it is erased: retention must not launder earlier tampering.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.audit import chain, service, verify
from hub.audit.models import (
    AuditEvent,
    AuditEventChild,
    AuditEventRecipient,
    AuditEventRecord,
    OperationKind,
    Outcome,
    S62Operation,
)
from hub.errors import HubError, InvalidInput

OPERATION_NAME = "audit erase"


class ErasureRefused(HubError):
    code = "AUDIT_CHAIN_BROKEN"


@dataclasses.dataclass(frozen=True)
class ErasureReport:
    erased: int
    first_seq: int | None = None
    last_seq: int | None = None
    anchor_hash: str | None = None
    erasure_seq: int | None = None  # the `erasure` event that logs it


async def _first_kept(session: AsyncSession, cutoff: dt.datetime) -> int | None:
    # Appends from several processes can stamp times a little out of seq order; erasing stops
    # at the first kept event so the erased range has no holes. Stragglers go next time.
    query = sa.select(sa.func.min(col(AuditEvent.seq))).where(col(AuditEvent.occurred_at) >= cutoff)
    return (await session.execute(query)).scalar_one_or_none()


async def count_before(session: AsyncSession, *, cutoff: dt.datetime) -> int:
    """How many events occurred before `cutoff` (what an erasure would consider)."""
    query = sa.select(sa.func.count()).where(col(AuditEvent.occurred_at) < cutoff)
    return int((await session.execute(query)).scalar_one())


async def _allow_erasure(session: AsyncSession) -> None:
    """Tell PostgreSQL's append-only triggers this transaction erases lawfully (SET LOCAL)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.set_config("hub.audit_erasure", "on", sa.true())))


async def _delete_through(session: AsyncSession, last_seq: int) -> None:
    await _allow_erasure(session)
    for table in (AuditEventChild, AuditEventRecord, AuditEventRecipient, AuditEvent):
        statement = sa.delete(table).where(col(table.seq) <= last_seq)
        await session.execute(statement.execution_options(synchronize_session=False))


async def erase_before(
    session: AsyncSession,
    *,
    cutoff: dt.datetime,
    actor: service.Actor,
    request_id: str | None = None,
) -> ErasureReport:
    """Erase events that occurred before `cutoff` (oldest first) and log the erasure.

    Runs in the caller's write transaction and holds the chain lock from the start, so appends
    and other erasures wait (and the index progress row, so the indexer waits too). Raises
    `ErasureRefused` if the range to erase does not verify.
    """
    if cutoff.tzinfo is None:
        raise InvalidInput("the cutoff must carry a timezone", field="cutoff")
    head = await chain.lock_head(session)
    # Index what the indexer has not reached, and hold its progress row until the erasure
    # commits: no index row of an erased event can be written after its deletion.
    await chain.catch_up_all(session)
    first_kept = await _first_kept(session, cutoff)
    through = head.last_seq if first_kept is None else first_kept - 1
    checked = await verify.verify(session, through=through)
    if checked.problem is not None:
        problem = checked.problem
        raise ErasureRefused(
            f"refused: the log fails verification at seq {problem.seq} ({problem.reason}); "
            "erasing would hide it"
        )
    if checked.first_seq is None or checked.last_seq is None:
        return ErasureReport(erased=0)
    erased = chain.Erasure(checked.first_seq, checked.last_seq, checked.last_hash)
    await _delete_through(session, erased.last_seq)
    await service.record(
        session,
        actor=actor,
        operation=S62Operation.ERASURE,
        operation_kind=OperationKind.RETENTION,
        operation_name=OPERATION_NAME,
        outcome=Outcome.SERVED,
        records=[],
        request_id=request_id,
        trace_id=None,
        agreement_version=None,
        detail=chain.erasure_detail(erased, count=checked.checked, cutoff=cutoff),
    )
    return ErasureReport(
        erased=checked.checked,
        first_seq=erased.first_seq,
        last_seq=erased.last_seq,
        anchor_hash=erased.anchor_hash,
        erasure_seq=head.last_seq + 1,
    )
