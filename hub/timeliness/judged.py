"""The PostgreSQL report's stages judged in numpy: delays, verdicts, counts and breaches.

A national year has about two million stage facts (`facts`), each with seven clock readings
and up to eight targets to be judged against. Judging them in SQL (a deadline, a verdict and a
breach delay per target and row, materialised, then grouped) took seven seconds. Here
`report_sql`'s stages part copies each fact's raw readings out in binary (`COPY ... (FORMAT
binary)`: a `timestamptz` is eight bytes, microseconds since 2000), with only what needs the
database worked out there: the group keys' hashes, which stages apply (`report_sql.STAGE_SQL`)
and the calendar deadlines (the calendar arrays `extract` binds). numpy reads the rows in place
and does the rest with whole-column arithmetic, the way `stats.measure` does it row by row:

* each stage's delay, once ended by `as_of` (`end - start`, exact in microseconds);
* each target's verdict: within or breached once ended, breached while open once the deadline
  has passed, pending before;
* the additive figures per finest group (force, council, kind, month and which stages apply),
  as `extract._Counts` adds them up into each grouping;
* the breaches that can be listed: every breach at least as long as the `limit`-th longest
  (ties kept), by row and target, for `extract` to read the records' ids for and order.

The medians and 90th percentiles are ranked from the same delays (`percentiles.ranks`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hub.timeliness import kinds
from hub.timeliness.percentiles import GROUPINGS, NO_DELAY, BadDelays, Keys
from hub.timeliness.targets import KINDS, STAGES, Target, TargetSet, Unit

# The clock readings `report_sql`'s stages part copies, in this order, when no kind declares a
# reading beyond them (`copied`); a missing one is '-infinity' (the smallest int8), which keeps
# every row the same width.
READINGS = (
    "event_at",
    "recorded_at",
    "shared_at",
    "first_seen_at",
    "acknowledged_at",
    "returned_at",
    "interview_at",
)


def copied() -> tuple[str, ...]:
    """The readings the stages part copies: `READINGS`, then every other slot a stage of a
    declared kind starts, ends, needs or is due at (`kinds.SLOTS` order)."""
    used = {
        slot
        for stage in kinds.STAGE_DEFS.values()
        for slot in (stage.start, stage.end, *stage.requires, stage.deadline)
        if slot is not None
    }
    return (*READINGS, *(s for s in kinds.SLOTS if s in used and s not in READINGS))


def folded() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The copy's reading columns: each named by its first slot, with the slots it holds.

    No declared kind holds two slots of one column (a meeting has no receipts, a police record
    no reading of a meeting's), and a fact's slots its kind does not hold are NULL, so the
    stages part copies the one that is there (`coalesce`) and `delays_of` gives it back to the
    kinds that hold it: fewer columns to write, send and read for every fact."""
    holders = [set(declared.readings) for declared in kinds.declared()]
    columns: list[list[str]] = []
    for slot in copied():
        for column in columns:
            if not any(slot in held and set(column) & held for held in holders):
                column.append(slot)
                break
        else:
            columns.append([slot])
    return tuple((column[0], tuple(column)) for column in columns)


def deadline_columns(targets: TargetSet) -> tuple[tuple[int, ...], ...]:
    """The copy's calendar deadline columns, each the targets (by index) whose deadline it holds.

    A fact is of one kind, and a calendar target judges one kind's facts, so targets of
    different kinds share a column (the stages part writes the one of the fact's kind): two
    columns for four targets today, fewer bytes to write, send and read for every fact."""
    columns: list[list[int]] = []
    for j, target in enumerate(targets.targets):
        if not target.unit.uses_calendar:
            continue
        for column in columns:
            if all(targets.targets[other].kind != target.kind for other in column):
                column.append(j)
                break
        else:
            columns.append([j])
    return tuple(tuple(column) for column in columns)


MISSING = np.iinfo(np.int64).min
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # PostgreSQL's binary timestamps count from here
_US = dt.timedelta(microseconds=1)
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT4 = [("size", ">i4"), ("value", ">i4")]
_INT8 = [("size", ">i4"), ("value", ">i8")]


def _allowance(target: Target) -> int:
    """An hours target's limit in microseconds (PostgreSQL's `float8 * interval '1 hour'`)."""
    return round((target.limit_hours or 0) * 3_600_000_000)


def microseconds(moment: dt.datetime) -> int:
    """An aware instant as PostgreSQL's binary `timestamptz`: microseconds since 2000 (UTC)."""
    return (moment - EPOCH) // _US


