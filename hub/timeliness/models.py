"""Receipts: when each receiving organisation first saw a record, and when it acknowledged it.

First sight comes from the audit (the first consultation a council or school was served), never
from the client; acknowledgement from the council's `acknowledge` mutation. Both are kept as first
set: a later read or a second acknowledgement moves neither.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from hub.base import utc_field

# The record types a receipt can be about: those the audit names when it serves a record.
RECEIPT_TYPES = ("Incident", "MissingEpisode", "Investigation", "PoliceProtection")
# The roles that receive what police share; their first consultation of a record is its receipt.
RECEIVING_ROLES = frozenset({"council_social_worker", "school_dsl"})


class RecordReceipt(SQLModel, table=True):
    __tablename__ = "record_receipt"

    record_type: str = Field(primary_key=True, max_length=32)
    record_id: str = Field(primary_key=True, max_length=36)
    # No foreign key, like the audit log it comes from: a receipt must never block the audit.
    organisation_code: str = Field(primary_key=True, max_length=32, index=True)
    first_seen_at: dt.datetime = utc_field()
    acknowledged_at: dt.datetime | None = utc_field(nullable=True)
    # The person the council's system acted for, as it named them (Hub-On-Behalf-Of).
    acknowledged_by: str | None = Field(default=None, max_length=128)


@dataclasses.dataclass(frozen=True)
class FirstSeen:
    """A receiving organisation's consultation of records: their receipt, if it is the first."""

    organisation_code: str
    records: tuple[tuple[str, str], ...]  # (record type, id), only types a receipt is about
    at: dt.datetime

    @classmethod
    def of(
        cls, organisation_code: str, records: Sequence[tuple[str, str]], at: dt.datetime
    ) -> FirstSeen:
        kept = tuple(record for record in dict.fromkeys(records) if record[0] in RECEIPT_TYPES)
        return cls(organisation_code=organisation_code, records=kept, at=at)


class NotedReceipts:
    """The receipts this process knows are committed: none of them needs noting again.

    A council reads the same records again and again (its page of incidents, every few
    seconds), and each read's audit noted each record's receipt once more: an insert that met
    the row already there and did nothing, twenty a page, then the receipts' statement trigger
    (`facts.RECEIPT_TRIGGER`) run over no rows: a sixth of the append's database CPU (0.58
    against 0.48 ms for a page's event), for nothing. A receipt is kept as first set and never
    deleted, so once this process has seen one committed it can leave it out of every later
    append.

    Only what committed goes in (`committed`, after the commit), never what a transaction
    wrote and might still lose: a receipt missing from the table must stay unknown here, or
    it would never be noted. At most `most` are kept (20,000: 3.4 MiB); past that the older
    half goes, and a receipt forgotten is noted again, as before, which the table ignores.
    """

    def __init__(self, most: int = 20_000) -> None:
        self._most = most
        self._known: dict[tuple[str, str, str], None] = {}

    def unnoted(self, seen: FirstSeen | None) -> FirstSeen | None:
        """`seen` without the receipts known committed; None if it has none left."""
        if seen is None:
            return None
        known = self._known
        organisation = seen.organisation_code
        left = tuple(record for record in seen.records if (organisation, *record) not in known)
        if not left:
            return None
        return seen if len(left) == len(seen.records) else dataclasses.replace(seen, records=left)

    def committed(self, seen: FirstSeen | None) -> None:
        """`seen`'s receipts are in the table: a transaction that noted them has committed."""
        if seen is None:
            return
        known = self._known
        organisation = seen.organisation_code
        for record_type, record_id in seen.records:
            known[(organisation, record_type, record_id)] = None
        if len(known) > self._most:  # the newer half kept: a rebuild now and then, not per key
            self._known = dict.fromkeys(itertools.islice(known, len(known) // 2, None))

    def __len__(self) -> int:
        return len(self._known)


async def note_first_seen(session: AsyncSession, seen: FirstSeen) -> None:
    """Record that the organisation first saw these records at `seen.at`; keep earlier ones.

    One statement, insert-or-ignore: a record already seen keeps its first sight, and two
    concurrent first reads cannot both win. (The audit's append makes the same insert among
    its own statements: `hub.audit.chain`.)
    """
    rows = [
        {
            "record_type": record_type,
            "record_id": record_id,
            "organisation_code": seen.organisation_code,
            "first_seen_at": seen.at,
        }
        for record_type, record_id in seen.records
    ]
    if not rows:
        return
    table = RecordReceipt.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(rows).on_conflict_do_nothing()
    await session.execute(statement)


def receipt_key(record_type: str, record_id: str) -> sa.ColumnElement[bool]:
    table = RecordReceipt.__table__  # type: ignore[attr-defined]
    return sa.and_(table.c.record_type == record_type, table.c.record_id == record_id)
