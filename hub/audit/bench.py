"""`safeguarding-hub bench-audit`: the audit log at national scale, with figures.

Not a test: it measures. It creates a scratch PostgreSQL database (dropped afterwards), migrates
it, bulk-loads N synthetic events with COPY (the chain computed in Python as it goes, exactly as
`record` would), then times a child's access history (the latest 50 events) over many distinct
children, appends through `record`, and `verify` over the whole log. Every value is invented.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hub.audit import chain, service, verify
from hub.audit.export import COLUMNS
from hub.audit.models import GENESIS_HASH, OperationKind, Outcome, S62Operation
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
    events: int
    children: int
    load_seconds: float
    index_seconds: float
    history_seconds: list[float]
    children_with_history: int
    append_seconds: list[float]
    verify: verify.VerifyReport

    def lines(self) -> list[str]:
        history, appends = _percentiles(self.history_seconds), _percentiles(self.append_seconds)
        verdict = "OK" if self.verify.ok else f"FAILED {self.verify.problem}"
        return [
            (
                f"loaded   {self.events:,} events over {self.children:,} children in "
                f"{self.load_seconds:.1f} s (+ indexes and vacuum {self.index_seconds:.1f} s)"
            ),
            (
                f"history  latest {HISTORY_PAGE} of a child's events, "
                f"{len(self.history_seconds)} children ({self.children_with_history} with any): "
                f"p50 {history[0]:.2f} ms  p99 {history[1]:.2f} ms  (target < 50 ms)"
            ),
            (
                f"append   record() of {APPEND_RECORDS} events, {len(self.append_seconds)} "
                f"responses: p50 {appends[0]:.2f} ms  p99 {appends[1]:.2f} ms"
            ),
            (
                f"verify   {self.verify.checked:,} events in {self.verify.seconds:.1f} s: "
                f"{self.verify.rate:,.0f} events/s  (target > 100,000/s)  {verdict}"
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


class _Synthetic:
    """Synthetic events in seq order, chained: the rows COPY loads."""

    def __init__(self, *, events: int, children: list[str], rng: random.Random) -> None:
        self.events, self.children, self.rng = events, children, rng
        self.records = [_uuid(rng) for _ in range(max(1, events // 10))]
        self.start = dt.datetime.now(dt.UTC) - LOG_SPAN
        self.step = LOG_SPAN / max(1, events)
        self.head = chain.Head(0, GENESIS_HASH)
        weights = [weight for *_, weight in MIX]
        self.kinds = rng.choices([mix[:3] for mix in MIX], weights=weights, k=1024)

    def content(self, seq: int) -> tuple[list[Any], list[str]]:
        rng = self.rng
        operation, kind, outcome = self.kinds[seq % len(self.kinds)]
        concerned = sorted(set(rng.choices(self.children, k=rng.choice((1, 1, 2, 3)))))
        served = outcome is Outcome.SERVED
        council = COUNCILS[seq % len(COUNCILS)]
        occurred_at = self.start + self.step * seq
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
            "record_type": RECORD_TYPES[seq % len(RECORD_TYPES)] if served else None,
            "record_id": rng.choice(self.records) if served else None,
            "record_owner": FORCES[seq % len(FORCES)] if served else None,
            "fields": FIELDS[seq % len(FIELDS)] if served else "[]",
            "child_ids": json.dumps(concerned, separators=(",", ":")) if served else "[]",
            "request_id": f"req-{seq:012d}",
            "trace_id": f"{seq:032x}",
            "agreement_version": "sha256:0000000000000000",
            "detail": None,
        }
        return [values[name] for name in chain.CONTENT_COLUMNS], concerned if served else []

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[str, int]]]]:
        prev = self.head.last_hash
        for first in range(1, self.events + 1, CHUNK):
            rows: list[tuple[Any, ...]] = []
            child_rows: list[tuple[str, int]] = []
            for seq in range(first, min(first + CHUNK, self.events + 1)):
                content, concerned = self.content(seq)
                digest = chain.event_hash(prev, content)
                rows.append((seq, *content, prev, digest))
                child_rows.extend((child, seq) for child in concerned)
                prev = digest
            self.head = chain.Head(rows[-1][0], prev)
            yield rows, child_rows


@contextlib.asynccontextmanager
async def _scratch_database(url: str) -> AsyncIterator[str]:
    if not url.startswith("postgresql"):
        msg = "bench-audit needs a PostgreSQL server (COPY, and figures that mean something)"
        raise ValueError(msg)
    name = f"hub_audit_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


_SECONDARY_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid IN ('audit_event'::regclass, 'audit_event_child'::regclass)
  AND contype IN ('p', 'u') AND conname <> 'pk_audit_event'
"""
_SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename IN ('audit_event', 'audit_event_child')
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


async def load(url: str, *, events: int, children: list[str], seed: int) -> tuple[float, float]:
    """COPY the synthetic log in; return (load seconds, index rebuild and vacuum seconds)."""
    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as wrapper:
            # asyncpg itself, for COPY: outside SQLAlchemy's transaction each statement commits
            # alone, and VACUUM may run.
            connection: Any = (await wrapper.get_raw_connection()).driver_connection
            rebuild = await _without_secondary_indexes(connection)
            started = time.perf_counter()
            await _copy_in(connection, events=events, children=children, seed=seed)
            loaded = time.perf_counter()
            await connection.execute("SET maintenance_work_mem = '1GB'")
            for statement in rebuild:
                await connection.execute(statement)
            # Vacuum sets the visibility map: index-only scans (the child index's count) need it.
            await connection.execute("VACUUM ANALYZE audit_event, audit_event_child")
            return loaded - started, time.perf_counter() - loaded
    finally:
        await engine.dispose()


async def _copy_in(connection: Any, *, events: int, children: list[str], seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable
    synthetic = _Synthetic(events=events, children=children, rng=rng)
    for rows, child_rows in synthetic.chunks():
        await connection.copy_records_to_table("audit_event", records=rows, columns=COLUMNS)
        await connection.copy_records_to_table(
            "audit_event_child", records=child_rows, columns=("child_id", "seq")
        )
    head = synthetic.head
    await connection.execute(
        "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1",
        head.last_seq,
        head.last_hash,
    )


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
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable
    pool = [_uuid(rng) for _ in range(children)]
    async with _scratch_database(database_url) as url:
        await upgrade(url)
        load_seconds, index_seconds = await load(url, events=events, children=pool, seed=seed)
        db = Database(url)
        try:
            sample = rng.sample(pool, min(samples, len(pool)))
            history, found = await _history(db, sample)
            appended = await _appends(db, pool, appends)
            verified = await _verify(db)
        finally:
            await db.dispose()
    return AuditBenchReport(
        events=events,
        children=children,
        load_seconds=load_seconds,
        index_seconds=index_seconds,
        history_seconds=history,
        children_with_history=found,
        append_seconds=appended,
        verify=verified,
    )
