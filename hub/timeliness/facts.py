"""Stage facts: each record's clock readings per receiving council, kept up to date on write.

The PostgreSQL report used to re-derive a year of timelines on every run: which councils receive
each record (through its children and locations), and each council's receipt. `stage_fact`
holds that derivation, one narrow row per (record, receiving council), so that the report reads
rows instead of joining six tables. It holds *times only*: deadlines and verdicts depend on the
targets file, the calendars and the report's `as_of`, so they are still computed when a report
is made, and a change of targets needs no rebuild.

The rows are derived by one SQL statement (`FILL`), used both to rebuild the whole table (the
migration, the benchmark after its bulk load) and to refresh the records a transaction touched:
every ORM write to a record, its children's councils or its links marks the record, and the
session refreshes the marked records just before it commits (`_before_commit`). Receipts (first
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
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from hub.base import utc_field
from hub.children.models import Child
from hub.db import HubSession
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationTransition,
)
from hub.missing.models import MissingEpisode

FEW = 64  # records locked one by one; more lock the table
# A record the facts are derived for: (record type, id); "Child" marks every record of a child.
Subject = tuple[str, str]
_PENDING = "hub_stage_facts_pending"
SUBJECT_TYPES = ("Incident", "MissingEpisode", "Investigation", "Child")


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
    subject_id: str = Field(max_length=36)
    kind: str = Field(max_length=32)
    force_code: str = Field(max_length=32)
    month: str = Field(max_length=7)  # YYYY-MM of the event in England and Wales
    child_id: str | None = Field(default=None, max_length=36)
    event_at: dt.datetime = utc_field()
    recorded_at: dt.datetime | None = utc_field(nullable=True)
    shared_at: dt.datetime = utc_field()
    first_seen_at: dt.datetime | None = utc_field(nullable=True)
    acknowledged_at: dt.datetime | None = utc_field(nullable=True)
    returned_at: dt.datetime | None = utc_field(nullable=True)
    interview_at: dt.datetime | None = utc_field(nullable=True)
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
    "record_type", "record_id", "council_code", "subject_id", "kind", "force_code", "month",
    "child_id", "event_at", "recorded_at", "shared_at", "first_seen_at", "acknowledged_at",
    "returned_at", "interview_at", "share_stages", "receipt_stages", "first_council", "event_local",
    "recorded_local", "shared_local", "returned_local",
)  # fmt: skip

# Mirrors `service._assemble` and `timeline.stage_delays`: a record's receivers are its location's
# council and each child's responsible and host councils; a council's child is its own child with
# the smallest id, else the record's. An investigation's status changes carry the sharing stages,
# the investigation (from its opening change) the receipt stages. The markers restrict the
# records to a set of ids when refreshing.
FILL = """
WITH
inc AS (
  SELECT i.id, i.type, i.force_code, i.location_council_code, i.occurred_at, i.recorded_at,
    i.shared_at
  FROM incident i WHERE true /*INCIDENT*/
),
mis AS (
  SELECT m.id, m.child_id, m.force_code, m.reported_missing_at, m.recorded_at, m.shared_at,
    m.returned_at, m.return_interview_at
  FROM missing_episode m WHERE true /*MISSING*/
),
inv AS (
  SELECT v.id, v.force_code, v.shared_at FROM investigation v WHERE true /*INVESTIGATION*/
),
chg AS (
  SELECT t.id, t.investigation_id, t.changed_at, t.shared_at, t.from_status, v.force_code
  FROM investigation_transition t JOIN inv v ON v.id = t.investigation_id
),
kids AS (
  SELECT 'Incident' AS rtype, ic.incident_id AS record_id, c.id AS child_id,
    c.responsible_council_code AS r, c.host_council_code AS h
  FROM inc JOIN incident_child ic ON ic.incident_id = inc.id JOIN child c ON c.id = ic.child_id
  UNION ALL
  SELECT 'MissingEpisode', m.id, c.id, c.responsible_council_code, c.host_council_code
  FROM mis m JOIN child c ON c.id = m.child_id
  UNION ALL
  SELECT 'Investigation', ic.investigation_id, c.id, c.responsible_council_code,
    c.host_council_code
  FROM inv JOIN investigation_child ic ON ic.investigation_id = inv.id
  JOIN child c ON c.id = ic.child_id
),
recipients AS (
  SELECT rtype, record_id, council, min(child_id) AS child_id FROM (
    SELECT rtype, record_id, r AS council, child_id FROM kids
    UNION ALL SELECT rtype, record_id, h, child_id FROM kids WHERE h IS NOT NULL
    UNION ALL SELECT 'Incident', id, location_council_code, NULL FROM inc
    UNION ALL SELECT 'Investigation', ii.investigation_id, i.location_council_code, NULL
      FROM inv JOIN investigation_incident ii ON ii.investigation_id = inv.id
      JOIN incident i ON i.id = ii.incident_id
  ) x GROUP BY rtype, record_id, council
),
first_kid AS (SELECT rtype, record_id, min(child_id) AS child_id FROM kids GROUP BY 1, 2),
records AS (
  SELECT 'Incident' AS rtype, id AS rid, id AS record_id,
    CASE WHEN type = 'domestic_abuse' THEN 'domestic_abuse' ELSE 'incident' END AS kind,
    force_code, occurred_at AS event_at, recorded_at, shared_at,
    NULL::timestamptz AS returned_at, NULL::timestamptz AS interview_at,
    true AS share_stages, true AS receipt_stages
  FROM inc
  UNION ALL
  SELECT 'MissingEpisode', id, id, 'missing_episode', force_code, reported_missing_at,
    recorded_at, shared_at, returned_at, return_interview_at, true, true
  FROM mis
  UNION ALL
  SELECT 'Investigation', investigation_id, id, 'investigation_status', force_code, changed_at,
    NULL, shared_at, NULL, NULL, true, false
  FROM chg
  UNION ALL
  SELECT 'Investigation', c.investigation_id, c.investigation_id, 'investigation_status',
    c.force_code, c.changed_at, NULL, v.shared_at, NULL, NULL, false, true
  FROM chg c JOIN inv v ON v.id = c.investigation_id WHERE c.from_status IS NULL
)
INSERT INTO stage_fact (record_type, record_id, council_code, subject_id, kind, force_code,
  month, child_id, event_at, recorded_at, shared_at, first_seen_at, acknowledged_at,
  returned_at, interview_at, share_stages, receipt_stages, first_council, event_local,
  recorded_local,
  shared_local, returned_local)
