"""Recording access events and reading them back: the audit log's small, named interface.

`record` writes one event per record a caller received (or one for a denial), chained, in the
caller's transaction: it flushes nothing else and never commits. If it fails, it raises
`AuditWriteFailed` and the response must fail with it: nothing is served unaudited.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from hub.audit import chain
from hub.audit.models import AuditEvent, AuditEventChild, OperationKind, Outcome, S62Operation
from hub.db import utcnow
from hub.errors import HubError, InvalidInput
from hub.pagination import Page

PSEUDONYM_PREFIX = "C-"
_PSEUDONYM_HEX = 16
_TEXT_LIMITS = {"operation_name": 128, "request_id": 64, "trace_id": 32, "agreement_version": 64}


class AuditWriteFailed(HubError):
    code = "AUDIT_UNAVAILABLE"


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who accessed: the person, for which organisation, through which client, in what role, why."""

    user: str | None
    organisation_code: str
    client_id: str
    role: str
    purpose: str | None


@dataclasses.dataclass(frozen=True)
class ServedRecord:
    """One record as the caller received it: `fields` are those actually returned."""

    record_type: str
    record_id: str
    fields: tuple[str, ...]
    child_ids: tuple[str, ...]
    owner: str | None


@dataclasses.dataclass(frozen=True)
class EventFilter:
    user: str | None = None
    organisation_code: str | None = None
    record_type: str | None = None
    record_id: str | None = None
    child_id: str | None = None
    purpose: str | None = None
    occurred_from: dt.datetime | None = None
    occurred_to: dt.datetime | None = None
    record_owner: str | None = None


def _compact(value: object) -> str:
    # Compact and key-sorted: an exported event re-serialises to the very text that was hashed.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _json_list(values: Sequence[str]) -> str:
    return _compact(sorted(set(values)))


def _text(value: object) -> str | None:
    # Enums (a Role) are stored and hashed as their plain values.
    return None if value is None else str(value)


def _clip(name: str, value: str | None) -> str | None:
    # Caller-chosen texts (a GraphQL operation name) must not make the audit write fail.
    return None if value is None else value[: _TEXT_LIMITS[name]]


def event_id(at: dt.datetime) -> str:
    """A UUIDv7 (RFC 9562) for an event at `at`: time-ordered, so the unique index on `id` grows
    at its right edge instead of touching a random page of a large index per append.
    """
    millis = int(at.timestamp() * 1000) & (2**48 - 1)
    rand = int.from_bytes(os.urandom(10), "big")  # 12 bits for rand_a, 62 for rand_b
    value = millis << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | rand & (2**62 - 1)))


def _pending(
    common: dict[str, Any], served: ServedRecord | None, *, occurred_at: dt.datetime
) -> chain.Pending:
    children = sorted(set(served.child_ids)) if served else []
    content = {
        **common,
        "id": event_id(occurred_at),
        "occurred_at": occurred_at,
        "record_type": served.record_type if served else None,
        "record_id": served.record_id if served else None,
        "record_owner": served.owner if served else None,
        "fields": _json_list(served.fields) if served else "[]",
        "child_ids": _compact(children),
    }
    return chain.Pending.of(content, children)


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    operation: S62Operation,
    operation_kind: OperationKind,
    operation_name: str | None,
    outcome: Outcome,
    records: Sequence[ServedRecord],
    request_id: str | None,
    trace_id: str | None,
    agreement_version: str | None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one event per record (one about no record when `records` is empty); return how many.

    Statements: PostgreSQL 2 (lock and read the head; one statement inserting events and child
    rows and moving the head), SQLite 3, or 4 when any record concerns a child.
    """
    common: dict[str, Any] = {
        **{name: _text(value) for name, value in dataclasses.asdict(actor).items()},
        "operation": S62Operation(operation).value,
        "outcome": Outcome(outcome).value,
        "operation_kind": OperationKind(operation_kind).value,
        "operation_name": _clip("operation_name", operation_name),
        "request_id": _clip("request_id", request_id),
        "trace_id": _clip("trace_id", trace_id),
        "agreement_version": _clip("agreement_version", agreement_version),
        "detail": None if detail is None else _compact(detail),
    }
    now = utcnow()
    pending = [_pending(common, served, occurred_at=now) for served in records] or [
        _pending(common, None, occurred_at=now)
    ]
    try:
        await chain.append(session, pending)
    except (sa.exc.SQLAlchemyError, OSError, chain.ChainHeadMissing) as error:
        # The cause stays chained for operators' logs; the message carries no request data.
        raise AuditWriteFailed("the audit log could not be written: nothing was served") from error
    return len(pending)


async def record_disclosure(
    session: AsyncSession, *, actor: Actor, operation_name: str, detail: dict[str, Any]
) -> int:
    """An export or report leaving the hub: a disclosure (s.62), logged before it is produced."""
    return await record(
        session,
        actor=actor,
        operation=S62Operation.DISCLOSURE,
        operation_kind=OperationKind.EXPORT,
        operation_name=operation_name,
        outcome=Outcome.SERVED,
        records=[],
        request_id=None,
        trace_id=None,
        agreement_version=None,
        detail=detail,
    )


def pseudonym(child_id: str, *, key: str) -> str:
    """A stable, keyed stand-in for a child's id: auditors follow a child without learning who."""
    digest = hmac.new(key.encode(), child_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:_PSEUDONYM_HEX]


