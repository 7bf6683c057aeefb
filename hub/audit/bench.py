"""`safeguarding-hub bench-audit`: the audit log at national scale, with figures.

Not a test: it measures. It creates a scratch PostgreSQL database (dropped afterwards), migrates
it, bulk-loads N synthetic accesses (records served, in responses of 1 to 50 records, each
response one chained event) with COPY (the chain computed in Python as it goes, exactly as
`record` would), then times a child's access history (the latest 50 accesses) over many distinct
children, appends through `record`, the indexer's catch-up of what was appended (the record and
child index rows a served response adds, written into indexes as large as the loaded log's),
and `verify` over the whole log. Every value is invented.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hub.audit import chain, service, verify
from hub.audit.export import COLUMNS
from hub.audit.indexer import AuditIndexer
from hub.audit.models import GENESIS_HASH, OperationKind, Outcome, S62Operation
from hub.bench import BenchFailed, scratch_database
from hub.db import Database
from hub.migrate import upgrade

CHUNK = 50_000
HISTORY_PAGE = 50
APPEND_RECORDS = 20  # records in one response
LOG_SPAN = dt.timedelta(days=365)
COUNCILS = ("E08000025", "E08000003", "E06000016", "E06000052", "W06000015")
FORCES = ("WEST_MIDLANDS", "GREATER_MANCHESTER", "LEICESTERSHIRE", "DEVON_AND_CORNWALL")
RECORD_TYPES = ("Incident", "MissingEpisode", "Investigation", "Child")
FIELDS = (
    '["dashRisk","id","occurredAt","policeReference","summary","type"]',
    '["id","reportedMissingAt","riskGrade","status"]',
    '["id","status","updatedAt"]',
)
# (operation, kind, outcome, weight): mostly council reads, some pushes, deliveries, denials.
MIX = (
    (S62Operation.CONSULTATION, OperationKind.QUERY, Outcome.SERVED, 88),
    (S62Operation.COLLECTION, OperationKind.MUTATION, Outcome.SERVED, 6),
    (S62Operation.DISCLOSURE, OperationKind.SUBSCRIPTION, Outcome.SERVED, 4),
    (S62Operation.CONSULTATION, OperationKind.QUERY, Outcome.DENIED, 2),
)


@dataclasses.dataclass
class AuditBenchReport:
    events: int  # accesses loaded
    chained: int  # the events they were chained in
    children: int
    load_seconds: float
    index_seconds: float
    history_seconds: list[float]
    children_with_history: int
    append_seconds: list[float]
    indexed: Indexed
    verify: verify.VerifyReport

    def lines(self) -> list[str]:
        history, appends = _percentiles(self.history_seconds), _percentiles(self.append_seconds)
        indexed = self.indexed
        verdict = "OK" if self.verify.ok else f"FAILED {self.verify.problem}"
        return [
            (
                f"loaded   {self.events:,} accesses (records served) in {self.chained:,} "
                f"chained events, over {self.children:,} children in {self.load_seconds:.1f} s "
                f"(+ indexes and vacuum {self.index_seconds:.1f} s)"
            ),
            (
                f"history  latest {HISTORY_PAGE} of a child's accesses, "
                f"{len(self.history_seconds)} children ({self.children_with_history} with any): "
                f"p50 {history[0]:.2f} ms  p99 {history[1]:.2f} ms  (target < 50 ms)"
            ),
            (
                f"append   record() of a response of {APPEND_RECORDS} records, "
                f"{len(self.append_seconds)} responses: "
                f"p50 {appends[0]:.2f} ms  p99 {appends[1]:.2f} ms"
            ),
            (
                f"index    the indexer's catch-up of those {indexed.events} responses: "
                f"{indexed.rows:,} record and child index rows in {indexed.seconds * 1000:.1f} ms, "
                f"{indexed.seconds * 1000 / max(indexed.events, 1):.2f} ms a response, "
                f"{indexed.rows / max(indexed.seconds, 1e-9):,.0f} rows/s "
                f"(into indexes of {self.events:,} accesses)"
            ),
            (
                f"verify   {self.verify.checked:,} chained events holding {self.events:,} "
                f"accesses in {self.verify.seconds:.1f} s: {self.verify.rate:,.0f} events/s, "
                f"{self.events / max(self.verify.seconds, 1e-9):,.0f} accesses/s  "
                f"(target > 100,000/s)  {verdict}"
            ),
        ]


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    if not seconds:
        return 0.0, 0.0
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# Records per response: mostly small pages, some full ones (mean about 10).
RESPONSE_SIZES = (1, 1, 2, 3, 5, 10, 20, 20, 25, 50)


@dataclasses.dataclass
class _Chunk:
    events: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    records: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    children: list[tuple[str, int]] = dataclasses.field(default_factory=list)


class _Synthetic:
    """Synthetic responses in seq order, chained: the rows COPY loads.

    `accesses` counts records served (plus one per event that served none): the issue's
    "events" as a reader of the log counts them, one per record a caller received.
    """

    def __init__(self, *, accesses: int, children: list[str], rng: random.Random) -> None:
        self.accesses, self.children, self.rng = accesses, children, rng
        self.records = [_uuid(rng) for _ in range(max(1, accesses // 10))]
        self.start = dt.datetime.now(dt.UTC) - LOG_SPAN
        self.step = LOG_SPAN / max(1, accesses)
        self.head = chain.Head(0, GENESIS_HASH)
        self.written = 0  # accesses so far
        weights = [weight for *_, weight in MIX]
        self.kinds = rng.choices([mix[:3] for mix in MIX], weights=weights, k=1024)

    def _record(self, seq: int, ordinal: int) -> dict[str, Any]:
        rng = self.rng
        index = seq + ordinal
        return {
            "type": RECORD_TYPES[index % len(RECORD_TYPES)],
            "id": rng.choice(self.records),
            "owner": FORCES[index % len(FORCES)],
            "fields": json.loads(FIELDS[index % len(FIELDS)]),
            "children": sorted(set(rng.choices(self.children, k=rng.choice((1, 1, 2, 3))))),
        }

    def content(self, seq: int) -> tuple[list[Any], list[dict[str, Any]], list[str]]:
        operation, kind, outcome = self.kinds[seq % len(self.kinds)]
        served = outcome is Outcome.SERVED
        size = self.rng.choice(RESPONSE_SIZES) if served else 0
        size = min(size, max(1, self.accesses - self.written)) if served else 0
        records = [self._record(seq, ordinal) for ordinal in range(size)]
        concerned = sorted({child for record in records for child in record["children"]})
        council = COUNCILS[seq % len(COUNCILS)]
        occurred_at = self.start + self.step * self.written
        self.written += max(1, size)
        values = {
            "id": service.event_id(occurred_at),
            "occurred_at": occurred_at,
            "operation": operation.value,
            "outcome": outcome.value,
            "user": f"sw-{seq % 5000:04d}",
            "organisation_code": council,
            "client_id": f"client-{council.lower()}",
            "role": "council_social_worker",
            "purpose": "section_47_enquiry",
            "operation_name": "CouncilIncidents",
            "operation_kind": kind.value,
            "record_type": None,
            "record_id": None,
            "record_owner": None,
            "fields": "[]",
            "child_ids": chain.encode_json(concerned),
            "request_id": f"req-{seq:012d}",
            "trace_id": f"{seq:032x}",
            "agreement_version": "sha256:0000000000000000",
            "detail": None if served else '{"denied":["PURPOSE_NOT_PERMITTED"]}',
            "records": chain.encode_json(records),
        }
        return [values[name] for name in chain.CONTENT_COLUMNS], records, concerned

    def chunks(self) -> Iterator[_Chunk]:
        prev, seq = self.head.last_hash, 0
        while self.written < self.accesses:
            chunk = _Chunk()
            while self.written < self.accesses and len(chunk.records) < CHUNK:
                seq += 1
                content, records, concerned = self.content(seq)
                digest = chain.event_hash(prev, content)
                chunk.events.append((seq, *content, prev, digest))
                chunk.records.extend(
                    (record["type"], record["id"], seq, ordinal, record["owner"])
                    for ordinal, record in enumerate(records)
                )
                chunk.children.extend((child, seq) for child in concerned)
                prev = digest
            self.head = chain.Head(seq, prev)
            yield chunk


_SECONDARY_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid IN (
    'audit_event'::regclass, 'audit_event_record'::regclass, 'audit_event_child'::regclass
  )
  AND contype IN ('p', 'u') AND conname <> 'pk_audit_event'
"""
_SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename IN ('audit_event', 'audit_event_record', 'audit_event_child')
  AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""


