"""`safeguarding-hub bench`: pushes and queries through a real uvicorn process, with figures.

Not a test: it measures. It creates a scratch database (a fresh PostgreSQL database by
default, dropped afterwards), migrates it, starts `safeguarding-hub serve` in a child process,
and drives it over HTTP with distinct synthetic pushes, then with council queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.db import Database
from hub.demo import EXAMPLE_PURPOSE
from hub.migrate import upgrade
from hub.settings import Settings

FORCE, COUNCIL = "WEST_MIDLANDS", "E08000025"

UNLIMITED = '{"default": {"rate": 1000000, "burst": 1000000, "in_flight": 100000}}'


class BenchFailed(Exception):
    """A benchmark saw an error or an incomplete answer: it has no figures to print.

    A rate counted over failed requests measures how fast the hub says no, so every bench
    raises this instead of returning figures, and the CLI prints the reason and exits 1.
    """


PUSH = """mutation Push($input: ReportIncidentInput!) { reportIncident(input: $input) { id } }"""
QUERY = """query Council($first: Int!) { incidents(first: $first) { edges { node {
  policeReference type occurredAt dashRisk force { name } locationCouncil { name }
  children { present child { givenName familyName responsibleCouncil { name } } } } } } }"""


@dataclasses.dataclass
class Figures:
    name: str
    count: int
    seconds: float
    latencies: list[float]
    errors: int
    first_error: str | None = None

    def checked(self) -> Figures:
        """These figures, if every request succeeded with a whole answer."""
        if self.errors:
            msg = (
                f"{self.errors} of {self.count} {self.name} failed (first: {self.first_error}); "
                "no rate is printed for a run with failures"
            )
            raise BenchFailed(msg)
        return self

    def line(self) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return (
            f"{self.name:<8} {self.count:>6} in {self.seconds:6.2f}s  "
            f"{self.count / self.seconds:8.1f}/s  p50 {statistics.median(ordered) * 1000:7.1f} ms"
            f"  p99 {p99 * 1000:7.1f} ms  errors {self.errors}"
        )


def synthetic_child(reference: str, *, born: str = "2015-01-01") -> dict[str, Any]:
    """A synthetic child of the bench's council, as a force's push names one."""
    return {
        "policeReference": reference,
        "givenName": "Bench",
        "familyName": "Synthetic",
        "dateOfBirth": born,
        "responsibleCouncil": COUNCIL,
    }


def synthetic_incident(
    reference: str, occurred: dt.datetime, children: Sequence[tuple[str, Mapping[str, bool]]]
) -> dict[str, Any]:
    """A force's push of a synthetic incident in the bench's council, recorded half an hour
    after it occurred; `children`: each child's police reference and its flags (present...)."""
    return {
        "policeReference": reference,
        "type": "DOMESTIC_ABUSE",
        "occurredAt": occurred.isoformat(),
        "recordedAt": (occurred + dt.timedelta(minutes=30)).isoformat(),
        "locationCouncil": COUNCIL,
        "dashRisk": "MEDIUM",
        "summary": "Synthetic benchmark incident.",
        "children": [{"child": synthetic_child(child), **flags} for child, flags in children],
    }


def _incident(number: int, run: str) -> dict[str, Any]:
    occurred = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2 + number % 500)
    child = f"BENCH-{run}-P{number:07d}"
    return synthetic_incident(f"BENCH-{run}-{number:07d}", occurred, [(child, {"present": True})])


def bearer(
    settings: Settings, keys: KeySet, role: Role, org: str, *, client: str
) -> dict[str, str]:
    """Headers for a bench's synthetic client of `role` at `org`: a token naming a person and
    a purpose the agreement lets the role give (anything else is refused)."""
    token = issue_access_token(
        settings=settings,
        keys=keys,
        client_id=f"{client}-{role.value}",
        organisation_code=org,
        role=role,
        user=f"{client}-user",
        purpose=EXAMPLE_PURPOSE[role],
    )
    return {"Authorization": f"Bearer {token}"}