SELECT r.rtype, r.record_id, p.council, r.rid, r.kind, r.force_code,
  to_char(r.event_at AT TIME ZONE 'Europe/London', 'YYYY-MM'), coalesce(p.child_id, f.child_id),
  r.event_at, r.recorded_at, r.shared_at,
  CASE WHEN r.receipt_stages THEN rr.first_seen_at END,
  CASE WHEN r.receipt_stages THEN rr.acknowledged_at END,
  r.returned_at, r.interview_at, r.share_stages, r.receipt_stages,
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

_ONLY = {
    "/*INCIDENT*/": "AND i.id = ANY(CAST(:incidents AS text[]))",
    "/*MISSING*/": "AND m.id = ANY(CAST(:episodes AS text[]))",
    "/*INVESTIGATION*/": "AND v.id = ANY(CAST(:investigations AS text[]))",
}
_UPSERT = "ON CONFLICT (record_type, record_id, council_code) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in COLUMNS[3:]
)


def fill_sql(*, only_given: bool) -> str:
    """The fill statement: for every record, or only for the ids bound as arrays.

    A whole rebuild writes each council's rows together (in event order), so that a council's
    report reads a few hundred pages rather than one per record; rows kept on write arrive in
    time order after them.
    """
    sql = FILL
    if only_given:
        for marker, fragment in _ONLY.items():
            sql = sql.replace(marker, fragment)
        return sql.replace("/*UPSERT*/", _UPSERT)
    return sql.replace("/*UPSERT*/", "ORDER BY p.council, r.event_at")


