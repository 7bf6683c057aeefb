"""A read that writes its own audit (`Database.audited_read`): on PostgreSQL each statement is a
transaction of its own (no BEGIN, no COMMIT), its one write the audit's append, committed as it
runs; what needs a transaction around it is refused, not silently half-done."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from hub.audit import service
from hub.audit.models import AuditEvent, OperationKind, Outcome, S62Operation
from hub.db import Database, NeedsATransaction, rows
from tests.conftest import is_postgres
from tests.test_audit_chain import ACTOR, served

postgres_only = pytest.mark.skipif(
    not is_postgres(), reason="a SQLite read's audit is written in a transaction of its own"
)


def _draft(request_id: str) -> service.EventDraft:
    return service.EventDraft(
        actor=ACTOR,
        operation=S62Operation.CONSULTATION,
        operation_kind=OperationKind.QUERY,
        operation_name="AuditedRead",
        outcome=Outcome.SERVED,
        records=served(2),
        request_id=request_id,
        trace_id=None,
        agreement_version="test",
    )


async def _events(db: Database, request_id: str) -> list[AuditEvent]:
    async with db.transaction(write=False) as reader:
        query = sa.select(AuditEvent).where(AuditEvent.request_id == request_id)
        return list((await reader.execute(query)).scalars())


@postgres_only
async def test_an_audited_read_opens_no_transaction(db: Database) -> None:
    async with db.audited_read() as session:
        await session.begin()
        [row] = (await session.execute(sa.text("SELECT 1 AS n"))).all()
        [direct] = await rows(session, sa.select(sa.literal(2).label("n")))
        raw = await (await session.connection()).get_raw_connection()
        # asyncpg's own view of its connection: no BEGIN was sent for either statement.
        assert not raw.driver_connection.is_in_transaction()  # type: ignore[union-attr]
        assert (row.n, direct.n) == (1, 2)
        await session.commit()


@postgres_only
async def test_an_audited_reads_append_is_committed_as_it_runs(db: Database) -> None:
    request_id = f"req-{uuid.uuid4()}"
    async with db.audited_read() as session:
        await session.begin()
        [seq] = await service.record_many(session, [_draft(request_id)])
        # Another connection sees it before this session commits (or even ends).
        [event] = await _events(db, request_id)
        assert event.seq == seq
        assert event.operation_name == "AuditedRead"
        await session.rollback()  # nothing to undo: the append was its own transaction
    assert [e.seq for e in await _events(db, request_id)] == [seq]


@postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "SET LOCAL jit = off",
        "  insert into audit_index_progress (id, indexed_seq) values (-7, 0)",
        "UPDATE audit_chain_head SET last_seq = last_seq WHERE id = -7",
        "DELETE FROM audit_index_progress WHERE id = -7",
    ],
)
async def test_what_needs_a_transaction_is_refused(db: Database, statement: str) -> None:
    async with db.audited_read() as session:
        await session.begin()
        with pytest.raises(NeedsATransaction, match="open a transaction for it"):
            await session.execute(sa.text(statement))
    async with db.transaction(write=False) as reader:
        found = await reader.execute(sa.text("SELECT count(*) FROM audit_index_progress"))
        assert found.scalar_one() == 1  # the indexer's one row, and no other


@postgres_only
async def test_a_transaction_of_its_own_is_not_refused(db: Database) -> None:
    # The guard is the audited read's alone: the hub's other sessions write as before.
    async with db.transaction(write=True) as writer:
        await writer.execute(sa.text("SET LOCAL jit = off"))
        setting = await writer.execute(sa.text("SELECT current_setting('jit')"))
        assert setting.scalar_one() == "off"


async def test_on_sqlite_an_audited_read_is_a_write_transaction(db: Database) -> None:
    if db.audits_reads_in_place:
        pytest.skip("PostgreSQL: above")
    session = db.audited_read()
    assert session.bind is not None
    # BEGIN IMMEDIATE (`_configure_sqlite`): the read and its audit in one write transaction.
    assert session.bind.get_execution_options().get("hub_write") is True
    await session.close()
