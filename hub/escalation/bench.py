"""`bench-escalation`: scanning a national year of open stages for escalation (PostgreSQL).

A year of missing episodes (216,000 a year, STANDARDS.md) is copied in with the report bench's
loader: a tenth never read and some read but not acknowledged, so tens of thousands of
MISSING-ACK stages are open. The first scan raises every overdue one; the second, side by side
on the same data, finds nothing new: the steady cost each hub process pays every interval.
A scan that raises other than what an independent count says is due, or raises anything the
second time, has no figures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from hub.bench import BenchFailed, scratch_database
from hub.db import Database, utcnow
from hub.escalation.scan import ScanResult, scan
from hub.migrate import upgrade
from hub.partnership.bench import Volumes
from hub.settings import Settings
from hub.timeliness.bench import _load
from hub.timeliness.extract import all_targets_for

HORIZON = dt.timedelta(days=366)
TARGET = "MISSING-ACK"


@dataclasses.dataclass(frozen=True)
class EscalationBenchFigures:
    episodes: int
    first: ScanResult
    steady: ScanResult

    def lines(self) -> list[str]:
        rate = self.first.candidates / self.first.seconds if self.first.seconds else 0.0
        first, steady = self.first, self.steady
        judged = (
            f"first scan:        {first.candidates} open stages judged, {first.raised}"
            f" escalations raised in {first.seconds:.2f} s ({rate:,.0f} stages/s)"
        )
        again = (
            f"steady scan:       {steady.candidates} open stages, {steady.raised} raised"
            f" in {steady.seconds:.3f} s"
        )
        ratio = (
            f"steady/first:      {steady.seconds / first.seconds:.3f}"
            " (each process pays the steady cost every interval)"
        )
        return [f"episodes loaded:   {self.episodes}", judged, again, ratio]


async def _due(db: Database, hours: float, now: dt.datetime) -> int:
    """An independent count of what is due: unacknowledged receipts of episodes shared long ago."""
    query = sa.text(
        """
        SELECT count(*) FROM missing_episode m JOIN child c ON c.id = m.child_id
        WHERE m.shared_at <= :due AND m.shared_at > :after AND NOT EXISTS (
          SELECT FROM record_receipt r WHERE r.record_type = 'MissingEpisode'
            AND r.record_id = m.id AND r.organisation_code = c.responsible_council_code
            AND r.acknowledged_at IS NOT NULL)
        """
    )
    async with db.transaction(write=False) as session:
        found = await session.execute(
            query, {"due": now - dt.timedelta(hours=hours), "after": now - HORIZON}
        )
        return int(found.scalar_one())


async def run(
    *, database_url: str, episodes: int = 216_000, seed: int = 2026
) -> EscalationBenchFigures:
    if not database_url.startswith("postgresql"):
        raise ValueError("bench-escalation loads with PostgreSQL's COPY: give a PostgreSQL URL")
    async with scratch_database(database_url, prefix="hub_bench_escalation") as url:
        await upgrade(url)
        # Missing episodes only: the independent count below is MISSING-ACK's.
        nothing_else = Volumes(0, 0, 0, 0, 0)
        await _load(url, incidents=0, episodes=episodes, seed=seed, volumes=nothing_else)
        targets = all_targets_for(Settings(database_url=url))
        hours = targets.get(TARGET).limit
        assert hours is not None  # noqa: S101 - MISSING-ACK is in hours
        db = Database(url)
        try:
            now = utcnow()
            due = await _due(db, hours, now)
            first = await scan(db, targets, horizon=HORIZON, now=now)
            steady = await scan(db, targets, horizon=HORIZON, now=now)
        finally:
            await db.dispose()
    if first.raised != due or steady.raised:
        msg = (
            f"the first scan raised {first.raised} where {due} were due, the second"
            f" {steady.raised} where none were: no figures for a wrong answer"
        )
        raise BenchFailed(msg)
    if not due:
        raise BenchFailed("nothing was due: the load is too small to measure a scan")
    return EscalationBenchFigures(episodes=episodes, first=first, steady=steady)
