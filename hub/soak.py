"""`safeguarding-hub bench-soak`: mixed load for a bounded time, watched for slow decay.

Pushes, council queries and live subscriptions run together against a real `serve` process
for `--seconds`, cut into time slices. Each slice reports its requests, p99 latency,
subscription deliveries and the server's resident memory at its end; the summary gives the
memory growth and the p99 drift from the first slice to the last, the figures a leak or a
growing table shows in. As with every bench, a run with any failure prints no figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import connect

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.bench import (
    COUNCIL,
    FORCE,
    PUSH,
    QUERY,
    BenchFailed,
    Figures,
    _failure,
    _incident,
    bearer,
    scratch_database,
    serving_hubs,
)
from hub.migrate import upgrade
from hub.settings import Settings

SUBSCRIBE = "subscription { recordChanges { cursor change } }"
_MIB = 1024 * 1024


@dataclasses.dataclass
class Slice:
    latencies: list[float] = dataclasses.field(default_factory=list)
    deliveries: int = 0
    rss_bytes: int | None = None

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclasses.dataclass
class SoakFigures:
    seconds: float
    slices: list[Slice]
    autovacuum: str | None = None  # the server's setting (PostgreSQL)
    vacuum_every: float = 0
    vacuums: int = 0

    def lines(self) -> list[str]:
        width = self.seconds / len(self.slices)
        lines = []
        if self.autovacuum is not None:
            by_bench = (
                f"; VACUUM ANALYZE every {self.vacuum_every:g} s by the bench ({self.vacuums} runs)"
                if self.vacuum_every
                else ""
            )
            lines.append(f"the server's autovacuum: {self.autovacuum}{by_bench}")
            if self.autovacuum != "on" and not self.vacuum_every:
                lines.append(
                    "  no table is analysed or vacuumed: plans made while tables were small "
                    "are kept, and dead rows stay (--vacuum-every does what autovacuum would)"
                )
        lines += [
            f"slice {number:>2} {number * width - width:6.1f}-{number * width:6.1f}s  "
            f"requests {len(part.latencies):>6}  p99 {part.p99 * 1000:7.1f} ms  "
            f"deliveries {part.deliveries:>5}  rss {_mib(part.rss_bytes)}"
            for number, part in enumerate(self.slices, start=1)
        ]
        first, last = self.slices[0], self.slices[-1]
        growth = (
            f"{(last.rss_bytes - first.rss_bytes) / _MIB:+.1f} MiB"
            if last.rss_bytes is not None and first.rss_bytes is not None
            else "n/a (no /proc)"
        )
        lines.append(
            f"memory growth {growth} (end of first slice to end of last); "
            f"p99 drift x{last.p99 / first.p99:.2f} (last slice / first)"
        )
        return lines


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / _MIB:7.1f} MiB"


def _rss(pid: int) -> int | None:
    """The process's resident memory (Linux's /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


@dataclasses.dataclass
class _Load:
    """What the load's tasks share: where they are in time, and what went wrong."""

    started: float
    seconds: float
    slices: list[Slice]
    failures: list[str] = dataclasses.field(default_factory=list)
    count: int = 0
    vacuums: int = 0  # the bench's own VACUUM ANALYZE runs (`--vacuum-every`)

    def current(self) -> Slice:
        elapsed = time.perf_counter() - self.started
        index = int(elapsed / self.seconds * len(self.slices))
        return self.slices[min(index, len(self.slices) - 1)]

    def running(self) -> bool:
        return time.perf_counter() - self.started < self.seconds


