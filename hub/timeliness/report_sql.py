"""The PostgreSQL report statement: stages judged and summarised in one snapshot.

It reads `stage_fact` (`facts.py`: each record's times per receiving council, derived on write
the way `service`/`timeline.stage_delays` derive them), and mirrors `stats.measure`/
`stats.aggregate` (deadlines, open stages, the four groupings); the test of the two paths holds
them together. Values are always bound parameters; the only text spliced in is fixed fragments
chosen by the scope and the targets' positions.

Shape, for speed at national scale: one row per record and receiving council carries every
stage's start, end and delay as columns, every target's deadline and verdict, and which figures
("cells") it belongs to (`timed`, computed once); each grouping is then one GROUP BY over those
rows whose ordered-set aggregates (`percentile_cont(0.5)` is the Python median,
`percentile_disc(0.9)` the nearest-rank 90th percentile) each sort only their own cell's
delays. Breaches come out longest first and, when the caller asks, only the first N: a national
year has a million, and the figures already count them all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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
# Sorted bytewise: the database's collation (C.UTF-8 here) sorts text through strcoll, without
# abbreviated keys, and took seconds per grouping of a national year. Groups are equal either way.
GROUPINGS = {
    name: f'{column} COLLATE "C"'
    for name, column in (
        ("force", "force_code"),
        ("council", "council"),
        ("kind", "kind"),
        ("month", "month"),
    )
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
# Not materialised: its two readers filter `timed` themselves, which is cheaper than writing
# and rereading a second copy of 1.7M rows nationally.
_BASE = """
shared AS NOT MATERIALIZED (
  SELECT force_code COLLATE "C" AS force_code, council AS council_code, kind, record_id,
    event_at, shared_at
  FROM timed WHERE a_2 AND /*FIRST*/
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
# records shared within :window from each) can be a burst only if it holds :min_records, which a
# count finds in one pass; only records such a window covers need the event span, and every
# record in a dense window is covered, so their windows are whole.
_BATCHING = """
ahead AS (
  SELECT s.*, count(*) OVER (PARTITION BY force_code ORDER BY shared_at
    RANGE BETWEEN CURRENT ROW AND CAST(:window AS interval) FOLLOWING) >= :min_records AS dense
  FROM shared s
),
covered AS (
  SELECT a.* FROM (
    SELECT a.*, sum(CAST(dense AS int)) OVER (PARTITION BY force_code ORDER BY shared_at
      RANGE BETWEEN CAST(:window AS interval) PRECEDING AND CURRENT ROW) AS dense_before
    FROM ahead a
  ) a WHERE dense_before > 0
),
flagged AS (
  SELECT c.*, (count(*) OVER w >= :min_records
    AND max(event_at) OVER w - min(event_at) OVER w >= CAST(:min_span AS interval)) AS anchor
  FROM covered c
  WINDOW w AS (PARTITION BY force_code ORDER BY shared_at
    RANGE BETWEEN CURRENT ROW AND CAST(:window AS interval) FOLLOWING)
),
members AS (
  -- A record can lie in a burst only if a window that could be one covers it.
  SELECT f.*, bool_or(anchor) OVER (PARTITION BY force_code ORDER BY shared_at
    RANGE BETWEEN CAST(:window AS interval) PRECEDING AND CURRENT ROW) AS member
  FROM flagged f
)
"""


def _deadline(index: int, unit: Unit, start: str) -> str:
    """SQL for target `index`'s deadline of a stage starting at `start` (a `pairs` column).

    A calendar deadline reads `{start}_local`, the start in UK time (kept in the stage facts).
    """
    if unit is Unit.HOURS:
        return f"{start} + make_interval(secs => CAST(:hours_{index} AS float8) * 3600)"
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


def _timed(targets: TargetSet, found: list[Cell]) -> str:
    """Per pair: each stage's delay (ended by as_of), each target's deadline and verdict, and
    which cells the row counts in.

    Two layers, the first fenced with OFFSET 0 so that PostgreSQL computes a column once per row
    instead of once per reference: delays, deadlines and cells; then the verdicts (each reads
    its deadline three times). Only what the figures, breaches and batching read is kept.
    """
    keep = [
        "kind", "force_code", "council", "month", "record_id", "child_id",
        "event_at", "recorded_at", "shared_at", "returned_at", "first_council",
    ]  # fmt: skip
    columns = list(keep)
    for i, (start, end, applies) in enumerate(STAGE_SQL.values()):
        columns += [
            f"CASE WHEN {end} <= :as_of THEN {end} END AS e_{i}",
            f"({applies}) AS a_{i}",
            (
                f"CASE WHEN ({applies}) AND {end} <= :as_of THEN "
                f"round(date_part('epoch', {end} - {start}) * 1000000)::int8 END AS d_{i}"
            ),
        ]
        keep += [f"a_{i}", f"d_{i}"]
    for j, target in enumerate(targets.targets):
        start, _, applies = STAGE_SQL[target.stage]
        deadline = _deadline(j, target.unit, start)
        columns.append(f"CASE WHEN ({applies}) AND kind = :kind_{j} THEN {deadline} END AS dl_{j}")
        keep.append(f"dl_{j}")
    # Which cell's percentiles the row counts in, decided once here rather than per aggregate.
    columns += [
        f"(({STAGE_SQL[cell.stage][2]}) AND kind = ANY(CAST(:cell_{c} AS text[]))) AS c_{c}"
        for c, cell in enumerate(found)
    ]
    keep += [f"c_{c}" for c in range(len(found))]
    # A verdict as `stats.measure` gives it: within or breached once ended (by as_of), breached
    # while open once the deadline has passed, pending before.
    verdicts = [
        (
            f"CASE WHEN dl_{j} IS NULL THEN NULL WHEN e_{i} IS NOT NULL THEN "
            f"CASE WHEN e_{i} <= dl_{j} THEN 'w' ELSE 'b' END "
            f"WHEN dl_{j} < :as_of THEN 'b' ELSE 'p' END AS v_{j}"
        )
        for j, i in ((j, _stage(t.stage)) for j, t in enumerate(targets.targets))
    ]
    inner = ",\n    ".join(columns)
    outer = ", ".join([*keep, *verdicts])
    select = f"SELECT {outer}\n  FROM (SELECT {inner}\n  FROM ({_PAIRS}) p OFFSET 0) x"  # noqa: S608 - fixed fragments
    return f"timed AS MATERIALIZED (\n  {select}\n)"


def populations(found: list[Cell]) -> list[tuple[str, tuple[str, ...]]]:
    """The distinct (stage, kinds) the cells measure: two targets on one stage share delays."""
    return list(dict.fromkeys((cell.stage, cell.kinds) for cell in found))


# `percentile_disc(f)` is the value at rank ceil(f * n). Three ranks from one sort: the two
# middle values (equal for odd n), whose mean is the median (`statistics.median`, PostgreSQL's
# `percentile_cont(0.5)`), and the nearest-rank 90th percentile. The nudges stand for "just
# above half" and "0.9 exactly": ceil((0.5 + e) n) = n/2 + 1 for even n and the middle for odd n,
# and ceil((0.9 - e) n) = ceil(0.9 n) (checked against integer ranks), for any n below 10^10.
RANKS = "ARRAY[0.5, 0.5 + 1e-12, 0.9 - 1e-12]"
RANKS_PER_POPULATION = 3


def _percentiles(found: list[Cell]) -> str:
    """Per population, in order: the lower and upper middle delays and the 90th percentile."""
    parts = []
    for stage, kinds in populations(found):
        c = next(c for c, cell in enumerate(found) if (cell.stage, cell.kinds) == (stage, kinds))
        i = _stage(stage)
        parts.append(
            f"percentile_disc(CAST({RANKS} AS float8[])) WITHIN GROUP (ORDER BY d_{i})"
            f" FILTER (WHERE c_{c})"
        )
    # An empty population gives NULL, not three NULLs: keep each population's three places.
    filled = [f"coalesce(CAST({p} AS float8[]), ARRAY[NULL, NULL, NULL]::float8[])" for p in parts]
    return " || ".join(filled) if filled else "ARRAY[]::float8[]"


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


_NULLS = (
    " NULL::int AS target, NULL::text AS force_code, NULL::text AS council_code,"
    " NULL::text AS kind, NULL::text AS month, NULL::text AS record_id,"
    " NULL::text AS child_id, NULL::timestamptz AS started_at,"
    " NULL::timestamptz AS ended_at, NULL::timestamptz AS deadline, NULL::int8 AS delay_us,"
    " NULL::boolean AS still_open"
)


def _breaches(targets: TargetSet) -> str:
    """Every breach, longest first (ties as `stats.breaches` orders them), up to :breach_limit.

    One pass over `timed`: only rows with some breached verdict (about one in ten nationally)
    are unfolded into one row per target, rather than one scan of every row per target.
    """
    each = []
    for j, target in enumerate(targets.targets):
        i = _stage(target.stage)
        start = STAGE_SQL[target.stage][0]
        each.append(f"({j}, v_{j}, {start}, d_{i}, dl_{j})")
    any_breach = " OR ".join(f"v_{j} = 'b'" for j in range(len(targets.targets)))
    values = ", ".join(each)
    return (
        "(SELECT 'breach', NULL, NULL, NULL, b.* FROM (\n"  # noqa: S608 - fixed fragments
        "    SELECT t.target, force_code, council, kind, month, record_id, child_id,"
        " t.started_at, t.started_at + t.d * interval '1 microsecond' AS ended_at,"
        " t.deadline,"
        " coalesce(t.d, round(date_part('epoch', CAST(:as_of AS timestamptz) - t.started_at)"
        " * 1000000)::int8) AS delay_us, t.d IS NULL AS still_open"
        f" FROM timed CROSS JOIN LATERAL (VALUES {values})"
        " AS t(target, verdict, started_at, d, deadline)"
        f" WHERE ({any_breach}) AND t.verdict = 'b'\n"
        "  ) b ORDER BY b.delay_us DESC,"
        ' (CAST(:target_ids AS text[]))[b.target + 1] COLLATE "C",'
        ' b.record_id COLLATE "C", b.council COLLATE "C" LIMIT :breach_limit)'
    )


def _grouped_percentiles(found: list[Cell]) -> str:
    """Every grouping's percentiles from one read of `timed` (GROUPING SETS): each grouping
    still sorts the rows by its own column, but the rows are read once rather than four times.
    The grouping columns are never NULL, so a row's group is the one set it was grouped by."""
    which = " ".join(
        f"WHEN GROUPING({column}) = 0 THEN '{name}'" for name, column in GROUPINGS.items()
    )
    columns = list(GROUPINGS.values())
    return (
        f"SELECT 'percentiles', CASE {which} END, coalesce({', '.join(columns)}),"  # noqa: S608 - fixed fragments
        f" {_percentiles(found)},{_NULLS} FROM timed"
        f" GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in columns)})"
    )


def build(targets: TargetSet, scope: ReportScope) -> tuple[str, dict[str, Any], list[Cell]]:
    """The statement for these targets and scope, its target and cell parameters, its cells.

    Sections: `counts` per finest group (force, council, kind, month and which stages apply),
    which Python adds up into each grouping; `percentiles` per grouping, the only figures that
    need the delays sorted; `breach`, `shared` (batching candidates) and `records`.
    """
    found = cells(targets)
    flags = ", ".join(f"a_{i}" for i in range(len(STAGE_SQL)))
    # Only fixed fragments and positions are spliced in; every value is a bound parameter.
    branches = [
        (
            f"SELECT 'counts' AS section, NULL AS grouping, NULL AS grp, {_counts(targets)}"  # noqa: S608 - fixed fragments
            " AS stats, NULL::int AS target, force_code, council AS council_code, kind, month,"
            " NULL::text AS record_id, NULL::text AS child_id, NULL::timestamptz AS started_at,"
            " NULL::timestamptz AS ended_at, NULL::timestamptz AS deadline,"
            " NULL::int8 AS delay_us, NULL::boolean AS still_open"
            f" FROM timed GROUP BY force_code, council, kind, month, {flags}"
        ),
        _grouped_percentiles(found),
    ]
    if targets.targets:
        branches.append(_breaches(targets))
    branches += [
        (
            "SELECT 'shared', NULL, NULL, NULL, NULL, force_code, council_code, kind, NULL,"
            " record_id, NULL, event_at, shared_at, NULL, NULL, NULL FROM members WHERE member"
        ),
        (
            "SELECT 'records', NULL, NULL, ARRAY[count(*)::float8], NULL, force_code, NULL,"
            " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM shared GROUP BY force_code"
        ),
    ]
    sql = (
        "WITH\n"
        + _timed(targets, found)
        + ",\n"
        + _BASE
        + _BATCHING
        + "\n"
        + "\nUNION ALL\n".join(branches)
    )
    params: dict[str, Any] = {"target_ids": [t.id for t in targets.targets]}
    for j, target in enumerate(targets.targets):
        params[f"kind_{j}"] = target.kind
        if target.unit is Unit.HOURS:
            params[f"hours_{j}"] = target.limit
        else:
            params[f"calendar_{j}"] = calendar_index(targets, j)
            if target.unit is Unit.NEXT_SCHOOL_DAY:
                params[f"school_{j}"] = target.school_day_start
    for c, cell in enumerate(found):
        params[f"cell_{c}"] = list(cell.kinds)
    return scoped_sql(sql, scope), params, found


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
