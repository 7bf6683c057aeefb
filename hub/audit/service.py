"""Recording access events and reading them back: the audit log's small, named interface.

`record` writes one event listing the records a caller received (or one for a denial), chained,
in the caller's transaction: it flushes nothing else and never commits. If it fails, it raises
`AuditWriteFailed` and the response must fail with it: nothing is served unaudited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json
import operator
import os
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.audit import chain
from hub.audit.models import AuditEvent, OperationKind, Outcome, S62Operation
from hub.db import Database, utcnow
from hub.errors import HubError, InvalidInput
from hub.pagination import Page
from hub.timeliness.models import FirstSeen

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


class ServedRecord(NamedTuple):
    """One record as the caller received it: `fields` are those actually returned.

    A named tuple, not a frozen dataclass: a page makes one per record it served, and a frozen
    dataclass sets each field through `object.__setattr__` (twice the time to build)."""

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


_COMBINED = "hub.audit.combined"


def note_combination(session: AsyncSession, combined: ServedRecord, *, matched_by: str) -> None:
    """Say that this transaction combined data (s.62): a push matched to a record another
    organisation holds (a child found by NHS number, not by the pushing force's reference).

    The request's audit writes it as a `combination` event when the transaction succeeds.
    """
    session.info.setdefault(_COMBINED, {})[(combined.record_type, combined.record_id)] = (
        combined,
        matched_by,
    )


def combinations(session: AsyncSession) -> list[tuple[ServedRecord, str]]:
    """What `note_combination` noted in this session's transaction, once each."""
    return list(session.info.get(_COMBINED, {}).values())


_ALTERED = "hub.audit.altered"


def note_alteration(session: AsyncSession, altered: ServedRecord) -> None:
    """Say that this transaction altered a record (s.62) other than the one a push collects,
    `fields` naming what changed: a child's placement, told by the force that holds the child.

    Noted where the change is made, not where a response is shaped: the request's audit writes
    it as an `alteration` event when the transaction succeeds, whether or not the response
    carries the record.
    """
    noted: dict[tuple[str, str], ServedRecord] = session.info.setdefault(_ALTERED, {})
    key = (altered.record_type, altered.record_id)
    earlier = noted.get(key)
    if earlier is not None:
        altered = altered._replace(fields=tuple(sorted({*earlier.fields, *altered.fields})))
    noted[key] = altered


def alterations(session: AsyncSession) -> list[ServedRecord]:
    """What `note_alteration` noted in this session's transaction, once each."""
    return list(session.info.get(_ALTERED, {}).values())


def _compact(value: object) -> str:
    # Compact and key-sorted: an exported event re-serialises to the very text that was hashed.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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


def _records_json(records: Sequence[ServedRecord]) -> str:
    """The records an event lists, as hashed: one JSON object each, keys in a fixed order.

    The text `chain.encode_json` writes for a list of {type, id, owner, fields, children}
    objects (fields and children sorted, once each), built piece by piece: a page of records
    shares a few types, owners and field lists, each encoded once, and a child's one child is
    its own id, encoded once. On every audited response; for a page of 60 records, what the
    event's building costs fell from 1.84 M to 1.53 M instructions with these (and `_pending`'s
    index tuples made in C).
    """
    string = chain.encode_string
    heads: dict[str, str] = {}  # type -> its object's opening, to the id
    owners: dict[str | None, str] = {None: ',"owner":null'}
    field_lists: dict[tuple[str, ...], str] = {}  # fields -> them, to the children
    parts = []
    for record_type, record_id, fields, child_ids, owner in records:
        head = heads.get(record_type)
        if head is None:
            head = heads[record_type] = '{"type":' + string(record_type) + ',"id":'
        named = owners.get(owner)
        if named is None:
            named = owners[owner] = ',"owner":' + string(owner)  # type: ignore[arg-type]
        listed = field_lists.get(fields)
        if listed is None:
            listed = field_lists[fields] = (
                ',"fields":' + chain.encode_strings(sorted(set(fields))) + ',"children":'
            )
        some = string(record_id)
        children = (
            "[" + some + "]"
            if len(child_ids) == 1 and child_ids[0] == record_id
            else chain.encode_strings(sorted(set(child_ids)))
        )
        parts.append(head + some + named + listed + children + "}")
    return "[" + ",".join(parts) + "]"


_CHILD_IDS = operator.itemgetter(3)  # a served record's children


def _pending(common: dict[str, Any], records: Sequence[ServedRecord]) -> chain.Pending:
    children = sorted(set(itertools.chain.from_iterable(map(_CHILD_IDS, records))))
    occurred_at = utcnow()
    content = {
        **common,
        "id": event_id(occurred_at),
        "occurred_at": occurred_at,
        "record_type": None,
        "record_id": None,
        "record_owner": None,
        "fields": "[]",
        "child_ids": chain.encode_json(children),
        "records": _records_json(records),
    }
    return chain.Pending.of(content)


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
    """Append one event listing `records` (none for a refusal, an export, an erasure); return
    its seq.

    Statements: PostgreSQL 1 (see `chain.append`); SQLite 3 to 5.
    """
    return (
        await record_many(
            session,
            [
                EventDraft(
                    actor=actor,
                    operation=operation,
                    operation_kind=operation_kind,
                    operation_name=operation_name,
                    outcome=outcome,
                    records=records,
                    request_id=request_id,
                    trace_id=trace_id,
                    agreement_version=agreement_version,
                    detail=detail,
                )
            ],
        )
    )[0]


# An actor's fields, read one by one: `dataclasses.asdict` deep-copies, on every audited response.
_ACTOR_FIELDS = tuple(field.name for field in dataclasses.fields(Actor))


@dataclasses.dataclass(frozen=True)
class EventDraft:
    """One event to append: who, what kind of processing, which records, and why."""

    actor: Actor
    operation: S62Operation
    operation_kind: OperationKind
    operation_name: str | None
    outcome: Outcome
    records: Sequence[ServedRecord]
    request_id: str | None
    trace_id: str | None
    agreement_version: str | None
    detail: dict[str, Any] | None = None

    def pending(self) -> chain.Pending:
        common: dict[str, Any] = {
            **{name: _text(getattr(self.actor, name)) for name in _ACTOR_FIELDS},
            "operation": S62Operation(self.operation).value,
            "outcome": Outcome(self.outcome).value,
            "operation_kind": OperationKind(self.operation_kind).value,
            "operation_name": _clip("operation_name", self.operation_name),
            "request_id": _clip("request_id", self.request_id),
            "trace_id": _clip("trace_id", self.trace_id),
            "agreement_version": _clip("agreement_version", self.agreement_version),
            "detail": None if self.detail is None else _compact(self.detail),
        }
        return _pending(common, self.records)


async def record_many(
    into: AsyncSession | Database,
    drafts: Sequence[EventDraft],
    *,
    first_seen: FirstSeen | None = None,
    lock_timeout: float | None = None,
    outbox: chain.Outbox | None = None,
) -> list[int]:
    """Append several events in one go (a response's, under each operation); return their seqs.

    `into`: a session's transaction, or (a `Database`) a write transaction of their own,
    committed before this returns (`chain.append_apart`). `first_seen` notes the receipts the
    response's consultations amount to, in the same write. Raises `AuditWriteFailed` if they
    cannot be written, a wait for the chain's head longer than `lock_timeout` seconds
    included: the caller must then serve nothing. `outbox`: changes published in the same
    write (`chain.Outbox`), in a session's transaction only.
    """
    pending = [draft.pending() for draft in drafts]
    try:
        if isinstance(into, Database):
            if outbox is not None:
                msg = "an outbox goes in the transaction of the changes it publishes"
                raise TypeError(msg)
            head = await chain.append_apart(
                into, pending, first_seen=first_seen, lock_timeout=lock_timeout
            )
        else:
            head = await chain.append(
                into, pending, first_seen=first_seen, lock_timeout=lock_timeout, outbox=outbox
            )
    except (sa.exc.SQLAlchemyError, OSError, chain.ChainHeadMissing) as error:
        # The cause stays chained for operators' logs; the message carries no request data.
        raise AuditWriteFailed("the audit log could not be written: nothing was served") from error
    first = head.last_seq - len(pending) + 1
    return list(range(first, head.last_seq + 1))


async def record_disclosure(
    session: AsyncSession, *, actor: Actor, operation_name: str, detail: dict[str, Any]
) -> int:
    """An export or report leaving the hub: a disclosure (s.62), logged before it is produced.

    Returns the event's seq.
    """
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


# Record types whose id is the child's own id: where children are pseudonymised, so is it.
CHILD_RECORD_TYPES = frozenset({"Child"})


def pseudonymised_record_id(record_type: str | None, record_id: str, *, key: str) -> str:
    """A record's id as a role given pseudonyms sees it: a child's record by its pseudonym."""
    if record_type in CHILD_RECORD_TYPES:
        return pseudonym(record_id, key=key)
    return record_id


# --- reading ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Access:
    """One record as one event served it, or an event that served no record: what readers list.

    `ordinal` is the record's place in the event (-1 for an event about no record).
    """

    event: AuditEvent
    ordinal: int
    record_type: str | None
    record_id: str | None
    record_owner: str | None
    fields: tuple[str, ...]
    child_ids: tuple[str, ...]

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def key(self) -> tuple[int, int]:
        return (self.event.seq, self.ordinal)


def accesses_of(event: AuditEvent) -> list[Access]:
    """An event's accesses, last record first (the order readers page in)."""
    if event.records is None:  # chain version 1: the record is in the event's own columns
        entries = [
            {
                "type": event.record_type,
                "id": event.record_id,
                "owner": event.record_owner,
                "fields": json.loads(event.fields),
                "children": json.loads(event.child_ids),
            }
        ]
        if event.record_type is None:
            entries = []
    else:
        entries = json.loads(event.records)
    if not entries:
        return [Access(event, -1, None, None, None, (), tuple(json.loads(event.child_ids)))]
    return [
        Access(
            event=event,
            ordinal=ordinal,
            record_type=entry["type"],
            record_id=entry["id"],
            record_owner=entry["owner"],
            fields=tuple(entry["fields"]),
            child_ids=tuple(entry["children"]),
        )
        for ordinal, entry in reversed(list(enumerate(entries)))
    ]


def _position(access: Access) -> str:
    """Where an access is in the log, as a page's position (sealed into a cursor by callers)."""
    seq, ordinal = access.key
    return f"{seq}:{ordinal}"


def _bound(position: str) -> tuple[int, int]:
    try:
        seq, ordinal = position.split(":")
        return int(seq), int(ordinal)
    except ValueError as error:
        raise InvalidInput("after is not a cursor this API gave out", field="after") from error


def _event_conditions(filters: EventFilter, *, via: bool) -> list[sa.ColumnElement[bool]]:
    """The event's own columns' tests; `via`: the person is found among its recipients instead
    (`_narrowed`), not in its `user` column."""
    equal = {
        col(AuditEvent.user): None if via else filters.user,
        col(AuditEvent.organisation_code): filters.organisation_code,
        col(AuditEvent.purpose): filters.purpose,
    }
    conditions = [column == value for column, value in equal.items() if value is not None]
    if filters.occurred_from is not None:
        conditions.append(col(AuditEvent.occurred_at) >= filters.occurred_from)
    if filters.occurred_to is not None:
        conditions.append(col(AuditEvent.occurred_at) < filters.occurred_to)
    return conditions


def _narrowed(filters: EventFilter, *, via: bool) -> tuple[sa.Select[AuditEvent], Any, bool]:
    """The events that may hold a matching access, the seq column the index walks, and whether
    an index narrowed them.

    A person's deliveries through a group (`via`) come off the recipient index (an event
    twice if it lists the person twice: `_matching` reads each once), a child's accesses off
    the child index, a record's or an owner's off the record index; each event found holds at
    least one matching access.
    """
    query: sa.Select[AuditEvent] = sa.select(AuditEvent)
    walked: Any = None
    if via:
        recipients = chain.RECIPIENTS
        query = query.join(recipients, recipients.c.seq == col(AuditEvent.seq)).where(
            recipients.c.user == filters.user
        )
        walked = recipients.c.seq
    if filters.child_id is not None:
        children = chain.CHILDREN
        query = query.join(children, children.c.seq == col(AuditEvent.seq)).where(
            children.c.child_id == filters.child_id
        )
        return query, children.c.seq if walked is None else walked, True
    by_record = {
        chain.RECORDS.c.record_type: filters.record_type,
        chain.RECORDS.c.record_id: filters.record_id,
        chain.RECORDS.c.record_owner: filters.record_owner,
    }
    wanted = [column == value for column, value in by_record.items() if value is not None]
    if wanted:
        # One event may list several of an owner's records: a semi-join finds each event once.
        listed = sa.exists().where(chain.RECORDS.c.seq == col(AuditEvent.seq), *wanted)
        query = query.where(listed)
    return query, col(AuditEvent.seq) if walked is None else walked, bool(wanted) or via


async def _sources(
    session: AsyncSession, filters: EventFilter, *, via: bool
) -> list[tuple[sa.Select[AuditEvent], Any]]:
    """Where the matching events are, newest first: the events the indexes do not hold yet
    (`chain.catch_up` runs after the append), read whole, then the indexed ones."""
    query, seq, indexed = _narrowed(filters, via=via)
    if not indexed:
        return [(query, seq)]
    through = await chain.indexed_through(session)
    if through is None:
        raise chain.IndexProgressMissing("the audit index progress row is missing")
    tail = sa.select(AuditEvent).where(
        col(AuditEvent.seq) > through, *_unindexed_match(filters, via=via)
    )
    return [(tail, col(AuditEvent.seq)), (query.where(seq <= through), seq)]


def _unindexed_match(filters: EventFilter, *, via: bool) -> list[sa.ColumnElement[bool]]:
    """What the indexes would have found, as text tests on an unindexed event's lists (compact
    JSON, as hashed): never fewer events than match, and `_matches` then decides exactly.

    Only events appended since the indexes were introduced are ever unindexed, all listing
    their records in `records`. A detail is key-sorted JSON with ASCII escapes (`_compact`).
    """
    found = []
    if via:
        person = f'"user":{json.dumps(filters.user)}'
        found.append(col(AuditEvent.detail).contains(person, autoescape=True))
    if filters.child_id is not None:
        child = chain.encode_json(filters.child_id)
        found.append(col(AuditEvent.child_ids).contains(child, autoescape=True))
    listed = {"type": filters.record_type, "id": filters.record_id, "owner": filters.record_owner}
    for key, value in listed.items():
        if value is not None:
            entry = f'"{key}":{chain.encode_json(value)}'
            found.append(col(AuditEvent.records).contains(entry, autoescape=True))
    return found


_EVERY_ORDINAL = 2**31  # above any record's place in an event: a bound taking the whole event


def _matches(access: Access, filters: EventFilter, *, via: bool) -> bool:
    if via and filters.user not in _recipient_users(access.event):
        return False
    wanted = {
        "record_type": filters.record_type,
        "record_id": filters.record_id,
        "record_owner": filters.record_owner,
    }
    if any(value is not None and getattr(access, name) != value for name, value in wanted.items()):
        return False
    return filters.child_id is None or filters.child_id in access.child_ids


def _recipient_users(event: AuditEvent) -> set[str | None]:
    return {recipient.user for recipient in chain.recipients_in(event.detail_data)}


async def list_events(
    session: AsyncSession, *, filters: EventFilter, first: int, after: str | None = None
) -> Page[Access]:
    """Accesses newest first (by seq, the chain's order), keyset-paged: cheap at any depth.

    `after` is the position of the access the page starts after (`Page.positions`).

    A person (`filters.user`) is found as the event's own `user` and among the recipients of
    fanned-out deliveries (`audit_event_recipient`): each walk finds its newest matches, and
    the page is the newest of both, an event found by both once.
    """
    if first < 1:
        raise InvalidInput("first must be at least 1", field="first")
    bound = _bound(after) if after is not None else None
    found = await _found(session, filters, bound=bound, first=first, via=False)
    if filters.user is not None:
        grouped = await _found(session, filters, bound=bound, first=first, via=True)
        merged = {access.key: access for access in (*found, *grouped)}
        found = [merged[key] for key in sorted(merged, reverse=True)]
    items = found[:first]
    return Page(
        items=items,
        positions=[_position(access) for access in items],
        has_next_page=len(found) > first,
    )


async def _found(
    session: AsyncSession,
    filters: EventFilter,
    *,
    bound: tuple[int, int] | None,
    first: int,
    via: bool,
) -> list[Access]:
    """Up to `first` + 1 matching accesses below `bound`, newest first."""
    conditions = _event_conditions(filters, via=via)
    found: list[Access] = []
    for query, seq in await _sources(session, filters, via=via):
        if len(found) > first:
            break
        ordered = query.where(*conditions).order_by(seq.desc())
        found += await _matching(
            session, ordered, seq, filters=filters, bound=bound, wanted=first - len(found), via=via
        )
    return found


async def _matching(
    session: AsyncSession,
    query: sa.Select[AuditEvent],
    seq: Any,
    *,
    filters: EventFilter,
    bound: tuple[int, int] | None,
    wanted: int,
    via: bool = False,
) -> list[Access]:
    """The matching accesses below `bound`, newest first, until one more than `wanted`."""
    found: list[Access] = []
    batch = wanted + 2
    read: set[int] = set()  # an index may name an event twice (a person twice among recipients)
    while len(found) <= wanted:
        limited = query if bound is None else query.where(seq <= bound[0])
        events: list[AuditEvent] = list((await session.execute(limited.limit(batch))).scalars())
        for event in events:
            if event.seq in read:
                continue
            read.add(event.seq)
            found.extend(
                access
                for access in accesses_of(event)
                if (bound is None or access.key < bound) and _matches(access, filters, via=via)
            )
        if len(events) < batch:
            break
        # The next batch starts below the last event read: every access of the one before it.
        bound = (events[-1].seq - 1, _EVERY_ORDINAL)
    return found


async def child_history(
    session: AsyncSession, *, child_id: str, first: int, after: str | None = None
) -> Page[Access]:
    """Who has seen this child's records, newest first: one walk down (child_id, seq)."""
    filters = EventFilter(child_id=child_id)
    return await list_events(session, filters=filters, first=first, after=after)


async def record_history(
    session: AsyncSession,
    *,
    record_type: str,
    record_id: str,
    first: int,
    after: str | None = None,
) -> Page[Access]:
    """Every access to one record, newest first, off the (record_type, record_id, seq) index."""
    filters = EventFilter(record_type=record_type, record_id=record_id)
    return await list_events(session, filters=filters, first=first, after=after)
