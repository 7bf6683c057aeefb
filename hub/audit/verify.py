"""`audit verify`: walk the chain in seq order, re-hash every event, report the first problem.

Constant memory at any length of log: SQLite is read in keyset batches; PostgreSQL streams
segments with COPY, so the server reads and formats the next rows while this process hashes
(request-and-wait batches left either side idle half the time).

What each reason means (`Problem.seq` names the first event concerned):

- altered: an event's content no longer matches its hash;
- deleted: an event is missing (a seq gap, a link to an event that is gone, a cut tail) and
  no lawful erasure accounts for it;
- inserted: an event that is not part of the chain (chained past, in an erased range, or
  appended without moving the head);
- reordered: an event is stored after one it does not follow;
- child_index: `audit_event_child` disagrees with the events' child ids;
- record_index: `audit_event_record` disagrees with the records the events list;
- recipient_index: `audit_event_recipient` disagrees with the recipients the events' details
  list (fanned-out subscription deliveries).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain
from hub.audit.chain import CHAIN_VERSION, CONTENT_COLUMNS, Erasure, Head, TimeText
from hub.audit.models import GENESIS_HASH

_EVENTS, _CHILDREN, _RECORDS = chain.EVENTS, chain.CHILDREN, chain.RECORDS
_RECIPIENTS = chain.RECIPIENTS
_CONTENT = slice(3, 3 + len(CONTENT_COLUMNS))
_CONTENT_V1 = slice(3, 3 + len(CONTENT_COLUMNS) - 1)  # a version 1 event has no `records`
_RECORDS_AT = 3 + CONTENT_COLUMNS.index("records")
SELECT_BATCH = 10_000
COPY_SEGMENT = 100_000
_PENDING_CHUNKS = 16


class Reason(enum.StrEnum):
    ALTERED = "altered"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CHILD_INDEX = "child_index"
    RECORD_INDEX = "record_index"
    RECIPIENT_INDEX = "recipient_index"


_INDEX_REASONS = frozenset({Reason.CHILD_INDEX, Reason.RECORD_INDEX, Reason.RECIPIENT_INDEX})


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: int
    reason: Reason
    message: str  # seqs and hashes only: never an event's content


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    checked: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str
    erased_through: int | None
    seconds: float
    problem: Problem | None
    rechecked: int = 0  # events whose database-formatted time needed a second look

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def rate(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0


def _characters_of(column: Any, text: str) -> Any:
    """How many characters of `column` belong to occurrences of `text`."""
    return sa.func.length(column) - sa.func.length(sa.func.replace(column, text, ""))


def _record_marks() -> Any:
    """Twice the records an event lists: each is a JSON object, and only an object's opening
    brace can stand before an unescaped quote (`{"`, two characters). A version 1 event has its
    one record (or none) in its own columns. (Doubled, not divided: SQL division of integers is
    not integer division everywhere.)
    """
    return sa.case(
        (_EVENTS.c.records.is_not(None), _characters_of(_EVENTS.c.records, '{"')),
        (_EVENTS.c.record_type.is_not(None), 2),
        else_=0,
    )


# Each recipient a detail lists names its client under this key, which nothing else in a
# detail uses (a key's quote cannot be escaped, a value's can): its characters count them.
_RECIPIENT_KEY = '"client_id":'


def _recipient_characters() -> Any:
    """Characters of `_RECIPIENT_KEY` in the event's detail (0 for none): the count of the
    recipients it lists, times the key's length. Should anything else ever use the key, the
    count is only off, and the segment is compared event by event (exactly) instead."""
    return sa.func.coalesce(_characters_of(_EVENTS.c.detail, _RECIPIENT_KEY), 0)


def _recipient_marks(characters: int) -> int:
    return characters // len(_RECIPIENT_KEY) * 2


def _walk_query(*, after: int, through: int | None, size: int) -> sa.Select[Any]:
    """seq, prev_hash, hash, the content (time as canonical text), the child id list's quotes,
    the record marks (twice the records) and the recipients' key characters.
    """
    content = (
        TimeText(_EVENTS.c.occurred_at) if name == "occurred_at" else _EVENTS.c[name]
        for name in CONTENT_COLUMNS
    )
    # A child id never holds a quote: the list's quotes are twice its ids.
    quotes = _characters_of(_EVENTS.c.child_ids, '"')
    query = sa.select(
        _EVENTS.c.seq,
        _EVENTS.c.prev_hash,
        _EVENTS.c.hash,
        *content,
        quotes,
        _record_marks(),
        _recipient_characters(),
    )
    query = query.where(_EVENTS.c.seq > after)
    if through is not None:
        query = query.where(_EVENTS.c.seq <= through)
    return query.order_by(_EVENTS.c.seq).limit(size)


@dataclasses.dataclass(frozen=True)
class _Suspect:
    """Where the walk stopped; `_classify` turns it into a named problem."""

    kind: str  # "start", "gap", "link" or "hash"
    seq: int
    prev_hash: str
    stored_hash: str
    expected_seq: int
    last_seq: int | None  # the last event that passed, and what it linked to
    last_prev: str
    quotes: int = 0  # of its child ids, for the child-index check should it pass after all
    records: int = 0  # twice the records it lists, for the record-index check likewise
    recipients: int = 0  # twice the recipients its detail lists, likewise


@dataclasses.dataclass
class _Segment:
    """The events of one batch or COPY that passed, for the child-index check."""

    first_seq: int | None = None
    last_seq: int | None = None
    quotes: int = 0  # twice the child ids the events name
    records: int = 0  # twice the records the events list
    recipients: int = 0  # twice the recipients the events' details list
    delivered: int = 0


class _Walk:
    """The chain check's state: which seq comes next and what it must link to."""

    def __init__(self, known_erasures: dict[int, Erasure]) -> None:
        self.erasures = known_erasures
        self.checked = 0
        self.rechecked = 0
        self.first_seq: int | None = None
        self.erased_through: int | None = None
        self.next_seq = 1
        self.next_prev = GENESIS_HASH
        self.last_seq: int | None = None
        self.last_prev = GENESIS_HASH
        self.suspect: _Suspect | None = None
        self.segment = _Segment()

    def _start(self, seq: int) -> None:
        """The first stored event starts the chain, or follows a lawful erasure's anchor."""
        self.first_seq = self.next_seq = seq
        if seq == 1:
            return
        erasure = self.erasures.get(seq - 1)
        if erasure is None:
            self.suspect = _Suspect("start", seq, "", "", seq, None, GENESIS_HASH)
            return
        self.erased_through, self.next_prev = erasure.last_seq, erasure.anchor_hash

    def feed(self, rows: Sequence[Sequence[Any]]) -> None:
        """Check rows in seq order until the first suspect; ignore rows after it.

        The hot loop of `verify`: locals only, one JSON encoding and one sha256 per event.
        """
        self.segment.delivered += len(rows)
        if self.first_seq is None and rows:
            self._start(rows[0][0])
        if self.suspect is not None or not rows:
            return
        next_seq, next_prev, last_seq, last_prev = (
            self.next_seq,
            self.next_prev,
            self.last_seq,
            self.last_prev,
        )
        encode, sha256, content, v1 = chain.encode_json, hashlib.sha256, _CONTENT, _CONTENT_V1
        passed = quotes = records = recipients = 0
        marks = _recipient_marks
        for row in rows:
            seq, prev_hash, stored = row[0], row[1], row[2]
            if seq != next_seq:
                kind = "gap"
            elif prev_hash != next_prev:
                kind = "link"
            elif (
                sha256(
                    (
                        prev_hash
                        + (
                            encode([CHAIN_VERSION, *row[content]])
                            if row[_RECORDS_AT] is not None
                            else encode([1, *row[v1]])
                        )
                    ).encode()
                ).hexdigest()
                != stored
            ):
                kind = "hash"
            else:
                last_seq, last_prev, next_seq, next_prev = seq, prev_hash, seq + 1, stored
                passed += 1
                quotes += row[-3]
                records += row[-2]
                recipients += marks(row[-1])
                continue
            self.suspect = _Suspect(
                kind,
                seq,
                prev_hash,
                stored,
                next_seq,
                last_seq,
                last_prev,
                row[-3],
                row[-2],
                marks(row[-1]),
            )
            break
        self._passed(passed, quotes, records, recipients, first=rows[0][0])
        self.next_seq, self.next_prev, self.last_seq, self.last_prev = (
            next_seq,
            next_prev,
            last_seq,
            last_prev,
        )

    def _passed(
        self, count: int, quotes: int, records: int, recipients: int, *, first: int
    ) -> None:
        if not count:
            return
        segment = self.segment
        if segment.first_seq is None:
            segment.first_seq = first
        segment.last_seq = first + count - 1  # passed events are consecutive from `first`
        segment.quotes += quotes
        segment.records += records
        segment.recipients += recipients
        self.checked += count

    def accept(self, suspect: _Suspect) -> None:
        """Take an event the fast path missed but `chain.canonical` confirmed."""
        self.suspect = None
        self.last_seq, self.last_prev = suspect.seq, suspect.prev_hash
        self.next_seq, self.next_prev = suspect.seq + 1, suspect.stored_hash
        self.checked += 1
        self.rechecked += 1

    def finish(self, head: Head | None) -> Problem | None:
        """The last event must be the one the head names: a cut tail or a stray append shows."""
        last_seq, last_hash = self.next_seq - 1, self.next_prev
        if head is None:
            return Problem(last_seq + 1, Reason.DELETED, "the chain head row is missing")
        if last_seq < head.last_seq:
            return Problem(
                last_seq + 1,
                Reason.DELETED,
                f"events {last_seq + 1} to {head.last_seq} are missing from the end",
            )
        if last_seq > head.last_seq:
            return Problem(
                head.last_seq + 1,
                Reason.INSERTED,
                f"events after {head.last_seq} were not appended through the chain head",
            )
        if last_hash != head.last_hash:
            return Problem(last_seq, Reason.ALTERED, "the last event is not the one the head names")
        return None