async def _without_secondary_indexes(connection: Any) -> list[str]:
    """Drop what a bulk load would maintain row by row; return the DDL that rebuilds it."""
    rebuild: list[str] = []
    for table, name, definition in await connection.fetch(_SECONDARY_CONSTRAINTS):
        await connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        rebuild.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for name, definition in await connection.fetch(_SECONDARY_INDEXES):
        await connection.execute(f"DROP INDEX {name}")
        rebuild.append(definition)
    return rebuild


@dataclasses.dataclass(frozen=True)
class Loaded:
    load_seconds: float
    index_seconds: float  # rebuilding the secondary indexes, and vacuum
    chained: int  # events in the chain (one per response)


async def load(url: str, *, events: int, children: list[str], seed: int) -> Loaded:
    """COPY `events` synthetic accesses in, grouped in responses, each one chained event."""
    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as wrapper:
            # asyncpg itself, for COPY: outside SQLAlchemy's transaction each statement commits
            # alone, and VACUUM may run.
            connection: Any = (await wrapper.get_raw_connection()).driver_connection
            rebuild = await _without_secondary_indexes(connection)
            started = time.perf_counter()
            chained = await _copy_in(connection, events=events, children=children, seed=seed)
            loaded = time.perf_counter()
            await connection.execute("SET maintenance_work_mem = '1GB'")
            for statement in rebuild:
                await connection.execute(statement)
            # Vacuum sets the visibility map: index-only scans (the child index's count) need it.
            await connection.execute(
                "VACUUM ANALYZE audit_event, audit_event_record, audit_event_child"
            )
            return Loaded(loaded - started, time.perf_counter() - loaded, chained)
    finally:
        await engine.dispose()