def instant(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def row_type(calendar_targets: int, readings: Sequence[str] = READINGS) -> np.dtype[Any]:
    """The stages part's binary row: the fact's address (`ctid`), four hashed group keys, the
    applying stages as bits, the clock readings, and the calendar deadlines (`calendar_targets`
    columns: `deadline_columns`)."""
    return np.dtype(
        [
            ("fields", ">i2"),
            ("tid", [("size", ">i4"), ("block", ">u4"), ("offset", ">u2")]),
            *((f"k{i}", _INT4) for i in range(len(GROUPINGS))),
            ("applies", _INT4),
            *((reading, _INT8) for reading in readings),
            *((f"dl{j}", _INT8) for j in range(calendar_targets)),
        ]
    )


@dataclasses.dataclass(frozen=True)
class Facts:
    """The stage facts as columns."""

    tids: npt.NDArray[Any]  # (block, offset) per row
    keys: list[npt.NDArray[np.int64]]  # hashed force, council, kind, month
    applies: npt.NDArray[np.int64]  # bit i: stage i applies
    readings: dict[str, npt.NDArray[np.int64]]
    deadlines: list[npt.NDArray[np.int64]]  # per deadline column (`deadline_columns`)

    def tids_of(self, rows: Sequence[int]) -> list[str]:
        """The rows' addresses as PostgreSQL writes a `tid`: "(block,offset)"."""
        blocks = self.tids["block"][rows].tolist()
        offsets = self.tids["offset"][rows].tolist()
        return [f"({block},{offset})" for block, offset in zip(blocks, offsets, strict=True)]


Chunk = bytes | bytearray | memoryview


def read(data: Chunk, *, calendar_targets: int, readings: Sequence[str] = READINGS) -> Facts:
    """A binary COPY of the stages part (holding `readings`), read in place."""
    return read_all([[data]], calendar_targets=calendar_targets, readings=readings)


def read_all(
    copies: Sequence[Sequence[Chunk]],
    *,
    calendar_targets: int,
    readings: Sequence[str] = READINGS,
) -> Facts:
    """Binary COPYs of the stages part (slices of one table, holding `readings`), each as the
    chunks it arrived in, read as one: each column written once into an array the size of them
    all, a chunk at a time (a chunk stays in the processor's cache while each of its columns is
    taken out of it; one pass over a whole copy per column read it from memory twenty times)."""
    kind = row_type(calendar_targets, readings)
    streams = [_Stream(chunks, kind) for chunks in copies]
    n = sum(stream.rows for stream in streams)

    def column() -> npt.NDArray[np.int64]:
        return np.empty(n, dtype=np.int64)

    facts = Facts(
        tids=np.empty(n, dtype=[("block", np.uint32), ("offset", np.uint16)]),
        keys=[column() for _ in GROUPINGS],
        applies=column(),
        readings={name: column() for name in readings},
        deadlines=[column() for _ in range(calendar_targets)],
    )
    targets = [
        (facts.tids["block"], ("tid", "block")),
        (facts.tids["offset"], ("tid", "offset")),
        *((facts.keys[i], (f"k{i}", "value")) for i in range(len(GROUPINGS))),
        (facts.applies, ("applies", "value")),
        *((facts.readings[name], (name, "value")) for name in readings),
        *((facts.deadlines[j], (f"dl{j}", "value")) for j in range(calendar_targets)),
    ]
    at = 0
    for stream in streams:
        for rows in stream:
            high = at + rows.size
            for out, (field, value) in targets:
                out[at:high] = rows[field][value]
            at = high
    return facts


_FIELDS_AND_FLAGS = len(_SIGNATURE) + 4
_BATCH_BYTES = 1 << 20


class _Stream:
    """One binary COPY, as the chunks it arrived in: its header checked, its row count, and
    its rows a chunk at a time (a row split between two chunks joined)."""

    def __init__(self, chunks: Sequence[Chunk], kind: np.dtype[Any]) -> None:
        self.kind = kind
        self.chunks = [memoryview(chunk).cast("B") for chunk in chunks if len(chunk)]
        head = self._head(_FIELDS_AND_FLAGS + 4)
        if head[: len(_SIGNATURE)] != _SIGNATURE:
            raise BadDelays("not a binary COPY stream")
        extension = int.from_bytes(head[_FIELDS_AND_FLAGS:], "big")
        self.start = _FIELDS_AND_FLAGS + 4 + extension  # the header extension skipped
        total = sum(len(chunk) for chunk in self.chunks)
        body = total - self.start - 2
        if body < 0 or body % kind.itemsize or self._tail() != b"\xff\xff":
            raise BadDelays("the COPY stream's rows are not the expected width")
        self.rows = body // kind.itemsize

    def _head(self, size: int) -> bytes:
        head = b""
        for chunk in self.chunks:
            head += bytes(chunk[: size - len(head)])
            if len(head) == size:
                return head
        raise BadDelays("not a binary COPY stream")

    def _tail(self) -> bytes:
        tail = b""
        for chunk in reversed(self.chunks):
            tail = bytes(chunk[-(2 - len(tail)) :]) + tail
            if len(tail) == 2:  # noqa: PLR2004 - the trailer's two bytes
                return tail
        return tail

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        # The driver's chunks are small (tens of kilobytes) and end mid-row: joined into
        # batches of about a megabyte (a copy that stays in the cache), each read whole rows at
        # a time, the rest of a row carried into the next.
        width, skip, left = self.kind.itemsize, self.start, self.rows * self.kind.itemsize
        pending: list[Chunk] = []
        size = 0
        for chunk in self.chunks:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            pending.append(chunk[skip:])
            size, skip = size + len(chunk) - skip, 0
            if size < _BATCH_BYTES:
                continue
            data = b"".join(pending)
            whole = min(size // width * width, left)
            if whole:
                yield self._rows(memoryview(data)[:whole])
                left -= whole
            pending, size = [data[whole:]], size - whole
        if left:
            yield self._rows(memoryview(b"".join(pending))[:left])

    def _rows(self, data: Chunk) -> npt.NDArray[Any]:
        rows = np.frombuffer(data, dtype=self.kind)
        if bool((rows["fields"] != len(self.kind.names or ()) - 1).any()):
            raise BadDelays("the COPY stream's rows hold other columns")
        return rows


class Candidate(NamedTuple):
    """A breach that may be listed: the row, the target, its start, deadline and delay (a
    tuple: a national year with no limit makes a million)."""

    row: int
    target: int
    start: dt.datetime
    end: dt.datetime | None  # None: still open at as_of
    deadline: dt.datetime
    delay_us: int


@dataclasses.dataclass(frozen=True)
class Judged:
    positions: list[npt.NDArray[np.int64]]  # each grouping's key as its place in `Keys`, from 1
    delays: list[npt.NDArray[np.int64]]  # per stage, NO_DELAY where not ended
    counts: list[dict[str, Any]]  # per finest group: its names and `extract._Counts` figures
    candidates: list[Candidate]


@dataclasses.dataclass(frozen=True)
class _Breached:
    """One target's breached rows, with what a listing of each says."""

    target: int
    rows: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]  # MISSING while still open
    deadlines: npt.NDArray[np.int64]
    delays: npt.NDArray[np.int64]  # to as_of while still open


def judge(
    facts: Facts,
    *,
    keys: Keys,
    targets: TargetSet,
    stages: Sequence[tuple[str, str]],
    as_of: dt.datetime,
    limit: int | None,
) -> Judged:
    """Every fact judged against `targets` at `as_of`; `stages` the (start, end) reading of
    each stage, in `targets.STAGES` order; `limit` how many breaches can be listed (None:
    every one). A stage applies to a fact only if its kind declares it (`kinds`), and only
    where the copy holds its readings."""
    timed = delays_of(facts, keys=keys, stages=stages, as_of=as_of)
    return verdicts(timed, facts, keys=keys, targets=targets, stages=stages, limit=limit)


@dataclasses.dataclass(frozen=True)
class Delays:
    """Each stage's delay per fact (`delays_of`): what the ranks need, and the verdicts."""

    now: int
    positions: list[npt.NDArray[np.int64]]  # each grouping's key as its place in `Keys`, from 1
    applying: npt.NDArray[np.int64]  # the stages that apply, as bits
    applies: list[npt.NDArray[np.bool_]]  # per stage
    readings: dict[str, npt.NDArray[np.int64]]  # every slot, MISSING where not copied
    delays: list[npt.NDArray[np.int64]]  # per stage, NO_DELAY where not ended
    ended: list[npt.NDArray[np.bool_]]  # per stage


def delays_of(
    facts: Facts, *, keys: Keys, stages: Sequence[tuple[str, str]], as_of: dt.datetime
) -> Delays:
    """The group keys' places and each stage's delay, once ended by `as_of` (`judge`)."""
    if len(stages) != len(STAGES):
        raise ValueError("judge needs each stage's (start, end) readings, in STAGES order")
    now = microseconds(as_of)
    positions = [keys.positions(name, key) for name, key in zip(GROUPINGS, facts.keys, strict=True)]
    kind = positions[GROUPINGS.index("kind")]
    applying = facts.applies & _declared_stages(keys)[kind]
    applies = [(applying >> i) & 1 == 1 for i in range(len(STAGES))]
    nowhere = np.full(applying.size, MISSING, dtype=np.int64)
    readings = _unfolded(facts, kind, keys, nowhere)
    delays: list[npt.NDArray[np.int64]] = []
    ended: list[npt.NDArray[np.bool_]] = []
    for i, (start, end) in enumerate(stages):
        finish, began = readings[end], readings[start]
        done = applies[i] & (finish != MISSING) & (finish <= now) & (began != MISSING)
        ended.append(done)
        delays.append(np.where(done, finish - began, NO_DELAY))
    return Delays(now, positions, applying, applies, readings, delays, ended)


def _unfolded(
    facts: Facts,
    kind: npt.NDArray[np.int64],
    keys: Keys,
    nowhere: npt.NDArray[np.int64],
) -> dict[str, npt.NDArray[np.int64]]:
    """Every slot's readings, from the copy's columns (`folded`): a column's value is a slot's
    for the facts whose kind holds that slot, MISSING for the others."""
    readings = dict.fromkeys(kinds.SLOTS, nowhere)
    for name, slots in folded():
        column = facts.readings.get(name)
        if column is None:
            continue
        if len(slots) == 1:
            readings[name] = column
            continue
        for slot in slots:
            # Per kind position (from 1; 0 for none), whether its kind holds the slot.
            holds = [False] + [slot in kinds.of_kind(each).readings for each in keys.kinds]
            readings[slot] = np.where(np.asarray(holds)[kind], column, MISSING)
    return readings


def verdicts(
    timed: Delays,
    facts: Facts,
    *,
    keys: Keys,
    targets: TargetSet,
    stages: Sequence[tuple[str, str]],
    limit: int | None,
) -> Judged:
    """Each target's verdicts on the delays (`judge`), counted per finest group, and the
    breaches that can be listed."""
    all_kinds, all_stages = list(KINDS), list(STAGES)
    now, applies, readings, ended = timed.now, timed.applies, timed.readings, timed.ended
    kind = timed.positions[GROUPINGS.index("kind")]
    # Each target judges its kind's facts only: the rows of each kind found once.
    of_kind = {k: np.flatnonzero(kind == k) for k in np.unique(kind).tolist()}
    nothing = np.zeros(0, dtype=np.int64)
    within: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]] = []
    breached: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]] = []
    found: list[_Breached] = []
    # Each calendar target's deadlines: a column its kind's facts hold (`deadline_columns`).
    column_of = {j: c for c, held in enumerate(deadline_columns(targets)) for j in held}
    for j, target in enumerate(targets.targets):
        i = all_stages.index(target.stage)
        rows = of_kind.get(all_kinds.index(target.kind) + 1, nothing)
        rows = rows[applies[i][rows]]
        began, finish = readings[stages[i][0]][rows], readings[stages[i][1]][rows]
        if target.unit is Unit.HOURS:
            deadline = began + _allowance(target)
        else:
            if target.unit is Unit.RECORD_DEADLINE:
                due = kinds.STAGE_DEFS[target.stage].deadline
                missing = np.full(rows.size, MISSING, dtype=np.int64)
                deadline = readings[due][rows] if due is not None else missing
            else:
                deadline = facts.deadlines[column_of[j]][rows]
            dated = deadline != MISSING
            rows, began, finish, deadline = (
                rows[dated],
                began[dated],
                finish[dated],
                deadline[dated],
            )
        done = ended[i][rows]
        inside = done & (finish <= deadline)
        late = (done & (finish > deadline)) | (~done & (deadline < now))
        within.append((rows, inside))
        breached.append((rows, late))
        still = ~done[late]
        found.append(
            _Breached(
                target=j,
                rows=rows[late],
                starts=began[late],
                ends=np.where(still, MISSING, finish[late]),
                deadlines=deadline[late],
                delays=np.where(still, now - began[late], timed.delays[i][rows[late]]),
            )
        )
    return Judged(
        positions=timed.positions,
        delays=timed.delays,
        counts=_counts(timed.positions, timed.applying, timed.delays, within, breached, keys=keys),
        candidates=_candidates(found, limit=limit),
    )