# --- reading: keyset batches (SQLite) or streamed COPY segments (PostgreSQL) --------------------

_NULLABLE = tuple(
    3 + index for index, name in enumerate(CONTENT_COLUMNS) if _EVENTS.c[name].nullable
)
_COPY_NULL = "\x1f"  # not backslash-N: then most lines would need unescaping
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_COPY_ESCAPE = re.compile(r"\\(.)")


def _unescape(text: str) -> str:
    return _COPY_ESCAPE.sub(lambda match: _COPY_ESCAPES[match.group(1)], text)


def _copy_rows(text: str) -> list[list[Any]]:
    """Parse COPY's text format: tab-separated, `_COPY_NULL` for NULL, backslash escapes.

    A value that happened to equal `_COPY_NULL` would be read as NULL, miss its hash, and be
    re-checked from its typed values (`_confirmed_in_python`): slower, never wrong.
    """
    rows: list[list[Any]] = []
    for line in text.split("\n")[:-1]:
        row: list[Any] = line.split("\t")
        if "\\" in line:  # an escaped character: rare, field by field
            row = [_unescape(field) if "\\" in field else field for field in row]
        if _COPY_NULL in line:
            for index in _NULLABLE:
                if row[index] == _COPY_NULL:
                    row[index] = None
        row[0], row[-3], row[-2], row[-1] = int(row[0]), int(row[-3]), int(row[-2]), int(row[-1])
        rows.append(row)
    return rows


