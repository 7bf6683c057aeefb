"""Stage facts: each record's clock readings per receiving council, kept up to date on write.

The PostgreSQL report used to re-derive a year of timelines on every run: which councils receive
each record (through its children and locations), and each council's receipt. `stage_fact`
holds that derivation, one narrow row per (record, receiving council, force), so that the
report reads rows instead of joining six tables. It holds *times only*: deadlines and verdicts
depend on the targets file, the calendars and the report's `as_of`, so they are still computed
when a report is made, and a change of targets needs no rebuild.

The rows are derived by one SQL statement (`fill_sql`), assembled from every declared record
kind's SQL (`kinds.FactsSql`), used both to rebuild the whole table (the migration, the
benchmark after its bulk load) and to refresh the records a transaction touched: every ORM
write to a row a declaration names (`RecordKind.models`) or to a child's councils marks the
record, and the hub's sessions (`db.HubSession`, which this module listens on) refresh the
marked records just before they commit (`_before_commit`). Receipts (first
sight, written by the audit in its own statement, and acknowledgement) reach the facts through
a trigger on `record_receipt` (`RECEIPT_TRIGGER`), whichever statement writes them.

PostgreSQL only: on SQLite the report takes the Python path and the table stays empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from hub.base import utc_field
from hub.children.models import Child
from hub.db import HubSession, rows
from hub.timeliness import kinds

FEW = 64  # records locked one by one; more lock the table
# A record the facts are derived for: (record type, id); "Child" marks every record of a child.
Subject = tuple[str, str]
_PENDING = "hub_stage_facts_pending"
_CREATED = "hub_stage_facts_created"  # the pending records this transaction inserted


class StageFact(SQLModel, table=True):
    """One record's times for one receiving council; `timeline.stage_delays` says which stages.

    `record_id` is the timeline record's id (for an investigation status change, the change's);
    `subject_id` the record its receivers and receipts belong to (the investigation's).
    """

    __tablename__ = "stage_fact"
    __table_args__ = (
        sa.Index("ix_stage_fact_event_at", "event_at"),
        sa.Index("ix_stage_fact_council_event_at", "council_code", "event_at"),
        sa.Index("ix_stage_fact_force_event_at", "force_code", "event_at"),
        sa.Index("ix_stage_fact_subject", "record_type", "subject_id"),
    )

    record_type: str = Field(primary_key=True, max_length=32)
    record_id: str = Field(primary_key=True, max_length=36)
    council_code: str = Field(primary_key=True, max_length=32)
    # A meeting's facts are one per invited force: the force is part of the key.
    force_code: str = Field(primary_key=True, max_length=32)
    subject_id: str = Field(max_length=36)
    kind: str = Field(max_length=40)
    month: str = Field(max_length=7)  # YYYY-MM of the event in England and Wales
    child_id: str | None = Field(default=None, max_length=36)
    event_at: dt.datetime = utc_field()
    recorded_at: dt.datetime | None = utc_field(nullable=True)
    shared_at: dt.datetime = utc_field()
    first_seen_at: dt.datetime | None = utc_field(nullable=True)
    acknowledged_at: dt.datetime | None = utc_field(nullable=True)
    returned_at: dt.datetime | None = utc_field(nullable=True)
    interview_at: dt.datetime | None = utc_field(nullable=True)
    # A kind's own readings (`kinds.OWN`): what each holds, its declaration says.
    reading_1_at: dt.datetime | None = utc_field(nullable=True)
    reading_2_at: dt.datetime | None = utc_field(nullable=True)
    reading_3_at: dt.datetime | None = utc_field(nullable=True)
    reading_4_at: dt.datetime | None = utc_field(nullable=True)
    share_stages: bool
    receipt_stages: bool
    # The record's first receiving council (bytewise): batching counts a record once, there.
    first_council: bool
    # The stages' starts in UK time, for calendar deadlines: converting a year's timestamps to
    # Europe/London costs a national report seconds, and the conversion never changes.
    event_local: dt.datetime = Field(sa_type=sa.DateTime(timezone=False))
    recorded_local: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=False))
    shared_local: dt.datetime = Field(sa_type=sa.DateTime(timezone=False))
    returned_local: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=False))


COLUMNS = (
    "record_type", "record_id", "council_code", "force_code", "subject_id", "kind", "month",
    "child_id", "event_at", "recorded_at", "shared_at", "first_seen_at", "acknowledged_at",
    "returned_at", "interview_at", "reading_1_at", "reading_2_at", "reading_3_at", "reading_4_at",
    "share_stages", "receipt_stages", "first_council", "event_local", "recorded_local",
    "shared_local", "returned_local",
)  # fmt: skip
_KEY = ("record_type", "record_id", "council_code", "force_code")
# The readings a kind's records yield beyond event and shared (receipts: `record_receipt`).
_YIELDED = tuple(s for s in kinds.SLOTS if s not in (*kinds.RECEIPTS, "event_at", "shared_at"))

# Mirrors `service._assemble` and `timeline.stage_delays`, for every declared kind (`kinds`): a
# record's receivers are its places' councils and each child's responsible and host councils
# (a council's child is its own child with the smallest id, else the record's), or the
# councils its declaration names. Each declaration's records read its base, which the
# refresh restricts to a set of ids.
_FILL = """
WITH
{bases},
kids AS (
  SELECT CAST(NULL AS text) AS rtype, CAST(NULL AS text) AS record_id,
    CAST(NULL AS text) AS child_id, CAST(NULL AS text) AS r, CAST(NULL AS text) AS h
  WHERE false
  {kids}
),
recipients AS (
  SELECT rtype, record_id, council, min(child_id) AS child_id FROM (
    SELECT rtype, record_id, r AS council, child_id FROM kids
    UNION ALL SELECT rtype, record_id, h, child_id FROM kids WHERE h IS NOT NULL
    {places}
  ) x GROUP BY rtype, record_id, council
),
first_kid AS (SELECT rtype, record_id, min(child_id) AS child_id FROM kids GROUP BY 1, 2),
records AS (
  {records}
)
INSERT INTO stage_fact ({columns})
SELECT r.rtype, r.record_id, p.council, r.force_code, r.rid, r.kind,
  to_char(r.event_at AT TIME ZONE 'Europe/London', 'YYYY-MM'), coalesce(p.child_id, f.child_id),
  r.event_at, r.recorded_at, r.shared_at,
  CASE WHEN r.receipt_stages THEN rr.first_seen_at END,
  CASE WHEN r.receipt_stages THEN rr.acknowledged_at END,
  {own}, r.share_stages, r.receipt_stages,
  p.council COLLATE "C" = min(p.council COLLATE "C") OVER (PARTITION BY r.rtype, r.record_id),
  r.event_at AT TIME ZONE 'Europe/London', r.recorded_at AT TIME ZONE 'Europe/London',
  r.shared_at AT TIME ZONE 'Europe/London', r.returned_at AT TIME ZONE 'Europe/London'
FROM records r
JOIN recipients p ON p.rtype = r.rtype AND p.record_id = r.rid
LEFT JOIN first_kid f ON f.rtype = r.rtype AND f.record_id = r.rid
LEFT JOIN record_receipt rr ON rr.record_type = r.rtype AND rr.record_id = r.rid
  AND rr.organisation_code = p.council
/*UPSERT*/
"""
_UPSERT = f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in _KEY
)


def _base(n: int, declared: kinds.RecordKind, *, only_given: bool) -> str:
    only = f"AND {declared.sql.only} = ANY(CAST(:ids_{n} AS text[]))" if only_given else ""
    return declared.sql.base.replace("/*ONLY*/", only)


def _records(n: int, declared: kinds.RecordKind) -> str:
    """The declaration's records in the common columns; the slots it does not keep are NULL."""
    own = declared.slots
    slots = ", ".join(
        f"CAST({'x.' + slot if slot in own else 'NULL'} AS timestamptz) AS {slot}"
        for slot in _YIELDED
    )
    if declared.sql.row_flags:
        flags = "x.share_stages, x.receipt_stages"
    else:
        parts = {stage.part for stage in declared.stages}
        share, receipt = kinds.Part.SHARE in parts, kinds.Part.RECEIPT in parts
        flags = f"{str(share).lower()} AS share_stages, {str(receipt).lower()} AS receipt_stages"
    body = declared.sql.records.replace("{base}", f"k{n}")
    rtype = _literal(declared.record_type)
    return (
        f"SELECT {rtype} AS rtype, CAST(x.subject_id AS text) AS rid,"  # noqa: S608 - declared
        " CAST(x.record_id AS text) AS record_id, CAST(x.kind AS text) AS kind,"
        f" CAST(x.force_code AS text) AS force_code, x.event_at, x.shared_at, {slots}, {flags}"
        f" FROM ({body}) x"
    )


def _literal(text: str) -> str:
    """A record type as an SQL literal: declared in code, never from a request."""
    if not text.isidentifier():
        raise ValueError("record types are identifiers")
    return f"'{text}'"


_NO_RECORDS = (
    "SELECT CAST(NULL AS text) AS rtype, CAST(NULL AS text) AS rid,"
    " CAST(NULL AS text) AS record_id, CAST(NULL AS text) AS kind,"
    " CAST(NULL AS text) AS force_code, CAST(NULL AS timestamptz) AS event_at,"
    " CAST(NULL AS timestamptz) AS shared_at, "
    + ", ".join(f"CAST(NULL AS timestamptz) AS {slot}" for slot in _YIELDED)
    + ", false AS share_stages, false AS receipt_stages WHERE false"
)


def fill_sql(*, only_given: bool, declared: tuple[kinds.RecordKind, ...] | None = None) -> str:
    """The fill statement, for the declared kinds (or those given): for every record, or only
    for the ids bound as arrays (`ids_<n>`, n the declaration's place among them).

    A whole rebuild writes each council's rows together (in event order), so that a council's
    report reads a few hundred pages rather than one per record; rows kept on write arrive in
    time order after them.
    """
    every = kinds.declared() if declared is None else declared
    bases, kids, places, records = ["k AS (SELECT 1)"], [], [], []
    for n, each in enumerate(every):
        base, rtype, sql = f"k{n}", _literal(each.record_type), each.sql
        bases.append(f"{base} AS ({_base(n, each, only_given=only_given)})")
        if sql.children:
            kids.append(
                f"UNION ALL SELECT {rtype}, CAST(x.subject_id AS text), c.id,"  # noqa: S608
                " c.responsible_council_code, c.host_council_code"
                f" FROM ({sql.children.replace('{base}', base)}) x"
                " JOIN child c ON c.id = x.child_id"
            )
        if sql.located:
            places.append(
                f"UNION ALL SELECT {rtype}, CAST(x.subject_id AS text), x.council, NULL"  # noqa: S608
                f" FROM ({sql.located.replace('{base}', base)}) x"
            )
        if sql.named:
            places.append(
                f"UNION ALL SELECT {rtype}, CAST(x.subject_id AS text), x.council, x.child_id"  # noqa: S608
                f" FROM ({sql.named.replace('{base}', base)}) x"
            )
        records.append(_records(n, each))
    statement = _FILL.format(
        bases=",\n".join(bases),
        kids="\n  ".join(kids),
        places="\n    ".join(places),
        records="\n  UNION ALL ".join(records) if records else _NO_RECORDS,
        columns=", ".join(COLUMNS),
        own=", ".join(f"r.{slot}" for slot in kinds.OWN),
    )
    if only_given:
        return statement.replace("/*UPSERT*/", _UPSERT)
    return statement.replace("/*UPSERT*/", "ORDER BY p.council, r.event_at")


def _present(connection: sa.Connection) -> tuple[kinds.RecordKind, ...]:
    """The declared kinds whose tables the database has: a migration runs before later ones
    create theirs."""
    tables = set(sa.inspect(connection).get_table_names())
    return tuple(k for k in kinds.declared() if k.table in tables)


def rebuild(connection: sa.Connection) -> None:
    """Derive the whole table again (synchronous: migrations and `run_sync` call it)."""
    connection.execute(sa.text("TRUNCATE stage_fact"))
    connection.execute(sa.text(fill_sql(only_given=False, declared=_present(connection))))


def refresh(
    connection: sa.Connection, subjects: Iterable[Subject], *, created: Iterable[Subject] = ()
) -> None:
    """Derive the facts of these records again: their rows replaced, stale councils dropped.

    `created`: those of them this transaction inserted and has not refreshed yet. No other
    transaction can see them, so none can have facts of them, change them, or link a record to
    them (a record this one links to them is marked by its own write): their facts are only
    filled, with no dependents to look for, nothing to delete and no lock to take.
    """
    every = kinds.declared()
    wanted, children = _by_kind(every, subjects)
    if children:
        _of_children(connection, every, sorted(children), wanted)
    new = set(created)
    seen = {k: {i for i in ids if (k, i) not in new} for k, ids in wanted.items()}
    _of_others(connection, every, seen, wanted)
    keys = [(k.record_type, i) for k in every for i in wanted[k.record_type]]
    if not keys:
        return
    old = [(t, i) for t, i in keys if (t, i) not in new]
    if old:
        _lock(connection, old)
    for each in every:
        ids = sorted(i for i in wanted[each.record_type] if (each.record_type, i) not in new)
        if ids:
            connection.execute(_DELETE, {"type": each.record_type, "ids": ids})
    connection.execute(*_filling(every, wanted))


def _by_kind(
    every: tuple[kinds.RecordKind, ...], subjects: Iterable[Subject]
) -> tuple[dict[str, set[str]], set[str]]:
    """The records' ids by declared kind (every kind a key), and the children's apart."""
    wanted: dict[str, set[str]] = {k.record_type: set() for k in every}
    children: set[str] = set()
    for record_type, record_id in subjects:
        if record_type == "Child":
            children.add(record_id)
        elif record_type in wanted:
            wanted[record_type].add(record_id)
    return wanted, children


def _filling(
    every: tuple[kinds.RecordKind, ...], wanted: dict[str, set[str]]
) -> tuple[sa.TextClause, dict[str, list[str]]]:
    """The fill of the wanted records, and its parameters. Only the kinds with records to
    fill: a push's incident alone is one kind's part of the statement, not six, each with its
    joins for PostgreSQL to plan and run on nothing."""
    present = tuple(each for each in every if wanted.get(each.record_type))
    given = {f"ids_{n}": sorted(wanted[each.record_type]) for n, each in enumerate(present)}
    return _refill(present), given


_DELETE = sa.text("DELETE FROM stage_fact WHERE record_type = :type AND subject_id = ANY(:ids)")
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(CAST(:keys AS text[])) k")


_REFILLS: dict[tuple[str, ...], sa.TextClause] = {}


def _refill(every: tuple[kinds.RecordKind, ...]) -> sa.TextClause:
    """The refresh's fill, built once per set of kinds (those with records to fill): assembling
    the text and parsing its bind parameters cost each push more than a statement's round trip."""
    named = tuple(k.record_type for k in every)
    built = _REFILLS.get(named)
    if built is None:
        built = _REFILLS[named] = sa.text(fill_sql(only_given=True, declared=every))
    return built


def _of_children(
    connection: sa.Connection,
    every: tuple[kinds.RecordKind, ...],
    children: list[str],
    wanted: dict[str, set[str]],
) -> None:
    """Add every record of these children to `wanted` (a child moved council)."""
    for n, each in enumerate(every):
        if each.sql.children is None:
            continue
        found = each.sql.children.replace("{base}", f"k{n}")
        sql = (
            f"WITH k{n} AS ({_base(n, each, only_given=False)})"  # noqa: S608 - declared fragments
            f" SELECT x.subject_id FROM ({found}) x WHERE x.child_id = ANY(CAST(:ids AS text[]))"
        )
        rows = connection.execute(sa.text(sql), {"ids": children})
        wanted[each.record_type].update(row[0] for row in rows)


def _of_others(
    connection: sa.Connection,
    every: tuple[kinds.RecordKind, ...],
    changed: dict[str, set[str]],
    wanted: dict[str, set[str]],
) -> None:
    """Add to `wanted` the records whose facts depend on `changed` ones: received through
    another's places (an investigation, its incidents'), or timed by another (a conference, its
    discussion)."""
    for each in every:
        for other, sql in each.sql.depends_on.items():
            if changed.get(other):
                rows = connection.execute(sa.text(sql), {"ids": sorted(changed[other])})
                wanted[each.record_type].update(row[0] for row in rows)


def _lock(connection: sa.Connection, keys: list[Subject]) -> None:
    """Two transactions changing one record's facts take turns, and the second (in READ
    COMMITTED, one snapshot per statement) reads what the first committed: no lost update.

    A few records are locked each (advisory locks, keyed by record); a bulk change takes the
    table instead, so that it does not fill the server's lock table. The two mix: a table lock
    waits for every writer of a row, and a writer's next statement waits for the table lock.
    """
    if len(keys) > FEW:
        connection.execute(sa.text("LOCK TABLE stage_fact IN SHARE ROW EXCLUSIVE MODE"))
        return
    connection.execute(_LOCK, {"keys": sorted(f"{t}:{i}" for t, i in keys)})


# First sight and acknowledgement, copied into the facts by whatever statement writes a receipt
# (the audit's single-statement append among them), under the same locks as `_lock`.
RECEIPT_TRIGGER = (
    """
CREATE FUNCTION stage_fact_receipts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM new_receipts) THEN
    RETURN NULL;  -- every receipt was there already (the audit inserts with DO NOTHING)
  END IF;
  IF (SELECT count(*) FROM new_receipts) > 64 THEN  -- FEW
    LOCK TABLE stage_fact IN SHARE ROW EXCLUSIVE MODE;
  ELSE
    PERFORM pg_advisory_xact_lock(hashtext(k)) FROM (
      SELECT n.record_type || ':' || n.record_id AS k FROM new_receipts n
    ) s ORDER BY k COLLATE "C";
  END IF;
  UPDATE stage_fact f SET first_seen_at = n.first_seen_at, acknowledged_at = n.acknowledged_at
  FROM new_receipts n
  WHERE f.record_type = n.record_type AND f.subject_id = n.record_id
    AND f.council_code = n.organisation_code AND f.receipt_stages;
  RETURN NULL;
END
$$
""",
    *(
        f"CREATE TRIGGER stage_fact_receipt_{name} AFTER {event} ON record_receipt"
        " REFERENCING NEW TABLE AS new_receipts FOR EACH STATEMENT"
        " EXECUTE FUNCTION stage_fact_receipts()"
        for event, name in (("INSERT", "inserted"), ("UPDATE", "updated"))
    ),
)
DROP_RECEIPT_TRIGGER = (
    "DROP TRIGGER IF EXISTS stage_fact_receipt_updated ON record_receipt",
    "DROP TRIGGER IF EXISTS stage_fact_receipt_inserted ON record_receipt",
    "DROP FUNCTION IF EXISTS stage_fact_receipts()",
)


def mark(session: Session, subjects: Iterable[Subject], *, created: bool = False) -> None:
    """Have these records' facts refreshed when the session commits.

    `created`: the caller inserted these records in this transaction (`refresh` says what that
    spares). Marks from the ORM's flushes never say so: a written row may belong to a record
    that was there before.
    """
    wanted = list(subjects)
    pending: set[Subject] = session.info.setdefault(_PENDING, set())
    pending.update(wanted)
    if created:
        session.info.setdefault(_CREATED, set()).update(wanted)


def _subjects_of(instance: Any, *, is_new: bool) -> list[Subject]:
    """The records whose facts a written row changes."""
    if isinstance(instance, Child):
        # A child moved to another council moves its records; a new child has none yet.
        state = sa.inspect(instance)
        moved = not is_new and any(
            state.attrs[name].history.has_changes()
            for name in ("responsible_council_code", "host_council_code")
        )
        return [("Child", instance.id)] if moved else []
    # Every kind the row belongs to: two declarations may read one table.
    return [
        (declared.record_type, getattr(instance, attribute))
        for declared in kinds.declared()
        for model, attribute in declared.models.items()
        if isinstance(instance, model)
    ]


def _is_postgres(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "postgresql"


@event.listens_for(HubSession, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if not _is_postgres(session):
        return
    found: list[Subject] = []
    for instance in session.new:
        found += _subjects_of(instance, is_new=True)
    for instance in (*session.dirty, *session.deleted):
        found += _subjects_of(instance, is_new=False)
    if found:
        mark(session, found)


@event.listens_for(HubSession, "before_commit")
def _before_commit(session: Session) -> None:
    # Runs inside AsyncSession's greenlet, so the synchronous API may emit SQL here. The commit's
    # own flush comes after this event: flush first, so that its writes are marked too.
    if not _is_postgres(session):
        return
    if session.in_nested_transaction():
        # A savepoint's release is no commit (SQLAlchemy sends this event for both): the
        # facts are refreshed once, at the transaction's own commit, for everything marked.
        return
    refresh_marked(session)


async def refresh_before_append(session: AsyncSession) -> None:
    """`refresh_marked`, for a request about to append its audit events.

    Where this transaction created every record marked, none is a child, and nothing is left
    to flush (a push of new records), `refresh` would only fill them: the fill then goes
    straight to the driver (`hub.db.rows`), without the ORM's execution of a statement (a
    tenth of a push's instructions went to this one statement that way).
    """
    sync = session.sync_session
    if not _is_postgres(sync):
        return
    pending: set[Subject] = sync.info.get(_PENDING, set())
    every = kinds.declared()
    wanted, children = _by_kind(every, pending)
    if (
        children
        or not pending <= sync.info.get(_CREATED, set())
        or sync.new
        or sync.dirty
        or sync.deleted
    ):
        await session.run_sync(refresh_marked)
        return
    sync.info.pop(_PENDING, None)
    sync.info.pop(_CREATED, None)
    if pending:
        await rows(session, *_filling(every, wanted))


def refresh_marked(session: Session) -> None:
    """Refresh the facts of every record marked so far (PostgreSQL; else nothing).

    The commit does this anyway; a request calls it earlier, before the audit's append, so that
    these statements do not run while it holds the lock on the chain's head.
    """
    if not _is_postgres(session):
        return
    session.flush()
    pending: set[Subject] = session.info.pop(_PENDING, set())
    # Refreshed once, a created record's facts are there: a second refresh replaces them.
    created: set[Subject] = session.info.pop(_CREATED, set())
    if pending:
        refresh(session.connection(), pending, created=created & pending)
