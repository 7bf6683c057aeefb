"""`safeguarding-hub bench-read`: the council's page of incidents, today's code against this code.

Not a test: it measures. Two hub processes run at once, one from a tree of the baseline commit
(`git archive`, run with that tree as its working directory so `python -m hub` imports it) and
one from this code, each on its own scratch database, migrated by its own code and seeded with
the same pushes over HTTP. The two are then driven in turns, in blocks, at 8 and at 1 in flight,
so that the machine's drift falls on both alike; ratios are taken turn by turn and their spread
printed beside them. Any error or short page is a `BenchFailed`, never a rate.

Each hub serves three series: the issue's page, the same list with its ids only, and the floor
(`{ viewer { role } }`). The ids show how much of a page is the list read itself (its
statement, its audit event, its session) and how much its records' fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

import hub
from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.bench import (
    COUNCIL,
    FORCE,
    PUSH,
    BenchFailed,
    _failure,
    _free_port,
    _wait_ready,
    all_running,
    analysed,
    hub_environment,
    migrated,
    scratch_database,
    scratch_directory,
    synthetic_child,
    synthetic_incident,
)
from hub.demo import EXAMPLE_PURPOSE
from hub.settings import Settings

# Today's code: main before issue 16 (the figures in the issue were taken at e99a132).
BASELINE = "9ac7754"

# The issue's page, word for word; the filter only makes each request's variables distinct.
PAGE = """query Page($first: Int!, $until: DateTime!) {
  incidents(first: $first, filter: {occurredTo: $until}) { edges { node {
    id policeReference type occurredAt recordedAt sharedAt dashRisk summary
    force { name } locationCouncil { name }
    children { present victim child { id givenName familyName dateOfBirth } } } } } }"""
FLOOR = "{ viewer { role } }"
# The same list, its ids only: what a list read costs before any of its records' fields (the
# statement, the audit's event of its records, the session), between the floor and the page.
IDS = """query Ids($first: Int!, $until: DateTime!) {
  incidents(first: $first, filter: {occurredTo: $until}) { edges { node { id } } } }"""
# A council's page of missing episodes: each episode's times, grade and status, its force, the
# council where the child was last seen, and the child.
MISSING_PAGE = """query Missing($first: Int!, $until: DateTime!) {
  missingEpisodes(first: $first, filter: {reportedTo: $until}) { edges { node {
    id policeReference reportedMissingAt recordedAt sharedAt riskGrade missingFrom status
    force { name } lastSeenCouncil { name } child { id givenName familyName dateOfBirth } } } } }"""
MISSING_IDS = """query MissingIds($first: Int!, $until: DateTime!) {
  missingEpisodes(first: $first, filter: {reportedTo: $until}) { edges { node { id } } } }"""
RECORD_MISSING = """mutation Missing($input: RecordMissingEpisodeInput!) {
  recordMissingEpisode(input: $input) { id } }"""
QUERIES = ("page", "ids", "floor")  # each hub's timed series, in the order each turn runs them
PUSHED_FROM = 100_000  # a counted push's police references: past any seeded one


def _incident(number: int, now: dt.datetime) -> dict[str, Any]:
    reference = f"READ-{number:05d}"
    children = [(f"{reference}-P{k}", {"present": k == 0, "victim": k == 1}) for k in range(2)]
    return synthetic_incident(reference, now - dt.timedelta(hours=2 + number), children)


def _missing_episode(number: int, now: dt.datetime) -> dict[str, Any]:
    reported = now - dt.timedelta(hours=2 + number)
    return {
        "policeReference": f"READ-M-{number:05d}",
        "child": synthetic_child(f"READ-M-{number:05d}-P", born="2012-01-01"),
        "reportedMissingAt": reported.isoformat(),
        "recordedAt": (reported + dt.timedelta(minutes=20)).isoformat(),
        "riskGrade": "MEDIUM",
        "lastSeenCouncil": COUNCIL,
        "missingFrom": "HOME",
    }


@dataclasses.dataclass(frozen=True)
class Listed:
    """A council's list the timed series page through: its root field, its page and its ids
    (`PAGE`, `IDS` for incidents), and how a force pushes one of its records to seed it."""

    root: str
    page: str
    ids: str
    push: str
    pushed: str  # the push's root field
    record: Callable[[int, dt.datetime], dict[str, Any]]
    described: str  # what a page holds, for the figures' heading

    def heading(self, page_size: int) -> str:
        return f"council page of {page_size} {self.described}"


LISTS = {
    "incidents": Listed(
        "incidents", PAGE, IDS, PUSH, "reportIncident", _incident, "incidents with children"
    ),
    "missing-episodes": Listed(
        "missingEpisodes",
        MISSING_PAGE,
        MISSING_IDS,
        RECORD_MISSING,
        "recordMissingEpisode",
        _missing_episode,
        "missing episodes with their child",
    ),
}


@dataclasses.dataclass(frozen=True)
class CpuSeconds:
    """CPU time (user and system) taken while a block ran, by whom: where a request's cost goes,
    and what is left to cut. Read from /proc, so Linux only; elsewhere every figure is 0."""

    hub: float = 0.0
    database: float = 0.0  # the server processes of the hub's own scratch database (PostgreSQL)
    client: float = 0.0  # this bench process, which sends the requests and reads the answers
    # Of `hub`: its threads beside each process's main one (the event loop's). On SQLite, the
    # connections' threads (aiosqlite's), which run the statements and take the GIL from the
    # event loop for their own Python; on PostgreSQL nearly nothing. A thread that ended during
    # the block took its time out of /proc with it: then this is less than they spent.
    threads: float = 0.0

    def each(self, count: int, what: str, *, hub: str = "hub") -> str:
        """The time per `what` (a request, a push) of `count`, in milliseconds, by whom
        (`hub`: what the hub's share is called, "hubs" for several processes)."""
        ms = 1000 / count
        beside = (
            f" ({self.threads * ms:.2f} ms in threads beside its event loop)"
            if self.threads * ms >= 0.01  # noqa: PLR2004 - what the figures print
            else ""
        )
        return (
            f"cpu/{what}: {hub} {self.hub * ms:.2f} ms{beside}, "
            f"database {self.database * ms:.2f} ms, bench client {self.client * ms:.2f} ms"
        )

    def __add__(self, other: CpuSeconds) -> CpuSeconds:
        return CpuSeconds(
            self.hub + other.hub,
            self.database + other.database,
            self.client + other.client,
            self.threads + other.threads,
        )


@dataclasses.dataclass
class Series:
    """One (hub, query, in flight) series: its latencies and the time its blocks took."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    block_rates: list[float] = dataclasses.field(default_factory=list)
    block_medians: list[float] = dataclasses.field(default_factory=list)  # each block's p50
    # CPU seconds its blocks took: the hub process, its database's server processes, the bench.
    cpu: CpuSeconds = dataclasses.field(default_factory=CpuSeconds)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def cpu_per_request(self) -> str:
        return self.cpu.each(len(self.latencies), "request")

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU times read at one moment: the hub's, each database backend's by pid, the bench's."""

    hub: float
    backends: dict[str, float]
    client: float
    threads: float = 0.0  # of `hub`: its threads beside each process's main one

    def until(self, later: CpuSnapshot) -> CpuSeconds:
        """What was spent from this snapshot to `later`. A backend that exited in between
        (a pool's overflow connection) is left out rather than counted negative; one that
        started in between counts whole."""
        database = sum(spent - self.backends.get(pid, 0.0) for pid, spent in later.backends.items())
        return CpuSeconds(
            later.hub - self.hub,
            database,
            later.client - self.client,
            max(later.threads - self.threads, 0.0),  # a thread that ended took its time with it
        )


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int | str) -> list[str] | None:
    """A process's /proc stat fields after its command (state, ppid, ...); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # the command, in brackets, may hold spaces


def _process_cpu(pid: int | str) -> float:
    """utime + stime of a process, in seconds; 0 if it is gone or /proc is not there."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else _spent(fields)