async def run(
    *,
    database_url: str,
    seconds: float,
    slices: int,
    concurrency: int,
    subscribers: int,
    vacuum_every: float = 0,
) -> SoakFigures:
    """`vacuum_every`: seconds between the bench's own `VACUUM ANALYZE` of the database, what a
    server's autovacuum does (0: none; PostgreSQL only)."""
    postgres = database_url.startswith("postgresql")
    if vacuum_every and not postgres:
        raise BenchFailed("--vacuum-every vacuums a PostgreSQL database: give one")
    autovacuum = None
    async with scratch_database(database_url, prefix="hub_soak") as url:
        await upgrade(url)
        if postgres:
            autovacuum = await _autovacuum(url)
        # Deliveries come from the database's notifications (PostgreSQL) or this poll.
        polled = {"HUB_CHANGE_POLL_SECONDS": "0.5"}
        async with serving_hubs(url, prefix="hub-soak-", hub_env=polled) as hub:
            load = _Load(time.perf_counter(), seconds, [Slice() for _ in range(slices)])
            await asyncio.gather(
                _soak(hub.base, hub.settings, hub.keys, hub.pid, load, concurrency, subscribers),
                *([_vacuuming(url, vacuum_every, load)] if vacuum_every else []),
            )
    total = list(itertools.chain.from_iterable(part.latencies for part in load.slices))
    first = load.failures[0] if load.failures else None
    Figures("requests", load.count, seconds, total, len(load.failures), first).checked()
    for number, part in enumerate(load.slices, start=1):
        if not part.latencies:
            msg = f"slice {number} completed no request: the hub stalled"
            raise BenchFailed(msg)
    return SoakFigures(seconds, load.slices, autovacuum, vacuum_every, load.vacuums)


async def _autovacuum(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(sa.text("SHOW autovacuum")))
    finally:
        await engine.dispose()


async def _vacuuming(url: str, every: float, load: _Load) -> None:
    """`VACUUM ANALYZE` every `every` seconds while the load runs: where the server's
    autovacuum is off (this repository's CI machine), tables are never analysed, so plans made
    while they were small are kept as they grow, and a soak measures that, not the hub."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")  # VACUUM: no transaction
    try:
        while True:
            left = load.seconds - (time.perf_counter() - load.started)
            if left <= every:
                return
            await asyncio.sleep(every)
            async with engine.connect() as connection:
                await connection.exec_driver_sql("VACUUM ANALYZE")
            load.vacuums += 1
    finally:
        await engine.dispose()


async def _soak(  # noqa: PLR0917 - one run's parts, passed once
    base: str,
    settings: Settings,
    keys: KeySet,
    pid: int,
    load: _Load,
    concurrency: int,
    subscribers: int,
) -> None:
    police = bearer(settings, keys, Role.POLICE_OFFICER, FORCE, client="soak")
    council = bearer(settings, keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client="soak")
    numbers = itertools.count()
    run_id = f"SOAK{os.getpid()}"
    url = f"{base}/graphql"
    async with bench_http.Client(timeout=60) as client:

        async def request(number: int) -> str | None:
            if number % 2 == 0:  # half pushes, half a council's page of incidents
                body = {"query": PUSH, "variables": {"input": _incident(number, run_id)}}
                response = await client.post(url, json=body, headers=police)
                return _failure(response, field="reportIncident")
            body = {"query": QUERY, "variables": {"first": 10}}
            response = await client.post(url, json=body, headers=council)
            return _failure(response, field="incidents")

        async def worker() -> None:
            while load.running():
                started = time.perf_counter()
                failure = await request(next(numbers))
                load.current().latencies.append(time.perf_counter() - started)
                load.count += 1
                if failure is not None:
                    load.failures.append(failure)

        listening = [
            asyncio.create_task(_subscriber(base, council, load)) for _ in range(subscribers)
        ]
        try:
            await asyncio.gather(_sampler(pid, load), *(worker() for _ in range(concurrency)))
        finally:
            for task in listening:
                task.cancel()
            await asyncio.gather(*listening, return_exceptions=True)


async def _sampler(pid: int, load: _Load) -> None:
    """The server's memory at the end of each slice."""
    width = load.seconds / len(load.slices)
    for number, part in enumerate(load.slices, start=1):
        wait = load.started + number * width - time.perf_counter()
        await asyncio.sleep(max(wait, 0))
        part.rss_bytes = _rss(pid)


async def _subscriber(base: str, headers: dict[str, str], load: _Load) -> None:
    url = base.replace("http://", "ws://") + "/graphql"
    try:
        async with connect(
            url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await ws.recv()
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            )
            async for raw in ws:
                message: dict[str, Any] = json.loads(raw)
                if message.get("type") != "next" or "errors" in message.get("payload", {}):
                    load.failures.append(f"subscription: {message.get('type')}")
                    return
                load.current().deliveries += 1
    except OSError as error:
        load.failures.append(f"subscription: {type(error).__name__}")
