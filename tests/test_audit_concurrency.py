"""The chain stays whole under parallel appends: tasks, separate engines, and separate processes;
and its indexes, built by several indexers while the appends run, hold each event exactly once.

Appends here commit (that is the point), so they stay in the session's database: every other
test's `verify` then also walks a chain that several writers built at once.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import sqlalchemy as sa

from hub.audit import chain, service, verify
from hub.audit.indexer import AuditIndexer
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.db import Database
from tests.test_audit_chain import ACTOR, served

# A second hub process in miniature: its own interpreter, engine and pool, appending in a loop.
WORKER = """
import asyncio, sys, uuid
from hub.audit import service
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.db import Database

async def main(url: str, tag: str, responses: int) -> None:
    db = Database(url)
    actor = service.Actor("sw-worker", "E08000025", "worker", "council_social_worker", "s47")
    for number in range(responses):
        records = [
            service.ServedRecord("Incident", str(uuid.uuid4()), ("id",), (str(uuid.uuid4()),), None)
            for _ in range(3)
        ]
        async with db.transaction(write=True) as session:
            await service.record(
                session, actor=actor, operation=S62Operation.CONSULTATION,
                operation_kind=OperationKind.QUERY, operation_name="Worker",
                outcome=Outcome.SERVED, records=records, request_id=f"{tag}-{number}",
                trace_id=None, agreement_version=None,
            )
    await db.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

ENGINES = 3
TASKS_PER_ENGINE = 6
RESPONSES_PER_TASK = 5
PROCESSES = 2
RESPONSES_PER_PROCESS = 25
RECORDS = 3


async def _append(db: Database, tag: str, task: int) -> None:
    for number in range(RESPONSES_PER_TASK):
        async with db.transaction(write=True) as session:
            await service.record(
                session,
                actor=ACTOR,
                operation=S62Operation.CONSULTATION,
                operation_kind=OperationKind.QUERY,
                operation_name="Parallel",
                outcome=Outcome.SERVED,
                records=served(RECORDS),
                request_id=f"{tag}-{task}-{number}",
                trace_id=None,
                agreement_version=None,
            )


async def _worker(database_url: str, tag: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        database_url,
        tag,
        str(RESPONSES_PER_PROCESS),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    return RESPONSES_PER_PROCESS * RECORDS


async def _responses_tagged(db: Database, tag: str) -> list[tuple[int, int, int]]:
    """(first seq, last seq, events) of each response the test made."""
    events = chain.EVENTS
    query = (
        sa.select(sa.func.min(events.c.seq), sa.func.max(events.c.seq), sa.func.count())
        .where(events.c.request_id.like(f"{tag}-%"))
        .group_by(events.c.request_id)
    )
    async with db.transaction(write=False) as session:
        return [(first, last, count) for first, last, count in await session.execute(query)]


async def test_parallel_appends_from_engines_and_processes_keep_one_chain(
    database_url: str, db: Database
) -> None:
    tag = f"par-{uuid.uuid4().hex[:8]}"
    engines = [Database(database_url, pool_size=TASKS_PER_ENGINE) for _ in range(ENGINES)]
    try:
        in_process = [
            _append(engine, f"{tag}-e{index}", task)
            for index, engine in enumerate(engines)
            for task in range(TASKS_PER_ENGINE)
        ]
        processes = [_worker(database_url, f"{tag}-p{index}") for index in range(PROCESSES)]
        appending = asyncio.gather(*in_process, *processes)
        # One indexer per engine, as each hub process has, indexing while the appends run.
        indexers = [AuditIndexer(engine) for engine in engines]
        indexed = 0
        while not appending.done():
            counts = await asyncio.gather(*(indexer.index_all() for indexer in indexers))
            indexed += sum(counts)
            await asyncio.sleep(0.01)
        await appending
        indexed += sum(await asyncio.gather(*(indexer.index_all() for indexer in indexers)))
    finally:
        for engine in engines:
            await engine.dispose()

    responses = await _responses_tagged(db, tag)
    expected = ENGINES * TASKS_PER_ENGINE * RESPONSES_PER_TASK + PROCESSES * RESPONSES_PER_PROCESS
    assert len(responses) == expected
    if db.engine.dialect.name == "postgresql":  # SQLite's appends index their own events
        # These indexers did index while the appends ran; not necessarily all of it: a live
        # server's indexer left from an earlier test in this database may take some. That every
        # event is indexed, and its records listed, is checked below.
        assert indexed > 0
    async with db.transaction(write=False) as session:
        head = await chain.read_head(session)
        assert head is not None
        assert await chain.indexed_through(session) == head.last_seq
    # A response is one event, listing its records.
    assert all(first == last and count == 1 for first, last, count in responses)
    async with db.transaction(write=False) as session:
        listed = sa.select(sa.func.count()).where(
            chain.RECORDS.c.seq.in_([first for first, _, _ in responses])
        )
        assert (await session.execute(listed)).scalar_one() == len(responses) * RECORDS
    async with db.transaction(write=False) as session:
        await chain.begin_snapshot(session)
        report = await verify.verify(session)
        head = await chain.read_head(session)
    assert report.ok, report.problem
    assert head is not None
    # Gapless from the first event to the head: every seq handed out under the lock was used.
    assert report.first_seq is not None
    assert report.checked == head.last_seq - report.first_seq + 1
    assert max(last for _, last, _ in responses) <= head.last_seq
