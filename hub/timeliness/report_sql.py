"""The PostgreSQL report statements: stages judged and summarised, in parts, in one snapshot.

They read `stage_fact` (`facts.py`: each record's times per receiving council, derived on write
the way `service`/`timeline.stage_delays` derive them), and mirror `stats.measure`/
`stats.aggregate` (deadlines, open stages, the four groupings); the test of the two paths holds
them together. Values are always bound parameters; the only text spliced in is fixed fragments
chosen by the scope and the targets' positions.

Shape, for speed at national scale: the report is one statement (`PARTS`), the stage facts'
`stages`: each fact's group keys, applying stages, clock readings and calendar deadlines,
copied out in binary and judged in numpy (`judged`: delays, verdicts, counts per finest group,
breaches; `percentiles`: medians and 90th percentiles; `burst_candidates`: the shared records
that may lie in a burst, for the batching detector). Judging two million rows in SQL,
materialised and grouped, took seven seconds; sorting their delays in PostgreSQL's ordered-set
aggregates two statements of five; finding the burst candidates with window functions over the
same rows another seven. `extract` copies it in slices of the table (by row address, bound as
`slice_from` and `slice_to`), one per connection, side by side in one snapshot.

What needs the database stays here: which stages apply (`STAGE_SQL`), and the calendar
deadlines (`_deadline`, from the arrays `extract` binds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from hub.timeliness import kinds
from hub.timeliness.judged import deadline_columns, folded
from hub.timeliness.report_data import ReportScope
from hub.timeliness.targets import KINDS, STAGES, TargetSet, Unit


class _StageSql(Mapping[str, tuple[str, str, str]]):
    """(start, end, applies) of each stage on a `pairs` row, in STAGES order, from the declared
    kinds (`kinds`) whenever it is read: stage i is bit i of the stages part's `applies`, and
    position i of `judged`'s delays. `applies` tests the fact's flags and readings; `judged`
    keeps it to the kinds that declare the stage."""

    def __getitem__(self, key: str) -> tuple[str, str, str]:
        return _stage_sql(kinds.STAGE_DEFS[key])

    def __iter__(self) -> Iterator[str]:
        return iter(list(STAGES))

    def __len__(self) -> int:
        return len(STAGES)


def _stage_sql(stage: kinds.Stage) -> tuple[str, str, str]:
    flag = {kinds.Part.SHARE: ["share_stages"], kinds.Part.RECEIPT: ["receipt_stages"]}
    tests = [*flag.get(stage.part, []), *(f"{slot} IS NOT NULL" for slot in stage.needs())]
    return stage.start, stage.end, " AND ".join(tests) or "true"


STAGE_SQL = _StageSql()


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
        rest = tuple(k for k in KINDS if k not in covered and kinds.applies(stage, k))
        if rest:
            found.append(Cell(stage, None, rest))
    return found


# The stage facts in the period, as held at as_of (`facts.StageFact`: kept up to date on write).
_PAIRS = """
  SELECT f.ctid AS tid, f.record_id, f.kind, f.force_code, f.council_code AS council,
    f.child_id, f.month,
    f.event_at, f.recorded_at, f.shared_at, f.first_seen_at, f.acknowledged_at,
    f.returned_at, f.interview_at, f.reading_1_at, f.reading_2_at, f.reading_3_at,
    f.reading_4_at, f.share_stages, f.receipt_stages, f.first_council,
    f.event_local,
    f.recorded_local, f.shared_local, f.returned_local,
    CASE WHEN o.nation = 'wales' THEN CAST(:c_days AS int) ELSE 0 END AS nation_offset
  FROM stage_fact f LEFT JOIN organisation o ON o.code = f.council_code
  WHERE f.event_at >= :start AND f.event_at < :end AND f.shared_at <= :as_of /*PAIR*/
    AND f.ctid >= CAST(CAST(:slice_from AS text) AS tid)
    AND f.ctid < CAST(CAST(:slice_to AS text) AS tid)
