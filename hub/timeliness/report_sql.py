"""The PostgreSQL report statement: stages derived, judged and summarised in one snapshot.

It mirrors `timeline.stage_delays` (which stages a record has, for which councils) and
`stats.measure`/`stats.aggregate` (deadlines, open stages, the four groupings); the test of the
two paths holds them together. Values are always bound parameters; the only text spliced in is
fixed fragments chosen by the scope and the targets' positions.

Shape, for speed at national scale: one row per record and receiving council (`pairs`) carries
every stage's start, end and delay as columns, and every target's deadline and verdict
(`timed`); each grouping is then one GROUP BY over those rows whose ordered-set aggregates
(`percentile_cont(0.5)` is the Python median, `percentile_disc(0.9)` the nearest-rank 90th
percentile) each sort only their own stage's delays, instead of a row per stage sorted whole.
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
STATS_PER_CELL = 7  # rows, ended, median, p90, max, within, breached
GROUPINGS = {"force": "force_code", "council": "council", "kind": "kind", "month": "month"}


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


_BASE = """
WITH
inc AS (
  SELECT i.id, i.type, i.force_code, i.location_council_code, i.occurred_at, i.recorded_at,
    i.shared_at
  FROM incident i
  WHERE i.occurred_at >= :start AND i.occurred_at < :end AND i.shared_at <= :as_of
    /*INCIDENT*/
),
mis AS (
  SELECT m.id, m.child_id, m.force_code, m.reported_missing_at, m.recorded_at, m.shared_at,
    m.returned_at, m.return_interview_at
  FROM missing_episode m
  WHERE m.reported_missing_at >= :start AND m.reported_missing_at < :end
    AND m.shared_at <= :as_of /*MISSING*/
),
chg AS (
  SELECT t.id, t.investigation_id, t.changed_at, t.shared_at, t.from_status, v.force_code,
    v.shared_at AS opened_shared_at
  FROM investigation_transition t JOIN investigation v ON v.id = t.investigation_id
  WHERE t.changed_at >= :start AND t.changed_at < :end AND t.shared_at <= :as_of /*CHANGE*/
),
kids AS (
  SELECT 'Incident' AS rtype, ic.incident_id AS record_id, c.id AS child_id,
    c.responsible_council_code AS r, c.host_council_code AS h
  FROM inc JOIN incident_child ic ON ic.incident_id = inc.id JOIN child c ON c.id = ic.child_id
  UNION ALL
  SELECT 'MissingEpisode', m.id, c.id, c.responsible_council_code, c.host_council_code
  FROM mis m JOIN child c ON c.id = m.child_id
  UNION ALL
  SELECT 'Investigation', ic.investigation_id, c.id, c.responsible_council_code,
    c.host_council_code
  FROM investigation_child ic JOIN child c ON c.id = ic.child_id
  WHERE ic.investigation_id IN (SELECT investigation_id FROM chg)
),
recipients AS (
  SELECT rtype, record_id, council, min(child_id) AS child_id FROM (
    SELECT rtype, record_id, r AS council, child_id FROM kids
    UNION ALL SELECT rtype, record_id, h, child_id FROM kids WHERE h IS NOT NULL
    UNION ALL SELECT 'Incident', id, location_council_code, NULL FROM inc
    UNION ALL SELECT 'Investigation', ii.investigation_id, i.location_council_code, NULL
      FROM investigation_incident ii JOIN incident i ON i.id = ii.incident_id
      WHERE ii.investigation_id IN (SELECT investigation_id FROM chg)
  ) x GROUP BY rtype, record_id, council
),
first_kid AS (SELECT rtype, record_id, min(child_id) AS child_id FROM kids GROUP BY 1, 2),
records AS (
  SELECT 'Incident' AS rtype, id AS rid, id AS record_id,
    CASE WHEN type = 'domestic_abuse' THEN 'domestic_abuse' ELSE 'incident' END AS kind,
    force_code, occurred_at AS event_at, recorded_at, shared_at,
    NULL::timestamptz AS returned_at, NULL::timestamptz AS interview_at,
    true AS share_stages, true AS receipt_stages
  FROM inc
  UNION ALL
  SELECT 'MissingEpisode', id, id, 'missing_episode', force_code, reported_missing_at,
    recorded_at, shared_at, returned_at, return_interview_at, true, true
  FROM mis
  UNION ALL
  SELECT 'Investigation', investigation_id, id, 'investigation_status', force_code, changed_at,
    NULL, shared_at, NULL, NULL, true, false
  FROM chg
  UNION ALL
  SELECT 'Investigation', investigation_id, investigation_id, 'investigation_status',
    force_code, changed_at, NULL, opened_shared_at, NULL, NULL, false, true
  FROM chg WHERE from_status IS NULL AND opened_shared_at <= :as_of
),
pairs AS MATERIALIZED (
  SELECT r.*, p.council, coalesce(p.child_id, f.child_id) AS child_id,
    CASE WHEN o.nation IN ('england', 'wales') THEN o.nation ELSE 'england' END AS nation,
    to_char(r.event_at AT TIME ZONE 'Europe/London', 'YYYY-MM') AS month,
    rr.first_seen_at, rr.acknowledged_at
  FROM records r
  JOIN recipients p ON p.rtype = r.rtype AND p.record_id = r.rid
  LEFT JOIN first_kid f ON f.rtype = r.rtype AND f.record_id = r.rid
  LEFT JOIN organisation o ON o.code = p.council
  LEFT JOIN record_receipt rr ON r.receipt_stages AND rr.record_type = r.rtype
    AND rr.record_id = r.rid AND rr.organisation_code = p.council
  WHERE true /*PAIR*/
),
shared AS (
  SELECT DISTINCT ON (force_code, kind, record_id) force_code, council AS council_code, kind,
    record_id, event_at, shared_at
  FROM pairs WHERE share_stages
  ORDER BY force_code, kind, record_id, council
),
"""

_BATCHING = """
flagged AS (
  SELECT s.*, (count(*) OVER w >= :min_records
    AND max(event_at) OVER w - min(event_at) OVER w >= CAST(:min_span AS interval)) AS anchor
  FROM shared s
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
    """SQL for target `index`'s deadline of a stage starting at `start` (a `pairs` column)."""
    if unit is Unit.HOURS:
        return f"{start} + make_interval(secs => CAST(:hours_{index} AS float8) * 3600)"
    local = f"({start} AT TIME ZONE 'Europe/London')"
    # The calendar is an array per calendar target and nation, indexed by day: no join, no sort.
    day = (
        f"(CAST(:calendar_{index} AS int) * 2 * :c_days"
        f" + CASE WHEN nation = 'wales' THEN :c_days ELSE 0 END"
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


def _timed(targets: TargetSet) -> str:
    """Per pair: each stage's start, end and delay (ended by as_of), each target's verdict."""
    columns = ["kind", "force_code", "council", "month", "record_id", "child_id"]
    for i, (start, end, applies) in enumerate(STAGE_SQL.values()):
        columns += [
            f"{start} AS s_{i}",
            f"CASE WHEN {end} <= :as_of THEN {end} END AS e_{i}",
            f"({applies}) AS a_{i}",
            (
                f"CASE WHEN ({applies}) AND {end} <= :as_of THEN "
                f"(extract(epoch FROM {end} - {start}) * 1000000)::int8 END AS d_{i}"
            ),
        ]
    for j, target in enumerate(targets.targets):
        start, _, applies = STAGE_SQL[target.stage]
        deadline = _deadline(j, target.unit, start)
        columns.append(f"CASE WHEN ({applies}) AND kind = :kind_{j} THEN {deadline} END AS dl_{j}")
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
    outer = ",\n  ".join(["x.*", *verdicts])
    select = f"SELECT {outer}\n  FROM (SELECT {inner}\n  FROM pairs) x"  # noqa: S608 - fixed fragments
    return f"timed AS MATERIALIZED (\n  {select}\n)"


def _aggregates(found: list[Cell]) -> str:
    """Per cell, in order: rows, ended, median, 90th percentile, maximum, within, breached."""
    parts = []
    for c, cell in enumerate(found):
        i = _stage(cell.stage)
        where = f"a_{i} AND kind = ANY(CAST(:cell_{c} AS text[]))"
        verdict = f"v_{cell.target}" if cell.target is not None else None
        parts += [
            f"count(*) FILTER (WHERE {where})",
            f"count(d_{i}) FILTER (WHERE {where})",
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY d_{i}) FILTER (WHERE {where})",
            f"percentile_disc(0.9) WITHIN GROUP (ORDER BY d_{i}) FILTER (WHERE {where})",
            f"max(d_{i}) FILTER (WHERE {where})",
            f"count(*) FILTER (WHERE {verdict} = 'w')" if verdict else "0",
            f"count(*) FILTER (WHERE {verdict} = 'b')" if verdict else "0",
        ]
    return "ARRAY[" + ",\n    ".join(f"CAST({p} AS float8)" for p in parts) + "]"


_NULLS = (
    " NULL::int AS target, NULL::text AS force_code, NULL::text AS council_code,"
    " NULL::text AS kind, NULL::text AS month, NULL::text AS record_id,"
    " NULL::text AS child_id, NULL::timestamptz AS started_at,"
    " NULL::timestamptz AS ended_at, NULL::timestamptz AS deadline, NULL::int8 AS delay_us,"
    " NULL::boolean AS still_open"
)


def build(targets: TargetSet, scope: ReportScope) -> tuple[str, dict[str, Any], list[Cell]]:
    """The statement for these targets and scope, its target and cell parameters, its cells."""
    found = cells(targets)
    stats = _aggregates(found)
    # Only fixed fragments and positions are spliced in; every value is a bound parameter.
    branches = [
        (
            f"SELECT 'stats' AS section, '{name}' AS grouping, {column} AS grp, {stats} AS stats,"  # noqa: S608 - fixed fragments
            f"{_NULLS} FROM timed GROUP BY {column}"
        )
        for name, column in GROUPINGS.items()
    ]
    for j, target in enumerate(targets.targets):
        i = _stage(target.stage)
        branches.append(
            f"SELECT 'breach', NULL, NULL, NULL, {j}, force_code, council, kind, month,"  # noqa: S608 - fixed fragments
            f" record_id, child_id, s_{i}, e_{i}, dl_{j},"
            f" coalesce(d_{i}, (extract(epoch FROM CAST(:as_of AS timestamptz) - s_{i})"
            f" * 1000000)::int8), e_{i} IS NULL FROM timed WHERE v_{j} = 'b'"
        )
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
    sql = _BASE + _timed(targets) + ",\n" + _BATCHING + "\n" + "\nUNION ALL\n".join(branches)
    params: dict[str, Any] = {}
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


_FILTERS = {
    "force": {
        "/*INCIDENT*/": "AND i.force_code = :force",
        "/*MISSING*/": "AND m.force_code = :force",
        "/*CHANGE*/": "AND v.force_code = :force",
    },
    # Narrowed early through the indexes, so that one council's report reads only its records.
    "council": {
        "/*INCIDENT*/": (
            "AND i.id IN (SELECT id FROM incident WHERE location_council_code = :council "
            "UNION SELECT ic.incident_id FROM incident_child ic JOIN child c "
            "ON c.id = ic.child_id WHERE c.responsible_council_code = :council "
            "UNION SELECT ic.incident_id FROM incident_child ic JOIN child c "
            "ON c.id = ic.child_id WHERE c.host_council_code = :council)"
        ),
        "/*MISSING*/": (
            "AND m.child_id IN (SELECT id FROM child WHERE responsible_council_code = :council "
            "UNION SELECT id FROM child WHERE host_council_code = :council)"
        ),
        "/*PAIR*/": "AND p.council = :council",
    },
    "kind": {"/*PAIR*/": "AND r.kind = :kind"},
}


def scoped_sql(sql: str, scope: ReportScope) -> str:
    """The statement with the scope's filters in place (each a fixed fragment, values bound)."""
    chosen = {
        "force": scope.force_code is not None,
        "council": scope.council_code is not None,
        "kind": scope.kind is not None,
    }
    for name, fragments in _FILTERS.items():
        if not chosen[name]:
            continue
        for marker, fragment in fragments.items():
            sql = sql.replace(marker, f"{fragment} {marker}")
    return sql