def _spent(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _tree(pid: int) -> list[str]:
    """A process and its live children: `serve --workers N` serves from N children of a
    supervising process."""
    found = [str(pid)]
    if Path("/proc").is_dir():
        found += [
            entry.name
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit()
            and (fields := _stat_fields(entry.name))
            and fields[1] == str(pid)
        ]
    return found


def _tree_cpu(pid: int) -> float:
    """A process's CPU and its live children's (`_tree`)."""
    return sum(_process_cpu(each) for each in _tree(pid))


def _threads_cpu(processes: Iterable[int | str]) -> float:
    """The CPU of the threads of `processes` (a hub's `_tree`, its processes) other than each
    one's main thread, whose id is the process's."""
    spent = 0.0
    for each in map(str, processes):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{each}/task").iterdir():
                if task.name != each and (fields := _stat_fields(f"{each}/task/{task.name}")):
                    spent += _spent(fields)
    return spent


def _backends_cpu(database: str | None) -> dict[str, float]:
    """The CPU of each PostgreSQL backend serving `database` (their title names it), by pid."""
    if database is None or not Path("/proc").is_dir():
        return {}
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and f" {database} ".encode() in title:
            found[entry.name] = _process_cpu(entry.name)
    return found


@dataclasses.dataclass
class Hub:
    """A running hub process and what a client needs to call it."""

    name: str
    base: str
    council: dict[str, str]
    police: dict[str, str]
    pid: int = 0
    database: str | None = None  # the PostgreSQL database's name; None on SQLite

    def cpu(self) -> CpuSnapshot:
        return cpu_snapshot(self.pid, self.database)


def cpu_snapshot(pid: int, database: str | None) -> CpuSnapshot:
    """The CPU spent so far by a hub (its process and any workers), its database's backends
    and this bench process."""
    processes = _tree(pid)  # one walk of /proc for both figures
    return CpuSnapshot(
        sum(_process_cpu(each) for each in processes),
        _backends_cpu(database),
        time.process_time(),
        _threads_cpu(processes),
    )


def _series_key(hub_name: str, query: str, flight: int) -> tuple[str, str, int]:
    return (hub_name, query, flight)


@dataclasses.dataclass
class ReadFigures:
    baseline: str
    backend: str
    page_size: int
    turns: int
    block: int
    series: dict[tuple[str, str, int], Series]
    # Per turn, new/baseline page rate, by in-flight count: the spread of the headline ratio.
    turn_ratios: dict[int, list[float]]
    listed: Listed
    new_settings: dict[str, str] = dataclasses.field(default_factory=dict)

    def lines(self) -> list[str]:
        settings = " ".join(
            f"{key}={'***' if _SECRET.search(key) else value}"
            for key, value in sorted(self.new_settings.items())
        )
        out = [
            (
                f"{self.listed.heading(self.page_size)}, the same list's ids only, and {FLOOR}, "
                f"{self.backend}; baseline {self.baseline} vs this code"
                f"{' run with ' + settings if settings else ''}, {self.turns} turns "
                f"of {self.block} requests per series, taking turns"
            )
        ]
        for (hub_name, query, flight), series in sorted(self.series.items()):
            out.append(
                f"{hub_name:<8} {query:<5} {flight} in flight  {series.rate:8.1f}/s  "
                f"p50 {series.percentile(0.5) * 1000:7.1f} ms  "
                f"p99 {series.percentile(0.99) * 1000:7.1f} ms  n {len(series.latencies)}  "
                f"{series.cpu_per_request()}"
            )
        for flight, ratios in sorted(self.turn_ratios.items(), reverse=True):
            new = self.series[_series_key("new", "page", flight)]
            old = self.series[_series_key("baseline", "page", flight)]
            out.append(
                f"page rate new/baseline at {flight} in flight: {new.rate / old.rate:.2f}x "
                f"(by turn: {_spread(ratios)})"
            )
        # The issue's targets are its incidents page's (its latency on PostgreSQL).
        issues_page = self.listed is LISTS["incidents"]
        for flight in sorted(self.turn_ratios, reverse=True):
            new = self.series[_series_key("new", "page", flight)]
            old = self.series[_series_key("baseline", "page", flight)]
            wanted = issues_page and flight == 1 and self.backend.startswith("postgresql")
            out.append(
                f"page p50 at {flight} in flight: baseline {old.percentile(0.5) * 1000:.1f} ms, "
                f"new {new.percentile(0.5) * 1000:.1f} ms (new by turn: "
                f"{_spread(new.block_medians, lambda s: f'{s * 1000:.1f} ms')})"
                f"{' (target under 5 ms)' if wanted else ''}"
            )
        target = " (target 0.30)" if issues_page else ""
        for flight in sorted(self.turn_ratios, reverse=True):
            for hub_name in ("baseline", "new"):
                page = self.series[_series_key(hub_name, "page", flight)]
                floor = self.series[_series_key(hub_name, "floor", flight)]
                ids = self.series[_series_key(hub_name, "ids", flight)]
                out.append(
                    f"page-to-floor ({hub_name}) at {flight} in flight: "
                    f"{page.rate / floor.rate:.3f}{target}; "
                    f"ids-to-floor {ids.rate / floor.rate:.3f}, "
                    f"page-to-ids {page.rate / ids.rate:.3f}"
                )
        return out


def _spread(values: list[float], shown: Callable[[float], str] = "{:.2f}x".format) -> str:
    """How far a figure moved from turn to turn: its median and middle half."""
    if len(values) < 4:  # noqa: PLR2004 - fewer give no quartiles
        return f"min {shown(min(values))}, max {shown(max(values))}"
    low, middle, high = statistics.quantiles(values, n=4)
    return f"median {shown(middle)}, middle half {shown(low)} to {shown(high)}"


@contextlib.contextmanager
def baseline_tree(commit: str) -> Iterator[Path]:
    """The baseline commit's files in a temporary directory (no checkout is touched)."""
    root = Path(hub.__file__).resolve().parents[1]
    with scratch_directory("hub-baseline-") as directory:
        archive = subprocess.run(  # noqa: S603 - git, with a commit named by our own option
            ["git", "-C", str(root), "archive", "--format=tar", commit],  # noqa: S607
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            msg = (
                f"cannot run the baseline: `git archive {commit}` failed in {root} "
                "(the hub must run from a git checkout holding that commit)"
            )
            raise BenchFailed(msg)
        subprocess.run(  # noqa: S603 - tar, extracting what git gave us
            ["tar", "-x", "-C", str(directory)],  # noqa: S607
            input=archive.stdout,
            check=True,
        )
        yield directory


# A setting whose value the figures' heading names by its key only (`HUB_PSEUDONYM_KEY`).
_SECRET = re.compile(r"KEY|SECRET|PASSWORD|TOKEN")
# What the bench sets for each hub itself: a setting `--new-env` may not change.
BENCH_OWNED = frozenset(
    {"HUB_DATABASE_URL", "HUB_RATE_LIMITS", "HUB_DATA_DIR", "HUB_ISSUER", "HUB_MODE"}
)


def hub_settings(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs naming hub settings (`HUB_...`) for one hub of a side-by-side run:
    the same code with another setting, measured against itself. `BenchFailed` for anything
    else, and for the settings the bench gives every hub itself."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.startswith("HUB_") or key != key.upper():
            msg = f"--new-env takes KEY=VALUE with KEY a hub setting (HUB_...), not {key!r}"
            raise BenchFailed(msg)
        if key in BENCH_OWNED:
            msg = f"--new-env cannot set {key}: the bench sets it for each hub itself"
            raise BenchFailed(msg)
        found[key] = value
    return found


@contextlib.asynccontextmanager
async def running_hub(
    name: str,
    tree: Path,
    database_url: str,
    *,
    counted: Path | None = None,
    hub_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Hub]:
    """`python -m hub migrate` then `serve`, run in `tree`, on a scratch database of its own.

    With `counted`, the hub runs under callgrind (`Callgrind`), its counts written there.
    `hub_env` (`hub_settings`) goes in its environment beside the bench's own."""
    async with scratch_database(database_url, prefix=f"hub_read_{name}") as scratch:
        with scratch_directory(f"hub-read-{name}-") as data_dir:
            sqlite = f"sqlite+aiosqlite:///{data_dir / 'hub.db'}"
            url = scratch if scratch.startswith("postgresql") else sqlite
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            # Only the bench's settings and `hub_env`: none of the caller's own.
            inherited = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
            env = {**hub_environment(url, data_dir, base, inherited=inherited), **(hub_env or {})}
            if await migrated(tree, env) != 0:
                msg = f"the {name} hub could not migrate its scratch database"
                raise BenchFailed(msg)
            settings = Settings(database_url=url, data_dir=data_dir, issuer=base)
            keys = KeySet.for_settings(settings)  # written before the server starts: it loads them
            command = [sys.executable, "-m", "hub", "serve", "--port", str(port)]
            if counted is not None:
                command = [*Callgrind.command(counted), *command]
                env["PYTHONHASHSEED"] = "0"  # the same dicts' layouts, run after run
            process = subprocess.Popen(  # noqa: S603, ASYNC220 - our CLI
                command,
                cwd=tree,
                env=env,
                stderr=subprocess.DEVNULL if counted is not None else None,  # valgrind's banner
            )
            try:
                await _wait_ready(base, process, seconds=60 if counted is None else 600)
                yield Hub(
                    name=name,
                    base=base,
                    council=_headers(settings, keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL),
                    police=_headers(settings, keys, Role.POLICE_OFFICER, FORCE),
                    pid=process.pid,
                    database=make_url(url).database if url.startswith("postgresql") else None,
                )
            finally:
                process.terminate()
                process.wait(timeout=30)


def _headers(settings: Settings, keys: KeySet, role: Role, org: str) -> dict[str, str]:
    token = issue_access_token(
        settings=settings,
        keys=keys,
        client_id=f"bench-{role.value}",
        organisation_code=org,
        role=role,
        user="bench-user",
        purpose=EXAMPLE_PURPOSE[role],
    )
    return {"Authorization": f"Bearer {token}"}


async def _seed(
    client: bench_http.Client, target: Hub, records: int, now: dt.datetime, listed: Listed
) -> None:
    for number in range(records):
        body = {"query": listed.push, "variables": {"input": listed.record(number, now)}}
        response = await client.post(f"{target.base}/graphql", json=body, headers=target.police)
        failure = _failure(response, field=listed.pushed)
        if failure is not None:
            msg = f"seeding the {target.name} hub failed: {failure}"
            raise BenchFailed(msg)


class Driver:
    """Blocks of requests at a given number in flight, each request's variables its own."""

    def __init__(self, client: bench_http.Client, page_size: int, listed: Listed) -> None:
        self.client = client
        self.page_size = page_size
        self.listed = listed
        self.sent = 0
        self.until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    async def one(self, target: Hub, query: str) -> None:
        self.sent += 1
        if query == "push":
            await self._push(target)
            return
        if query == "floor":
            body: dict[str, Any] = {"query": FLOOR}
        else:
            # Distinct variables, the same page: nothing in front may collapse them.
            until = self.until + dt.timedelta(microseconds=self.sent)
            body = {
                "query": self.listed.ids if query == "ids" else self.listed.page,
                "variables": {"first": self.page_size, "until": until.isoformat()},
            }
        response = await self.client.post(
            f"{target.base}/graphql", json=body, headers=target.council
        )
        if query == "floor":
            failure = _failure(response, field="viewer")
        else:
            failure = _failure(response, field=self.listed.root, expected=self.page_size)
        if failure is not None:
            msg = f"the {target.name} hub's {query} request failed: {failure}"
            raise BenchFailed(msg)

    async def _push(self, target: Hub) -> None:
        """A new incident naming two new children, as a force pushes one (`reportIncident`)."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        incident = _incident(PUSHED_FROM + self.sent, now)
        incident["occurredAt"] = (now - dt.timedelta(hours=2)).isoformat()
        incident["recordedAt"] = (now - dt.timedelta(hours=1)).isoformat()
        body = {"query": PUSH, "variables": {"input": incident}}
        response = await self.client.post(
            f"{target.base}/graphql", json=body, headers=target.police
        )
        failure = _failure(response, field="reportIncident")
        if failure is not None:
            msg = f"the {target.name} hub's push failed: {failure}"
            raise BenchFailed(msg)

    async def block(self, target: Hub, query: str, count: int, flight: int) -> Series:
        series = Series()
        left = iter(range(count))

        async def worker() -> None:
            for _ in left:
                started = time.perf_counter()
                await self.one(target, query)
                series.latencies.append(time.perf_counter() - started)

        before = target.cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(flight)))
        series.seconds = time.perf_counter() - started
        series.cpu = before.until(target.cpu())
        series.block_rates.append(count / series.seconds)
        series.block_medians.append(statistics.median(series.latencies))
        return series


async def run_read(
    *,
    database_url: str,
    baseline: str = BASELINE,
    records: int = 40,
    page_size: int = 20,
    turns: int = 10,
    block: int = 100,
    flights: tuple[int, ...] = (8, 1),
    new_env: Sequence[str] = (),
    listed: Listed = LISTS["incidents"],
) -> ReadFigures:
    """Both hubs up at once, seeded alike, then driven in turns; figures, or BenchFailed.

    `new_env` (KEY=VALUE hub settings, `hub_settings`) go to this code's hub only: with
    `baseline` this very commit, the run measures a setting against the default, side by
    side. What a hub leaves running after a block (on PostgreSQL, the audit's indexing, half
    a second later) runs during the next block, whoever's it is: with both hubs indexing alike
    that falls on each in turn, but a setting that defers it (HUB_AUDIT_INDEX_DELAY_SECONDS)
    leaves the other hub's indexing falling into this one's blocks, and none of its own."""
    new_settings = hub_settings(new_env)
    here = Path(hub.__file__).parents[1]  # the package's own directory: already absolute
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with baseline_tree(baseline) as tree:
        async with (
            all_running(
                [
                    running_hub("baseline", tree, database_url),
                    running_hub("new", here, database_url, hub_env=new_settings),
                ]
            ) as (old, new),
            bench_http.Client(timeout=60) as client,
        ):
            for target in (old, new):
                await _seed(client, target, records, now, listed)
                await analysed(database_url, target.database)  # as autovacuum would
            driver = Driver(client, page_size, listed)
            series, ratios = await _turns(driver, (old, new), turns, block, flights)
    backend = database_url.split(":", maxsplit=1)[0]
    return ReadFigures(
        baseline, backend, page_size, turns, block, series, ratios, listed, new_settings
    )


async def _turns(
    driver: Driver, hubs: tuple[Hub, Hub], turns: int, block: int, flights: tuple[int, ...]
) -> tuple[dict[tuple[str, str, int], Series], dict[int, list[float]]]:
    series: dict[tuple[str, str, int], Series] = {}
    ratios: dict[int, list[float]] = {flight: [] for flight in flights}
    for flight in flights:
        for target in hubs:  # warm-up, not counted: connections, caches, the JIT of the ORM
            for query in QUERIES:
                await driver.block(target, query, min(block, 20), flight)
        for turn in range(turns):
            # Alternate who goes first, so neither always inherits the other's leftovers.
            order = hubs if turn % 2 == 0 else hubs[::-1]
            rates: dict[str, float] = {}
            for target in order:
                for query in QUERIES:
                    done = await driver.block(target, query, block, flight)
                    whole = series.setdefault(_series_key(target.name, query, flight), Series())
                    whole.latencies += done.latencies
                    whole.seconds += done.seconds
                    whole.block_rates += done.block_rates
                    whole.block_medians += done.block_medians
                    whole.cpu += done.cpu
                    if query == "page":
                        rates[target.name] = done.block_rates[0]
            ratios[flight].append(rates["new"] / rates["baseline"])
    return series, ratios


# The page, its ids alone and the floor (as the timed series), and a push. The ids split what a
# page costs over the floor into the list's own work (its read, its audit event, its session)
# and its records' fields, by a count that does not move with the machine.
COUNTED = ("page", "ids", "floor", "push")


class Callgrind:
    """Instructions a hub process executes, counted by valgrind's callgrind: the same count for
    the same code and requests whatever else the machine is doing, where a rate on a shared
    machine moves by a fifth from one run to the next. Counting is off until a block starts;
    each block's count is dumped to a file of its own."""

    @staticmethod
    def command(directory: Path) -> list[str]:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            msg = "counting instructions needs valgrind (Debian's package valgrind)"
            raise BenchFailed(msg)
        return [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={directory / 'callgrind.%p'}",
        ]

    @staticmethod
    def control(pid: int, *options: str) -> None:
        done = subprocess.run(  # noqa: S603 - valgrind's own tool, on our own child
            ["callgrind_control", *options, str(pid)],  # noqa: S607
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            msg = f"callgrind_control {' '.join(options)} failed for the hub process"
            raise BenchFailed(msg)

    @staticmethod
    def totals(directory: Path, pid: int) -> list[int]:
        """Each dump's instruction count, oldest first (callgrind numbers them .1, .2...)."""
        dumps = sorted(
            directory.glob(f"callgrind.{pid}.*"), key=lambda p: int(p.suffix.lstrip("."))
        )
        counts = []
        for dump in dumps:
            # `summary:` is written as 0 where counting began switched off; `totals:` holds it.
            total = max(
                (
                    int(line.split()[1])
                    for line in dump.read_text().splitlines()
                    if line.startswith(("totals:", "summary:"))
                ),
                default=None,
            )
            if not total:
                msg = f"callgrind's dump {dump.name} holds no total"
                raise BenchFailed(msg)
            counts.append(total)
        return counts


@dataclasses.dataclass
class InstructionFigures:
    baseline: str
    backend: str
    page_size: int
    requests: int
    # (hub, query) -> instructions per request
    per_request: dict[tuple[str, str], float]
    listed: Listed

    def lines(self) -> list[str]:
        out = [
            (
                f"instructions per request in the hub process (callgrind), {self.backend}; "
                f"baseline {self.baseline} vs this code; {self.requests} requests of each, "
                f"one at a time; {self.listed.heading(self.page_size)}, the same list's ids "
                f"only, {FLOOR}, and a force's reportIncident of a new incident with two new "
                "children"
            )
        ]
        for (hub_name, query), count in sorted(self.per_request.items()):
            out.append(f"{hub_name:<8} {query:<5} {count / 1e6:8.2f} M instructions")
        for query in COUNTED:
            new = self.per_request[("new", query)]
            old = self.per_request[("baseline", query)]
            out.append(
                f"{query} instructions new/baseline: {new / old:.3f} ({old / new:.2f}x fewer)"
            )
        for hub_name in ("baseline", "new"):
            page, ids, floor = (self.per_request[(hub_name, q)] for q in ("page", "ids", "floor"))
            # The timed series' ratios, by instructions: the floor's count over the page's.
            out.append(
                f"by instructions, {hub_name}: page-to-floor {floor / page:.3f}, ids-to-floor "
                f"{floor / ids:.3f}, page-to-ids {ids / page:.3f}; over the floor, the list "
                f"{(ids - floor) / 1e6:.2f} M, its records' fields {(page - ids) / 1e6:.2f} M"
            )
        return out


async def settled(pid: int, name: str, *, quiet: float = 0.5, most: float = 600) -> None:
    """Until the hub `pid` (its processes) spends (almost) no CPU for `quiet` seconds: the work
    its last requests left running in the background done (on PostgreSQL, the audit's index
    rows, written off the request path). Counted with the requests that left it, not with the
    next block's: the empty request was charged a page's indexing when it followed the page."""
    deadline = time.monotonic() + most
    before = _tree_cpu(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        spent = _tree_cpu(pid)
        if spent - before <= quiet * _IDLE:
            return
        before = spent
    msg = f"the {name} hub did not settle within {most:g} s"
    raise BenchFailed(msg)


_IDLE = 0.04  # of a core: an idle hub under callgrind (its timers), not one still working


async def run_instructions(
    *,
    database_url: str,
    baseline: str = BASELINE,
    records: int = 40,
    page_size: int = 20,
    requests: int = 30,
    listed: Listed = LISTS["incidents"],
) -> InstructionFigures:
    """Both hubs under callgrind, seeded alike; the page, its ids alone, the floor and a
    force's push (a new incident with two new children) counted in each."""
    here = Path(hub.__file__).parents[1]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    per_request: dict[tuple[str, str], float] = {}
    with scratch_directory("hub-read-counts-") as counts, baseline_tree(baseline) as tree:
        async with (
            all_running(
                [
                    running_hub("baseline", tree, database_url, counted=counts),
                    running_hub("new", here, database_url, counted=counts),
                ]
            ) as (old, new),
            bench_http.Client(timeout=600) as client,
        ):
            for target in (old, new):
                await _seed(client, target, records, now, listed)
            driver = Driver(client, page_size, listed)
            for target in (old, new):
                for query in COUNTED:
                    await driver.block(target, query, 5, 1)  # warm-up, not counted
                    # What the last block left running: not ours.
                    await settled(target.pid, target.name)
                    Callgrind.control(target.pid, "--zero")
                    Callgrind.control(target.pid, "--instr=on")
                    await driver.block(target, query, requests, 1)
                    # What these requests left running: theirs.
                    await settled(target.pid, target.name)
                    Callgrind.control(target.pid, "--instr=off")
                    Callgrind.control(target.pid, "--dump")
                dumps = Callgrind.totals(counts, target.pid)[-len(COUNTED) :]
                for query, total in zip(COUNTED, dumps, strict=True):
                    per_request[(target.name, query)] = total / requests
    backend = database_url.split(":", maxsplit=1)[0]
    return InstructionFigures(baseline, backend, page_size, requests, per_request, listed)
