"""`safeguarding-hub bench-listing`: a council's page of each scoped list, as one statement and
by branches, side by side, among many other councils' records.

Not a test: it measures (`tests/test_listing_plans.py` holds the branches to their rows read).
Each list's records are seeded in a transaction of their own on a scratch PostgreSQL database
and rolled back after: the council's own 30 (half of them reachable only through their child),
and `others` of 63 other councils' around them in time. With `even`, no council is singled out:
the records spread over every English council, the council among them. The page's statement is
prepared as the hub prepares it, under the generic plan its prepared statements take after their
fifth run, and timed in turns with the same list read as one statement (`Listing.unbranched`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.scope import RowScope
from hub.bench import FORCE, BenchFailed, scratch_database
from hub.db import Database, _direct
from hub.incidents import service as incidents
from hub.investigations import service as investigations
from hub.joint_visits import service as joint_visits
from hub.migrate import upgrade
from hub.missing import service as missing
from hub.pagination import Listing, Narrowing
from hub.protection import service as protection

# The tables that link records to their children and incidents, and what each council reaches
# through them (`CouncilReach`), which a branch reads too.
LINKS = ("incident_child", "investigation_child", "investigation_incident", "council_reach")
COUNCIL = "E08000004"  # a council no test's records name: its page holds only these
AWAY = "E06000001"  # where half the council's records are: only their child makes them ours
OURS = 30  # the council's, a second apart
PAGE = 20
_WARM = 3  # turns not timed: the plans cached, the pages in shared buffers

# `count` rows numbered from 1, each with a council of those `:councils` names (a LIKE
# pattern) in turn, as a country's records spread.
_NUMBERED = (
    "FROM generate_series(1, :count) AS n "
    "JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS k, count(*) OVER () AS m "
    "FROM organisation WHERE kind = 'council' AND code LIKE :councils) AS c ON c.k = n % c.m"
)
# Each numbered row's time: a second apart from `:start`.
_AT = "CAST(:start AS TIMESTAMPTZ) + n * interval '1 second'"
# Even ones somewhere else if `:away` names a council: only their child makes them ours.
_ELSEWHERE_IF_EVEN = "CASE WHEN n % 2 = 0 THEN COALESCE(:away, c.code) ELSE c.code END"
_CHILDREN = sa.text(  # the council's responsibility
    "INSERT INTO child (id, given_name, family_name, date_of_birth, responsible_council_code, "
    "looked_after, created_at, updated_at) "
    f"SELECT :prefix || 'c' || n, 'Synthetic', 'Child', DATE '2015-01-01', c.code, false, "
    f"now(), now() {_NUMBERED}"
)
_INCIDENTS = sa.text(
    "INSERT INTO incident (id, force_code, police_reference, idempotency_key, payload_hash, "
    "type, occurred_at, recorded_at, shared_at, location_council_code, dash_risk, summary, "
    "operational_notes, pushed_by_client) "
    f"SELECT :prefix || n, :force, :prefix || n, NULL, 'hash', 'domestic_abuse', {_AT}, "
    f"now(), now(), {_ELSEWHERE_IF_EVEN}, 'standard', 'synthetic', '', 'plan-client' "
    f"{_NUMBERED}"
)
_INCIDENT_CHILDREN = sa.text(  # each incident's child is the child of its number
    "INSERT INTO incident_child (incident_id, child_id, present, household_member, victim) "
    f"SELECT :prefix || n, :prefix || 'c' || n, true, true, false {_NUMBERED}"
)
_EPISODES = sa.text(  # of the children of `_CHILDREN`
    "INSERT INTO missing_episode (id, child_id, force_code, police_reference, payload_hash, "
    "reported_missing_at, recorded_at, shared_at, risk_grade, risk_framework, "
    "last_seen_council_code, missing_from, status, updated_at, pushed_by_client) "
    f"SELECT :prefix || n, :prefix || 'c' || n, :force, :prefix || n, 'hash', {_AT}, now(), "
    f"now(), 'medium', 'synthetic', c.code, 'home', 'missing', now(), 'plan-client' {_NUMBERED}"
)
_INVESTIGATIONS = sa.text(
    "INSERT INTO investigation (id, force_code, police_reference, status, status_changed_at, "
    f"shared_at, updated_at) SELECT :prefix || n, :force, :prefix || n, 'open', {_AT}, now(), "
    f"now() {_NUMBERED}"
)
# Even ones name a child of `_CHILDREN`, odd ones an incident of `_INCIDENTS` (in the council's
# area): each of the two conditions by which a council sees an investigation finds half.
_INVESTIGATION_CHILDREN = sa.text(
    "INSERT INTO investigation_child (investigation_id, child_id) "
    f"SELECT :prefix || n, :prefix || 'c' || n {_NUMBERED} WHERE n % 2 = 0"
)
_INVESTIGATION_INCIDENTS = sa.text(
    "INSERT INTO investigation_incident (investigation_id, incident_id) "
    f"SELECT :prefix || n, :prefix || n {_NUMBERED} WHERE n % 2 = 1"
)
_PROTECTIONS = sa.text(  # of the children of `_CHILDREN`, even ones placed elsewhere
    "INSERT INTO police_protection (id, force_code, police_reference, payload_hash, child_id, "
    "taken_at, recorded_at, shared_at, placed_in, placed_council_code, consulted_before, "
    "alternatives_considered, pushed_by_client) "
    f"SELECT :prefix || n, :force, :prefix || n, 'hash', :prefix || 'c' || n, {_AT}, now(), "
    f"now(), 'foster_care', {_ELSEWHERE_IF_EVEN}, false, '', 'plan-client' {_NUMBERED}"
)
_VISITS = sa.text(  # about the children of `_CHILDREN`, even ones asked by another council
    "INSERT INTO joint_visit_request (id, council_code, council_reference, payload_hash, "
    "force_code, child_id, kind, urgency, needed_by, recorded_at, shared_at) "
    f"SELECT :prefix || n, {_ELSEWHERE_IF_EVEN}, :prefix || n, 'hash', :force, "
    f":prefix || 'c' || n, 'visit', 'planned', {_AT}, {_AT}, now() {_NUMBERED}"
)


@dataclasses.dataclass(frozen=True)
class Listed:
    """A kind of record a council lists: its table, what seeds it, and its list's statements."""

    table: str
    seeds: tuple[sa.TextClause, ...]
    listing: Callable[..., Listing]  # its `_listing`: (scope, shape, *, dialect)
    filters: int  # how many lists of values it filters by

    def statements(self, *, after: bool) -> tuple[Listing, dict[str, Any]]:
        """The council's list, and the values its page binds (after the council's 15th if
        `after`), with the time filter a client sends (`occurredTo` and the like)."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        shape, params = Narrowing.of(
            since=None, until=now + dt.timedelta(days=1), any_of=((),) * self.filters
        )
        listing = self.listing(RowScope(councils=frozenset({COUNCIL})), shape, dialect="postgresql")
        values = {**params, "limit": PAGE + 1}
        if after:
            values.update(anchor_time=ours_from(now) + dt.timedelta(seconds=15))
            values.update(anchor_id="plan-ours-15")
        return listing, values


LISTED = {
    "incidents": Listed(
        "incident",
        (_CHILDREN, _INCIDENTS, _INCIDENT_CHILDREN),
        functools.partial(incidents._listing, involved=True),  # noqa: SLF001 - its statements
        filters=2,
    ),
    "missing episodes": Listed(
        "missing_episode",
        (_CHILDREN, _EPISODES),
        missing._listing,  # noqa: SLF001 - its statements
        filters=2,
    ),
    "investigations": Listed(
        "investigation",
        (_CHILDREN, _INCIDENTS, _INVESTIGATIONS, _INVESTIGATION_CHILDREN, _INVESTIGATION_INCIDENTS),
        investigations._listing,  # noqa: SLF001 - its statements
        filters=1,
    ),
    "police protections": Listed(
        "police_protection",
        (_CHILDREN, _PROTECTIONS),
        protection._listing,  # noqa: SLF001 - its statements
        filters=1,
    ),
    "joint visit requests": Listed(
        "joint_visit_request",
        (_CHILDREN, _VISITS),
        joint_visits._listing,  # noqa: SLF001 - its statements
        filters=4,
    ),
}


def ours_from(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=1)


async def seed(
    connection: AsyncConnection,
    listed: Listed,
    *,
    others: int,
    even: bool = False,
    ours: int = OURS,
) -> None:
    """`ours` of the council's records and `others` of other councils' (`even`: of every
    council, the council's own among them), each seed's table analysed before the next is
    checked against it."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = ours_from(now) - dt.timedelta(seconds=others // 2)
    batches: list[tuple[str, str, str | None, dt.datetime, int]]
    batches = [("plan-ours-", COUNCIL, AWAY, ours_from(now), ours)]
    batches.append(("plan-elsewhere-", "E06%", None, start, others))
    if even:
        batches = [("plan-even-", "E0%", None, now - dt.timedelta(seconds=others + 10), others)]
    for prefix, councils, away, begin, count in batches:
        for statement in listed.seeds:
            values = {"prefix": prefix, "force": FORCE, "councils": councils, "away": away}
            await connection.execute(statement, {**values, "start": begin, "count": count})
            await connection.execute(sa.text("ANALYZE"))


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


@contextlib.asynccontextmanager
async def prepared(
    connection: AsyncConnection, statement: sa.Select[Any], values: Mapping[str, Any], name: str
) -> AsyncIterator[str]:
    """`statement` prepared as the hub sends it, planned generically: the EXECUTE to run."""
    direct = _direct(statement, connection.dialect)
    if direct is None:
        raise BenchFailed("the page's statement cannot go straight to the driver")
    arguments = ", ".join(_literal(value) for value in direct.arguments(values))
    await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
    await connection.exec_driver_sql(f"PREPARE {name} AS {direct.sql}")
    try:
        yield f"EXECUTE {name}({arguments})"
    finally:
        await connection.exec_driver_sql(f"DEALLOCATE {name}")


async def explained(connection: AsyncConnection, execute: str) -> dict[str, Any]:
    [(found,)] = (
        await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
    ).all()
    plan: dict[str, Any] = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
    return plan


async def indexes_of(connection: AsyncConnection, table: str) -> set[str]:
    named = await connection.execute(
        sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :table"), {"table": table}
    )
    return {name for (name,) in named}


def rows_read(plan: dict[str, Any], table: str, indexes: set[str]) -> int:
    """Rows and index entries of `table` every node of the plan read, over all its loops: a
    scan's rows and those it filtered out, a bitmap's index entries."""
    read = 0
    if plan.get("Relation Name") == table or plan.get("Index Name") in indexes:
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return read + sum(rows_read(child, table, indexes) for child in plan.get("Plans", []))


def show(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan's nodes, one a line, for a failure's message."""
    node = " ".join(str(plan.get(key, "")) for key in ("Node Type", "Relation Name", "Index Name"))
    counts = f"rows={plan.get('Actual Rows')} removed={plan.get('Rows Removed by Filter', 0)}"
    lines = ["  " * depth + f"{node} {counts}"]
    lines += [show(child, depth + 1) for child in plan.get("Plans", [])]
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Timed:
    """One way of reading a list's page: its median time and the rows of the table it read."""

    milliseconds: float
    read: int


@dataclasses.dataclass
class ListingFigures:
    others: int
    even: bool
    runs: int
    ours: int = OURS
    timed: dict[str, tuple[Timed, Timed]] = dataclasses.field(default_factory=dict)

    def lines(self) -> list[str]:
        spread = "spread over every council" if self.even else "of 63 other councils"
        own = "" if self.even else f" ({self.ours:,} of its own, half through a child)"
        heading = (
            f"a council's page of {PAGE}{own} among {self.others:,} records {spread}, each "
            f"statement prepared and run {self.runs} times under the generic plan (median)"
        )
        lines = [heading]
        for kind, (one, branched) in self.timed.items():
            lines.append(
                f"{kind:21} one statement {one.milliseconds:8.2f} ms ({one.read:,} rows read)  "
                f"branches {branched.milliseconds:8.2f} ms ({branched.read:,} rows read)  "
                f"one/branches {one.milliseconds / branched.milliseconds:.1f}x"
            )
        return lines


async def _in_turns(connection: AsyncConnection, listed: Listed, runs: int) -> tuple[Timed, Timed]:
    """The council's page read as one statement and by branches, in turns, `runs` times each."""
    listing, values = listed.statements(after=False)
    ways = (listing.unbranched().page, listing.page)
    indexes = await indexes_of(connection, listed.table)
    async with (
        # names of each list's own: the driver caches an EXECUTE's text with its columns
        prepared(connection, ways[0], values, f"one_{listed.table}") as one,
        prepared(connection, ways[1], values, f"branched_{listed.table}") as branched,
    ):
        executes = (one, branched)
        seconds: tuple[list[float], list[float]] = ([], [])
        for turn in range(runs + _WARM):
            for execute, taken in zip(executes, seconds, strict=True):
                began = time.perf_counter()
                found = (await connection.exec_driver_sql(execute)).all()
                if turn >= _WARM:
                    taken.append(time.perf_counter() - began)
                if len(found) != PAGE + 1:
                    raise BenchFailed(
                        f"{listed.table}: a page of {len(found)} rows, not {PAGE + 1}"
                        " (with --even, the council needs more: raise --others)"
                    )
        plans = [await explained(connection, execute) for execute in executes]
    first, second = (
        Timed(statistics.median(taken) * 1000, rows_read(plan, listed.table, indexes))
        for taken, plan in zip(seconds, plans, strict=True)
    )
    return first, second


async def run(
    *, database_url: str, others: int, runs: int, even: bool, ours: int = OURS
) -> ListingFigures:
    if not database_url.startswith("postgresql"):
        raise BenchFailed("bench-listing measures PostgreSQL's plans: give a PostgreSQL server")
    figures = ListingFigures(others=others, even=even, runs=runs, ours=ours)
    async with scratch_database(database_url, prefix="hub_bench_listing") as url:
        await upgrade(url)
        db = Database(url)
        try:
            async with db.engine.connect() as connection:
                for kind, listed in LISTED.items():
                    transaction = await connection.begin()  # rolled back: the records go too
                    await seed(connection, listed, others=others, even=even, ours=ours)
                    figures.timed[kind] = await _in_turns(connection, listed, runs)
                    await transaction.rollback()
        finally:
            await db.dispose()
    return figures
