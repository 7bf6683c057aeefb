r"""The hash chain: how an event commits to the one before it, and how appends keep it whole.

`hash = sha256(prev_hash || canonical(content))`. `canonical` is compact JSON (no spaces, UTF-8,
only the escapes RFC 8259 requires: `\"`, `\\`, `\b \f \n \r \t`, other controls as
lowercase `\u00xx`) of `[2, <CONTENT_COLUMNS in order>]`, times as ISO 8601 UTC with
microseconds (`2026-01-31T09:00:00.000000+00:00`). The first event's `prev_hash` is 64 zeros.
`seq` is not hashed: the links carry the order, and `verify` checks that seq order follows them.
Version 1 events (written before `records` existed) hash `[1, <CONTENT_COLUMNS_V1>]`.

Appends serialise on the single `audit_chain_head` row. On PostgreSQL one statement locks it
(`FOR UPDATE`, so any number of hub processes share one chain), links the new events to it
(`sha256` in the database over bytes canonicalised here), inserts them and moves the head: one
round trip for a response's events. On SQLite the hub's write transactions begin IMMEDIATE and
so already hold the database's write lock; the links are computed here. On both, the events'
record, child and recipient index rows are written after, off the request path, by `catch_up`
(`AuditIndexProgress` says how far it has got); readers read the events past that point
directly.

`hub.audit.verify` walks the chain; a lawful erasure leaves an `Erasure` anchor it starts from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import SQLModel

from hub.audit.models import (
    HEAD_ID,
    AuditChainHead,
    AuditEvent,
    AuditEventChild,
    AuditEventRecipient,
    AuditEventRecord,
    AuditIndexProgress,
    OperationKind,
    S62Operation,
)
from hub.db import Database, OnSQLiteThread, rows, together
from hub.json_text import compact_json
from hub.timeliness.models import FirstSeen, RecordReceipt

# Core tables: appends and the walk skip the ORM's per-row bookkeeping.
EVENTS = SQLModel.metadata.tables[AuditEvent.__tablename__]
RECORDS = SQLModel.metadata.tables[AuditEventRecord.__tablename__]
CHILDREN = SQLModel.metadata.tables[AuditEventChild.__tablename__]
RECIPIENTS = SQLModel.metadata.tables[AuditEventRecipient.__tablename__]
HEAD = SQLModel.metadata.tables[AuditChainHead.__tablename__]
PROGRESS = SQLModel.metadata.tables[AuditIndexProgress.__tablename__]
RECEIPTS = SQLModel.metadata.tables[RecordReceipt.__tablename__]

CHAIN_VERSION = 2
CONTENT_COLUMNS_V1 = (
    "id",
    "occurred_at",
    "operation",
    "outcome",
    "user",
    "organisation_code",
    "client_id",
    "role",
    "purpose",
    "operation_name",
    "operation_kind",
    "record_type",
    "record_id",
    "record_owner",
    "fields",
    "child_ids",
    "request_id",
    "trace_id",
    "agreement_version",
    "detail",
)
CONTENT_COLUMNS = (*CONTENT_COLUMNS_V1, "records")
_TIME_INDEX = CONTENT_COLUMNS.index("occurred_at")
EVENT_COLUMNS = ("seq", *CONTENT_COLUMNS, "prev_hash", "hash")
RECORD_COLUMNS = ("record_type", "record_id", "seq", "ordinal", "record_owner")


# Compact UTF-8 JSON with minimal escapes.
encode_json = compact_json()
# One string as `encode_json` writes it (the same C escaping), for texts built piece by piece.
encode_string: Callable[[str], str] = json.encoder.encode_basestring


def encode_strings(values: Sequence[str]) -> str:
    """A list of strings exactly as `encode_json` writes it."""
    return "[" + ",".join(map(encode_string, values)) + "]"


class ChainHeadMissing(RuntimeError):
    """The `audit_chain_head` row is gone: the migration creates it, nothing may delete it."""


def timestamp_text(value: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds: the form hashed, exported, and rendered in SQL."""
    if value.tzinfo is None:
        msg = "audit times are timezone-aware"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(content: Sequence[Any]) -> bytes:
    """The bytes hashed for an event: `content` holds the values of `CONTENT_COLUMNS`, in order
    (a version 1 event's `records` is None and is left out, with its version number).
    """
    legacy = content[-1] is None
    values: list[Any] = [1, *content[:-1]] if legacy else [CHAIN_VERSION, *content]
    values[_TIME_INDEX + 1] = timestamp_text(content[_TIME_INDEX])
    return encode_json(values).encode()


class TimeText(FunctionElement[str]):
    """`occurred_at` as `timestamp_text` writes it, formatted by the database (for `verify`)."""

    type = sa.Text()
    name = "audit_time_text"
    inherit_cache = True