# --- reading ------------------------------------------------------------------------------------


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    not_ours = InvalidInput("after is not a cursor this API gave out", field="after")
    try:
        prefix, _, seq = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).partition(b":")
        value = int(seq)
    except (ValueError, binascii.Error) as error:
        raise not_ours from error
    if prefix != b"audit":
        raise not_ours
    return value


def _conditions(filters: EventFilter) -> list[sa.ColumnElement[bool]]:
    equal = {
        col(AuditEvent.user): filters.user,
        col(AuditEvent.organisation_code): filters.organisation_code,
        col(AuditEvent.record_type): filters.record_type,
        col(AuditEvent.record_id): filters.record_id,
        col(AuditEvent.purpose): filters.purpose,
        col(AuditEvent.record_owner): filters.record_owner,
    }
    conditions = [column == value for column, value in equal.items() if value is not None]
    if filters.occurred_from is not None:
        conditions.append(col(AuditEvent.occurred_at) >= filters.occurred_from)
    if filters.occurred_to is not None:
        conditions.append(col(AuditEvent.occurred_at) < filters.occurred_to)
    return conditions


def _concerning(child_id: str) -> sa.Select[AuditEvent]:
    return (
        sa.select(AuditEvent)
        .join(AuditEventChild, col(AuditEventChild.seq) == col(AuditEvent.seq))
        .where(col(AuditEventChild.child_id) == child_id)
    )


async def _newest_first(
    session: AsyncSession,
    query: sa.Select[AuditEvent],
    seq: sa.ColumnElement[int] | Mapped[int],
    *,
    first: int,
    after: str | None,
) -> Page[AuditEvent]:
    """Newest first by seq (the chain's order), keyset-paged: cheap at any depth.

    `seq` is the column the index walks: the child index's own for a child's history.
    """
    if first < 1:
        raise InvalidInput("first must be at least 1", field="first")
    if after is not None:
        query = query.where(seq < decode_cursor(after))
    rows = list((await session.execute(query.order_by(seq.desc()).limit(first + 1))).scalars())
    items = rows[:first]
    return Page(
        items=items,
        cursors=[encode_cursor(event.seq) for event in items],
        has_next_page=len(rows) > first,
    )


async def list_events(
    session: AsyncSession, *, filters: EventFilter, first: int, after: str | None = None
) -> Page[AuditEvent]:
    if filters.child_id is None:
        query, seq = sa.select(AuditEvent), col(AuditEvent.seq)
    else:
        query, seq = _concerning(filters.child_id), col(AuditEventChild.seq)
    query = query.where(*_conditions(filters))
    return await _newest_first(session, query, seq, first=first, after=after)


async def child_history(
    session: AsyncSession, *, child_id: str, first: int, after: str | None = None
) -> Page[AuditEvent]:
    """Who has seen this child's records, newest first: one walk down (child_id, seq)."""
    query = _concerning(child_id)
    return await _newest_first(session, query, col(AuditEventChild.seq), first=first, after=after)


async def record_history(
    session: AsyncSession,
    *,
    record_type: str,
    record_id: str,
    first: int,
    after: str | None = None,
) -> Page[AuditEvent]:
    """Every access to one record, newest first, off the (record_type, record_id, seq) index."""
    filters = EventFilter(record_type=record_type, record_id=record_id)
    return await list_events(session, filters=filters, first=first, after=after)