"""

# The `applies` bit that marks a fact the batching detector reads (`burst_candidates`): a record
# shared, once, at its first receiving council in the report (`batching.shared_records`; a
# council's report has one). Above every stage's bit.
BATCHED_BIT = 30


def _deadline(index: int, unit: Unit, start: str) -> str:
    """SQL for target `index`'s deadline of a stage starting at `start` (a `pairs` column).

    A calendar deadline reads `{start}_local`, the start in UK time, where the stage facts keep
    it (`kinds.LOCAL`), else converts the start (only the target's kind's rows get here).
    """
    if unit is Unit.HOURS:
        return f"{start} + CAST(:hours_{index} AS float8) * interval '1 hour'"
    local = start.removesuffix("_at") + "_local"
    if start not in kinds.LOCAL:
        local = f"({start} AT TIME ZONE 'Europe/London')"
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
    return list(STAGES).index(stage)


def _stages_part(targets: TargetSet) -> str:
    """Per stage fact, for `judged`: its address, its force, council, kind and month as
    `hashtext` of each (four integers, which `percentiles.Keys` maps back through lists that
    must hash apart), which stages apply (bit i: stage i), its clock readings (`judged.READINGS`,
    '-infinity' where missing) and its calendar deadlines (one column for targets of different
    kinds: `judged.deadline_columns`): fixed-width rows for a binary
    COPY. Hashing costs the database little; looking each code up in a list took a second."""
    if len(STAGES) >= BATCHED_BIT:
        raise ValueError("more stages than the stages part's bits can hold")
    applies = " | ".join(
        f"CASE WHEN {applies} THEN {1 << i} ELSE 0 END"
        for i, (_, _, applies) in enumerate(STAGE_SQL.values())
    )
    batched = f"CASE WHEN share_stages AND /*FIRST*/ THEN {1 << BATCHED_BIT} ELSE 0 END"
    columns = [
        "p.tid",
        *(f"hashtext(p.{key})" for key in ("force_code", "council", "kind", "month")),
        f"CAST({applies} | {batched} AS int4)",
        *(
            f"coalesce({', '.join(f'p.{slot}' for slot in slots)}, '-infinity')"
            for _, slots in folded()
        ),
    ]
    for held in deadline_columns(targets):
        deadlines = " ".join(
            f"WHEN kind = :kind_{j} THEN "
            f"{_deadline(j, targets.targets[j].unit, STAGE_SQL[targets.targets[j].stage][0])}"
            for j in held
        )
        columns.append(f"coalesce(CASE {deadlines} END, '-infinity')")
    return f"SELECT {', '.join(columns)} FROM ({_PAIRS}) p"  # noqa: S608 - fixed fragments


def populations(found: list[Cell]) -> list[tuple[str, tuple[str, ...]]]:
    """The distinct (stage, kinds) the cells measure: two targets on one stage share delays."""
    return list(dict.fromkeys((cell.stage, cell.kinds) for cell in found))


def population_table(found: list[Cell]) -> list[list[int]]:
    """[stage][kind position in KINDS, from 1]: the population a stage's delay counts in for a
    record of that kind (its place in `populations`), or -1 for none."""
    order = {population: index for index, population in enumerate(populations(found))}
    position = {kind: index for index, kind in enumerate(KINDS, start=1)}
    table = [[-1] * (len(KINDS) + 1) for _ in STAGES]
    for cell in found:
        for kind in cell.kinds:
            table[_stage(cell.stage)][position[kind]] = order[cell.stage, cell.kinds]
    return table


# The report's parts: the stage facts, judged in numpy (`judged`: delays, verdicts, counts,
# breaches, and the ranks in `percentiles`; the burst candidates in `burst_candidates`).
STAGES_PART = "stages"
PARTS = (STAGES_PART,)


def _part(name: str, targets: TargetSet) -> str:
    if name != STAGES_PART:
        raise ValueError(f"no report part {name}")
    return _stages_part(targets)


def build(targets: TargetSet, scope: ReportScope) -> tuple[list[str], dict[str, Any], list[Cell]]:
    """The statements for these targets and scope (`PARTS`), their parameters, the cells."""
    found = cells(targets)
    # Only fixed fragments and positions are spliced in; every value is a bound parameter.
    parts = [scoped_sql(_part(name, targets), scope) for name in PARTS]
    params: dict[str, Any] = {}
    for j, target in enumerate(targets.targets):
        if target.unit.uses_calendar:
            params[f"kind_{j}"] = target.kind
            params[f"calendar_{j}"] = calendar_index(targets, j)
            if target.unit is Unit.NEXT_SCHOOL_DAY:
                params[f"school_{j}"] = target.school_day_start
    return parts, params, found


def calendar_index(targets: TargetSet, index: int) -> int:
    """Target `index`'s place among the targets that need the calendar."""
    return sum(1 for t in targets.targets[:index] if t.unit.uses_calendar)


# Each an indexed condition on the stage facts, so that one council's year reads only its rows.
_FILTERS = {
    "force": "AND f.force_code = :force",
    "council": "AND f.council_code = :council",
    "kind": "AND f.kind = :kind",
}


def span_sql(targets: TargetSet, scope: ReportScope) -> str | None:
    """The earliest and the latest start, among the period's stage facts in scope, of the
    stages judged against a calendar (whose deadlines `_deadline` looks up by the start's day);
    None if no target uses a calendar."""
    starts = sorted({STAGE_SQL[t.stage][0] for t in targets.targets if t.unit.uses_calendar})
    if not starts:
        return None
    slots = ", ".join(f"f.{slot}" for slot in starts)
    return scoped_sql(
        f"SELECT min(least({slots})), max(greatest({slots})) FROM stage_fact f "  # noqa: S608 - fixed slot names
        "WHERE f.event_at >= :start AND f.event_at < :end AND f.shared_at <= :as_of /*PAIR*/",
        scope,
    )


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
