"""The PostgreSQL report statements: stages judged and summarised, in parts, in one snapshot.

They read `stage_fact` (`facts.py`: each record's times per receiving council, derived on write
the way `service`/`timeline.stage_delays` derive them), and mirror `stats.measure`/
`stats.aggregate` (deadlines, open stages, the four groupings); the test of the two paths holds
them together. Values are always bound parameters; the only text spliced in is fixed fragments
chosen by the scope and the targets' positions.

Shape, for speed at national scale: the report is three statements (`PARTS`) that `extract`
runs side by side on connections sharing one snapshot, each reading the stage facts itself:

* `judged`: one row per record and receiving council with every stage's delay, every target's
  deadline and verdict, materialised once; counts per finest group, and the breaches, longest
  first (only the rows whose worst breach can be listed are unfolded per target);
* `delays`: each pair's group keys and six delays, copied out in binary for the medians and
  90th percentiles (`percentiles`, in numpy: PostgreSQL's ordered-set aggregates took two
  statements of 5 seconds each for a national year);
* `batching`: the records shared, and the ones that may lie in a burst.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.timeliness.percentiles import NO_DELAY
from hub.timeliness.report_data import ReportScope
from hub.timeliness.targets import KINDS, STAGES, TargetSet, Unit

# (start, end, applies) of each stage on a `pairs` row, in STAGES order.
STAGE_SQL = {
    "event_to_recorded": ("event_at", "recorded_at", "share_stages AND recorded_at IS NOT NULL"),
    "recorded_to_shared": ("recorded_at", "shared_at", "share_stages AND recorded_at IS NOT NULL"),
    "event_to_shared": ("event_at", "shared_at", "share_stages"),
    "shared_to_first_seen": ("shared_at", "first_seen_at", "receipt_stages"),
    "shared_to_acknowledged": ("shared_at", "acknowledged_at", "receipt_stages"),
    "returned_to_return_interview": ("returned_at", "interview_at", "returned_at IS NOT NULL"),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One stage against one target (or, untargeted, for the kinds no target covers)."""

    stage: str
    target: int | None  # index into the target set
    kinds: tuple[str, ...]


def cells(targets: TargetSet) -> list[Cell]:
    found: list[Cell] = []
    for stage in STAGES:
        held = [i for i, t in enumerate(targets.targets) if t.stage == stage]
        found += [Cell(stage, i, (targets.targets[i].kind,)) for i in held]
        covered = {targets.targets[i].kind for i in held}
        rest = tuple(k for k in KINDS if k not in covered)
        if rest:
            found.append(Cell(stage, None, rest))
    return found


# The batching detector's input: each shared record once, at its first receiving council in
# the report (`batching.shared_records`): the facts mark it, and a council's report has one.
# Read from the stage facts themselves: it needs no delay, deadline or verdict. The windows
# run per force by the hash of its code: sorting on an integer is quicker than on text (0.7 s
# of 5.6 for a national year), and two forces whose codes hashed alike would only share
# windows, which can add candidates but never lose one (the Python detector, per force,
# decides). Only what the windows read goes through them: the members' other columns are
# read back by their row's address (`ctid`, the same row version within the statement).
_SHARED = """
shared AS MATERIALIZED (
  SELECT f.ctid AS tid, f.force_code COLLATE "C" AS force_code,
    hashtext(f.force_code) AS force_hash, f.event_at, f.shared_at
  FROM stage_fact f
  WHERE f.event_at >= :start AND f.event_at < :end AND f.shared_at <= :as_of /*PAIR*/
    AND f.share_stages AND /*FIRST*/
),
"""

# The stage facts in the period, as held at as_of (`facts.StageFact`: kept up to date on write).
_PAIRS = """
  SELECT f.record_id, f.kind, f.force_code, f.council_code AS council, f.child_id, f.month,
    f.event_at, f.recorded_at, f.shared_at, f.first_seen_at, f.acknowledged_at,
    f.returned_at, f.interview_at, f.share_stages, f.receipt_stages, f.first_council,
    f.event_local,
    f.recorded_local, f.shared_local, f.returned_local,
    CASE WHEN o.nation = 'wales' THEN CAST(:c_days AS int) ELSE 0 END AS nation_offset
  FROM stage_fact f LEFT JOIN organisation o ON o.code = f.council_code
  WHERE f.event_at >= :start AND f.event_at < :end AND f.shared_at <= :as_of /*PAIR*/
"""