class _CopyReader:
    """Takes COPY's data as it arrives and has a worker thread parse and hash it.

    asyncpg stops reading the socket while the sink runs, so hashing in the sink would leave
    the server idle; handing chunks to a thread keeps it formatting the next rows meanwhile.
    At most `_PENDING_CHUNKS` wait (constant memory): beyond that the sink waits for the worker.
    """

    def __init__(self, walk: _Walk) -> None:
        self.walk = walk
        self.tail = b""
        self.error: Exception | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.worker: asyncio.Future[None] | None = None

    async def __call__(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
        if self.worker is not None and not self.worker.done():
            if len(self.chunks) > _PENDING_CHUNKS:
                await self.worker
            return
        self.worker = asyncio.get_running_loop().run_in_executor(None, self._drain)

    async def finish(self) -> None:
        if self.worker is not None:
            await self.worker
        self._drain()  # what arrived as the last worker was finishing
        if self.error is not None:
            raise self.error

    def _drain(self) -> None:
        while self.chunks:
            data = self.chunks.popleft()
            if self.walk.suspect is not None or self.error is not None:
                continue  # drain the rest of this segment unread
            buffer = self.tail + data
            end = buffer.rfind(b"\n") + 1
            self.tail = buffer[end:]
            try:
                if end:
                    self.walk.feed(_copy_rows(buffer[:end].decode()))
            except (ValueError, KeyError, IndexError) as error:
                self.error = error  # raised once COPY has finished and the connection is free


async def _copy_segment(session: AsyncSession, walk: _Walk, query: sa.Select[Any]) -> None:
    connection = await session.connection()  # the session's transaction, and its snapshot
    driver: Any = (await connection.get_raw_connection()).driver_connection
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    reader = _CopyReader(walk)
    try:
        await driver.copy_from_query(sql, output=reader, null=_COPY_NULL)
    finally:
        await reader.finish()


async def _select_batch(session: AsyncSession, walk: _Walk, query: sa.Select[Any]) -> None:
    walk.feed((await session.execute(query)).all())


# --- naming the problem (runs once, after the walk stopped) -------------------------------------


async def _confirmed_in_python(session: AsyncSession, suspect: _Suspect) -> bool:
    """Hash one event's values as read through the hub's types, with `chain.canonical`.

    The walk hashes the database's rendering of the time; this is the slow, literal check.
    """
    query = sa.select(*(_EVENTS.c[name] for name in CONTENT_COLUMNS)).where(
        _EVENTS.c.seq == suspect.seq
    )
    content = (await session.execute(query)).one()
    return chain.event_hash(suspect.prev_hash, content) == suspect.stored_hash


async def _scalar(session: AsyncSession, query: sa.Select[Any]) -> Any:
    return (await session.execute(query)).scalar_one_or_none()


def _unexplained_start(walk: _Walk, seq: int) -> Problem:
    for erasure in walk.erasures.values():
        if erasure.first_seq <= seq <= erasure.last_seq:
            return Problem(seq, Reason.INSERTED, f"seq {seq} lies in a range erased lawfully")
    earlier = [erasure.last_seq for erasure in walk.erasures.values() if erasure.last_seq < seq]
    missing = max(earlier, default=0) + 1
    return Problem(
        missing, Reason.DELETED, f"events {missing} to {seq - 1} are missing and no erasure says so"
    )


async def _broken_link(session: AsyncSession, suspect: _Suspect) -> Problem:
    seq = suspect.seq
    if suspect.last_seq is not None and suspect.prev_hash == suspect.last_prev:
        # Two events claim the same predecessor: the first of them was slipped in between.
        return Problem(
            suspect.last_seq, Reason.INSERTED, f"seq {seq} is chained past seq {suspect.last_seq}"
        )
    # No index on hash: this runs once, when verify has already found a problem.
    query = sa.select(_EVENTS.c.seq).where(_EVENTS.c.hash == suspect.prev_hash).limit(1)
    predecessor = await _scalar(session, query)
    if predecessor is not None:
        return Problem(seq, Reason.REORDERED, f"seq {seq} is chained after seq {predecessor}")
    return Problem(
        seq, Reason.DELETED, f"the event seq {seq} is chained to is missing (or was replaced)"
    )


async def _classify(session: AsyncSession, walk: _Walk, suspect: _Suspect) -> Problem:
    seq = suspect.seq
    if suspect.kind == "start":
        return _unexplained_start(walk, seq)
    if suspect.kind == "gap":
        first = suspect.expected_seq
        return Problem(first, Reason.DELETED, f"events {first} to {seq - 1} are missing")
    if suspect.kind == "link":
        return await _broken_link(session, suspect)
    following = sa.select(_EVENTS.c.prev_hash).where(_EVENTS.c.seq == seq + 1)
    if await _scalar(session, following) == suspect.prev_hash:
        return Problem(seq, Reason.INSERTED, f"seq {seq + 1} is chained past seq {seq}")
    return Problem(seq, Reason.ALTERED, f"seq {seq} does not match its hash")


@dataclasses.dataclass(frozen=True)
class _Index:
    """An index beside the chain, and how to read what the events say it must hold."""

    reason: Reason
    name: str
    table: sa.Table
    entry: tuple[str, ...]  # the index's columns, after seq, that make an entry
    listed: tuple[str, ...]  # the event columns that say which entries it must have
    expected: Callable[..., list[Any]]  # those columns' values -> the entries
    marks: Callable[[_Segment], int]  # twice the entries the segment's events name


def _child_entries(child_ids: str) -> list[Any]:
    return [(child_id,) for child_id in json.loads(child_ids)]


def _record_entries(
    records: str | None, record_type: str | None, record_id: str | None
) -> list[Any]:
    if records is None:
        return [] if record_type is None else [(0, record_type, record_id)]
    return [(i, entry["type"], entry["id"]) for i, entry in enumerate(json.loads(records))]


def _recipient_entries(detail: str | None) -> list[Any]:
    listed = chain.recipients_in(None if detail is None else json.loads(detail))
    return [(r.ordinal, r.user, r.client_id, r.request_id) for r in listed]


_INDEXES = (
    _Index(
        Reason.CHILD_INDEX,
        "child",
        _CHILDREN,
        ("child_id",),
        ("child_ids",),
        _child_entries,
        lambda segment: segment.quotes,
    ),
    _Index(
        Reason.RECORD_INDEX,
        "record",
        _RECORDS,
        ("ordinal", "record_type", "record_id"),
        ("records", "record_type", "record_id"),
        _record_entries,
        lambda segment: segment.records,
    ),
    _Index(
        Reason.RECIPIENT_INDEX,
        "recipient",
        _RECIPIENTS,
        ("ordinal", "user", "client_id", "request_id"),
        ("detail",),
        _recipient_entries,
        lambda segment: segment.recipients,
    ),
)


async def _index_problem(session: AsyncSession, index: _Index, segment: _Segment) -> Problem | None:
    """Compare an index with what the events that passed say it holds.

    One count per segment (an index-only scan); event by event only when the counts disagree.
    """
    first, last = segment.first_seq, segment.last_seq
    if first is None or last is None:
        return None
    table = index.table
    in_range = (table.c.seq >= first, table.c.seq <= last)
    indexed_count = await _scalar(session, sa.select(sa.func.count()).where(*in_range))
    if indexed_count * 2 == index.marks(segment):
        return None
    indexed: dict[int, list[Any]] = {}
    query = sa.select(table.c.seq, *(table.c[name] for name in index.entry)).where(*in_range)
    for seq, *entry in (await session.execute(query)).all():
        indexed.setdefault(seq, []).append(tuple(entry))
    query = sa.select(_EVENTS.c.seq, *(_EVENTS.c[name] for name in index.listed)).where(
        _EVENTS.c.seq >= first, _EVENTS.c.seq <= last
    )
    events = {row[0]: sorted(index.expected(*row[1:])) for row in (await session.execute(query))}
    for seq in sorted(indexed.keys() | events.keys()):
        if sorted(indexed.get(seq, [])) != events.get(seq, []):
            return Problem(seq, index.reason, f"the {index.name} index disagrees at seq {seq}")
    return None


async def _indexed_beyond(session: AsyncSession, indexed_through: int) -> list[Problem | None]:
    """Index rows for events the indexer has not reached: nothing but a forgery puts them there."""
    problems: list[Problem | None] = []
    for index in _INDEXES:
        seq = index.table.c.seq
        first = await _scalar(session, sa.select(sa.func.min(seq)).where(seq > indexed_through))
        if first is not None:
            problems.append(
                Problem(
                    int(first),
                    index.reason,
                    f"the {index.name} index holds seq {first}, past the events it indexes",
                )
            )
    return problems


async def _index_problems(session: AsyncSession, segment: _Segment) -> list[Problem | None]:
    return [await _index_problem(session, index, segment) for index in _INDEXES]


async def _settle(session: AsyncSession, walk: _Walk, *, indexed: bool) -> Problem | None:
    """After a segment: check its indexes (if its events are `indexed`), name (or clear) the
    suspect; the first wins.

    At the same seq the chain's reason wins: a forged event also upsets the child index.
    """
    problems = await _index_problems(session, walk.segment) if indexed else []
    suspect = walk.suspect
    if suspect is not None:
        if suspect.kind == "hash" and await _confirmed_in_python(session, suspect):
            walk.accept(suspect)
            alone = _Segment(
                first_seq=suspect.seq,
                last_seq=suspect.seq,
                quotes=suspect.quotes,
                records=suspect.records,
                recipients=suspect.recipients,
            )
            if indexed:
                problems += await _index_problems(session, alone)
        else:
            problems.append(await _classify(session, walk, suspect))
    return _first(*problems)


def _first(*problems: Problem | None) -> Problem | None:
    found = [problem for problem in problems if problem is not None]
    return min(found, key=lambda p: (p.seq, p.reason in _INDEX_REASONS)) if found else None


async def verify(
    session: AsyncSession, *, through: int | None = None, batch_size: int | None = None
) -> VerifyReport:
    """Walk the chain in seq order and report the first problem, if any.

    `through` stops at that seq (retention checks what it is about to erase) and skips the
    comparison with the head. Call `chain.begin_snapshot` first when appends may run meanwhile.
    """
    started = time.perf_counter()
    postgres = session.get_bind().dialect.name == "postgresql"
    size = batch_size or (COPY_SEGMENT if postgres else SELECT_BATCH)
    read: Callable[[AsyncSession, _Walk, sa.Select[Any]], Awaitable[None]] = (
        _copy_segment if postgres else _select_batch
    )
    walk = _Walk(await chain.erasures(session))
    # The indexes hold the events up to `indexed_seq` (the indexer runs after the appends):
    # the walk checks them that far, then walks on without them.
    indexed_through = await chain.indexed_through(session) or 0
    index_stop = indexed_through if through is None else min(through, indexed_through)
    problem: Problem | None = None
    walked_to_the_end = False
    for stop, indexed in ((index_stop, True), (through, False)):
        walked_to_the_end = False
        while problem is None and not walked_to_the_end:
            walk.segment = _Segment()
            after = walk.next_seq - 1 if walk.first_seq is not None else 0
            if stop is not None and after >= stop:
                walked_to_the_end = True
                break
            await read(session, walk, _walk_query(after=after, through=stop, size=size))
            walked_to_the_end = walk.segment.delivered < size and walk.suspect is None
            problem = await _settle(session, walk, indexed=indexed)
        if problem is not None:
            break
    problem = _first(problem, *await _indexed_beyond(session, indexed_through))
    # The head check may name an earlier seq than a child-index problem in the last segment.
    if (
        through is None
        and walked_to_the_end
        and (problem is None or problem.reason in _INDEX_REASONS)
    ):
        problem = _first(problem, walk.finish(await chain.read_head(session)))
    return VerifyReport(
        checked=walk.checked,
        first_seq=walk.first_seq,
        last_seq=walk.next_seq - 1 if walk.checked else None,
        last_hash=walk.next_prev,
        erased_through=walk.erased_through,
        seconds=time.perf_counter() - started,
        problem=problem,
        rechecked=walk.rechecked,
    )