def _declared_stages(keys: Keys) -> npt.NDArray[np.int64]:
    """Per kind position (from 1; 0 for none), the bits of the stages its kind declares."""
    order = {stage: index for index, stage in enumerate(STAGES)}
    bits = [0]
    bits += [sum(1 << order[s] for s in kinds.KIND_STAGES.get(name, ())) for name in keys.kinds]
    return np.asarray(bits, dtype=np.int64)


def _counts(
    positions: list[npt.NDArray[np.int64]],
    applies: npt.NDArray[np.int64],
    delays: list[npt.NDArray[np.int64]],
    within: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]],
    breached: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]],
    *,
    keys: Keys,
) -> list[dict[str, Any]]:
    """Per finest group: rows, each stage's ended count and longest delay, each target's within
    and breached counts (`extract._Counts` reads them; `within` and `breached` give each
    target's judged rows and their verdicts), with the group's names."""
    if not applies.size:
        return []
    stage_count = len(delays)
    # One integer per finest group (its key positions and applying stages), to sort rows by.
    code = np.zeros(applies.size, dtype=np.int64)
    for grouping, part in zip(GROUPINGS, positions, strict=True):
        code = code * (len(keys.names(grouping)) + 1) + part
    code = code * (1 << stage_count) + applies
    order = np.argsort(code)  # equal codes in any order: a group's rows share every name
    ordered = code[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    starts = np.flatnonzero(first)
    size = starts.size
    group = np.empty_like(order)
    group[order] = np.cumsum(first) - 1
    columns: list[npt.NDArray[Any]] = [np.bincount(group, minlength=size)]
    longest = []
    for delay in delays:
        columns.append(np.bincount(group, weights=delay != NO_DELAY, minlength=size))
        longest.append(np.maximum.reduceat(delay[order], starts))
    for (rows, inside), (_, late) in zip(within, breached, strict=True):
        columns += [
            np.bincount(group[rows], weights=inside, minlength=size),
            np.bincount(group[rows], weights=late, minlength=size),
        ]
    # Each group named by its first row; the figures as rows of Python numbers at once
    # (a national year has tens of thousands of groups, each with dozens of figures).
    firsts = order[starts]
    names = [
        [keys.names(grouping)[at - 1] for at in part[firsts].tolist()]
        for grouping, part in zip(GROUPINGS, positions, strict=True)
    ]
    counted = np.column_stack([column.astype(np.float64) for column in columns]).tolist()
    maxima = np.column_stack(longest).tolist() if longest else [[] for _ in range(size)]
    found = []
    for g, bits in enumerate(applies[firsts].tolist()):
        figures = counted[g]
        stats: list[float | None] = [float((bits >> i) & 1) for i in range(stage_count)]
        stats.append(figures[0])
        stats += figures[1 : 1 + stage_count]
        stats += [None if m == NO_DELAY else float(m) for m in maxima[g]]
        stats += figures[1 + stage_count :]
        named = (names[0][g], names[1][g], names[2][g], names[3][g])
        found.append(
            dict(zip(("force_code", "council_code", "kind", "month"), named, strict=True))
            | {"stats": stats}
        )
    return found


def _candidates(found: list[_Breached], *, limit: int | None) -> list[Candidate]:
    """The breaches at least as long as the `limit`-th longest (ties kept: the listing orders
    equal delays by target, record and council, which only `extract` reads)."""
    if limit == 0:
        return []
    delays = np.concatenate([each.delays for each in found] or [np.zeros(0, np.int64)])
    threshold = MISSING
    if limit is not None and delays.size > limit:
        threshold = int(np.partition(delays, delays.size - limit)[delays.size - limit])
    listed: list[Candidate] = []
    for each in found:
        keep = each.delays >= threshold
        # Whole columns to Python lists first: a national year with no limit lists a million.
        listed += [
            Candidate(
                row=row,
                target=each.target,
                start=instant(start),
                end=None if end == MISSING else instant(end),
                deadline=instant(deadline),
                delay_us=delay,
            )
            for row, start, end, deadline, delay in zip(
                each.rows[keep].tolist(),
                each.starts[keep].tolist(),
                each.ends[keep].tolist(),
                each.deadlines[keep].tolist(),
                each.delays[keep].tolist(),
                strict=True,
            )
        ]
    return listed