# Candidates for bursts, in two steps so that the costly part runs on few rows: a window (the
# records shared within :window from each) can be a burst only if it holds :min_records, which
# one ordered pass finds (`lead`); only records such a window covers need the event span, and
# every record in a dense window is covered, so their windows are whole.
_BATCHING = """
ahead AS (
  -- Dense: the window from this record holds :min_records. On sorted rows, the record that
  -- many places on must fall inside it (exact for the first of equal times, which is enough:
  -- covering reads the latest dense time at or before each record).
  SELECT s.*, lead(shared_at, CAST(:min_records AS int) - 1) OVER w
      <= shared_at + CAST(:window AS interval) AS dense
  FROM shared s
  WINDOW w AS (PARTITION BY force_hash ORDER BY shared_at)
),
covered AS (
  SELECT a.* FROM (
    SELECT a.*, max(CASE WHEN dense THEN shared_at END) OVER (PARTITION BY force_hash
      ORDER BY shared_at) AS dense_at
    FROM ahead a
  ) a WHERE dense_at >= shared_at - CAST(:window AS interval)
),
flagged AS (
  SELECT c.*, (count(*) OVER w >= :min_records
    AND max(event_at) OVER w - min(event_at) OVER w >= CAST(:min_span AS interval)) AS anchor
  FROM covered c
  WINDOW w AS (PARTITION BY force_hash ORDER BY shared_at
    RANGE BETWEEN CURRENT ROW AND CAST(:window AS interval) FOLLOWING)
),
members AS (
  -- A record can lie in a burst only if a window that could be one covers it.
  SELECT f.*, bool_or(anchor) OVER (PARTITION BY force_hash ORDER BY shared_at
    RANGE BETWEEN CAST(:window AS interval) PRECEDING AND CURRENT ROW) AS member
  FROM flagged f
)
"""


def _deadline(index: int, unit: Unit, start: str) -> str:
    """SQL for target `index`'s deadline of a stage starting at `start` (a `pairs` column).

    A calendar deadline reads `{start}_local`, the start in UK time (kept in the stage facts).
    """
    if unit is Unit.HOURS:
        return f"{start} + CAST(:hours_{index} AS float8) * interval '1 hour'"
    local = start.removesuffix("_at") + "_local"
    # The calendar is an array per calendar target and nation, indexed by day: no join, no sort.
    day = (
        f"(CAST(:calendar_{index} AS int) * 2 * :c_days + nation_offset"
        f" + ({local}::date - CAST(:c_first AS date)) + 1)"
    )
    a, b = f"(CAST(:c_a AS timestamptz[]))[{day}]", f"(CAST(:c_b AS timestamptz[]))[{day}]"
    if unit is Unit.NEXT_SCHOOL_DAY:
        return f"CASE WHEN {local}::time < CAST(:school_{index} AS time) THEN {a} ELSE {b} END"
    shift = f"(CAST(:c_shift AS int[]))[{day}]"
    return (
        f"CASE WHEN {shift} < 0 OR {local}::time = time '00:00' THEN {a} "
        f"ELSE ({local} + make_interval(days => {shift})) AT TIME ZONE 'Europe/London' END"
    )


def _stage(stage: str) -> int:
    return list(STAGE_SQL).index(stage)


def _delay(i: int) -> str:
    """Stage `i`'s delay in microseconds, once ended (by as_of); NULL while open."""
    start, end, applies = list(STAGE_SQL.values())[i]
    return (
        f"CASE WHEN ({applies}) AND {end} <= :as_of THEN "
        f"round(date_part('epoch', {end} - {start}) * 1000000)::int8 END"
    )


def _delays(i: int) -> str:
    return f"{_delay(i)} AS d_{i}"