async def _copy_in(connection: Any, *, events: int, children: list[str], seed: int) -> int:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable
    synthetic = _Synthetic(accesses=events, children=children, rng=rng)
    for chunk in synthetic.chunks():
        await connection.copy_records_to_table("audit_event", records=chunk.events, columns=COLUMNS)
        await connection.copy_records_to_table(
            "audit_event_record", records=chunk.records, columns=chain.RECORD_COLUMNS
        )
        await connection.copy_records_to_table(
            "audit_event_child", records=chunk.children, columns=("child_id", "seq")
        )
    head = synthetic.head
    await connection.execute(
        "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1",
        head.last_seq,
        head.last_hash,
    )
    # The COPY wrote every event's index rows with it.
    await connection.execute(
        "UPDATE audit_index_progress SET indexed_seq = $1 WHERE id = 1", head.last_seq
    )
    return head.last_seq


async def _history(db: Database, sample: list[str]) -> tuple[list[float], int]:
    """Each read in its own transaction, as a request would; how many children had any."""
    latencies, found = [], 0
    for child_id in sample:
        started = time.perf_counter()
        async with db.transaction(write=False) as session:
            page = await service.child_history(session, child_id=child_id, first=HISTORY_PAGE)
        latencies.append(time.perf_counter() - started)
        found += bool(page.items)
    return latencies, found


