"""Raising escalations: every escalable stage past its target's deadline, once.

A scan reads stored state only, so a restart loses nothing and repeats nothing: an escalation's
unique key (target, record, owed by) makes a second insert of it a no-op, whichever process
makes it, and only the insert that wrote the row publishes its change. On PostgreSQL one
process scans at a time (a transaction-scoped advisory lock, tried, not waited for); another
that finds the lock taken skips its turn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.base import new_id
from hub.changes import service as changes
from hub.changes.models import ChangeKind
from hub.db import Database, utcnow
from hub.escalation.models import Escalation
from hub.escalation.stages import Escalable, Window, declared
from hub.reference.models import Organisation
from hub.timeliness.targets import Target, TargetSet, Unit

RECORD_TYPE = "Escalation"
# pg_try_advisory_xact_lock's key: "escalation scan", one scanner at a time.
SCAN_LOCK = 0x65736361
INSERT_CHUNK = 1000
DEFAULT_NATION = "england"


class EscalationTargetsInvalid(ValueError):
    """A target asks to escalate a stage no domain declares: refused at start, not ignored."""


@dataclasses.dataclass(frozen=True)
class ScanResult:
    candidates: int  # open stages not yet escalated, within the window
    raised: int  # escalations written (and published) by this scan
    seconds: float
    skipped: bool = False  # another process held the scan


def escalating(targets: TargetSet) -> list[tuple[Target, Escalable]]:
    """The targets that escalate, each with its stage's declaration; unknown stages refused."""
    known = declared()
    found: list[tuple[Target, Escalable]] = []
    problems: list[str] = []
    for target in targets.targets:
        if not target.escalate:
            continue
        escalable = known.get(f"{target.kind}/{target.stage}")
        if escalable is None:
            problems.append(
                f"target {target.id}: no domain can escalate {target.kind}/{target.stage}"
                f" (escalable: {', '.join(sorted(known))})"
            )
            continue
        found.append((target, escalable))
    if problems:
        raise EscalationTargetsInvalid("; ".join(problems))
    return found


def _shortest(target: Target) -> dt.timedelta:
    """The least time from a stage's start to its deadline: younger stages cannot be overdue."""
    if target.unit is Unit.HOURS and target.limit is not None:
        return dt.timedelta(hours=target.limit)
    if target.unit is Unit.WORKING_DAYS and target.limit is not None:
        return dt.timedelta(days=target.limit)  # working days are never shorter than days
    return dt.timedelta(0)


async def scan(
    db: Database, targets: TargetSet, *, horizon: dt.timedelta, now: dt.datetime | None = None
) -> ScanResult:
    """Raise every escalation due at `now`, for stages started within `horizon` of it."""
    started = time.perf_counter()
    moment = now or utcnow()
    plan = escalating(targets)
    candidates = raised = 0
    async with db.transaction(write=True) as session:
        if not db.is_sqlite:
            locked = await session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(SCAN_LOCK)))
            if not locked:
                return ScanResult(0, 0, time.perf_counter() - started, skipped=True)
        nations = await _nations(session)
        new_ids: list[str] = []
        for target, escalable in plan:
            window = Window(
                target_id=target.id,
                started_after=moment - horizon,
                started_before=moment - _shortest(target),
            )
            stages = await escalable.open_stages(session, window)
            candidates += len(stages)
            due = []
            for stage in stages:
                deadline = target.deadline(
                    stage.started_at, nations.get(stage.owed_by) or DEFAULT_NATION
                )
                if deadline < moment:
                    due.append(
                        {
                            "id": new_id(),
                            "target_id": target.id,
                            "kind": target.kind,
                            "stage": target.stage,
                            "record_type": stage.record_type,
                            "record_id": stage.record_id,
                            "owed_by_code": stage.owed_by,
                            "waiting_code": stage.waiting,
                            "stage_started_at": stage.started_at,
                            "deadline": deadline,
                            "raised_at": moment,
                        }
                    )
            new_ids += await _insert(session, due)
        raised = len(new_ids)
        await changes.publish(
            session, ((RECORD_TYPE, escalation, ChangeKind.COLLECTED) for escalation in new_ids)
        )
    return ScanResult(candidates, raised, time.perf_counter() - started)


async def _nations(session: AsyncSession) -> dict[str, str | None]:
    rows = await session.execute(sa.select(col(Organisation.code), col(Organisation.nation)))
    return {str(code): nation for code, nation in rows.all()}


async def _insert(session: AsyncSession, rows: list[dict[str, object]]) -> list[str]:
    """Insert-or-ignore; the ids of the rows this statement wrote (so only it publishes them).

    One statement compiled once, its rows sent in batches (SQLAlchemy's "insertmanyvalues"):
    a VALUES list of literal rows per chunk costs seconds to compile at national size.
    """
    if not rows:
        return []
    table = Escalation.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing().returning(table.c.id)
    written: list[str] = []
    for chunk in _chunks(rows, INSERT_CHUNK):
        written += [row[0] for row in await session.execute(statement, chunk)]
    return written


def _chunks(rows: list[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
