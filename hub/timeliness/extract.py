"""The report's figures from the database: Python on SQLite, SQL on PostgreSQL.

Both paths measure the same stages (`timeline.stage_delays` defines them) against the same
targets and return the same `ReportData`; a test runs both on one database and compares them.

* SQLite (and any small database): `service.in_period` loads the period's records with their
  receiving councils and receipts, and `report_data.build_report` does the rest in Python.
* PostgreSQL: one statement (`report_sql`), copied in slices side by side in one snapshot. It
  reads the stage facts kept on write (`facts`: each record's times per receiving council), and
  copies every fact's clock readings out in binary, with its calendar deadlines (from a
  calendar the Python `calendar` module computes, passed in as arrays, so bank holidays still
  come from one place), for numpy to judge (`judged`: delays, verdicts, per-group figures, the
  breaches that can be listed, whose records are then read by address), rank (`percentiles`)
  and search for the records that may lie in a burst (`burst_candidates`), so that Python runs
  the batching detector on candidates instead of on every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.service import pseudonym
from hub.db import Database
from hub.partnership import queries as partnership
from hub.partnership.figures import PartnershipData
from hub.partnership.queries import Period
from hub.reference.models import Organisation
from hub.settings import Settings, get_settings
from hub.timeliness import burst_candidates, decisions, service
from hub.timeliness.batching import (
    BatchingParams,
    BatchingResult,
    BatchingScore,
    SharedRecord,
    detect_batching,
)
from hub.timeliness.calendar import LONDON, is_working_day, local_date
from hub.timeliness.judged import (
    Candidate,
    Delays,
    Facts,
    Judged,
    deadline_columns,
    delays_of,
    folded,
    instant,
    read_all,
    verdicts,
)
from hub.timeliness.percentiles import GROUPINGS, RANKS_PER_POPULATION, Keys, ranks
from hub.timeliness.report_data import ReportData, ReportScope, build_report
from hub.timeliness.report_sql import (
    BATCHED_BIT,
    PARTS,
    STAGE_SQL,
    STAGES_PART,
    Cell,
    build,
    population_table,
    populations,
    span_sql,
)
from hub.timeliness.stats import Breach, Group, StageStats, breach_order
from hub.timeliness.targets import KINDS, STAGES, TargetSet, Unit, load_targets
from hub.timeliness.timeline import stage_delays

_HOUR_US = 3_600_000_000
NATIONS = ("england", "wales")


@cache  # asked once per push: resolving the path cost more than the rest of the metric
def default_targets_path() -> Path:
    """`auth/targets.toml` of the checkout (the image sets HUB_TARGETS_FILE)."""
    return Path(__file__).resolve().parents[2] / "auth" / "targets.toml"


@cache
def _targets(path: Path) -> TargetSet:
    return load_targets(path)


@cache
def _shared_record_targets(path: Path) -> TargetSet:
    return _targets(path).of_shared_records()


def targets_for(settings: Settings) -> TargetSet:
    """The targets the sharing report measures: records shared (not requests, such as checks)."""
    return _shared_record_targets(settings.targets_file or default_targets_path())


def all_targets_for(settings: Settings) -> TargetSet:
    """Every target of the agreement, requests' too (hub/vetting/figures.py reads T11)."""
    return _targets(settings.targets_file or default_targets_path())


