"""Timescale targets from the sharing agreement (``auth/targets.toml``), checked on load.

Each target holds one kind of record to one stage of its timeline: a limit in hours, in working
days, or "before the start of the next school day", and the source of that figure, which
travels into every report. A bad file fails with one error that lists every problem, so a data
protection officer editing it fixes them in one pass.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.timeliness import kinds
from hub.timeliness.calendar import (
    SCHOOL_DAY_START,
    add_working_days,
    check_nation,
    next_school_day_start,
    require_aware,
)

SCHEMA = 1

# The kinds of record a target can hold to, and the stages of their timelines, as the report
# names them: every kind its domain declares (`kinds.register`), filled in place.
KINDS = kinds.KINDS
STAGES = kinds.STAGES

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_REQUIRED = ("id", "kind", "stage", "unit", "description", "source")
_OPTIONAL = ("limit", "school_day_start")
# Far beyond any timescale in STANDARDS.md (the longest is 45 working days); it also refuses
# inf and nan, which compare oddly and would make every record meet its target.
_MAX_LIMIT = 10_000


class Unit(enum.StrEnum):
    HOURS = "hours"
    WORKING_DAYS = "working_days"
    NEXT_SCHOOL_DAY = "next_school_day"
    # The record's own deadline for the stage, which its kind declares (the meeting's time for
    # its written report, the time a joint visit is needed by).
    RECORD_DEADLINE = "record_deadline"

    @property
    def uses_calendar(self) -> bool:
        """Whether a deadline in this unit comes from the working-day or school-day calendar."""
        return self in {Unit.WORKING_DAYS, Unit.NEXT_SCHOOL_DAY}


class TargetsError(ValueError):
    """The targets file is wrong; ``problems`` lists every fault found, not just the first."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{origin}: {len(problems)} problem(s):\n{listed}")


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    kind: str
    stage: str
    unit: Unit
    # Hours (may be fractional) or whole working days; None for the next school day.
    limit: float | None
    description: str
    source: str
    school_day_start: dt.time = SCHOOL_DAY_START

    @property
    def unconfirmed(self) -> bool:
        """True when the agreement marks the figure as having no primary text behind it."""
        return "UNCONFIRMED" in self.source

    @property
    def limit_hours(self) -> float | None:
        """The limit as a fixed number of hours, when it is one (for a chart's target line)."""
        return self.limit if self.unit is Unit.HOURS else None

    @property
    def limit_text(self) -> str:
        if self.unit is Unit.RECORD_DEADLINE:
            stage = kinds.STAGE_DEFS.get(self.stage)
            due = stage.deadline_text if stage is not None and stage.deadline_text else None
            return f"by {due}" if due else "by the record's own deadline"
        if self.unit is Unit.NEXT_SCHOOL_DAY:
            return f"before {self.school_day_start:%H:%M} on the next school day"
        assert self.limit is not None  # noqa: S101 - the loader guarantees it for these units
        if self.unit is Unit.WORKING_DAYS:
            days = int(self.limit)
            return f"{days} working day{'s' if days != 1 else ''}"
        return f"{self.limit:g} hour{'s' if self.limit != 1 else ''}"

    def deadline(
        self, start: dt.datetime, nation: str, *, due: dt.datetime | None = None
    ) -> dt.datetime:
        """The last moment at which the stage still meets the target (UTC); `due` is the
        record's own deadline (`record_deadline` only)."""
        start = require_aware(start, name="start")
        check_nation(nation)
        if self.unit is Unit.RECORD_DEADLINE:
            if due is None:
                raise ValueError("a record_deadline target needs the record's deadline")
            return require_aware(due, name="due")
        if self.unit is Unit.NEXT_SCHOOL_DAY:
            return next_school_day_start(start, nation, self.school_day_start)
        assert self.limit is not None  # noqa: S101 - the loader guarantees it for these units
        if self.unit is Unit.WORKING_DAYS:
            return add_working_days(start, int(self.limit), nation)
        return start + dt.timedelta(hours=self.limit)

    def met(
        self, start: dt.datetime, end: dt.datetime, nation: str, *, due: dt.datetime | None = None
    ) -> bool:
        """Met when the stage ended at or before the deadline."""
        return require_aware(end, name="end") <= self.deadline(start, nation, due=due)


@dataclass(frozen=True, slots=True)
class TargetSet:
    targets: tuple[Target, ...]
    # SHA-256 of the file's bytes: a report names exactly which agreement it measured against.
    version: str
    origin: str

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def get(self, target_id: str) -> Target:
        for target in self.targets:
            if target.id == target_id:
                return target
        raise KeyError(target_id)

    def for_stage(self, kind: str, stage: str) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.kind == kind and t.stage == stage)