async def _appends(db: Database, children: list[str], count: int) -> list[float]:
    actor = service.Actor(
        user="sw-bench",
        organisation_code=COUNCILS[0],
        client_id="client-bench",
        role="council_social_worker",
        purpose="section_47_enquiry",
    )
    latencies = []
    for number in range(count):
        concerned = (
            children[(number * APPEND_RECORDS + i) % len(children)] for i in range(APPEND_RECORDS)
        )
        served = [
            service.ServedRecord("Incident", str(uuid.uuid4()), ("id", "type"), (child,), FORCES[0])
            for child in concerned
        ]
        started = time.perf_counter()
        async with db.transaction(write=True) as session:
            await service.record(
                session,
                actor=actor,
                operation=S62Operation.CONSULTATION,
                operation_kind=OperationKind.QUERY,
                operation_name="CouncilIncidents",
                outcome=Outcome.SERVED,
                records=served,
                request_id=f"bench-{number}",
                trace_id=None,
                agreement_version=None,
            )
        latencies.append(time.perf_counter() - started)
    return latencies


@dataclasses.dataclass(frozen=True)
class Indexed:
    """The indexer's catch-up of the appended events: how many, their index rows, its time."""

    events: int
    rows: int
    seconds: float


async def _index(db: Database) -> Indexed:
    """Index what the appends left unindexed, as a hub's indexer does after its requests
    (`AuditIndexer.index_all`), into record and child indexes already holding the loaded log.

    A page's accesses cost the database this much again after the response has gone: the
    rows go into primary keys led by a record's or a child's id, at scattered places in large
    indexes, not at their ends."""
    async with db.transaction(write=False) as session:
        before = await chain.indexed_through(session)
    if before is None:
        raise chain.IndexProgressMissing("the audit index progress row is missing")
    started = time.perf_counter()
    events = await AuditIndexer(db).index_all()
    seconds = time.perf_counter() - started
    counts = [
        sa.select(sa.func.count()).select_from(table).where(table.c.seq > before)
        for table in (chain.RECORDS, chain.CHILDREN)
    ]
    rows = 0
    async with db.transaction(write=False) as session:
        for count in counts:
            rows += (await session.execute(count)).scalar_one()
    return Indexed(events=events, rows=rows, seconds=seconds)


async def _verify(db: Database) -> verify.VerifyReport:
    async with db.transaction(write=False) as session:
        await chain.begin_snapshot(session)
        return await verify.verify(session)


async def run(
    *,
    database_url: str,
    events: int = 10_000_000,
    children: int = 200_000,
    samples: int = 1_000,
    appends: int = 200,
    seed: int = 2026,
) -> AuditBenchReport:
    if not database_url.startswith("postgresql"):
        msg = "bench-audit needs a PostgreSQL server (COPY, and figures that mean something)"
        raise ValueError(msg)
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable
    pool = [_uuid(rng) for _ in range(children)]
    async with scratch_database(database_url, prefix="hub_audit_bench") as url:
        await upgrade(url)
        loaded = await load(url, events=events, children=pool, seed=seed)
        db = Database(url)
        try:
            sample = rng.sample(pool, min(samples, len(pool)))
            history, found = await _history(db, sample)
            appended = await _appends(db, pool, appends)
            indexed = await _index(db)
            verified = await _verify(db)
        finally:
            await db.dispose()
    if indexed.events != appends or (appends and not indexed.rows):
        msg = (
            f"the indexer indexed {indexed.events} of the {appends} appended events, "
            f"{indexed.rows} index rows: no figures for an incomplete index"
        )
        raise BenchFailed(msg)
    if not verified.ok or verified.checked != loaded.chained + appends:
        msg = (
            f"verify checked {verified.checked} of {loaded.chained + appends} events "
            f"({'intact' if verified.ok else 'a problem was found'}): no figures for a broken log"
        )
        raise BenchFailed(msg)
    return AuditBenchReport(
        events=events,
        chained=loaded.chained,
        children=children,
        load_seconds=loaded.load_seconds,
        index_seconds=loaded.index_seconds,
        history_seconds=history,
        children_with_history=found,
        append_seconds=appended,
        indexed=indexed,
        verify=verified,
    )