def rebuild(connection: sa.Connection) -> None:
    """Derive the whole table again (synchronous: migrations and `run_sync` call it)."""
    connection.execute(sa.text("TRUNCATE stage_fact"))
    connection.execute(sa.text(fill_sql(only_given=False)))


def refresh(connection: sa.Connection, subjects: Iterable[Subject]) -> None:
    """Derive the facts of these records again: their rows replaced, stale councils dropped."""
    wanted: dict[str, set[str]] = {kind: set() for kind in SUBJECT_TYPES}
    for record_type, record_id in subjects:
        wanted[record_type].add(record_id)
    children = sorted(wanted["Child"])
    if children:
        expand = {
            "Incident": "SELECT incident_id FROM incident_child WHERE child_id = ANY(:ids)",
            "MissingEpisode": "SELECT id FROM missing_episode WHERE child_id = ANY(:ids)",
            "Investigation": (
                "SELECT investigation_id FROM investigation_child WHERE child_id = ANY(:ids)"
            ),
        }
        for record_type, sql in expand.items():
            rows = connection.execute(sa.text(sql), {"ids": children})
            wanted[record_type].update(row[0] for row in rows)
    if wanted["Incident"]:
        # An investigation is received by its incidents' location councils too.
        rows = connection.execute(
            sa.text(
                "SELECT investigation_id FROM investigation_incident WHERE incident_id = ANY(:ids)"
            ),
            {"ids": sorted(wanted["Incident"])},
        )
        wanted["Investigation"].update(row[0] for row in rows)
    keys = [(t, i) for t in SUBJECT_TYPES[:3] for i in wanted[t]]
    if not keys:
        return
    _lock(connection, keys)
    for record_type in SUBJECT_TYPES[:3]:
        if wanted[record_type]:
            connection.execute(
                sa.text(
                    "DELETE FROM stage_fact WHERE record_type = :type AND subject_id = ANY(:ids)"
                ),
                {"type": record_type, "ids": sorted(wanted[record_type])},
            )
    connection.execute(
        sa.text(fill_sql(only_given=True)),
        {
            "incidents": sorted(wanted["Incident"]),
            "episodes": sorted(wanted["MissingEpisode"]),
            "investigations": sorted(wanted["Investigation"]),
        },
    )


# Each written row's record: (its type, the attribute holding its id).
_RECORD_OF: dict[type, tuple[str, str]] = {
    Incident: ("Incident", "id"),
    IncidentChild: ("Incident", "incident_id"),
    MissingEpisode: ("MissingEpisode", "id"),
    Investigation: ("Investigation", "id"),
    InvestigationTransition: ("Investigation", "investigation_id"),
    InvestigationChild: ("Investigation", "investigation_id"),
    InvestigationIncident: ("Investigation", "investigation_id"),
}


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
    connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(CAST(:keys AS text[])) k"),
        {"keys": sorted(f"{t}:{i}" for t, i in keys)},
    )


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


def mark(session: Session, subjects: Iterable[Subject]) -> None:
    """Have these records' facts refreshed when the session commits."""
    pending: set[Subject] = session.info.setdefault(_PENDING, set())
    pending.update(subjects)


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
    for model, (record_type, attribute) in _RECORD_OF.items():
        if isinstance(instance, model):
            return [(record_type, getattr(instance, attribute))]
    return []


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


def refresh_marked(session: Session) -> None:
    """Refresh the facts of every record marked so far (PostgreSQL; else nothing).

    The commit does this anyway; a request calls it earlier, before the audit's append, so that
    these statements do not run while it holds the lock on the chain's head.
    """
    if not _is_postgres(session):
        return
    session.flush()
    pending: set[Subject] = session.info.pop(_PENDING, set())
    if pending:
        refresh(session.connection(), pending)
