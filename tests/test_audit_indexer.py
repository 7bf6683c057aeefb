"""The record and child indexes, built after the append: readers and `verify` before and after.

An append writes only the chained event; `chain.catch_up` (run by the indexer
after each audited commit) writes its index rows. Until then readers find the event all the
same, and `verify` checks the indexes only as far as they claim to reach.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain, service, verify
from hub.audit.verify import Reason
from hub.db import Database
from tests.conftest import LiveServer
from tests.test_audit_chain import ACTOR, record, served, tamper


async def _append(session: AsyncSession, records: list[service.ServedRecord]) -> int:
    """One response's event, left unindexed (as it is until the indexer runs)."""
    (seq,) = await record(session, records, grouped=True, indexed=False)
    return seq


async def _index_rows(session: AsyncSession, seq: int) -> tuple[int, int]:
    records = sa.select(sa.func.count()).where(chain.RECORDS.c.seq == seq)
    children = sa.select(sa.func.count()).where(chain.CHILDREN.c.seq == seq)
    return (
        (await session.execute(records)).scalar_one(),
        (await session.execute(children)).scalar_one(),
    )


async def test_an_unindexed_event_is_read_all_the_same_and_indexed_once(
    session: AsyncSession,
) -> None:
    await chain.catch_up_all(session)
    child = "c-tail-1"
    one = served(1)[0]
    shared = [service.ServedRecord(one.record_type, one.record_id, one.fields, (child,), one.owner)]
    first = await _append(session, shared)
    second = await _append(session, shared)
    await chain.catch_up_all(session)  # the first two are indexed, the third is not yet
    third = await _append(session, shared)
    assert await chain.indexed_through(session) == second
    assert await _index_rows(session, third) == (0, 0)

    history = await service.record_history(
        session, record_type=one.record_type, record_id=one.record_id, first=10
    )
    assert [a.seq for a in history.items] == [third, second, first]
    # Paged one at a time across the unindexed tail and the index, nothing twice or missed.
    seen, after = [], None
    while True:
        page = await service.child_history(session, child_id=child, first=1, after=after)
        seen += [a.seq for a in page.items]
        if not page.has_next_page:
            break
        after = page.positions[-1]
    assert seen == [third, second, first]
    owned = await service.list_events(
        session, filters=service.EventFilter(record_owner=one.owner), first=1
    )
    assert [a.seq for a in owned.items] == [third]
    report = await verify.verify(session)
    assert report.ok, report.problem

    assert await chain.catch_up(session) == 1
    assert await chain.catch_up(session) == 0  # nothing left: indexing again writes nothing
    assert await _index_rows(session, third) == (1, 1)
    history = await service.record_history(
        session, record_type=one.record_type, record_id=one.record_id, first=10
    )
    assert [a.seq for a in history.items] == [third, second, first]
    assert (await verify.verify(session)).ok


async def test_an_index_row_past_the_indexed_events_is_named(session: AsyncSession) -> None:
    await chain.catch_up_all(session)
    seq = await _append(session, served(2))
    await tamper(
        session,
        "INSERT INTO audit_event_record (seq, ordinal, record_type, record_id) "
        "VALUES (:seq, 0, 'Incident', 'forged-early')",
        seq=seq,
    )
    problem = (await verify.verify(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seq, Reason.RECORD_INDEX)


async def test_a_served_query_is_indexed_after_its_commit(
    live_server: LiveServer, db: Database
) -> None:
    import httpx  # noqa: PLC0415

    from hub.access.models import Role  # noqa: PLC0415

    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, "E08000025")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": "{ incidents(first: 5) { edges { node { id } } } }"},
        )
    assert "errors" not in response.json()
    # The server's indexer, poked by the commit, catches up on its own (nobody here calls it).
    for _ in range(200):
        async with db.transaction(write=False) as session:
            head = await chain.read_head(session)
            indexed = await chain.indexed_through(session)
        assert head is not None
        if indexed == head.last_seq:
            break
        await asyncio.sleep(0.05)
    assert indexed == head.last_seq


async def test_an_erasure_leaves_no_index_row_of_an_unindexed_event(
    session: AsyncSession,
) -> None:
    from hub.audit import retention  # noqa: PLC0415
    from hub.db import utcnow  # noqa: PLC0415

    seq = await _append(session, served(2))
    before = await chain.indexed_through(session)
    assert before is not None
    assert before < seq  # not indexed yet
    cutoff = utcnow() + dt.timedelta(seconds=1)  # everything so far (rolled back after)
    report = await retention.erase_before(session, cutoff=cutoff, actor=ACTOR)
    assert report.last_seq is not None
    assert report.last_seq >= seq
    # The erasure indexed what was left first, holding the progress row's lock until it
    # commits, so that no indexer can write rows for the events it deletes.
    indexed = await chain.indexed_through(session)
    assert indexed is not None
    assert indexed >= report.last_seq
    for table in (chain.RECORDS, chain.CHILDREN):
        left = sa.select(sa.func.count()).where(table.c.seq <= report.last_seq)
        assert (await session.execute(left)).scalar_one() == 0
    assert (await verify.verify(session)).ok


async def test_the_indexer_stops_after_a_short_batch(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven events in batches of three: three catch-ups (3, 3, 1), not a fourth that locks the
    progress row and commits for nothing; and every event is indexed."""
    from hub.audit.indexer import AuditIndexer  # noqa: PLC0415

    async with db.transaction(write=True) as session:
        await chain.catch_up_all(session)
    async with db.transaction(write=True) as session:
        for _ in range(7):
            await _append(session, served(2))
    batches: list[int] = []
    real = chain.catch_up_apart

    async def counted(db: Database) -> int:
        indexed = await real(db)
        batches.append(indexed)
        return indexed

    monkeypatch.setattr(chain, "CATCH_UP_BATCH", 3)
    monkeypatch.setattr(chain, "SQLITE_CATCH_UP_BATCH", 3)
    monkeypatch.setattr(chain, "catch_up_apart", counted)
    assert await AuditIndexer(db).index_all() == 7
    assert batches == [3, 3, 1]
    async with db.transaction(write=False) as session:
        head = await chain.read_head(session)
        assert head is not None
        assert await chain.indexed_through(session) == head.last_seq
