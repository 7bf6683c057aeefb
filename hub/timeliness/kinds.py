"""Record kinds: the one way the timeliness report learns a kind of record.

Each domain declares its records once (`RecordKind`, registered from `hub/<domain>/timeliness.py`):
the report kinds it yields, the clock readings it keeps, its stages (which reading starts and
ends each, and which need a reading to exist), who receives it, how to load its readings in
Python (timelines, and the report on SQLite) and the SQL that yields the same readings (the
stage facts that PostgreSQL's report reads). Every other module (targets, the stage facts'
fill, the report's SQL and numpy paths, timelines) reads the registry and names no kind.

Readings live in the stage facts' *slots* (`SLOTS`): every record has an event, a shared time
and optionally a recorded time; receipts (first seen, acknowledged) come from the audit and the
councils; the other slots hold what a kind declares for them. A stage names its slots, and two
kinds that declare a stage of the same name must mean the same slots by it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hub.timeliness.timeline import RecordTimes

# Core slots: every record's event (its month and the report's period), recorded and shared.
CORE = ("event_at", "recorded_at", "shared_at")
# Receipt slots: the receiving council's first sight (from the audit) and acknowledgement.
RECEIPTS = ("first_seen_at", "acknowledged_at")
# A kind's own readings: the missing episode's two (named for it, their first user), then four
# for any kind.
OWN = (
    "returned_at",
    "interview_at",
    "reading_1_at",
    "reading_2_at",
    "reading_3_at",
    "reading_4_at",
)
SLOTS = (*CORE, *RECEIPTS, *OWN)
# The slots the stage facts keep in UK time as well (calendar deadlines start from them).
LOCAL = ("event_at", "recorded_at", "shared_at", "returned_at")


class Part(enum.StrEnum):
    """Which of a fact's flags a stage needs: an investigation's status changes carry the
    sharing stages, the investigation itself the receipt stages; other records carry both."""

    SHARE = "share"
    RECEIPT = "receipt"
    RECORD = "record"  # always, when its readings are there


class Receivers(enum.StrEnum):
    """Who a record's stages are measured for, one set per receiver."""

    # The councils of its children (responsible and host) and of its places: police records.
    COUNCILS = "councils"
    # The councils the declaration names row by row: records councils make (meetings, requests).
    NAMED = "named"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    start: str  # slot
    end: str  # slot
    description: str
    part: Part = Part.RECORD
    # Further slots that must hold a reading for the stage to exist (the start always must).
    requires: tuple[str, ...] = ()
    # The slot holding the record's own deadline for this stage (targets in `record_deadline`).
    deadline: str | None = None
    deadline_text: str | None = None  # "the meeting", "the time it was needed by"
    # The declaration's kinds it applies to; None: all of them.
    kinds: frozenset[str] | None = None

    def needs(self) -> tuple[str, ...]:
        """The slots that must hold a reading for the stage to exist."""
        always = {"event_at", "shared_at"}
        return tuple(s for s in dict.fromkeys((self.start, *self.requires)) if s not in always)


@dataclasses.dataclass(frozen=True)
class Period:
    """The report's records: events in [start, end), held by the hub at `as_of`."""

    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    force_code: str | None = None


@dataclasses.dataclass
class Loaded:
    """One record's timeline sources, as a declaration's Python loader finds them."""

    record_type: str
    record_id: str
    records: list[RecordTimes]  # the record; an investigation also each status change
    located: set[str] = dataclasses.field(default_factory=set)  # councils of its places
    children: set[str] = dataclasses.field(default_factory=set)  # hub Child ids
    # Receivers.NAMED: (council, the child it is about) per receiving council.
    named: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)


# ids, or the period: the records to load (exactly one is given).
Loader = Callable[["AsyncSession", Sequence[str] | None, Period | None], Awaitable[list[Loaded]]]


