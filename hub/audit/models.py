"""The audit log's tables: hash-chained events, record and child indexes, and the chain's head.

An event is one response's worth of one kind of processing: the records a caller received (each
with the fields it received and the children it concerns) are listed in the event's `records`,
inside what the hash covers, so a response costs one chained row however many records it holds.
The narrow `audit_event_record` and `audit_event_child` rows index them for "who saw this record"
and "who saw this child's records", and `audit_event_recipient` rows the subscribers a fanned-out
delivery's event lists, for "what was this person sent" (on PostgreSQL written after the append:
`AuditIndexProgress` says how far); `verify` checks the indexes against the events.
Events written before records were grouped (chain version 1) hold one record in their own
`record_*` columns and have no `records`.

No foreign keys: the log records what happened even after reference data changes, and an append
must not wait on checks against tables it does not own.
"""

from __future__ import annotations

import datetime as dt
import enum
import json

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, utc_field

HASH_LENGTH = 64
GENESIS_HASH = "0" * HASH_LENGTH
HEAD_ID = 1


class S62Operation(enum.StrEnum):
    """The processing operations DPA 2018 s.62 requires a log of."""

    COLLECTION = "collection"
    ALTERATION = "alteration"
    CONSULTATION = "consultation"
    DISCLOSURE = "disclosure"
    COMBINATION = "combination"
    ERASURE = "erasure"


class Outcome(enum.StrEnum):
    SERVED = "served"
    DENIED = "denied"


class OperationKind(enum.StrEnum):
    QUERY = "query"
    MUTATION = "mutation"
    SUBSCRIPTION = "subscription"
    ENTITIES = "entities"
    FEDERATED = "federated"  # a gateway response, from every subgraph (hub.federation)
    EXPORT = "export"
    RETENTION = "retention"
    REQUEST = "request"  # refused before it was read (rate and in-flight limits)


class AuditEvent(SQLModel, table=True):
    """One response's records under one operation (or a refusal, an export, an erasure),
    chained to the event before it by `prev_hash`."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # Each index leads with what a report filters on and ends with `seq`, so that
        # "newest first" pages are read straight off the index.
        sa.Index("ix_audit_event_organisation", "organisation_code", "seq"),
        sa.Index("ix_audit_event_user", "user", "seq"),
        # Erasures are few; `verify` finds them without reading the log.
        sa.Index(
            "ix_audit_event_erasure",
            "seq",
            postgresql_where=sa.text("operation = 'erasure'"),
            sqlite_where=sa.text("operation = 'erasure'"),
        ),
    )

    # Assigned by the hub under the chain lock, never by a sequence: seq order is chain order.
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    id: str = Field(max_length=36, unique=True)
    occurred_at: dt.datetime = utc_field(index=True)
    operation: str = enum_field()
    outcome: str = enum_field()
    user: str | None = Field(default=None, max_length=128)
    organisation_code: str = Field(max_length=32)
    client_id: str = Field(max_length=64)
    role: str = enum_field()
    purpose: str | None = Field(default=None, max_length=128)
    operation_name: str | None = Field(default=None, max_length=128)
    operation_kind: str = enum_field()
    # Version 1 events only: the one record they are about.
    record_type: str | None = Field(default=None, max_length=32)
    record_id: str | None = Field(default=None, max_length=64)
    record_owner: str | None = Field(default=None, max_length=32)
    fields: str = Field(default="[]", sa_type=sa.Text)
    # Every child the event's records concern (what the child index holds for this event).
    child_ids: str = Field(default="[]", sa_type=sa.Text)
    request_id: str | None = Field(default=None, max_length=64)
    trace_id: str | None = Field(default=None, max_length=32)
    agreement_version: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_type=sa.Text)
    # Version 2: the records served, as compact JSON objects {type, id, owner, fields, children}.
    records: str | None = Field(default=None, sa_type=sa.Text)
    prev_hash: str = Field(min_length=HASH_LENGTH, max_length=HASH_LENGTH)
    hash: str = Field(min_length=HASH_LENGTH, max_length=HASH_LENGTH)

    @property
    def field_names(self) -> list[str]:
        return list(json.loads(self.fields))

    @property
    def child_id_list(self) -> list[str]:
        return list(json.loads(self.child_ids))

    @property
    def detail_data(self) -> dict[str, object] | None:
        return None if self.detail is None else dict(json.loads(self.detail))


def _seq_range_index(name: str) -> sa.Index:
    """For verify's per-segment counts and retention's deletes, which read ranges of seq.

    Appends only ever add higher seqs, so PostgreSQL's BRIN (block ranges: nearly free to keep)
    serves them; SQLite has only B-trees.
    """
    return sa.Index(name, "seq", postgresql_using="brin")


class AuditEventRecord(SQLModel, table=True):
    """Which events served which records: "who has seen this record", newest first.

    The primary key (record_type, record_id, seq, ordinal) serves a record's history. The
    record's place in its event's `records` is `ordinal`; what was received is read from the
    event (hashed), not from here. Version 1 events have one row, ordinal 0.
    """

    __tablename__ = "audit_event_record"
    __table_args__ = (
        sa.Index("ix_audit_event_record_owner", "record_owner", "seq"),
        _seq_range_index("ix_audit_event_record_seq"),
    )

    record_type: str = Field(primary_key=True, max_length=32)
    record_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    ordinal: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    record_owner: str | None = Field(default=None, max_length=32)


class AuditEventChild(SQLModel, table=True):
    """Which events concern which child: "who has seen this child's records", newest first.

    The primary key (child_id, seq) serves `WHERE child_id = ? ORDER BY seq DESC LIMIT n`.
    """

    __tablename__ = "audit_event_child"
    __table_args__ = (_seq_range_index("ix_audit_event_child_seq"),)

    child_id: str = Field(primary_key=True, max_length=36)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))


class AuditEventRecipient(SQLModel, table=True):
    """Who a fanned-out delivery went to: "what was this person sent", newest first.

    One event may be sent to several subscribers at once (`hub.changes.fanout`); it lists them
    in its hashed `detail.recipients`, and these rows index that list, one per recipient, with
    its place in the list as `ordinal`. An event sent to one caller names them in its own
    `user`, `client_id` and `request_id` columns instead, and has no rows here. The key
    (user, seq) serves `accessEvents(user:)` as `ix_audit_event_user` does for single events.
    """

    __tablename__ = "audit_event_recipient"
    __table_args__ = (
        sa.Index("ix_audit_event_recipient_user", "user", "seq"),
        _seq_range_index("ix_audit_event_recipient_seq"),
    )

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    ordinal: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    user: str | None = Field(default=None, max_length=128)
    client_id: str = Field(max_length=64)
    request_id: str | None = Field(default=None, max_length=64)


class AuditChainHead(SQLModel, table=True):
    """The single row every append locks: the serialisation point of the chain."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=HEAD_ID, primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    last_hash: str = Field(max_length=HASH_LENGTH)


class AuditIndexProgress(SQLModel, table=True):
    """How far the record, child and recipient indexes are built: every event up to
    `indexed_seq` has its index rows, none after it has any.

    An append writes only the event (hash-chained, committed before any data leaves);
    `chain.catch_up` indexes the events after this row, in seq order, off the request path.
    Appends serialise on the chain head (on SQLite, the database's write lock) until they
    commit, so committed events are always a prefix of the chain and the indexer never skips
    one.
    """

    __tablename__ = "audit_index_progress"

    id: int = Field(default=HEAD_ID, primary_key=True, sa_column_kwargs={"autoincrement": False})
    indexed_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
