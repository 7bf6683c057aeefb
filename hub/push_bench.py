"""`safeguarding-hub bench-pushes`: pushes side by side, in one run, taking turns.

Each hub under test is a real `safeguarding-hub serve` process on a scratch database of its own:
this code with 1 worker and (with `--workers 1,2`) with 2; and, given `--baseline DIR` (a source
tree of another commit, e.g. `git archive 9ac7754 | tar -x -C DIR`), that code with 1 worker,
migrated by its own migrations. The hubs take turns in rounds, in a rotating order, so that the
machine's drift (two cores shared with others) falls on all of them; each round's rates give
the ratios, and the median ratio and its spread over the rounds are printed, not one run's.

Single pushes are `reportIncident` at `--concurrency` in flight. Batches are `reportIncidents`
of `--batch` records (this code only; a baseline without it is skipped for them), in rounds of
their own after the single pushes' rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import hub
from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.bench import (
    FORCE,
    PUSH,
    BenchFailed,
    Figures,
    _drive,
    _failure,
    _free_port,
    _incident,
    _wait_ready,
    all_running,
    analysed,
    bearer,
    hub_environment,
    migrated,
    scratch_database,
    scratch_directory,
)
from hub.bench_read import CpuSeconds, cpu_snapshot
from hub.settings import Settings

PUSH_MANY = """mutation Push($input: [ReportIncidentInput!]!) {
  reportIncidents(input: $input) { id } }"""
THIS_CODE = Path(hub.__file__).resolve().parents[1]


@dataclasses.dataclass
class LockWaits:
    """Which statements its database's backends waited on a lock in, sampled while its single
    pushes ran (`--lock-waits`): the statement's first words, and backends waiting in it summed
    over the samples. A push that waits is one of those in flight doing nothing else."""

    samples: int = 0
    waiting: Counter[str] = dataclasses.field(default_factory=Counter)

    def line(self, concurrency: int) -> str:
        average = sum(self.waiting.values()) / self.samples
        each = ", ".join(
            f"{n / self.samples:.1f} in {statement!r}"
            for statement, n in self.waiting.most_common(3)
        )
        return (
            f"lock waits: {average:.1f} of {concurrency} pushes in flight waiting, on average "
            f"over {self.samples} samples{': ' if each else ''}{each} "
            "(the samples' queries load the machine too: take ratios from a run without them)"
        )


@dataclasses.dataclass
class Hub:
    """One hub under test: its name, where its code is, and (once started) its address."""

    name: str
    source: Path
    workers: int
    batches: bool = True  # whether it has `reportIncidents` (a baseline may not)
    base: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    pushes: list[float] = dataclasses.field(default_factory=list)  # pushes/s per round
    records: list[float] = dataclasses.field(default_factory=list)  # batch records/s per round
    latencies: list[float] = dataclasses.field(default_factory=list)
    pid: int = 0  # its `serve` process (with N workers, their supervisor)
    database: str | None = None  # its scratch database's name
    # CPU seconds its single pushes took (hub, database backends, this bench), and how many.
    cpu: CpuSeconds = dataclasses.field(default_factory=CpuSeconds)
    counted: int = 0
    waits: LockWaits = dataclasses.field(default_factory=LockWaits)


# Backends of one database waiting for a lock, by the statement they wait in.
_WAITING = sa.text(
    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS statement, count(*) AS n "
    "FROM pg_stat_activity WHERE datname = :database AND wait_event_type = 'Lock' GROUP BY 1"
)


@contextlib.asynccontextmanager
async def _sampling(engine: AsyncEngine | None, h: Hub) -> AsyncIterator[None]:
    """Sample `h`'s database's lock waits every 10 ms while the block runs (None: don't)."""
    if engine is None:
        yield
        return

    async def sample() -> None:
        async with engine.connect() as connection:
            while True:
                found = await connection.execute(_WAITING, {"database": h.database})
                h.waits.samples += 1
                for statement, n in found:
                    h.waits.waiting[statement] += n
                await asyncio.sleep(0.01)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclasses.dataclass
class PushFigures:
    hubs: list[Hub]
    concurrency: int
    batch: int
    rounds: int

    def lines(self) -> list[str]:
        lines = [
            (
                f"{self.rounds} rounds, hubs taking turns in a rotating order; "
                f"single pushes at {self.concurrency} in flight, batches of {self.batch}"
            )
        ]
        for h in self.hubs:
            p50 = statistics.median(h.latencies) * 1000
            rate = statistics.median(h.pushes)
            line = f"{h.name:<12} pushes  median {rate:8.1f}/s  p50 {p50:6.1f} ms"
            if h.records:
                line += f"   batch records median {statistics.median(h.records):8.1f}/s"
            lines += [line, f"{'':<12} {h.cpu.each(h.counted, 'push')}"]
            if h.waits.samples:
                lines.append(f"{'':<12} {h.waits.line(self.concurrency)}")
        lines += self._ratios("pushes", lambda h: h.pushes)
        lines += self._ratios("batch records", lambda h: h.records)
        return lines

    def _ratios(self, what: str, rates: Any) -> list[str]:
        found = [h for h in self.hubs if rates(h)]
        lines = []
        for i, over in enumerate(found):
            for under in found[i + 1 :]:
                ratios = [b / a for a, b in zip(rates(over), rates(under), strict=True)]
                lines.append(f"{what}: {under.name} / {over.name} {_spread(ratios)}")
        return lines


def _has_batches(source: Path) -> bool:
    """Whether a source tree serves `reportIncidents`, so that its batches go side by side."""
    schema = source / "hub" / "graphql" / "schema.py"
    return schema.is_file() and "async def report_incidents(" in schema.read_text()


def _spread(ratios: list[float]) -> str:
    ordered = sorted(ratios)
    return (
        f"median {statistics.median(ordered):.2f}x "
        f"(rounds from {ordered[0]:.2f}x to {ordered[-1]:.2f}x)"
    )


@contextlib.asynccontextmanager
async def _serving(h: Hub, database_url: str) -> AsyncIterator[Hub]:
    async with scratch_database(database_url, prefix="hub_bench_push") as url:
        with scratch_directory("hub-bench-") as data_dir:
            port = _free_port()
            h.base = f"http://127.0.0.1:{port}"
            env = hub_environment(url, data_dir, h.base)
            # Its own code first: the baseline's tree, or this one's.
            env["PYTHONPATH"] = os.pathsep.join([str(h.source), os.environ.get("PYTHONPATH", "")])
            hub_command = [sys.executable, "-m", "hub"]
            status = await migrated(h.source, env)
            if status != 0:
                msg = f"{h.name}: migrate failed (exit {status})"
                raise BenchFailed(msg)
            settings = Settings(database_url=url, data_dir=data_dir, issuer=h.base)
            keys = KeySet.for_settings(settings)
            h.headers = bearer(settings, keys, Role.POLICE_OFFICER, FORCE, client="bench")
            serve = [*hub_command, "serve", "--port", str(port), "--workers", str(h.workers)]
            process = subprocess.Popen(serve, env=env, cwd=h.source)  # noqa: S603, ASYNC220
            h.pid, h.database = process.pid, make_url(url).database
            try:
                await _wait_ready(h.base, process)
                yield h
            finally:
                process.terminate()
                process.wait(timeout=30)


async def _singles(h: Hub, count: int, concurrency: int, run: str) -> Figures:
    async with bench_http.Client(timeout=60) as client:

        async def push(number: int) -> str | None:
            body = {"query": PUSH, "variables": {"input": _incident(number, run)}}
            response = await client.post(f"{h.base}/graphql", json=body, headers=h.headers)
            return _failure(response, field="reportIncident")

        return (await _drive(f"{h.name} pushes", count, concurrency, push)).checked()


async def _batches(h: Hub, count: int, size: int, concurrency: int, run: str) -> Figures:
    async with bench_http.Client(timeout=120) as client:

        async def push(number: int) -> str | None:
            batch = [_incident(number * size + k, run) for k in range(size)]
            body = {"query": PUSH_MANY, "variables": {"input": batch}}
            response = await client.post(f"{h.base}/graphql", json=body, headers=h.headers)
            failure = _failure(response, field="reportIncidents")
            stored = (response.json().get("data") or {}).get("reportIncidents") or []
            if failure is None and len(stored) != size:
                failure = f"{len(stored)} records stored where {size} were sent"
            return failure

        return (await _drive(f"{h.name} batches", count, concurrency, push)).checked()


async def run(
    *,
    database_url: str,
    pushes: int,
    concurrency: int,
    batch: int,
    batches: int,
    rounds: int,
    workers: tuple[int, ...],
    baseline: Path | None,
    lock_waits: bool = False,
) -> PushFigures:
    hubs = [Hub(f"workers={n}", THIS_CODE, n) for n in workers]
    if baseline is not None:
        hubs.insert(0, Hub("baseline", baseline, 1, batches=_has_batches(baseline)))
    async with contextlib.AsyncExitStack() as stack:
        sampler = None
        if lock_waits:
            admin = make_url(database_url).set(database="postgres")
            sampler = create_async_engine(admin, isolation_level="AUTOCOMMIT")
            stack.push_async_callback(sampler.dispose)
        await stack.enter_async_context(all_running([_serving(h, database_url) for h in hubs]))
        run_id = uuid.uuid4().hex[:6].upper()
        for h in hubs:  # warm-up, not counted
            await _singles(h, min(20, pushes), concurrency, f"W{run_id}")
        for turn in range(rounds):
            order = hubs[turn % len(hubs) :] + hubs[: turn % len(hubs)]
            for h in order:
                await analysed(database_url, h.database)  # as autovacuum would
                before = cpu_snapshot(h.pid, h.database)
                async with _sampling(sampler, h):
                    singles = await _singles(h, pushes, concurrency, f"S{turn}{run_id}")
                h.cpu += before.until(cpu_snapshot(h.pid, h.database))
                h.counted += singles.count
                h.pushes.append(singles.count / singles.seconds)
                h.latencies += singles.latencies
        # The batches after every round of single pushes, not between them: single pushes
        # that follow batches cost their database more, even analysed (`analysed`), and only
        # this code's rounds would pay it, a baseline without batches never.
        for turn in range(rounds if batches else 0):
            for h in (h for h in hubs if h.batches):
                many = await _batches(h, batches, batch, 2, f"B{turn}{run_id}")
                h.records.append(many.count * batch / many.seconds)
    return PushFigures(hubs=hubs, concurrency=concurrency, batch=batch, rounds=rounds)