@compiles(TimeText, "postgresql")
def _time_text_postgresql(element: TimeText, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


@compiles(TimeText, "sqlite")
def _time_text_sqlite(element: TimeText, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite times as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return f"replace({compiler.process(element.clauses, **kw)}, ' ', 'T') || '+00:00'"


def link(prev_hash: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_bytes).hexdigest()


def event_hash(prev_hash: str, content: Sequence[Any]) -> str:
    return link(prev_hash, canonical(content))


@dataclasses.dataclass(frozen=True)
class IndexedRecipient:
    """A subscriber a fanned-out delivery's event lists (`detail.recipients`), as indexed:
    `ordinal` is its place in the list."""

    ordinal: int
    user: str | None
    client_id: str
    request_id: str | None


def recipients_in(detail: Any) -> tuple[IndexedRecipient, ...]:
    """The recipients an event's detail lists, in order (none for an event sent to one caller).

    `verify`'s reading of `detail.recipients`; each database's catch-up reads it the same way
    in SQL (`_PG_CATCH_UP`, `_SQLITE_INDEXING`): only a list, only its objects, each with its
    place in the whole list.
    """
    if not isinstance(detail, dict):
        return ()
    listed = detail.get("recipients")
    if not isinstance(listed, list):
        return ()
    return tuple(
        IndexedRecipient(
            ordinal=ordinal,
            user=None if entry.get("user") is None else str(entry["user"]),
            client_id=str(entry.get("client_id")),
            request_id=None if entry.get("request_id") is None else str(entry["request_id"]),
        )
        for ordinal, entry in enumerate(listed)
        if isinstance(entry, dict)
    )


@dataclasses.dataclass(frozen=True)
class Pending:
    """An event's content, canonicalised before the lock so that the lock is held briefly.
    What it lists (`records`, `child_ids`, `detail.recipients`) is indexed from that very
    text after the commit (`catch_up`)."""

    content: dict[str, Any]
    canonical: bytes

    @classmethod
    def of(cls, content: dict[str, Any]) -> Pending:
        return cls(content=content, canonical=canonical([content[n] for n in CONTENT_COLUMNS]))


@dataclasses.dataclass(frozen=True)
class Head:
    last_seq: int
    last_hash: str


def _head_query() -> sa.Select[int, str]:
    return sa.select(HEAD.c.last_seq, HEAD.c.last_hash).where(HEAD.c.id == HEAD_ID)


async def lock_head(session: AsyncSession) -> Head:
    """Lock the chain's head for the rest of the transaction and read it.

    SQLite renders no FOR UPDATE: the hub's write transactions begin IMMEDIATE, holding the
    database's write lock already (and a read transaction fails to write rather than fork).
    """
    row = (await session.execute(_head_query().with_for_update())).one_or_none()
    if row is None:
        raise ChainHeadMissing("the audit chain head row is missing")
    return Head(last_seq=int(row[0]), last_hash=str(row[1]))


async def read_head(session: AsyncSession) -> Head | None:
    row = (await session.execute(_head_query())).one_or_none()
    return None if row is None else Head(last_seq=int(row[0]), last_hash=str(row[1]))


def chain_rows(pending: Sequence[Pending], head: Head) -> tuple[list[dict[str, Any]], Head]:
    """Give each pending event its seq and hashes, after the head; return the new head too."""
    rows: list[dict[str, Any]] = []
    seq, prev_hash = head.last_seq, head.last_hash
    for event in pending:
        seq += 1
        digest = link(prev_hash, event.canonical)
        rows.append({**event.content, "seq": seq, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    return rows, Head(last_seq=seq, last_hash=prev_hash)


@dataclasses.dataclass(frozen=True)
class Outbox:
    """Changes to publish (`hub.changes`) with a request's events.

    The append writes them after it has locked the head, so their seqs are taken in the order
    the appending transactions commit (a subscriber reading past seq 11 while seq 10 is still
    uncommitted would never be sent 10), and on PostgreSQL in the append's own round trip,
    which shortens the time every other push waits for the head.
    """

    occurred_at: dt.datetime
    rows: Sequence[tuple[str, str, str]]  # record type, record id, change kind
    channel: str  # PostgreSQL's NOTIFY channel, sent at commit


OUTBOX_TABLE = "record_change"
_PG_TYPES = {"occurred_at": "TIMESTAMPTZ"}

# The outbox's rows, numbered after the head's lock (they join it), in the order given. The
# numbering is explicit: as many values are drawn from the seq's sequence as there are rows, and
# the k-th smallest goes to the k-th row (row_number), so the order does not rest on PostgreSQL
# inserting a SELECT's rows in its ORDER BY order. The outbox's lists are read through scalar
# subqueries, so that the planner estimates their rows alike whatever their values: a plan made
# for one push's lengths looked cheaper than the general one, and the statement was planned
# again for every push (a third of a millisecond of the database's, the head locked meanwhile).
_PG_PUBLISHED = (
    "numbered AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('record_change', 'seq')) "
    "AS seq FROM head, generate_series(1, (SELECT cardinality(CAST(:outbox_type AS TEXT[]))))), "
    "published AS (INSERT INTO record_change (seq, occurred_at, record_type, record_id, change) "
    "SELECT r.seq, CAST(:outbox_at AS TIMESTAMPTZ), o.record_type, o.record_id, o.change "
    "FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM numbered) r "
    "JOIN unnest((SELECT CAST(:outbox_type AS TEXT[])), (SELECT CAST(:outbox_id AS TEXT[])), "
    "(SELECT CAST(:outbox_change AS TEXT[]))) "
    "WITH ORDINALITY AS o(record_type, record_id, change, n) "
    "ON o.n = r.n RETURNING 1)"
)
_PG_NOTIFIED = (
    ", (SELECT count(*) FROM (SELECT pg_notify(CAST(:outbox_channel AS TEXT), '') "
    "FROM (SELECT 1 FROM published LIMIT 1) p) n) AS notified"
)


_RETURNED = ("last_seq", "last_hash", "lock_timeout", "notified")
# The receipts a read amounts to (`FirstSeen`), each kept as first set. Joined with `head`,
# as the events and the outbox are: with the head's row gone nothing is appended
# (`ChainHeadMissing`), and a read's statement commits as it runs, so a receipt noted here
# would stay for a read that served nothing.
_PG_SEEN = (
    "seen AS (INSERT INTO record_receipt "
    "(record_type, record_id, organisation_code, first_seen_at) "
    "SELECT s.record_type, s.record_id, CAST(:seen_by AS TEXT), CAST(:seen_at AS TIMESTAMPTZ) "
    "FROM (SELECT s.value->>0 AS record_type, s.value->>1 AS record_id "
    "FROM json_array_elements(CAST(:seen AS JSON)) AS s(value)) AS s, head "
    "ON CONFLICT DO NOTHING)"
)


def _postgres_append(*, publishing: bool = False, noting: bool = True) -> sa.TextualSelect:
    """One statement of constant shape whatever the number of events and records (prepared once
    per connection, no parameter limit).

    `head` locks the chain's head row; `linked` walks the new events in order, each hash the
    sha256 of the one before and the event's canonical bytes (as `link` computes it);
    `appended` pairs each link with the event's columns (from arrays). The events are inserted,
    any first sight of records by a receiving organisation (`FirstSeen`) noted, and the head
    moved to the last link. Without receipts to note (`noting`), `seen` is left out: an
    INSERT of no rows still runs the receipts' statement trigger. The index rows come later
    (`catch_up`): they cost as much again as the rest of the statement for a page of records,
    and no reader of the response needs them.

    `:events` is read as JSONB, parsed once: `->>` on `json` lexes the event's text again for
    each of the twenty columns it takes, the head locked throughout (on a page's event, the
    append's execution took 0.47 ms that way and 0.34 ms this way in the server's log, a
    scratch measurement; `bench-read --baseline 425e10a` puts the two side by side).

    `:lock_timeout` bounds the wait for the head's lock and nothing else: `setting` notes the
    value in force and sets this one (for the transaction, as SET LOCAL would), `head` locks
    the row only once that is done (its rows are joined with `setting`'s one), and RETURNING
    puts the noted value back. Inside the statement, so that the append stays one round trip;
    NULL leaves the setting as it is. (The value was put back from `pg_settings`, a view that
    builds every setting's row: half a millisecond, with the head locked, on every append.)
    """
    content = CONTENT_COLUMNS
    columns = ", ".join(f'"{name}"' for name in ("seq", *content, "prev_hash", "hash"))
    # Each event's columns but its records, from its array in `:events` (`_events_json`).
    fields = ", ".join(
        f'CAST(j.value->>{index} AS {_PG_TYPES.get(name, "TEXT")}) AS "{name}"'
        for index, name in enumerate(CONTENT_COLUMNS_V1)
    )
    values = ", ".join(f'e."{name}"' for name in CONTENT_COLUMNS_V1)
    return sa.text(
        "WITH RECURSIVE "  # noqa: S608 - constant column names; values are bound
        "setting AS MATERIALIZED (SELECT before, set_config('lock_timeout', "
        "COALESCE(CAST(:lock_timeout AS TEXT), before), true) AS waiting "
        "FROM (SELECT current_setting('lock_timeout') AS before OFFSET 0) AS was), "
        "head AS MATERIALIZED (SELECT last_seq, last_hash FROM audit_chain_head, setting "
        "WHERE id = 1 AND setting.waiting IS NOT NULL FOR UPDATE OF audit_chain_head), "
        "linked (n, seq, prev_hash, hash) AS ("
        "SELECT 0::BIGINT, last_seq, NULL::TEXT, last_hash::TEXT FROM head "
        "UNION ALL SELECT l.n + 1, l.seq + 1, l.hash, "
        "encode(sha256(convert_to(l.hash, 'UTF8') || "
        "(CAST(:canonical AS BYTEA[]))[l.n + 1]), 'hex') "
        "FROM linked l WHERE l.n < cardinality(CAST(:canonical AS BYTEA[]))), "
        f"appended AS (SELECT l.seq, {values}, r.records, l.prev_hash, l.hash FROM linked l "
        f"JOIN (SELECT j.n, {fields} FROM jsonb_array_elements(CAST(:events AS JSONB)) "
        "WITH ORDINALITY AS j(value, n)) AS e ON e.n = l.n "
        "JOIN unnest(CAST(:records AS TEXT[])) WITH ORDINALITY AS r(records, n) ON r.n = l.n), "
        f"written AS (INSERT INTO audit_event ({columns}) SELECT * FROM appended)"
        f"{', ' + _PG_PUBLISHED if publishing else ''}"
        f"{', ' + _PG_SEEN if noting else ''} "
        "UPDATE audit_chain_head SET last_seq = l.seq, last_hash = l.hash "
        "FROM linked l WHERE audit_chain_head.id = 1 "
        "AND l.n = cardinality(CAST(:canonical AS BYTEA[])) "
        "RETURNING audit_chain_head.last_seq, audit_chain_head.last_hash, "
        "(SELECT set_config('lock_timeout', before, true) FROM setting) AS lock_timeout"
        f"{_PG_NOTIFIED if publishing else ''}"
    ).columns(*(sa.column(name) for name in _RETURNED[: 4 if publishing else 3]))


def _events_json(pending: Sequence[Pending]) -> str:
    """The events' columns but their records, an array each in `CONTENT_COLUMNS_V1`'s order,
    as one JSON text: asyncpg checks every value of an array parameter against three abstract
    classes before it encodes it, and the append had an array a column. `occurred_at` goes as
    `timestamp_text` writes it, to the microsecond. (The records, the longest text, stay an
    array: in JSON they would be escaped once more.)"""
    rows = []
    for event in pending:
        row = [event.content[name] for name in CONTENT_COLUMNS_V1]
        row[_TIME_INDEX] = timestamp_text(row[_TIME_INDEX])
        rows.append(row)
    return encode_json(rows)


# By (publishing, noting).
_PG_APPENDS = {
    (publishing, noting): _postgres_append(publishing=publishing, noting=noting)
    for publishing in (False, True)
    for noting in (False, True)
}


async def append(
    session: AsyncSession,
    pending: Sequence[Pending],
    *,
    first_seen: FirstSeen | None = None,
    lock_timeout: float | None = None,
    outbox: Outbox | None = None,
) -> Head:
    """Append events to the chain: 1 statement on PostgreSQL, 1 trip to aiosqlite's thread on
    SQLite; `outbox`'s changes are published with them, after the head is locked.

    On PostgreSQL the wait for the head's lock ends after `lock_timeout` seconds with an error
    (None: as the server is configured). On SQLite the transaction holds the write lock already:
    its wait was at BEGIN (`Database.transaction`'s `write_lock_wait`).

    SQLite has no writable CTEs: the head is read (under the write lock the transaction already
    holds), the links computed here, and each table written by one statement, all of it in
    one trip to aiosqlite's thread (`_sqlite_append`).
    """
    if session.get_bind().dialect.name == "postgresql":
        params: dict[str, Any] = {
            "events": _events_json(pending),
            "records": [event.content["records"] for event in pending],
            "canonical": [event.canonical for event in pending],
        }
        params["lock_timeout"] = None if lock_timeout is None else f"{lock_timeout * 1000:.0f}ms"
        noting = first_seen is not None and bool(first_seen.records)
        if first_seen is not None and noting:
            params["seen_by"] = first_seen.organisation_code
            params["seen_at"] = first_seen.at
            params["seen"] = encode_json(first_seen.records)
        publishing = outbox is not None and bool(outbox.rows)
        statement = _PG_APPENDS[publishing, noting]
        if outbox is not None and publishing:
            params["outbox_at"] = outbox.occurred_at
            params["outbox_type"] = [row[0] for row in outbox.rows]
            params["outbox_id"] = [row[1] for row in outbox.rows]
            params["outbox_change"] = [row[2] for row in outbox.rows]
            params["outbox_channel"] = outbox.channel
        moved = await rows(session, statement, params)
        if not moved:
            raise ChainHeadMissing("the audit chain head row is missing")
        return Head(last_seq=int(moved[0].last_seq), last_hash=str(moved[0].last_hash))
    appending = Appending(pending, first_seen, outbox)
    [head] = await together(session, functools.partial(_sqlite_append, [appending]))
    return head


async def append_apart(
    db: Database,
    pending: Sequence[Pending],
    *,
    first_seen: FirstSeen | None = None,
    lock_timeout: float | None = None,
) -> Head:
    """`append` in a write transaction of its own, committed before this returns; on SQLite
    with the appends of others waiting at the same time (`AppendGroups`), begun, written and
    committed in one trip to a connection's thread (`Database.write_together`).
    `lock_timeout` bounds the wait for the chain's head (PostgreSQL) or the database's write
    lock (SQLite)."""
    if db.is_sqlite:
        appending = Appending(pending, first_seen)
        return await _groups(db).append(appending, lock_timeout=lock_timeout)
    async with db.transaction(write=True) as session:
        return await append(session, pending, first_seen=first_seen, lock_timeout=lock_timeout)


def _insert(table: sa.Table, names: Sequence[str]) -> sa.Insert:
    return sa.insert(table).values(
        {name: sa.bindparam(name, type_=table.c[name].type) for name in names}
    )


# SQLite's append, each statement compiled once (`hub.db.together`).
_SQLITE_HEAD = _head_query()
_SQLITE_EVENTS = _insert(EVENTS, EVENT_COLUMNS)
_SQLITE_MOVE_HEAD = (
    sa.update(HEAD)
    .where(HEAD.c.id == HEAD_ID)
    .values(
        last_seq=sa.bindparam("new_seq", type_=HEAD.c.last_seq.type),
        last_hash=sa.bindparam("new_hash", type_=HEAD.c.last_hash.type),
    )
)
_SQLITE_INDEXED = (
    sa.update(PROGRESS)
    .where(PROGRESS.c.id == HEAD_ID)
    .values(indexed_seq=sa.bindparam("new_seq", type_=PROGRESS.c.indexed_seq.type))
)
_SQLITE_RECEIPTS = (
    sqlite.insert(RECEIPTS)
    .values(
        {
            name: sa.bindparam(name, type_=RECEIPTS.c[name].type)
            for name in ("record_type", "record_id", "organisation_code", "first_seen_at")
        }
    )
    .on_conflict_do_nothing()
)


@functools.cache
def _sqlite_outbox() -> sa.Insert:
    # Built at first use: `hub.changes` defines the table, and imports this module.
    table = SQLModel.metadata.tables[OUTBOX_TABLE]
    return _insert(table, ("occurred_at", "record_type", "record_id", "change"))


@dataclasses.dataclass(frozen=True)
class Appending:
    """One caller's part of an append on SQLite: its events, the first sights its reads
    amount to, the changes it publishes."""

    pending: Sequence[Pending]
    first_seen: FirstSeen | None = None
    outbox: Outbox | None = None


def _sqlite_append(appending: Sequence[Appending], run: OnSQLiteThread) -> list[Head]:
    """SQLite's append, in aiosqlite's thread: the head read (under the write lock the
    transaction holds from its BEGIN IMMEDIATE), the links computed, the events written (one
    executemany), the head moved, first sights and the outbox noted. The index rows come
    later (`catch_up`), as on PostgreSQL.
    Several callers' parts are appended in turn (`AppendGroups`); each one's head after its
    events is returned, in order."""
    found = run.rows(_SQLITE_HEAD)
    if not found:
        raise ChainHeadMissing("the audit chain head row is missing")
    head = Head(last_seq=int(found[0].last_seq), last_hash=str(found[0].last_hash))
    heads: list[Head] = []
    events: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for part in appending:
        linked, moved_to = chain_rows(part.pending, head)
        events += linked
        head = moved_to
        heads.append(head)
        seen = part.first_seen
        if seen is not None:
            receipts += (
                {
                    "record_type": record_type,
                    "record_id": record_id,
                    "organisation_code": seen.organisation_code,
                    "first_seen_at": seen.at,
                }
                for record_type, record_id in seen.records
            )
        if part.outbox is not None:
            # The database's write lock, held since BEGIN, orders the commits already.
            at = part.outbox.occurred_at
            changed += (
                {"occurred_at": at, "record_type": t, "record_id": i, "change": c}
                for t, i, c in part.outbox.rows
            )
    run.execute_many(_SQLITE_EVENTS, events)
    run.execute_many(_SQLITE_MOVE_HEAD, [{"new_seq": head.last_seq, "new_hash": head.last_hash}])
    run.execute_many(_SQLITE_RECEIPTS, receipts)
    if changed:  # (the outbox's table is `hub.changes`'s, not imported by every process)
        run.execute_many(_sqlite_outbox(), changed)
    return heads


class AppendGroups:
    """SQLite: appends in write transactions of their own (a read's audit), written in groups.

    A SQLite write transaction holds this process's write turn (`hub.db`) for its one trip to
    aiosqlite's thread, and under load that trip is long: each statement there gives the
    interpreter's lock up and waits to have it back from the event loop's thread, busy with
    other requests. One append per transaction made the turn the council page's limit at 8 in
    flight (`safeguarding-hub bench-read --database-url sqlite+aiosqlite:///hub.db --baseline
    123b659`, the commit before groups, shows the rate before and after). Here the appends
    that arrive while one transaction is being written go together in the next: one BEGIN,
    one head read and move, one COMMIT for all of them. Each caller still returns only once
    its own events are committed. If a group's transaction fails, each of its appends is
    tried again alone, so that one caller's bad event fails no other's (unless the database
    itself failed it: busy, gone, full; then each caller has the error).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[tuple[Appending, asyncio.Future[Head]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def append(self, appending: Appending, *, lock_timeout: float | None) -> Head:
        done: asyncio.Future[Head] = asyncio.get_running_loop().create_future()
        self._waiting.append((appending, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(lock_timeout))
        # Shielded: a caller that goes away leaves its group's transaction to finish.
        return await asyncio.shield(done)

    async def _write(self, lock_timeout: float | None) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                heads = await self._together([part for part, _ in group], lock_timeout)
            except Exception as error:  # noqa: BLE001 - handed to each caller, or retried
                if len(group) == 1 or isinstance(error, sa.exc.OperationalError):
                    # The database's trouble (busy, gone, full), not one event's: each alone
                    # would wait for it again.
                    for _, done in group:
                        _settle(done, error=error)
                    continue
                for part, done in group:
                    try:
                        [alone] = await self._together([part], lock_timeout)
                    except Exception as failed:  # noqa: BLE001 - handed to its caller
                        _settle(done, error=failed)
                    else:
                        _settle(done, head=alone)
                continue
            for (_, done), head in zip(group, heads, strict=True):
                _settle(done, head=head)

    async def _together(self, parts: list[Appending], lock_timeout: float | None) -> list[Head]:
        work = functools.partial(_sqlite_append, parts)
        return await self._db.write_together(work, write_lock_wait=lock_timeout)


def _settle(
    done: asyncio.Future[Head], *, head: Head | None = None, error: Exception | None = None
) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(head)  # type: ignore[arg-type]


_GROUPS: weakref.WeakKeyDictionary[
    Database, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AppendGroups]
] = weakref.WeakKeyDictionary()


def _groups(db: Database) -> AppendGroups:
    """`db`'s groups for the running event loop (a test's server runs its own)."""
    loop = asyncio.get_running_loop()
    by_loop = _GROUPS.setdefault(db, weakref.WeakKeyDictionary())
    found = by_loop.get(loop)
    if found is None:
        found = by_loop[loop] = AppendGroups(db)
    return found


# Events indexed per statement: a bounded transaction however far behind the indexes are.
CATCH_UP_BATCH = 2_000
# SQLite: the events a catch-up's transaction indexes. It holds the database's write lock, and
# every append waits for it: a page's event lists about sixty records and children. Twenty
# events' rows took 8 ms, a hundred's 166 ms with their COMMIT, into indexes of 880,000
# records (a scratch measurement). Side by side, the page (`bench-read --database-url
# sqlite+aiosqlite:///x.db --turns 8`): twenty against a hundred (on ea6b508, `--baseline
# cd12b81`), p99 90 ms against 114 at 8 in flight, rate 1.00x; eight against twenty, each batch
# one trip (on 906f646, `--baseline 8e7f523`), p99 59 against 88 at 8 in flight and 21 against
# 25 at 1, rate 1.19x and 1.01x.
SQLITE_CATCH_UP_BATCH = 8

# The record, child and recipient index rows of the events after the progress row, from the very
# `records`, `child_ids` and `detail` text the hash covers, and the progress moved past them.
# Every event after it is version 2: the migration that made indexing lag started it at the
# head, and appends write nothing else. The progress row's lock serialises indexers (and, in READ
# COMMITTED, a waiting one reads the moved row and carries on after it).
_PG_CATCH_UP = sa.text(
    "WITH progress AS MATERIALIZED (SELECT indexed_seq FROM audit_index_progress "
    "WHERE id = 1 FOR UPDATE), "
    "pending AS MATERIALIZED (SELECT e.seq, e.records, e.child_ids, e.detail FROM audit_event e "
    "WHERE e.seq > (SELECT indexed_seq FROM progress) ORDER BY e.seq LIMIT :batch), "
    "indexed AS (INSERT INTO audit_event_record "
    "(record_type, record_id, seq, ordinal, record_owner) "
    "SELECT r.value->>'type', r.value->>'id', a.seq, r.n - 1, r.value->>'owner' "
    "FROM pending a, jsonb_array_elements(CAST(a.records AS JSONB)) "
    "WITH ORDINALITY AS r(value, n)), "
    "children AS (INSERT INTO audit_event_child (child_id, seq) "
    "SELECT c.child_id, a.seq FROM pending a, "
    "jsonb_array_elements_text(CAST(a.child_ids AS JSONB)) AS c(child_id)), "
    # `recipients_in`, in SQL: a fanned-out delivery's recipients, in their listed order.
    'recipients AS (INSERT INTO audit_event_recipient (seq, ordinal, "user", client_id, '
    "request_id) SELECT a.seq, r.n - 1, r.value->>'user', r.value->>'client_id', "
    "r.value->>'request_id' FROM pending a, jsonb_array_elements(CASE WHEN "
    "jsonb_typeof(CAST(a.detail AS JSONB)->'recipients') = 'array' "
    "THEN CAST(a.detail AS JSONB)->'recipients' END) WITH ORDINALITY AS r(value, n) "
    "WHERE jsonb_typeof(r.value) = 'object'), "
    "moved AS (UPDATE audit_index_progress SET indexed_seq = (SELECT max(seq) FROM pending) "
    "WHERE id = 1 AND EXISTS (SELECT 1 FROM pending)) "
    "SELECT (SELECT indexed_seq FROM progress), (SELECT count(*) FROM pending)"
)


# SQLite's catch-up: the same index rows from the same text, with `json_each` (0-based `key`,
# as PostgreSQL's ordinality less one), one statement a table, for the events after the
# progress row through `:through`; then the progress row moved there. A detail that is not
# JSON, or whose `recipients` is not a list, lists no recipients, and only a list's objects
# are recipients (`recipients_in`).
_SQLITE_AFTER = "(SELECT indexed_seq FROM audit_index_progress WHERE id = 1)"
_SQLITE_PENDING = sa.text(
    "SELECT p.indexed_seq AS indexed, count(e.seq) AS events, max(e.seq) AS through "  # noqa: S608
    "FROM audit_index_progress p LEFT JOIN (SELECT seq FROM audit_event "
    f"WHERE seq > {_SQLITE_AFTER} ORDER BY seq LIMIT :batch) e "
    "WHERE p.id = 1 GROUP BY p.indexed_seq"
).columns(sa.column("indexed"), sa.column("events"), sa.column("through"))


def _sqlite_indexing(
    table: str, columns: str, values: str, listed: str, *, entries: str = "TRUE"
) -> sa.TextClause:
    """One index table's rows: `values` for each entry `r` of the JSON list `listed` (those
    for which `entries` holds) of each event `a` after the progress row through `:through`."""
    return sa.text(
        f"INSERT INTO {table} ({columns}) SELECT {values} "  # noqa: S608 - constant names
        f"FROM audit_event a, json_each({listed}) r "
        f"WHERE a.seq > {_SQLITE_AFTER} AND a.seq <= :through AND {entries}"
    )


_SQLITE_INDEXING = (
    _sqlite_indexing(
        "audit_event_record",
        "record_type, record_id, seq, ordinal, record_owner",
        "json_extract(r.value, '$.type'), json_extract(r.value, '$.id'), a.seq, r.key, "
        "json_extract(r.value, '$.owner')",
        "a.records",
    ),
    _sqlite_indexing("audit_event_child", "child_id, seq", "r.value, a.seq", "a.child_ids"),
    _sqlite_indexing(
        "audit_event_recipient",
        'seq, ordinal, "user", client_id, request_id',
        "a.seq, r.key, json_extract(r.value, '$.user'), json_extract(r.value, '$.client_id'), "
        "json_extract(r.value, '$.request_id')",
        "CASE WHEN json_valid(a.detail) THEN CASE WHEN json_type(a.detail, '$.recipients') "
        "= 'array' THEN json_extract(a.detail, '$.recipients') END END",
        entries="r.type = 'object'",
    ),
)


def _sqlite_catch_up(batch: int, run: OnSQLiteThread) -> int:
    """`catch_up` on SQLite, in aiosqlite's thread, under the write lock the transaction holds
    (no event is appended, nor the progress row moved, between its statements). Every
    statement names the progress row: an indexer's statement is told from a request's."""
    found = run.rows(_SQLITE_PENDING, {"batch": batch})
    if not found or found[0].indexed is None:
        raise IndexProgressMissing("the audit index progress row is missing")
    [pending] = found
    if not pending.events:
        return 0
    through = {"through": int(pending.through)}
    for statement in _SQLITE_INDEXING:
        run.execute_many(statement, [through])
    run.execute_many(_SQLITE_INDEXED, [{"new_seq": through["through"]}])
    return int(pending.events)


class IndexProgressMissing(RuntimeError):
    """The `audit_index_progress` row is gone: the migration creates it, nothing may delete it."""


async def catch_up(session: AsyncSession, *, batch: int = CATCH_UP_BATCH) -> int:
    """Index the events after the progress row, up to `batch` of them, in this transaction
    (on SQLite a write transaction); return how many (0: the indexes are complete as this
    transaction sees the chain)."""
    if session.get_bind().dialect.name == "sqlite":
        return await together(session, functools.partial(_sqlite_catch_up, batch))
    was, indexed = (await session.execute(_PG_CATCH_UP, {"batch": batch})).one()
    if was is None:
        raise IndexProgressMissing("the audit index progress row is missing")
    return int(indexed)


async def catch_up_apart(db: Database) -> int:
    """One batch of `catch_up` in a write transaction of its own, committed before this
    returns; return how many events it indexed (fewer than `batch_for(db)`: none are left).
    On SQLite begun, run and committed in one trip to a connection's thread
    (`Database.write_together`): the write lock every append waits for is held for that trip
    alone, not across a session's BEGIN, statements and COMMIT, each a wait for the event
    loop."""
    batch = batch_for(db)
    if db.is_sqlite:
        return await db.write_together(functools.partial(_sqlite_catch_up, batch))
    async with db.transaction(write=True) as session:
        return await catch_up(session, batch=batch)


def batch_for(db: Database) -> int:
    return SQLITE_CATCH_UP_BATCH if db.is_sqlite else CATCH_UP_BATCH


async def catch_up_all(session: AsyncSession) -> None:
    """Index every event committed so far, in this transaction, holding the progress row until
    it ends (retention, before it erases)."""
    while await catch_up(session):
        pass


async def indexed_through(session: AsyncSession) -> int | None:
    """The last seq whose index rows are written, as this transaction sees it (None: no row)."""
    query = sa.select(PROGRESS.c.indexed_seq).where(PROGRESS.c.id == HEAD_ID)
    value = (await session.execute(query)).scalar_one_or_none()
    return None if value is None else int(value)


@dataclasses.dataclass(frozen=True)
class Erasure:
    """A lawful erasure, as its `erasure` event records it: seqs first..last are gone."""

    first_seq: int
    last_seq: int
    anchor_hash: str  # the hash of event `last_seq`: the next kept event's prev_hash


def erasure_detail(erasure: Erasure, *, count: int, cutoff: dt.datetime) -> dict[str, Any]:
    """What an `erasure` event's detail holds: enough for `verify` to start from its anchor."""
    return {
        "erased_first_seq": erasure.first_seq,
        "erased_last_seq": erasure.last_seq,
        "erased_count": count,
        "anchor_hash": erasure.anchor_hash,
        "cutoff": timestamp_text(cutoff),
    }


def _erasure_of(detail: str | None) -> Erasure | None:
    try:
        data = json.loads(detail or "null")
        return Erasure(
            first_seq=int(data["erased_first_seq"]),
            last_seq=int(data["erased_last_seq"]),
            anchor_hash=str(data["anchor_hash"]),
        )
    except (TypeError, KeyError, ValueError):
        return None  # not a retention erasure: no anchor to start from


async def erasures(session: AsyncSession) -> dict[int, Erasure]:
    """Lawful erasures by the last seq each removed (the partial index finds them)."""
    query = (
        sa.select(EVENTS.c.detail)
        .where(EVENTS.c.operation == S62Operation.ERASURE.value)
        .where(EVENTS.c.operation_kind == OperationKind.RETENTION.value)
        .order_by(EVENTS.c.seq)
    )
    found = (_erasure_of(detail) for detail in (await session.execute(query)).scalars())
    return {erasure.last_seq: erasure for erasure in found if erasure is not None}


async def begin_snapshot(session: AsyncSession) -> None:
    """Make a read transaction see one snapshot throughout (call before any other statement).

    PostgreSQL's default READ COMMITTED would let appends committed during a long verify or
    export show up half way; SQLite's read transactions are snapshots already.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