async def _drive(
    name: str, count: int, concurrency: int, call: Callable[[int], Awaitable[str | None]]
) -> Figures:
    """Run `call` for 0..count-1, `concurrency` at a time; each returns None or what failed."""
    latencies: list[float] = []
    failures: list[str] = []
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            started = time.perf_counter()
            failure = await call(number)
            latencies.append(time.perf_counter() - started)
            if failure is not None:
                failures.append(failure)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    first = failures[0] if failures else None
    return Figures(name, count, time.perf_counter() - started, latencies, len(failures), first)


def _error_code(error: dict[str, Any]) -> str:
    """An error's code, with its stable reason and the subgraph that raised it when it says:
    an intermittent refusal is then traced to the check that made it from one run's output."""
    extensions = error.get("extensions") or {}
    detail = [str(extensions[k]) for k in ("reason", "serviceName") if extensions.get(k)]
    code = str(extensions.get("code"))
    return f"{code} ({', '.join(detail)})" if detail else code


def _failure(response: bench_http.Answer, *, field: str, expected: int | None = None) -> str | None:
    """What went wrong with a GraphQL response, or None: an HTTP error, any error entry, no
    data, or (with `expected`) a page with fewer edges than asked for."""
    if response.status_code != HTTPStatus.OK:
        return f"HTTP {response.status_code}"
    body = response.json()
    errors = body.get("errors")
    if errors:
        return "errors " + ", ".join(sorted({_error_code(e) for e in errors}))
    data = (body.get("data") or {}).get(field)
    if data is None:
        return f"no {field} in the answer"
    if expected is not None and len(data["edges"]) != expected:
        return f"{len(data['edges'])} records where {expected} were asked for"
    return None


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A directory of the benchmark's own (a hub's data directory: its development signing
    keys, its SQLite file), removed after, whatever happened. Each run used to leave one in the
    system's temporary directory, a private key in each."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_database(url: str, *, prefix: str = "hub_bench") -> AsyncIterator[str]:
    """A PostgreSQL database of the benchmark's own on the server `url` names, dropped after.

    A SQLite URL is used as it is (the file is the benchmark's to choose).
    """
    if not url.startswith("postgresql"):
        yield url
        return
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(url).set(database="postgres")
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def analysed(database_url: str, database: str | None) -> None:
    """ANALYZE a hub's scratch database (PostgreSQL; on SQLite nothing), as autovacuum's
    analyses keep a served one. A PostgreSQL run without them (this machine's runs with
    `autovacuum = off`) plans every statement on the empty tables it was created with: the
    push's probe of what the force pushed before then read every incident of the force, by the
    (force, time) index, instead of its unique indexes (`tests/test_push_probe_plans`, which
    analyses), and each push cost more the more a bench had pushed."""
    if database is None:
        return
    engine = create_async_engine(
        make_url(database_url).set(database=database), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("ANALYZE"))
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_environment(
    url: str,
    data_dir: Path,
    issuer: str,
    *,
    rate_limits: str | None = UNLIMITED,
    inherited: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """A benchmark's hub's environment: `inherited`'s, with the hub's database, its data
    directory, its issuer and development mode. `rate_limits`: by default none to speak of
    (one synthetic client drives a bench, and its limit is not what is measured); None, the
    hub's own defaults."""
    environment = {
        **inherited,
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_ISSUER": issuer,
        "HUB_MODE": "development",
    }
    environment.pop("HUB_RATE_LIMITS", None)
    if rate_limits is not None:
        environment["HUB_RATE_LIMITS"] = rate_limits
    return environment


@dataclasses.dataclass(frozen=True)
class ServedHubs:
    """The hub processes a benchmark started on one database, and what its tokens are made with."""

    bases: list[str]
    settings: Settings
    keys: KeySet
    processes: list[subprocess.Popen[bytes]]

    @property
    def base(self) -> str:
        return self.bases[0]

    @property
    def pid(self) -> int:
        return self.processes[0].pid


@contextlib.asynccontextmanager
async def serving_hubs(
    url: str,
    *,
    prefix: str = "hub-bench-",
    processes: int = 1,
    rate_limits: str | None = UNLIMITED,
    hub_env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServedHubs]:
    """`processes` hubs (`serve`, each on a free port) on the migrated database `url`, sharing a
    scratch data directory (`scratch_directory`), ready when this yields, stopped and their
    directory removed after. `hub_env` (HUB_... = value) goes in their environment beside the
    bench's own (`hub_environment`), as `bench-read`'s does (`running_hub`)."""
    with scratch_directory(prefix) as data_dir:
        ports = [_free_port() for _ in range(processes)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        environment = hub_environment(url, data_dir, bases[0], rate_limits=rate_limits)
        environment |= hub_env or {}
        hub_settings = Settings(database_url=url, data_dir=data_dir, issuer=bases[0])
        keys = KeySet.for_settings(hub_settings)  # written before the servers start: they load them
        started: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                command = [sys.executable, "-m", "hub", "serve", "--port", str(port)]
                # A plain Popen: the child outlives no await, and is stopped below.
                started.append(subprocess.Popen(command, env=environment))  # noqa: S603, ASYNC220 - our own CLI
            for base, process in zip(bases, started, strict=True):
                await _wait_ready(base, process)
            yield ServedHubs(bases, hub_settings, keys, started)
        finally:
            for process in started:
                process.terminate()
            for process in started:
                process.wait(timeout=30)


Started = TypeVar("Started")


async def migrated(tree: Path, env: Mapping[str, str]) -> int:
    """`python -m hub migrate` run in `tree` (a baseline's code, or this one's): its exit
    status. Awaited, so that other hubs start meanwhile (`all_running`); a start cancelled (as
    another's failed) kills it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "migrate",
        cwd=tree,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
        raise


@contextlib.asynccontextmanager
async def all_running(
    starts: Sequence[contextlib.AbstractAsyncContextManager[Started]],
) -> AsyncIterator[list[Started]]:
    """Hubs started at once (each hub's start-up, about four seconds of imports and
    migrations, and some twenty under callgrind, overlapping the others'), stopped after. If
    one fails to start, the others' starts are cancelled, and whatever each got to (its
    process, its directory, its scratch database) is undone before the failure is raised."""
    async with contextlib.AsyncExitStack() as stack:
        tasks = [asyncio.create_task(stack.enter_async_context(start)) for start in starts]
        try:
            started = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        yield list(started)


async def _wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Until the hub answers /readyz. A minute: on a loaded two-core machine a hub's start-up
    (imports, migrations checked, keys loaded) has taken over 20 seconds; a healthy one is
    ready in about two, and waiting longer only delays the report of a hub that never starts."""
    async with bench_http.Client(timeout=5) as client:
        for _ in range(round(seconds * 10)):
            if process.poll() is not None:
                msg = "the hub process exited during start-up"
                raise RuntimeError(msg)
            with contextlib.suppress(bench_http.HttpFailed):
                if (await client.get(f"{url}/readyz")).status_code == HTTPStatus.OK:
                    return
            await asyncio.sleep(0.1)
    msg = "the hub did not become ready"
    raise RuntimeError(msg)


async def run(
    *, database_url: str, pushes: int, queries: int, concurrency: int, page_size: int
) -> list[Figures]:
    async with scratch_database(database_url) as url:
        await upgrade(url)
        async with serving_hubs(url) as hub:
            return await _measure(
                hub.base,
                hub.settings,
                hub.keys,
                pushes=pushes,
                queries=queries,
                concurrency=concurrency,
                page_size=page_size,
            )


async def _measure(
    base: str,
    settings: Settings,
    keys: KeySet,
    *,
    pushes: int,
    queries: int,
    concurrency: int,
    page_size: int,
) -> list[Figures]:
    police = bearer(settings, keys, Role.POLICE_OFFICER, FORCE, client="bench")
    council = bearer(settings, keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client="bench")
    run_id = uuid.uuid4().hex[:6].upper()
    url = f"{base}/graphql"
    async with bench_http.Client(timeout=60) as client:

        async def push(number: int) -> str | None:
            body = {"query": PUSH, "variables": {"input": _incident(number, run_id)}}
            response = await client.post(url, json=body, headers=police)
            return _failure(response, field="reportIncident")

        async def query(number: int) -> str | None:
            # Distinct variables per request: nothing in front may collapse identical ones.
            first = page_size - number % 2
            body = {"query": QUERY, "variables": {"first": first}}
            response = await client.post(url, json=body, headers=council)
            return _failure(response, field="incidents", expected=first)

        warm = min(20, pushes)
        (await _drive("warm-up", warm, concurrency, lambda n: push(pushes + n))).checked()
        pushed = (await _drive("pushes", pushes, concurrency, push)).checked()
        queried = (await _drive("queries", queries, concurrency, query)).checked()
    return [pushed, queried]


# -- the agreement's cost --------------------------------------------------------------------------

POLICY_QUERY = """query Council($first: Int!) { incidents(first: $first) { edges { node {
  id policeReference type occurredAt recordedAt sharedAt dashRisk summary
  force { name } locationCouncil { name }
  children { present victim householdMember
    child { id givenName familyName dateOfBirth responsibleCouncil { name } } } } } } }"""


async def _seed_incidents(database_url: str, count: int) -> None:
    from hub.children.service import ChildDetails  # noqa: PLC0415
    from hub.incidents import service as incidents  # noqa: PLC0415
    from hub.incidents.models import IncidentType  # noqa: PLC0415
    from hub.incidents.service import IncidentReport, InvolvedChild  # noqa: PLC0415

    db = Database(database_url)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction(write=True) as session:
        for number in range(count):
            occurred = now - dt.timedelta(hours=2 + number)
            kids = tuple(
                InvolvedChild(
                    child=ChildDetails(
                        police_reference=f"PB-{number}-{k}",
                        given_name="Bench",
                        family_name="Synthetic",
                        date_of_birth=dt.date(2015, 1, 1),
                        responsible_council=COUNCIL,
                    ),
                    present=k == 0,
                )
                for k in range(2)
            )
            await incidents.report(
                session,
                force_code=FORCE,
                client_id="bench",
                incident=IncidentReport(
                    police_reference=f"PB-{number}",
                    type=IncidentType.DOMESTIC_ABUSE,
                    occurred_at=occurred,
                    recorded_at=occurred,
                    location_council=COUNCIL,
                    children=kids,
                    summary="Synthetic benchmark incident.",
                ),
            )
    await db.dispose()


@dataclasses.dataclass
class CostFigures:
    """Medians of the same council query on three paths, taking turns in one process."""

    internal_ms: float
    scoped_ms: float
    audited_ms: float
    repeats: int
    page_size: int
    # Each turn's ratio (the medians of its blocks, run one after the other): how far the
    # figure moves while the machine's load does, so that a change is judged against that.
    policy_turns: list[float] = dataclasses.field(default_factory=list)
    audit_turns: list[float] = dataclasses.field(default_factory=list)
    # PostgreSQL: the audit's index rows, written after the commit by the process's indexer.
    indexed_events: int = 0
    indexing_ms: float = 0.0

    def lines(self) -> list[str]:
        policy = self.scoped_ms / self.internal_ms
        audit = self.audited_ms / self.scoped_ms
        spread = [
            _spread(f"{name} cost by turn", turns)
            for name, turns in (("policy", self.policy_turns), ("audit", self.audit_turns))
            if len(turns) >= MIN_TURNS
        ]
        return [
            (
                f"council query, {self.page_size} incidents with children, "
                f"{self.repeats} runs of each path, taking turns in blocks of {BLOCK}"
            ),
            f"internal: no agreement, all rows, no audit  median {self.internal_ms:7.2f} ms",
            f"scoped:   purpose, rows, fields; no audit   median {self.scoped_ms:7.2f} ms",
            f"served:   scoped, every record audited      median {self.audited_ms:7.2f} ms",
            f"policy cost  scoped/internal {policy:.3f} ({100 * (policy - 1):+.1f}%, target < 10%)",
            f"audit cost   served/scoped   {audit:.3f} ({100 * (audit - 1):+.1f}%, target < 15%)",
            *spread,
            *self._indexing(),
        ]

    def _indexing(self) -> list[str]:
        if not self.indexed_events:
            return []
        each = self.indexing_ms / self.indexed_events
        return [
            (
                f"indexing after the commit, off the request path (between blocks): "
                f"{self.indexed_events} responses in {self.indexing_ms:.0f} ms, {each:.2f} ms each"
            )
        ]


MIN_TURNS = 4  # fewer give no quartiles worth printing


def _spread(label: str, ratios: list[float]) -> str:
    low, middle, high = statistics.quantiles(ratios, n=4)
    return (
        f"{label}: median {100 * (middle - 1):+.1f}%, middle half {100 * (low - 1):+.1f}% "
        f"to {100 * (high - 1):+.1f}% over {len(ratios)} turns"
    )


# The paths take turns in blocks of BLOCK runs. Run by run, one path's leftovers (the
# collector's debt, caches, the connection's state) fell on the next one, and the audit's cost
# measured anything from +8% to +26% depending only on the order the process had imported its
# modules; in blocks each path runs as a server serving only it would, and taking turns still
# spreads the machine's drift over all three.
BLOCK = 10
WARM_UP = 5


async def run_costs(
    *, database_url: str, records: int, repeats: int, page_size: int
) -> CostFigures:
    """The agreement's and the audit's cost: one council query on three paths, side by side."""
    from hub.access.agreement import Agreement, default_path  # noqa: PLC0415
    from hub.access.identity import Principal  # noqa: PLC0415
    from hub.app import HubState  # noqa: PLC0415
    from hub.graphql.context import HubContext  # noqa: PLC0415
    from hub.graphql.schema import build_schema  # noqa: PLC0415

    async with scratch_database(database_url) as url:
        await upgrade(url)
        await _seed_incidents(url, records)
        with scratch_directory("hub-bench-") as data_dir:
            settings = Settings(database_url=url, data_dir=data_dir)
            served = build_schema(settings)
            paths = {
                "internal": (build_schema(settings, enforce_agreement=False, audit=False), True),
                "scoped": (build_schema(settings, audit=False), False),
                "audited": (served, False),
            }
            db = Database(url)
            state = HubState(
                settings=settings,
                db=db,
                keys=KeySet.for_settings(settings),
                agreement=Agreement.load(default_path(), served._schema),  # noqa: SLF001
            )
            principal = Principal(
                client_id="bench",
                organisation_code=COUNCIL,
                role=Role.COUNCIL_SOCIAL_WORKER,
                user="bench-user",
                purpose="section_47_enquiry",
                token_id="bench",  # noqa: S106 - an id, not a secret
            )

            async def once(schema: Any, *, is_internal: bool) -> float:
                context = HubContext(
                    request=None,
                    response=None,
                    hub=state,
                    request_id="bench",
                    identity=principal,
                    internal=is_internal,
                )
                started = time.perf_counter()
                result = await schema.execute(
                    POLICY_QUERY, variable_values={"first": page_size}, context_value=context
                )
                elapsed = time.perf_counter() - started
                if result.errors or len(result.data["incidents"]["edges"]) != page_size:
                    codes = sorted(
                        {str((e.extensions or {}).get("code")) for e in result.errors or []}
                    )
                    msg = (
                        f"the council query failed or came back short of {page_size} incidents "
                        f"(errors: {', '.join(codes) or 'none'}): seed at least as many records"
                    )
                    raise BenchFailed(msg)
                return elapsed

            timings: dict[str, list[float]] = {name: [] for name in paths}
            turns: list[dict[str, float]] = []
            try:
                for schema, is_internal in paths.values():  # warm-up runs, not counted
                    for _ in range(WARM_UP):
                        await once(schema, is_internal=is_internal)
                await state.indexer.idle()
                for turn in range(-(-repeats // BLOCK)):
                    block: dict[str, float] = {}
                    for name, (schema, is_internal) in paths.items():
                        runs = [
                            await once(schema, is_internal=is_internal)
                            for _ in range(min(BLOCK, repeats - turn * BLOCK))
                        ]
                        timings[name] += runs
                        block[name] = statistics.median(runs)
                        # The audited block's events are indexed before the next block starts:
                        # that work is timed on its own, not charged to the unaudited paths.
                        await state.indexer.idle()
                    turns.append(block)
            finally:
                await state.indexer.close()
                await db.dispose()
    median = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    return CostFigures(
        internal_ms=median["internal"],
        scoped_ms=median["scoped"],
        audited_ms=median["audited"],
        repeats=repeats,
        page_size=page_size,
        policy_turns=[block["scoped"] / block["internal"] for block in turns],
        audit_turns=[block["audited"] / block["scoped"] for block in turns],
        indexed_events=state.indexer.indexed,
        indexing_ms=state.indexer.seconds * 1000,
    )
