r"""The hash chain: how an event commits to the one before it, and how appends keep it whole.

`hash = sha256(prev_hash || canonical(content))`. `canonical` is compact JSON (no spaces, UTF-8,
only the escapes RFC 8259 requires: `\"`, `\\`, `\b \f \n \r \t`, other controls as
lowercase `\u00xx`) of `[1, <CONTENT_COLUMNS in order>]`, times as ISO 8601 UTC with
microseconds (`2026-01-31T09:00:00.000000+00:00`). The first event's `prev_hash` is 64 zeros.
`seq` is not hashed: the links carry the order, and `verify` checks that seq order follows them.

Appends serialise on the single `audit_chain_head` row: `SELECT ... FOR UPDATE` on PostgreSQL (so
any number of hub processes share one chain); on SQLite the hub's write transactions begin
IMMEDIATE and so already hold the database's write lock.

`hub.audit.verify` walks the chain; a lawful erasure leaves an `Erasure` anchor it starts from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import SQLModel

from hub.audit.models import (
    HEAD_ID,
    AuditChainHead,
    AuditEvent,
    AuditEventChild,
    OperationKind,
    S62Operation,
)

# Core tables: appends and the walk skip the ORM's per-row bookkeeping.
EVENTS = SQLModel.metadata.tables[AuditEvent.__tablename__]
CHILDREN = SQLModel.metadata.tables[AuditEventChild.__tablename__]
HEAD = SQLModel.metadata.tables[AuditChainHead.__tablename__]

CHAIN_VERSION = 1
CONTENT_COLUMNS = (
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
_TIME_INDEX = CONTENT_COLUMNS.index("occurred_at")
EVENT_COLUMNS = ("seq", *CONTENT_COLUMNS, "prev_hash", "hash")


def _compact_json_encoder() -> Callable[[Any], str]:
    """Compact UTF-8 JSON with minimal escapes, the C encoder built once.

    `JSONEncoder.encode` builds a C encoder per call: a third of the cost for a small list.
    """
    make: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: slower, the same text
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    # Positional, as the C function takes them: markers, default, string encoder, indent,
    # key and item separators, sort_keys, skipkeys, allow_nan.
    encoder = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, True)  # noqa: FBT003
    return lambda value: "".join(encoder(value, 0))


encode_json = _compact_json_encoder()


class ChainHeadMissing(RuntimeError):
    """The `audit_chain_head` row is gone: the migration creates it, nothing may delete it."""


def timestamp_text(value: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds: the form hashed, exported, and rendered in SQL."""
    if value.tzinfo is None:
        msg = "audit times are timezone-aware"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(content: Sequence[Any]) -> bytes:
    """The bytes hashed for an event: `content` holds the values of `CONTENT_COLUMNS`, in order."""
    values: list[Any] = [CHAIN_VERSION, *content]
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
class Pending:
    """An event's content, canonicalised before the lock so that the lock is held briefly."""

    content: dict[str, Any]
    canonical: bytes
    child_ids: tuple[str, ...]

    @classmethod
    def of(cls, content: dict[str, Any], child_ids: Sequence[str]) -> Pending:
        ordered = [content[name] for name in CONTENT_COLUMNS]
        return cls(content=content, canonical=canonical(ordered), child_ids=tuple(child_ids))


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


def chain_rows(
    pending: Sequence[Pending], head: Head
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Head]:
    """Give each pending event its seq and hashes, after the head; return the new head too."""
    rows: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    seq, prev_hash = head.last_seq, head.last_hash
    for event in pending:
        seq += 1
        digest = link(prev_hash, event.canonical)
        rows.append({**event.content, "seq": seq, "prev_hash": prev_hash, "hash": digest})
        children.extend({"child_id": child, "seq": seq} for child in event.child_ids)
        prev_hash = digest
    return rows, children, Head(last_seq=seq, last_hash=prev_hash)


_PG_TYPES = {"seq": "BIGINT", "occurred_at": "TIMESTAMPTZ"}


def _postgres_append() -> sa.TextClause:
    """One statement of constant shape whatever the number of events (prepared once per
    connection, no parameter limit): CTEs insert the events and the child rows from arrays, and
    the body moves the head.
    """
    columns = ", ".join(f'"{name}"' for name in EVENT_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{name} AS {_PG_TYPES.get(name, 'TEXT')}[])" for name in EVENT_COLUMNS
    )
    return sa.text(
        f"WITH written AS (INSERT INTO audit_event ({columns}) SELECT * FROM unnest({arrays})), "  # noqa: S608 - constant column names
        "indexed AS (INSERT INTO audit_event_child (child_id, seq) "
        "SELECT * FROM unnest(CAST(:child_child_id AS TEXT[]), CAST(:child_seq AS BIGINT[]))) "
        "UPDATE audit_chain_head SET last_seq = :last_seq, last_hash = :last_hash WHERE id = 1"
    )


_PG_APPEND = _postgres_append()


async def append(session: AsyncSession, pending: Sequence[Pending]) -> Head:
    """Append events to the chain: 2 statements on PostgreSQL, 3 or 4 on SQLite.

    PostgreSQL: the head lock, then `_PG_APPEND`. SQLite has no writable CTEs: an executemany
    per table and the head update go separately, in-process, under the lock already held.
    """
    head = await lock_head(session)
    rows, children, new_head = chain_rows(pending, head)
    if session.get_bind().dialect.name == "postgresql":
        arrays: dict[str, Any] = {name: [row[name] for row in rows] for name in EVENT_COLUMNS}
        arrays["child_child_id"] = [child["child_id"] for child in children]
        arrays["child_seq"] = [child["seq"] for child in children]
        await session.execute(
            _PG_APPEND, {**arrays, "last_seq": new_head.last_seq, "last_hash": new_head.last_hash}
        )
        return new_head
    await session.execute(sa.insert(EVENTS), rows)
    if children:
        await session.execute(sa.insert(CHILDREN), children)
    await session.execute(
        sa.update(HEAD)
        .where(HEAD.c.id == HEAD_ID)
        .values(last_seq=new_head.last_seq, last_hash=new_head.last_hash)
    )
    return new_head


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
