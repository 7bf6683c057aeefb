"""`council_reach` checked against the records it is derived from, and repaired.

PostgreSQL's triggers keep the table (migration 0023) on every write, COPY included; only a load
run with triggers off (`session_replication_role = replica`, `pg_restore --disable-triggers`)
or a hand edit leaves it wrong. A wrong row costs a council records on its page: a missing row
hides a record reached through a child, a stale one takes a place no record fills.

The check recomputes each record's rows with the triggers' own functions
(`council_reach_of_<list>`), so there is one derivation, the migration's. It goes through each
list in slices of `SLICE` records, each slice a transaction of its own: rolled back when only
checking, committed when repairing. A slice holds its records' locks (as a trigger does) only
while it runs, so a live hub's pushes wait for a slice at most.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import Database

# The lists a council reaches records of through a child (their tables; `CouncilReach.kind`).
LISTS = ("incident", "missing_episode", "investigation", "police_protection", "joint_visit_request")
SLICE = 1000


@dataclasses.dataclass
class ReachCheck:
    """For each list, the records checked and those whose rows were wrong (or, repairing, were
    put right); rows naming a record that no longer exists count as one wrong each."""

    checked: dict[str, int] = dataclasses.field(default_factory=dict)
    wrong: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def total_wrong(self) -> int:
        return sum(self.wrong.values())

    def lines(self, *, repaired: bool) -> list[str]:
        verb = "repaired" if repaired else "wrong"
        return [
            f"{kind:20} {self.checked[kind]:>10,} records checked  {self.wrong[kind]:>8,} {verb}"
            for kind in LISTS
        ]


async def check(db: Database, *, repair: bool, slice_size: int = SLICE) -> ReachCheck:
    """Every list's records recomputed, slice by slice; the rows left as they were unless
    `repair`. PostgreSQL only: SQLite has no triggers and its lists never read the table."""
    found = ReachCheck()
    for kind in LISTS:
        found.checked[kind], found.wrong[kind] = 0, await _orphans(db, kind, repair=repair)
        after = ""
        listed = sa.text(f"SELECT id FROM {kind} WHERE id > :after ORDER BY id LIMIT :n")  # noqa: S608 - our tables
        while True:
            async with db.session(write=True) as session:
                ids = list(await session.scalars(listed, {"after": after, "n": slice_size}))
                if ids:
                    found.checked[kind] += len(ids)
                    found.wrong[kind] += await _recomputed(session, kind, ids)
                await (session.commit() if repair else session.rollback())
            if not ids:
                break
            after = ids[-1]
    return found


_ROWS = (
    "SELECT record_id, council_code, at FROM council_reach "
    "WHERE kind = :kind AND record_id = ANY(CAST(:ids AS TEXT[]))"
)
# Each record's rows recomputed, in id order as the triggers lock a child's records.
_RECOMPUTE = "SELECT council_reach_of_{}(id) FROM unnest(CAST(:ids AS TEXT[])) AS id ORDER BY id"
# Rows naming a record that no longer exists.
_GONE = (
    "FROM council_reach r WHERE r.kind = :kind "
    "AND NOT EXISTS (SELECT 1 FROM {} x WHERE x.id = r.record_id)"
)


async def _recomputed(session: AsyncSession, kind: str, ids: list[str]) -> int:
    """How many of the records `ids` had rows other than their recomputed ones."""
    values = {"kind": kind, "ids": ids}
    before = {tuple(row) for row in await session.execute(sa.text(_ROWS), values)}
    await session.execute(sa.text(_RECOMPUTE.format(kind)), values)
    after = {tuple(row) for row in await session.execute(sa.text(_ROWS), values)}
    return len({record for record, *_ in before ^ after})


async def _orphans(db: Database, kind: str, *, repair: bool) -> int:
    """Rows naming a record of `kind` that no longer exists, as records; deleted if `repair`."""
    gone = _GONE.format(kind)
    async with db.transaction(write=True) as session:
        counted = await session.scalar(
            sa.text("SELECT count(DISTINCT r.record_id) " + gone), {"kind": kind}
        )
        if repair and counted:
            deleted = "DELETE FROM council_reach WHERE (kind, record_id) IN "
            await session.execute(
                sa.text(deleted + "(SELECT r.kind, r.record_id " + gone + ")"), {"kind": kind}
            )
    return int(counted or 0)
