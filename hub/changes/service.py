"""Publishing changes to the outbox and reading them back in order.

`publish` runs in the transaction that made the changes, so a change is in the outbox exactly
when it is committed. On PostgreSQL it also sends `NOTIFY` on `CHANNEL`, which PostgreSQL
delivers at commit to every hub process listening (`hub.changes.notifier`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.audit import chain
from hub.audit.models import S62Operation
from hub.changes.models import ChangeKind, RecordChange
from hub.db import utcnow
from hub.errors import InvalidInput

CHANNEL = "hub_record_changes"


async def publish(session: AsyncSession, changes: Iterable[tuple[str, str, ChangeKind]]) -> int:
    """Add (record type, id, kind) changes to the outbox; return how many."""
    now = utcnow()
    rows = [
        {
            "occurred_at": now,
            "record_type": record_type,
            "record_id": record_id,
            "change": ChangeKind(kind).value,
        }
        for record_type, record_id, kind in changes
    ]
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # One round trip: a push runs this holding the audit chain's lock, until its commit.
        await session.execute(
            _PG_PUBLISH,
            {
                "channel": CHANNEL,
                "at": [row["occurred_at"] for row in rows],
                "types": [row["record_type"] for row in rows],
                "ids": [row["record_id"] for row in rows],
                "changes": [row["change"] for row in rows],
            },
        )
    else:
        await session.execute(sa.insert(RecordChange), rows)
    return len(rows)


# The rows in the order given (their seqs follow it), and the NOTIFY PostgreSQL sends at commit.
# The k-th smallest seq drawn goes to the k-th change (as `chain`'s append numbers them): the
# order is explicit, not left to the order PostgreSQL inserts a SELECT's rows in.
_PG_PUBLISH = sa.text(
    "WITH numbered AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('record_change', "
    "'seq')) AS seq FROM generate_series(1, cardinality(CAST(:types AS TEXT[])))), "
    "written AS (INSERT INTO record_change (seq, occurred_at, record_type, record_id, change) "
    "SELECT r.seq, c.occurred_at, c.record_type, c.record_id, c.change "
    "FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM numbered) r JOIN unnest("
    "CAST(:at AS TIMESTAMPTZ[]), CAST(:types AS TEXT[]), CAST(:ids AS TEXT[]), "
    "CAST(:changes AS TEXT[])) "
    "WITH ORDINALITY AS c(occurred_at, record_type, record_id, change, n) ON c.n = r.n) "
    "SELECT pg_notify(CAST(:channel AS TEXT), '')"
)


_KINDS = {
    S62Operation.COLLECTION: ChangeKind.COLLECTED,
    S62Operation.ALTERATION: ChangeKind.ALTERED,
}


def outbox(changes: Mapping[tuple[str, str], S62Operation]) -> chain.Outbox:
    """What `publish_changes` would publish, for the audit's append to write (`chain.Outbox`)."""
    return chain.Outbox(
        occurred_at=utcnow(),
        rows=[
            (record_type, record_id, _KINDS[operation].value)
            for (record_type, record_id), operation in changes.items()
            if operation in _KINDS
        ],
        channel=CHANNEL,
    )


async def publish_changes(
    session: AsyncSession, changes: Mapping[tuple[str, str], S62Operation]
) -> int:
    """Publish what a request did to records, as its audit names it (collected, altered)."""
    return await publish(
        session,
        (
            (record_type, record_id, _KINDS[operation])
            for (record_type, record_id), operation in changes.items()
            if operation in _KINDS
        ),
    )


async def latest(session: AsyncSession) -> int:
    """The newest change's seq (0 when there is none): where a new subscription starts."""
    found = (await session.execute(sa.select(sa.func.max(col(RecordChange.seq))))).scalar()
    return int(found or 0)


async def after(session: AsyncSession, seq: int, *, limit: int) -> list[RecordChange]:
    query = (
        sa.select(RecordChange)
        .where(col(RecordChange.seq) > seq)
        .order_by(col(RecordChange.seq))
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


def seq_of(position: str) -> int:
    """The seq a resume position names (`str(seq)`, sealed into the subscriber's cursor)."""
    try:
        seq = int(position)
    except ValueError as error:
        raise InvalidInput("after is not a cursor this API gave out", field="after") from error
    if seq < 0:
        raise InvalidInput("after is not a cursor this API gave out", field="after")
    return seq