@dataclasses.dataclass(frozen=True)
class FactsSql:
    """The SQL (PostgreSQL) that yields a record's readings for the stage facts.

    `base` selects the records and holds `/*ONLY*/` where the refresh restricts them to the ids
    bound as an array (`only`: the id column it compares); the other statements read the
    records as `{base}`:

    * `records`: one row per fact record, with columns subject_id, record_id, kind, force_code,
      event_at, shared_at, each slot the declaration keeps (`RecordKind.slots`), and
      share_stages and receipt_stages when `row_flags`;
    * `children`: subject_id, child_id (their councils receive it; Receivers.COUNCILS);
    * `located`: subject_id, council (places' councils; Receivers.COUNCILS);
    * `named`: subject_id, council, child_id (Receivers.NAMED);
    * `depends_on`: other record type -> SQL of this kind's subject ids whose facts a change to
      those records (ids bound as `:ids`) changes.
    """

    base: str
    only: str
    records: str
    children: str | None = None
    located: str | None = None
    named: str | None = None
    row_flags: bool = False
    depends_on: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RecordKind:
    record_type: str  # as the audit, receipts and timelines name it: "Incident"
    table: str  # its main table (a migration fills the facts of the kinds whose tables exist)
    kinds: Mapping[str, str]  # report kind -> what it is, for reports
    readings: Mapping[str, str]  # slot -> what it holds for this record
    stages: tuple[Stage, ...]
    receivers: Receivers
    load: Loader
    sql: FactsSql
    # Written rows whose record's facts change: model class -> attribute holding its subject id.
    models: Mapping[type, str]
    position: int  # where its kinds and stages come in reports (lower first)
    # A pushed row's sharing, for the metrics: (kind, event time, the council whose calendar
    # applies); None: its pushes are not counted there.
    pushed: Callable[[Any], tuple[str, dt.datetime, str]] | None = None

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots its records SQL yields beyond the event and shared time."""
        return tuple(
            s for s in SLOTS if s in self.readings and s not in (*RECEIPTS, "event_at", "shared_at")
        )

    def stages_of(self, kind: str) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kinds is None or kind in s.kinds)


# The live registry. KINDS, STAGES and STAGE_SLOTS are filled in place on registration, so a
# module that imported them sees every kind declared since.
_DECLARED: dict[str, RecordKind] = {}
KINDS: dict[str, str] = {}  # report kind -> description, in report order
STAGES: dict[str, str] = {}  # stage -> description, in report order
STAGE_DEFS: dict[str, Stage] = {}
KIND_STAGES: dict[str, tuple[str, ...]] = {}  # report kind -> its stages, in STAGES order
_OWNER: dict[str, str] = {}  # report kind -> record type


class DeclarationError(ValueError):
    """A record kind that does not fit the registry."""


def register(kind: RecordKind) -> RecordKind:
    """Declare a record kind (again: the same declaration, e.g. a module reloaded, replaces)."""
    _check(kind)
    _DECLARED[kind.record_type] = kind
    _rebuild()
    # Its writes now change stage facts: the facts follow them (they read this registry).
    from hub.timeliness import facts  # noqa: F401, PLC0415

    return kind


def declared() -> tuple[RecordKind, ...]:
    """Every declaration, in report order."""
    return tuple(sorted(_DECLARED.values(), key=lambda k: (k.position, k.record_type)))


def declaration(record_type: str) -> RecordKind | None:
    return _DECLARED.get(record_type)


def of_kind(kind: str) -> RecordKind:
    return _DECLARED[_OWNER[kind]]


def applies(stage: str, kind: str) -> bool:
    return stage in KIND_STAGES.get(kind, ())


def _check(kind: RecordKind) -> None:
    problems: list[str] = []
    for stage in kind.stages:
        problems.extend(
            f"stage {stage.name}: {slot} is not among its readings"
            for slot in (stage.start, stage.end, *stage.requires, stage.deadline)
            if slot is not None and slot not in kind.readings
        )
        known = STAGE_DEFS.get(stage.name)
        owner = next((r for r in _DECLARED.values() if stage in r.stages), None)
        if known is not None and owner is not None and owner.record_type != kind.record_type:
            same = (known.start, known.end, known.needs(), known.part, known.deadline)
            if same != (stage.start, stage.end, stage.needs(), stage.part, stage.deadline):
                problems.append(f"stage {stage.name} means other readings in {owner.record_type}")
        if stage.kinds is not None and not stage.kinds <= set(kind.kinds):
            problems.append(f"stage {stage.name} names kinds the declaration does not yield")
    problems.extend(f"unknown slot {slot}" for slot in kind.readings if slot not in SLOTS)
    for name in kind.kinds:
        owner_type = _OWNER.get(name)
        if owner_type is not None and owner_type != kind.record_type:
            problems.append(f"kind {name} is declared by {owner_type} already")
    if problems:
        raise DeclarationError(f"{kind.record_type}: " + "; ".join(problems))


def _rebuild() -> None:
    ordered = declared()
    stages: dict[str, Stage] = {}
    # The sharing stages first, in their order, whoever declares them: then each kind's own.
    for declaration_ in ordered:
        for stage in declaration_.stages:
            if stage.part is not Part.RECORD:
                stages.setdefault(stage.name, stage)
    shared = sorted(stages.values(), key=lambda s: _SHARING_ORDER.get(s.name, 99))
    stages = {s.name: s for s in shared}
    for declaration_ in ordered:
        for stage in declaration_.stages:
            stages.setdefault(stage.name, stage)
    for table in (KINDS, STAGES, STAGE_DEFS, KIND_STAGES, _OWNER):
        table.clear()
    STAGE_DEFS.update(stages)
    STAGES.update({name: stage.description for name, stage in stages.items()})
    for declaration_ in ordered:
        for name, description in declaration_.kinds.items():
            KINDS[name] = description
            _OWNER[name] = declaration_.record_type
            own = {s.name for s in declaration_.stages_of(name)}
            KIND_STAGES[name] = tuple(s for s in stages if s in own)


# The police records' sharing stages, in the order reports list them.
_SHARING_ORDER = {
    "event_to_recorded": 0,
    "recorded_to_shared": 1,
    "event_to_shared": 2,
    "shared_to_first_seen": 3,
    "shared_to_acknowledged": 4,
}


# The stages of a record police share: from its event to the hub, and on to each receiving
# council's first sight and acknowledgement.
SHARING_STAGES = (
    Stage(
        "event_to_recorded",
        "event_at",
        "recorded_at",
        "event to recorded by police",
        Part.SHARE,
        requires=("recorded_at",),
    ),
    Stage(
        "recorded_to_shared",
        "recorded_at",
        "shared_at",
        "recorded by police to shared with the hub",
        Part.SHARE,
    ),
    Stage("event_to_shared", "event_at", "shared_at", "event to shared with the hub", Part.SHARE),
    Stage(
        "shared_to_first_seen",
        "shared_at",
        "first_seen_at",
        "shared to first seen by the council",
        Part.RECEIPT,
    ),
    Stage(
        "shared_to_acknowledged",
        "shared_at",
        "acknowledged_at",
        "shared to acknowledged by the council",
        Part.RECEIPT,
    ),
)


SHARING_READINGS = {
    "event_at": "the event",
    "recorded_at": "recorded by police",
    "shared_at": "shared with the hub",
    "first_seen_at": "first seen by the council (from the audit)",
    "acknowledged_at": "acknowledged by the council",
}