def load_targets(path: Path) -> TargetSet:
    return parse_targets(path.read_bytes(), origin=str(path))


def parse_targets(content: bytes | str, *, origin: str = "<targets>") -> TargetSet:
    raw = content.encode() if isinstance(content, str) else content
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TargetsError(origin, [f"not valid TOML: {error}"]) from error
    problems: list[str] = []
    targets = _read_document(document, problems)
    if problems:
        raise TargetsError(origin, problems)
    return TargetSet(tuple(targets), hashlib.sha256(raw).hexdigest(), origin)


def _read_document(document: dict[str, Any], problems: list[str]) -> list[Target]:
    if document.get("schema") != SCHEMA:
        problems.append(f"schema must be {SCHEMA}")
    problems.extend(f"unknown key {key!r}" for key in document if key not in {"schema", "targets"})
    entries = document.get("targets")
    if not isinstance(entries, list) or not entries:
        problems.append("no [[targets]] given")
        return []
    targets: list[Target] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"target {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a table")
            continue
        where = f"target {number} ({entry.get('id', 'no id')})"
        target = _read_target(entry, where, problems)
        if target is None:
            continue
        if target.id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(target.id)
        targets.append(target)
    return targets


def _read_target(entry: dict[str, Any], where: str, problems: list[str]) -> Target | None:
    found: list[str] = []
    found.extend(f"missing {key!r}" for key in _REQUIRED if key not in entry)
    found.extend(f"unknown key {key!r}" for key in entry if key not in _REQUIRED + _OPTIONAL)
    found.extend(
        f"{key!r} must be non-empty text"
        for key in _REQUIRED
        if key in entry and not (isinstance(entry[key], str) and entry[key].strip())
    )
    if not found:
        found.extend(_vocabulary_problems(entry))
    if not found:
        found.extend(_limit_problems(entry))
    problems.extend(f"{where}: {problem}" for problem in found)
    if found:
        return None
    limit = entry.get("limit")
    start = _wall_clock_time(entry.get("school_day_start", SCHOOL_DAY_START))
    assert start is not None  # noqa: S101 - checked by _limit_problems
    return Target(
        id=entry["id"],
        kind=entry["kind"],
        stage=entry["stage"],
        unit=Unit(entry["unit"]),
        limit=None if limit is None else float(limit),
        description=entry["description"].strip(),
        source=entry["source"].strip(),
        school_day_start=start,
    )


def _vocabulary_problems(entry: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if not _ID.fullmatch(entry["id"]):
        found.append("id must be 1-32 letters, digits, '.', '_' or '-'")
    if entry["kind"] not in KINDS:
        found.append(f"unknown kind {entry['kind']!r} (known: {', '.join(KINDS)})")
    if entry["stage"] not in STAGES:
        found.append(f"unknown stage {entry['stage']!r} (known: {', '.join(STAGES)})")
    elif entry["kind"] in KINDS and not kinds.applies(entry["stage"], entry["kind"]):
        found.append(f"stage {entry['stage']!r} does not apply to kind {entry['kind']!r}")
    if entry["unit"] not in {unit.value for unit in Unit}:
        found.append(f"unknown unit {entry['unit']!r} (known: {', '.join(Unit)})")
    elif (
        entry["unit"] == Unit.RECORD_DEADLINE
        and entry["stage"] in STAGES
        and kinds.STAGE_DEFS[entry["stage"]].deadline is None
    ):
        found.append(f"stage {entry['stage']!r} has no deadline of its own for record_deadline")
    return found


def _limit_problems(entry: dict[str, Any]) -> list[str]:
    unit, limit, start = entry["unit"], entry.get("limit"), entry.get("school_day_start")
    if unit == Unit.RECORD_DEADLINE:
        found = ["'limit' does not apply to record_deadline"] if limit is not None else []
        if start is not None:
            found.append("'school_day_start' applies only to next_school_day")
        return found
    if unit == Unit.NEXT_SCHOOL_DAY:
        found = ["'limit' does not apply to next_school_day"] if limit is not None else []
        if start is not None and _wall_clock_time(start) is None:
            found.append("'school_day_start' must be a time such as \"08:30\"")
        return found
    found = ["'school_day_start' applies only to next_school_day"] if start is not None else []
    # bool is an int to Python, and `limit = true` is never what anyone meant.
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < _MAX_LIMIT:
        found.append(f"'limit' must be a positive number of {unit}")
    elif unit == Unit.WORKING_DAYS and limit != int(limit):
        found.append("'limit' must be a whole number of working_days")
    return found


def _wall_clock_time(value: object) -> dt.time | None:
    """A TOML local time (08:30:00) or text ("08:30") without a zone; None when it is neither."""
    if isinstance(value, str):
        try:
            value = dt.time.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    return None