def _delays_part() -> str:
    """Per pair, for `percentiles`: its force, council, kind and month as `hashtext` of each
    (four integers, which `percentiles` maps back through lists that must hash apart), and
    each stage's delay (NO_DELAY while open): fixed-width rows for a binary COPY. Hashing
    costs the database little; looking each code up in a list took a second."""
    columns = [
        *(f"hashtext(p.{key})" for key in ("force_code", "council", "kind", "month")),
        *(f"coalesce({_delay(i)}, {NO_DELAY})::int8" for i in range(len(STAGE_SQL))),
    ]
    return f"SELECT {', '.join(columns)} FROM ({_PAIRS}) p"  # noqa: S608 - fixed fragments


def _timed(targets: TargetSet) -> str:
    """Per pair: each stage's delay (ended by as_of), each target's deadline and verdict.

    Two layers, the first fenced with OFFSET 0 so that PostgreSQL computes a column once per row
    instead of once per reference: delays and deadlines; then the verdicts (each reads its
    deadline three times). Only what the counts and breaches read is kept.
    """
    keep = ["kind", "force_code", "council", "month", "record_id", "child_id"]
    columns = [*keep, "event_at", "recorded_at", "shared_at", "returned_at"]
    for i, (_, end, applies) in enumerate(STAGE_SQL.values()):
        columns += [
            f"CASE WHEN {end} <= :as_of THEN {end} END AS e_{i}",
            f"({applies}) AS a_{i}",
            _delays(i),
        ]
        keep += [f"a_{i}", f"d_{i}"]
    for j, target in enumerate(targets.targets):
        start, _, applies = STAGE_SQL[target.stage]
        deadline = _deadline(j, target.unit, start)
        columns.append(f"CASE WHEN ({applies}) AND kind = :kind_{j} THEN {deadline} END AS dl_{j}")
        keep += [f"dl_{j}", f"{start} AS s_{j}"]
    judged = [(j, _stage(t.stage), STAGE_SQL[t.stage][0]) for j, t in enumerate(targets.targets)]
    verdicts = [f"{_verdict(j, i)} AS v_{j}" for j, i, _ in judged]
    if judged:
        # The row's longest breach, for ranking rows before the breaches are listed.
        each = ", ".join(
            _breach_delay(f"{_verdict(j, i)} = {BREACHED}", i, start) for j, i, start in judged
        )
        verdicts.append(f"greatest({each}) AS worst")
    inner = ",\n    ".join(columns)
    outer = ", ".join([*keep, *verdicts])
    select = f"SELECT {outer}\n  FROM (SELECT {inner}\n  FROM ({_PAIRS}) p OFFSET 0) x"  # noqa: S608 - fixed fragments
    return f"timed AS MATERIALIZED (\n  {select}\n)"


def populations(found: list[Cell]) -> list[tuple[str, tuple[str, ...]]]:
    """The distinct (stage, kinds) the cells measure: two targets on one stage share delays."""
    return list(dict.fromkeys((cell.stage, cell.kinds) for cell in found))


def population_table(found: list[Cell]) -> list[list[int]]:
    """[stage][kind position in KINDS, from 1]: the population a stage's delay counts in for a
    record of that kind (its place in `populations`), or -1 for none."""
    order = {population: index for index, population in enumerate(populations(found))}
    position = {kind: index for index, kind in enumerate(KINDS, start=1)}
    table = [[-1] * (len(KINDS) + 1) for _ in STAGE_SQL]
    for cell in found:
        for kind in cell.kinds:
            table[_stage(cell.stage)][position[kind]] = order[cell.stage, cell.kinds]
    return table


def _counts(targets: TargetSet) -> str:
    """Per finest group, in order: each stage's applies flag, rows, each stage's ended count and
    maximum, each target's within and breached counts (`extract.Counts` reads them)."""
    stages = range(len(STAGE_SQL))
    parts = [
        *(f"CAST(a_{i} AS int)" for i in stages),
        "count(*)",
        *(f"count(d_{i})" for i in stages),
        *(f"max(d_{i})" for i in stages),
    ]
    for j in range(len(targets.targets)):
        parts += [f"count(*) FILTER (WHERE v_{j} = 'w')", f"count(*) FILTER (WHERE v_{j} = 'b')"]
    return "ARRAY[" + ", ".join(f"CAST({p} AS float8)" for p in parts) + "]"