def period_bounds(period_from: dt.date, period_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants of the first and after the last day, in England and Wales."""
    start = dt.datetime.combine(period_from, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)
    end_day = period_to + dt.timedelta(days=1)
    return start, dt.datetime.combine(end_day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)


async def report(
    db: Database,
    *,
    targets: TargetSet,
    period_from: dt.date,
    period_to: dt.date,
    scope: ReportScope,
    as_of: dt.datetime,
    pseudonym_key: str,
    agreement_version: str | None = None,
    use_sql: bool | None = None,
    breach_limit: int | None = None,
    connections: int = 2,
) -> ReportData:
    """The report for events from `period_from` to `period_to` (inclusive), judged at `as_of`.

    `breach_limit` lists only that many breaches, the longest first (every one is counted).
    `connections`: how many a PostgreSQL report runs its parts on at once (`report_sql.PARTS`).
    """
    if period_to < period_from:
        raise ValueError("period_to is before period_from")
    sql = not db.is_sqlite if use_sql is None else use_sql

    def pseudonymise(child_id: str) -> str:
        return pseudonym(child_id, key=pseudonym_key)

    asked = _Asked(
        targets=targets.of_shared_records(),
        period_from=period_from,
        period_to=period_to,
        scope=scope,
        as_of=as_of,
        pseudonymise=pseudonymise,
        agreement_version=agreement_version,
        breach_limit=breach_limit,
        connections=connections,
    )
    delays = (_sql_report if sql else _python_report)(db, asked)
    # The partnership counts read their own tables, beside the delays (on PostgreSQL on a
    # connection of their own, while the delays' parts run).
    try:
        async with asyncio.TaskGroup() as group:
            data = group.create_task(delays)
            counted = group.create_task(_partnership(db, asked))
            decided = group.create_task(_decisions(db, asked))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return dataclasses.replace(
        data.result(), partnership=counted.result(), decisions=decided.result()
    )


async def _decisions(db: Database, asked: _Asked) -> decisions.DecisionsData:
    start, end = period_bounds(asked.period_from, asked.period_to)
    async with db.transaction(write=False) as session:
        return await decisions.measure(
            session,
            period_from=asked.period_from,
            period_to=asked.period_to,
            start=start,
            end=end,
            as_of=asked.as_of,
            force_code=asked.scope.force_code,
            council_code=asked.scope.council_code,
            # Every target of the agreement: the checks' (T11) is not a shared record's.
            targets=all_targets_for(get_settings()),
        )


async def _partnership(db: Database, asked: _Asked) -> PartnershipData:
    period = Period.of(asked.period_from, asked.period_to, asked.as_of)
    async with db.transaction(write=False) as session:
        return await partnership.measure(
            session,
            period=period,
            scope=asked.scope,
            pseudonymise=asked.pseudonymise,
            finding_limit=asked.breach_limit,
        )


@dataclasses.dataclass(frozen=True)
class _Asked:
    """What a report was asked for, as both ways of making it take it."""

    targets: TargetSet
    period_from: dt.date
    period_to: dt.date
    scope: ReportScope
    as_of: dt.datetime
    pseudonymise: Callable[[str], str]
    agreement_version: str | None
    breach_limit: int | None
    connections: int


async def _names(connection: AsyncConnection) -> dict[str, str]:
    rows = await connection.execute(sa.select(Organisation.code, Organisation.name))  # type: ignore[call-overload]
    return dict(rows.all())


async def _python_report(db: Database, asked: _Asked) -> ReportData:
    start, end = period_bounds(asked.period_from, asked.period_to)
    async with db.transaction(write=False) as session:
        found = await service.in_period(
            session, start=start, end=end, as_of=asked.as_of, force_code=asked.scope.force_code
        )
        names = await _names(await session.connection())
    rows = [row for t in found for r in t.records for row in stage_delays(r, t.recipients)]
    return build_report(
        rows,
        asked.targets,
        period_from=asked.period_from,
        period_to=asked.period_to,
        as_of=asked.as_of,
        pseudonymise=asked.pseudonymise,
        scope=asked.scope,
        agreement_version=asked.agreement_version,
        names=names,
        breach_limit=asked.breach_limit,
    )


# -- PostgreSQL ------------------------------------------------------------------------------


def _at(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=LONDON).astimezone(dt.UTC)


def calendar_arrays(targets: TargetSet, first: dt.date, last: dt.date) -> dict[str, Any]:
    """Each calendar target's deadline pieces per nation and day, from the Python calendar.

    Laid out as flat arrays indexed by (calendar target, nation, day), so that SQL finds a
    day's entry by arithmetic instead of a join. For next_school_day, `a` is the deadline of a
    start before the school day's start and `b` of one after it; for working_days, `a` is the
    deadline when it does not depend on the time (a start at midnight, or on a day that is not
    a working day) and `shift` the days from a working day's start to its deadline, which keeps
    the start's wall-clock time (-1: no shift).
    """
    a: list[dt.datetime] = []
    b: list[dt.datetime] = []
    shift: list[int] = []
    days = (last - first).days + 1
    for target in (t for t in targets.targets if t.unit.uses_calendar):
        for nation in NATIONS:
            for offset in range(days):
                day = first + dt.timedelta(days=offset)
                early = target.deadline(_at(day, dt.time()), nation)
                if target.unit is Unit.NEXT_SCHOOL_DAY:
                    a.append(early)
                    b.append(target.deadline(_at(day, target.school_day_start), nation))
                    shift.append(-1)
                    continue
                a.append(early)
                b.append(early)
                noon = target.deadline(_at(day, dt.time(12)), nation)
                shift.append((local_date(noon) - day).days if is_working_day(day, nation) else -1)
    return {"c_a": a, "c_b": b, "c_shift": shift, "c_first": first, "c_days": days}


def _months(first: dt.date, last: dt.date) -> list[str]:
    """Every month from `first`'s to `last`'s, as the stage facts name them (YYYY-MM)."""
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004
    return months


@dataclasses.dataclass(frozen=True)
class _Part:
    """One of the report's statements (`report_sql.PARTS`), with what it binds."""

    name: str
    statement: sa.TextClause
    bound: dict[str, Any]


def _in_scope(asked: _Asked) -> dict[str, Any]:
    """The values that pick the period's stage facts in the report's scope (`report_sql`'s
    `:start`, `:end`, `:as_of` and the scope's filters)."""
    start, end = period_bounds(asked.period_from, asked.period_to)
    scope = asked.scope
    return {
        "start": start,
        "end": end,
        "as_of": asked.as_of,
        "force": scope.force_code,
        "council": scope.council_code,
        "kind": scope.kind,
    }


def _bound(sql: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values `sql` names (a parameter it does not name may not be bound)."""
    return {key: value for key, value in values.items() if f":{key}" in sql}


async def _calendar_days(connection: AsyncConnection, asked: _Asked) -> tuple[dt.date, dt.date]:
    """The first and last day the calendar arrays must hold: every day a stage of the period's
    records starts on, with a day either side. A stage may begin before the period (a
    conference's strategy discussion, a meeting's invitations) or after it; a start outside the
    arrays would read its deadline from another calendar's days."""
    first_day = asked.period_from
    last_day = max(local_date(asked.as_of), asked.period_to)
    sql = span_sql(asked.targets, asked.scope)
    if sql is not None:
        found = await connection.execute(sa.text(sql), _bound(sql, _in_scope(asked)))
        earliest, latest = found.one()
        if earliest is not None:
            first_day = min(first_day, local_date(earliest))
            last_day = max(last_day, local_date(latest))
    return first_day - dt.timedelta(days=1), last_day + dt.timedelta(days=1)


def _statements(
    asked: _Asked, batching: BatchingParams, days: tuple[dt.date, dt.date]
) -> tuple[list[_Part], list[Cell]]:
    """The report's parts (`report_sql.PARTS`), each with the parameters it binds; the cells.
    `days`: the first and last of the calendar's (`_calendar_days`)."""
    first_day, last_day = days
    parts, extra, found = build(asked.targets, asked.scope)
    params: dict[str, Any] = {
        **_in_scope(asked),
        "window": batching.window,
        "min_records": batching.min_records,
        "min_span": batching.min_event_span,
        "breach_limit": asked.breach_limit,
        **calendar_arrays(asked.targets, first_day, last_day),
        **extra,
    }
    statements = [
        _Part(name, sa.text(sql), _bound(sql, params))
        for name, sql in zip(PARTS, parts, strict=True)
    ]
    return statements, found


async def _keys(connection: AsyncConnection, asked: _Asked, *, codes: list[str]) -> Keys:
    """What the delays' group keys stand for: the hub's organisations (`codes`), kinds and
    months, with the database's hash of each."""
    kinds, months = list(KINDS), _months(asked.period_from, asked.period_to)
    hashed = await connection.execute(
        sa.text("SELECT v, hashtext(v) FROM unnest(CAST(:values AS text[])) AS v"),
        {"values": [*codes, *kinds, *months]},
    )
    return Keys(codes=codes, kinds=kinds, months=months, hashes={v: int(h) for v, h in hashed})


@dataclasses.dataclass
class _Results:
    """What the parts returned: the counts per finest group (`judged`), the breaches that can
    be listed with their records' ids, the delays' ranks (`percentiles.ranks`), and the bursts
    found among the batching candidates."""

    counts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    breaches: list[tuple[Candidate, Mapping[Any, Any]]] = dataclasses.field(default_factory=list)
    ranks: dict[str, dict[str, list[float | None]]] = dataclasses.field(default_factory=dict)
    batching: tuple[BatchingResult, tuple[BatchingScore, ...]] | None = None


def _batching(
    candidates: list[SharedRecord], records: Mapping[str, int], params: BatchingParams
) -> tuple[BatchingResult, tuple[BatchingScore, ...]]:
    """The detector run on the candidates, and each force's score over its shared records."""
    batches = detect_batching(candidates, params)
    in_bursts = {score.force_code: score.in_bursts for score in batches.scores}
    scores = tuple(
        BatchingScore(force, n, in_bursts.get(force, 0)) for force, n in sorted(records.items())
    )
    return batches, scores


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A PostgreSQL report's statements and what their results are read with."""

    asked: _Asked
    names: dict[str, str]  # organisation code -> name
    keys: Keys
    statements: list[_Part]
    cells: list[Cell]
    batching: BatchingParams
    slices: list[tuple[str, str]]  # the row addresses each connection copies: [from, to)


# Every row address: from the first to past the last a table can have.
_WHOLE = ("(0,0)", "(4294967295,0)")


async def _slices(connection: AsyncConnection, count: int) -> list[tuple[str, str]]:
    """`count` ranges of row addresses splitting the stage facts' table into equal parts by
    pages (a row written after the snapshot is invisible to it; one beyond the last page of
    the moment lies in the last range)."""
    if count == 1:
        return [_WHOLE]
    pages = await connection.execute(
        sa.text("SELECT pg_relation_size('stage_fact') / current_setting('block_size')::int")
    )
    blocks = int(pages.scalar_one())
    bounds = [_WHOLE[0], *(f"({blocks * i // count},0)" for i in range(1, count)), _WHOLE[1]]
    return list(itertools.pairwise(bounds))


async def _plan(connection: AsyncConnection, asked: _Asked, *, slices: int) -> _Plan:
    names = await _names(connection)
    batching = BatchingParams()
    statements, cells = _statements(asked, batching, await _calendar_days(connection, asked))
    return _Plan(
        asked=asked,
        names=names,
        keys=await _keys(connection, asked, codes=sorted(names)),
        statements=statements,
        cells=cells,
        batching=batching,
        slices=await _slices(connection, slices),
    )


async def _stages(connections: list[AsyncConnection], plan: _Plan) -> Facts:
    """The stages part copied, one slice per connection at once, and read into columns."""
    (part,) = plan.statements
    calendar = len(deadline_columns(plan.asked.targets))

    async def one(connection: AsyncConnection, bounds: tuple[str, str]) -> list[bytes]:
        bound = dict(part.bound)
        if ":slice_from" in part.statement.text:
            bound |= {"slice_from": bounds[0], "slice_to": bounds[1]}
        return await _copy(connection, part.statement, bound)

    # A slice that fails cancels the others, and every connection is idle again before the
    # snapshot's transactions end; the caller sees the failure itself, not a group.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(one(connection, bounds))
                for connection, bounds in zip(connections, plan.slices, strict=True)
            ]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    # Read once all have arrived, into one set of columns: reading each slice on its own and
    # joining them wrote every column twice.
    return await asyncio.to_thread(_read, [task.result() for task in tasks], calendar)


def _read(copies: list[list[bytes]], calendar: int) -> Facts:
    readings = [name for name, _ in folded()]
    facts = read_all(copies, calendar_targets=calendar, readings=readings)
    for chunks in copies:
        chunks.clear()  # a national year's copy is 350 MB, and the columns are copies of it
    return facts


async def _copy(
    connection: AsyncConnection, statement: sa.TextClause, bound: Mapping[str, Any]
) -> list[bytes]:
    """The statement's rows as a binary COPY, through the driver itself, as the chunks it
    arrived in (kept, not joined: joining copied 350 MB once more): fixed-width rows numpy
    reads in place."""
    compiled = statement.compile(dialect=connection.dialect)
    arguments = [bound[name] for name in compiled.positiontup or ()]
    driver: Any = (await connection.get_raw_connection()).driver_connection
    data: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        data.append(chunk)

    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 - PostgreSQL only

    try:
        await driver.copy_from_query(str(compiled), *arguments, output=sink, format="binary")
    except asyncpg.PostgresError as error:
        # As the server's errors reach callers through SQLAlchemy elsewhere.
        raise sa.exc.DBAPIError(str(compiled), None, error, hide_parameters=True) from error
    return data


@dataclasses.dataclass(frozen=True)
class _Timed:
    """The stages' delays (`judged.delays_of`), the burst candidates (rows of the facts) and
    each force's shared records: what the candidates' ids are read for."""

    delays: Delays
    candidates: list[int]
    shared: dict[str, int]


def _timed(facts: Facts, plan: _Plan) -> _Timed:
    stages = [(start, end) for start, end, _ in STAGE_SQL.values()]
    timed = delays_of(facts, keys=plan.keys, stages=stages, as_of=plan.asked.as_of)
    candidates, shared = _bursts(facts, timed.positions, plan)
    return _Timed(timed, candidates, shared)


def _verdicts(facts: Facts, timed: Delays, plan: _Plan) -> Judged:
    """The stages' verdicts: counts per finest group, and the breaches that can be listed."""
    stages = [(start, end) for start, end, _ in STAGE_SQL.values()]
    asked = plan.asked
    return verdicts(
        timed, facts, keys=plan.keys, targets=asked.targets, stages=stages, limit=asked.breach_limit
    )


def _ranked(timed: Delays, plan: _Plan) -> dict[str, dict[str, list[float | None]]]:
    """The stages' delays ranked per group: medians and 90th percentiles."""
    return ranks(
        timed.positions,
        timed.delays,
        keys=plan.keys,
        population_of=population_table(plan.cells),
        populations=len(populations(plan.cells)),
    )


def _bursts(
    facts: Facts, positions: list[npt.NDArray[np.int64]], plan: _Plan
) -> tuple[list[int], dict[str, int]]:
    """The facts that may lie in a burst (`burst_candidates`), and each force's shared
    records (its batching score's denominator)."""
    batched = np.flatnonzero((facts.applies >> BATCHED_BIT) & 1)
    forces = positions[GROUPINGS.index("force")][batched]
    params = plan.batching
    candidates = burst_candidates.candidates(
        forces,
        facts.readings["shared_at"][batched],
        facts.readings["event_at"][batched],
        window=params.window // _MICROSECOND,
        min_records=params.min_records,
        min_span=params.min_event_span // _MICROSECOND,
    )
    counted = np.bincount(forces, minlength=len(plan.keys.codes) + 1)
    shared = {plan.keys.codes[at - 1]: int(counted[at]) for at in np.flatnonzero(counted).tolist()}
    return batched[candidates].tolist(), shared


_MICROSECOND = dt.timedelta(microseconds=1)


async def _described(
    connection: AsyncConnection, facts: Facts, candidates: list[Candidate]
) -> list[tuple[Candidate, Mapping[Any, Any]]]:
    """Each breach that can be listed with its record's ids, read by the fact's address (the
    same row: the connections share one snapshot)."""
    addresses = facts.tids_of([candidate.row for candidate in candidates])
    described = await connection.execute(
        sa.text(
            "SELECT CAST(ctid AS text) AS tid, record_id, child_id, kind, force_code,"
            " council_code, month FROM stage_fact"
            " WHERE ctid = ANY(CAST(CAST(:tids AS text[]) AS tid[]))"
        ),
        {"tids": sorted(set(addresses))},
    )
    by_tid = {row["tid"]: row for row in described.mappings()}
    return [
        (candidate, by_tid[address])
        for candidate, address in zip(candidates, addresses, strict=True)
    ]


async def _shared(
    connection: AsyncConnection, facts: Facts, timed: _Timed, keys: Keys
) -> list[SharedRecord]:
    """The burst candidates as the detector reads them: their force, council, kind and times
    from the copy, their record's id read by address (tens of thousands nationally, through
    the driver itself, addresses bound as they are)."""
    rows = timed.candidates
    if not rows:
        return []
    driver: Any = (await connection.get_raw_connection()).driver_connection
    blocks, offsets = facts.tids["block"][rows].tolist(), facts.tids["offset"][rows].tolist()
    tids = list(zip(blocks, offsets, strict=True))
    found = await driver.fetch(
        "SELECT ctid, record_id FROM stage_fact WHERE ctid = ANY($1::tid[])", tids
    )
    ids = {tuple(row[0]): row[1] for row in found}
    positions = timed.delays.positions
    names = [keys.names(grouping) for grouping in GROUPINGS]
    force, council, kind, _ = (
        [names[g][at - 1] for at in positions[g][rows].tolist()] for g in range(len(GROUPINGS))
    )
    events = facts.readings["event_at"][rows].tolist()
    shared = facts.readings["shared_at"][rows].tolist()
    return [
        SharedRecord(
            force[n], council[n], kind[n], ids[tid], instant(events[n]), instant(shared[n])
        )
        for n, tid in enumerate(tids)
    ]


async def part_seconds(
    db: Database,
    *,
    targets: TargetSet,
    period_from: dt.date,
    period_to: dt.date,
    scope: ReportScope,
    as_of: dt.datetime,
    breach_limit: int | None,
) -> dict[str, float]:
    """Each part of a PostgreSQL report run alone on one connection, timed: where a report's
    time goes (`safeguarding-hub bench-report` prints them)."""
    asked = _Asked(
        targets=targets.of_shared_records(),
        period_from=period_from,
        period_to=period_to,
        scope=scope,
        as_of=as_of,
        pseudonymise=str,
        agreement_version=None,
        breach_limit=breach_limit,
        connections=1,
    )
    seconds: dict[str, float] = {}
    async with _snapshot(db, 1) as connections:
        plan = await _plan(connections[0], asked, slices=1)
        started = time.perf_counter()
        await _measured(connections, plan)
        seconds[STAGES_PART] = time.perf_counter() - started
    return seconds


async def _measured(connections: list[AsyncConnection], plan: _Plan) -> _Results:
    """The stages part: copied, judged, ranked, its breaches and burst candidates described."""
    facts = await _stages(connections, plan)
    timed = await asyncio.to_thread(_timed, facts, plan)
    # The database reads the burst candidates' ids while the verdicts and the ranks are worked
    # out here, each in a thread of its own (numpy lets go of the interpreter while it sorts and
    # counts: on two lightly loaded cores the national report took about 8% less time than with
    # one after the other, 6.43 s against 6.98 s, alternating runs of `bench-report`'s kind).
    # A failure of any cancels the others, so the connection is idle again before the
    # snapshot's transactions end.
    try:
        async with asyncio.TaskGroup() as group:
            shared = group.create_task(_shared(connections[-1], facts, timed, plan.keys))
            judging = group.create_task(asyncio.to_thread(_verdicts, facts, timed.delays, plan))
            ranking = group.create_task(asyncio.to_thread(_ranked, timed.delays, plan))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    judged = judging.result()
    results = _Results(counts=judged.counts, ranks=ranking.result())
    results.breaches = await _described(connections[0], facts, judged.candidates)
    results.batching = await asyncio.to_thread(
        _batching, shared.result(), timed.shared, plan.batching
    )
    return results


async def _sql_report(db: Database, asked: _Asked) -> ReportData:
    async with _snapshot(db, asked.connections) as connections:
        plan = await _plan(connections[0], asked, slices=len(connections))
        results = await _measured(connections, plan)
    return _assemble(results, plan)


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


@contextlib.asynccontextmanager
async def _snapshot(db: Database, count: int) -> AsyncIterator[list[AsyncConnection]]:
    """`count` read-only connections that all see the first one's snapshot, set up to report.

    The first exports its snapshot (`pg_export_snapshot`) and each other imports it before any
    other statement, so every part of a report reads the same committed state, as one
    statement would, while running at the same time. The first stays open until all are done.
    """
    async with contextlib.AsyncExitStack() as stack:
        connections: list[AsyncConnection] = []
        snapshot: str | None = None
        for _ in range(count):
            connection = await stack.enter_async_context(db.engine.connect())
            await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            await stack.enter_async_context(connection.begin())
            if snapshot is None:
                exported = await connection.execute(sa.text("SELECT pg_export_snapshot()"))
                snapshot = str(exported.scalar_one())
                if not _SNAPSHOT_ID.fullmatch(snapshot):
                    raise RuntimeError("unexpected snapshot id from the database")
            else:
                # An identifier PostgreSQL made (checked above), not a value: it cannot be bound.
                await connection.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            for setting in _REPORT_SETTINGS:
                await connection.execute(sa.text(setting))
            connections.append(connection)
        yield connections


_REPORT_SETTINGS = (
    # A national year's shared records are sorted (batching): in memory, not spilled to disk,
    # they take half the time. Compiling these statements (JIT) would cost
    # seconds and save none.
    "SET LOCAL work_mem = '1GB'",
    "SET LOCAL jit = off",
    # One council's year is a few thousand records: found by index, not by hashing whole tables
    # (the default cost assumes spinning disks).
    "SET LOCAL random_page_cost = 1.1",
    # A national year joins millions of rows: hashing them beats sorting them to merge.
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
)


def _hours(value: float | None) -> float | None:
    return None if value is None else float(value) / _HOUR_US


def _cell_stats(grouping: str, group: str, cell: Cell, values: list[Any]) -> StageStats:
    rows, ended, median, p90, longest, within, breached = values
    kind = cell.kinds[0] if cell.target is not None else None
    if grouping == "kind":
        kind = group
    return StageStats(
        group=Group(
            force_code=group if grouping == "force" else None,
            council_code=group if grouping == "council" else None,
            kind=kind,
            month=group if grouping == "month" else None,
        ),
        stage=cell.stage,
        target_id=None,  # set by the caller, which knows the targets
        count=int(ended),
        open=int(rows - ended),
        median_hours=_hours(median),
        p90_hours=_hours(p90),
        max_hours=_hours(longest),
        within=int(within),
        breached=int(breached),
    )


class _Counts:
    """The additive figures (rows, ended, maximum, within, breached) of every grouping's cells,
    summed from the statement's finest groups: one kind, and one set of applicable stages, each."""

    def __init__(self, cells: list[Cell], targets: int) -> None:
        self.cells, self.targets = cells, targets
        self.stages = len(STAGES)
        self.index = {stage: index for index, stage in enumerate(STAGES)}
        # grouping -> group -> cell -> [rows, ended, maximum, within, breached]
        self.found: dict[str, dict[str, dict[int, list[Any]]]] = {g: {} for g in GROUPINGS}

    def add(self, row: Mapping[Any, Any]) -> None:
        values, n = row["stats"], self.stages
        applies, rows = values[:n], values[n]
        ended, longest = values[n + 1 : 2 * n + 1], values[2 * n + 1 : 3 * n + 1]
        verdicts = values[3 * n + 1 :]
        kind = row["kind"]
        keys = zip(
            GROUPINGS,
            (row["force_code"], row["council_code"], kind, row["month"]),
            strict=True,
        )
        mine = [
            (c, cell)
            for c, cell in enumerate(self.cells)
            if applies[self.index[cell.stage]] and kind in cell.kinds
        ]
        for grouping, group in keys:
            tallies = self.found[grouping].setdefault(group, {})
            for c, cell in mine:
                i = self.index[cell.stage]
                tally = tallies.setdefault(c, [0, 0, None, 0, 0])
                tally[0] += rows
                tally[1] += ended[i]
                if longest[i] is not None and (tally[2] is None or longest[i] > tally[2]):
                    tally[2] = longest[i]
                if cell.target is not None:
                    tally[3] += verdicts[2 * cell.target]
                    tally[4] += verdicts[2 * cell.target + 1]


def _order(stats: list[StageStats]) -> tuple[StageStats, ...]:
    stage_order = {stage: index for index, stage in enumerate(STAGES)}

    def key(s: StageStats) -> tuple[object, ...]:
        g = s.group
        names = (g.force_code, g.council_code, g.kind, g.month)
        return (*(n or "" for n in names), stage_order.get(s.stage, 99), s.target_id or "")

    return tuple(sorted(stats, key=key))


def _assemble(results: _Results, plan: _Plan) -> ReportData:
    asked, cells, batching, names = plan.asked, plan.cells, plan.batching, plan.names
    targets, pseudonymise = asked.targets, asked.pseudonymise
    groupings: dict[str, list[StageStats]] = {g: [] for g in GROUPINGS}
    counts = _Counts(cells, len(targets.targets))
    # grouping -> group -> per population its three ranks, in `populations` order
    ranked = {grouping: results.ranks.get(grouping, {}) for grouping in GROUPINGS}
    found: list[Breach] = []
    pseudonyms: dict[str, str] = {}
    for finest in results.counts:
        counts.add(finest)
    for candidate, row in results.breaches:
        child = row["child_id"]
        if child is not None and child not in pseudonyms:
            pseudonyms[child] = pseudonymise(child)
        target = targets.targets[candidate.target]
        found.append(
            Breach(
                target_id=target.id,
                kind=row["kind"],
                force_code=row["force_code"],
                council_code=row["council_code"],
                month=row["month"],
                stage=target.stage,
                record_id=row["record_id"],
                child=pseudonyms.get(child) if child is not None else None,
                start=candidate.start,
                end=candidate.end,
                deadline=candidate.deadline,
                delay_hours=candidate.delay_us / _HOUR_US,
                open=candidate.end is None,
            )
        )
    population = {pop: index for index, pop in enumerate(populations(cells))}
    for grouping, groups in counts.found.items():
        for group, tallies in groups.items():
            for c, (rows_n, ended, longest, within, breached) in tallies.items():
                cell = cells[c]
                at = RANKS_PER_POPULATION * population[cell.stage, cell.kinds]
                low, high, p90 = ranked[grouping][group][at : at + RANKS_PER_POPULATION]
                median = None if low is None or high is None else (low + high) / 2
                stats = _cell_stats(
                    grouping, group, cell, [rows_n, ended, median, p90, longest, within, breached]
                )
                target_id = targets.targets[cell.target].id if cell.target is not None else None
                groupings[grouping].append(dataclasses.replace(stats, target_id=target_id))
    found.sort(key=breach_order)
    if asked.breach_limit is not None:
        del found[asked.breach_limit :]  # the candidates keep every tie at the last place
    batches, scores = results.batching or _batching([], {}, batching)
    return ReportData(
        period_from=asked.period_from,
        period_to=asked.period_to,
        scope=asked.scope,
        as_of=asked.as_of,
        generated_at=asked.as_of,
        targets=targets,
        by_force=_order(groupings["force"]),
        by_council=_order(groupings["council"]),
        by_kind=_order(groupings["kind"]),
        by_month=_order(groupings["month"]),
        breaches=tuple(found),
        bursts=batches.bursts,
        batching_scores=scores,
        batching_params=batching,
        agreement_version=asked.agreement_version,
        names=dict(names),
        # Each breach is one breached verdict, and the kinds partition the rows.
        breaches_total=sum(s.breached for s in groupings["kind"] if s.target_id is not None),
    )