# Every section's rows have these columns (`extract._assemble` reads them by name); a section
# leaves the ones it does not use NULL.
COLUMNS = (
    ("section", "text"),
    ("grouping", "text"),
    ("grp", "text"),
    ("stats", "float8[]"),
    ("target", "int"),
    ("force_code", "text"),
    ("council_code", "text"),
    ("kind", "text"),
    ("month", "text"),
    ("record_id", "text"),
    ("child_id", "text"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("deadline", "timestamptz"),
    ("delay_us", "int8"),
    ("still_open", "boolean"),
)


def _row(section: str, **given: str) -> str:
    """A section's select list: `given` SQL expressions by column, typed NULLs elsewhere."""
    unknown = set(given) - {name for name, _ in COLUMNS}
    if unknown:
        raise ValueError(f"not report columns: {sorted(unknown)}")
    given["section"] = f"'{section}'"
    return ", ".join(
        f"CAST({given[name]} AS {kind}) AS {name}" if name in given else f"NULL::{kind} AS {name}"
        for name, kind in COLUMNS
    )


BREACHED = "'b'"  # the verdict `_verdict` gives a breach


def _verdict(j: int, stage: int) -> str:
    """Target `j`'s verdict as `stats.measure` gives it: within ('w') or breached ('b') once
    ended (by as_of), breached while open once the deadline has passed, pending ('p') before."""
    return (
        f"CASE WHEN dl_{j} IS NULL THEN NULL WHEN e_{stage} IS NOT NULL THEN "
        f"CASE WHEN e_{stage} <= dl_{j} THEN 'w' ELSE 'b' END "
        f"WHEN dl_{j} < :as_of THEN 'b' ELSE 'p' END"
    )


def _breach_delay(breached: str, stage: int, start: str) -> str:
    """A breach as the delay it has run (to as_of while still open), where `breached`; else
    NULL."""
    return (
        f"CASE WHEN {breached} THEN coalesce(d_{stage}, round(date_part('epoch',"
        f" CAST(:as_of AS timestamptz) - {start}) * 1000000)::int8) END"
    )


def _breaches(targets: TargetSet) -> tuple[str, str]:
    """The breaches, longest first (ties as `stats.breaches` orders them), up to :breach_limit.

    A national year has a million, and a listing shows a few hundred: unfolding each breached
    row into one row per target took seconds. So rows are first ranked by their worst breach:
    the :breach_limit rows with the longest worst breaches hold at least as many breaches at
    least that long, so every breach listed lies in a row whose worst reaches the last of them
    (`worst >= threshold`, ties kept), and only those rows are unfolded. With no limit, every
    breached row is.
    """
    stages = [_stage(target.stage) for target in targets.targets]
    each = ", ".join(
        f"({j}, s_{j}, d_{i}, dl_{j}, {_breach_delay(f'v_{j} = {BREACHED}', i, f's_{j}')})"
        for j, i in enumerate(stages)
    )
    ctes = (
        "listed AS (\n"
        "  SELECT * FROM timed WHERE worst >= (SELECT min(worst) FROM (SELECT worst"
        " FROM timed WHERE worst IS NOT NULL ORDER BY worst DESC LIMIT :breach_limit) top)\n)"
    )
    return (
        ctes,
        "(SELECT "  # noqa: S608 - fixed fragments
        + _row(
            "breach",
            target="t.target",
            force_code="force_code",
            council_code="council",
            kind="kind",
            month="month",
            record_id="record_id",
            child_id="child_id",
            started_at="t.started_at",
            ended_at="t.started_at + t.d * interval '1 microsecond'",
            deadline="t.deadline",
            delay_us="t.delay_us",
            still_open="t.d IS NULL",
        )
        + f" FROM listed CROSS JOIN LATERAL (VALUES {each})"
        " AS t(target, started_at, d, deadline, delay_us) WHERE t.delay_us IS NOT NULL"
        " ORDER BY t.delay_us DESC,"
        ' (CAST(:target_ids AS text[]))[t.target + 1] COLLATE "C",'
        ' record_id COLLATE "C", council COLLATE "C" LIMIT :breach_limit)',
    )


# The report's parts, run side by side on connections sharing one snapshot (`extract`): the
# judged counts and breaches, the delays the percentiles are ranked from (in numpy: see
# `percentiles`), and the batching candidates. Each reads the stage facts itself: recomputing
# what two parts share costs less than waiting for one connection to do everything.
DELAYS = "delays"
BATCHING = "batching"
PARTS = ("judged", DELAYS, BATCHING)


def _part(name: str, targets: TargetSet) -> str:
    if name == DELAYS:
        return _delays_part()
    if name == BATCHING:
        members = _row(
            "shared",
            force_code="r.force_code",
            council_code="r.council_code",
            kind="r.kind",
            record_id="r.record_id",
            started_at="r.event_at",
            ended_at="r.shared_at",
        )
        records = _row("records", stats="ARRAY[count(*)::float8]", force_code="force_code")
        return (
            f"WITH {_SHARED}{_BATCHING}\n"  # noqa: S608 - fixed fragments
            f"SELECT {members} FROM stage_fact r\n"
            "WHERE r.ctid = ANY(ARRAY(SELECT tid FROM members WHERE member))\n"
            f"UNION ALL SELECT {records} FROM shared GROUP BY force_code"
        )
    flags = ", ".join(f"a_{i}" for i in range(len(STAGE_SQL)))
    counts = (
        f"SELECT {_row('counts', stats=_counts(targets), force_code='force_code', council_code='council', kind='kind', month='month')}"  # noqa: S608, E501 - fixed fragments
        f" FROM timed GROUP BY force_code, council, kind, month, {flags}"
    )
    if not targets.targets:
        return f"WITH {_timed(targets)}\n{counts}"
    ctes, listing = _breaches(targets)
    return f"WITH {_timed(targets)},\n{ctes}\n{counts}\nUNION ALL {listing}"


def build(targets: TargetSet, scope: ReportScope) -> tuple[list[str], dict[str, Any], list[Cell]]:
    """The statements for these targets and scope (`PARTS`), their parameters, the cells.

    Sections: `counts` per finest group (force, council, kind, month and which stages apply),
    which Python adds up into each grouping; `percentiles` per grouping, the only figures that
    need the delays sorted; `breach`, `shared` (batching candidates) and `records`.
    """
    found = cells(targets)
    # Only fixed fragments and positions are spliced in; every value is a bound parameter.
    parts = [scoped_sql(_part(name, targets), scope) for name in PARTS]
    params: dict[str, Any] = {"target_ids": [t.id for t in targets.targets]}
    for j, target in enumerate(targets.targets):
        params[f"kind_{j}"] = target.kind
        if target.unit is Unit.HOURS:
            params[f"hours_{j}"] = target.limit
        else:
            params[f"calendar_{j}"] = calendar_index(targets, j)
            if target.unit is Unit.NEXT_SCHOOL_DAY:
                params[f"school_{j}"] = target.school_day_start
    return parts, params, found


def calendar_index(targets: TargetSet, index: int) -> int:
    """Target `index`'s place among the targets that need the calendar."""
    return sum(1 for t in targets.targets[:index] if t.unit is not Unit.HOURS)


# Each an indexed condition on the stage facts, so that one council's year reads only its rows.
_FILTERS = {
    "force": "AND f.force_code = :force",
    "council": "AND f.council_code = :council",
    "kind": "AND f.kind = :kind",
}


def scoped_sql(sql: str, scope: ReportScope) -> str:
    """The statement with the scope's filters in place (each a fixed fragment, values bound)."""
    chosen = {
        "force": scope.force_code is not None,
        "council": scope.council_code is not None,
        "kind": scope.kind is not None,
    }
    fragments = " ".join(fragment for name, fragment in _FILTERS.items() if chosen[name])
    first = "true" if chosen["council"] else "first_council"
    return sql.replace("/*PAIR*/", f"{fragments} /*PAIR*/").replace("/*FIRST*/", first)
