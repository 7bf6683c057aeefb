"""Closure figures (issue 14, item 5): per force and council, how closures met councils' views.

Counted over the closures made in a period (the force's closing time, UTC dates): how many
each council agreed with, challenged or has not answered yet; of the challenges, how many the
force answered, reopened or upheld, and how long the force took to answer (median hours from
the hub's receipt of the challenge to its receipt of the answer). Figures only: no case content.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.closures.models import ChallengeAnswer, ClosureResponse, ClosureReview


@dataclasses.dataclass
class Figures:
    force_code: str | None
    council_code: str | None
    closures: int = 0
    agreed: int = 0
    challenged: int = 0
    awaiting_response: int = 0
    challenges_answered: int = 0
    challenges_open: int = 0
    reopened: int = 0
    upheld: int = 0
    hours_to_answer: list[float] = dataclasses.field(default_factory=list)

    @property
    def median_hours_to_answer(self) -> float | None:
        if not self.hours_to_answer:
            return None
        return round(statistics.median(self.hours_to_answer), 2)


@dataclasses.dataclass(frozen=True)
class ClosureFigures:
    period_from: dt.date
    period_to: dt.date
    rows: list[Figures]
    total: Figures


def _seconds_between(session: AsyncSession, later: Any, earlier: Any) -> sa.ColumnElement[Any]:
    """Seconds from `earlier` to `later`, computed by the database (no row of times to parse)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    # SQLite keeps UTC times as ISO text, which julianday reads.
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


async def figures(
    session: AsyncSession,
    *,
    period_from: dt.date,
    period_to: dt.date,
    force_code: str | None = None,
    council_code: str | None = None,
) -> ClosureFigures:
    """Counted in the database (a national year is hundreds of thousands of reviews); only the
    answered challenges' two receipt times come back, for the medians."""
    start = dt.datetime.combine(period_from, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(period_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    where = [col(ClosureReview.closed_at) >= start, col(ClosureReview.closed_at) < end]
    if force_code is not None:
        where.append(col(ClosureReview.force_code) == force_code)
    if council_code is not None:
        where.append(col(ClosureReview.council_code) == council_code)
    response, answer = col(ClosureReview.response), col(ClosureReview.answer)
    challenged = response == ClosureResponse.CHALLENGE
    pair = (col(ClosureReview.force_code), col(ClosureReview.council_code))
    counted = await session.execute(
        sa.select(
            *pair,
            sa.func.count(),
            _count(response == ClosureResponse.AGREE),
            _count(challenged),
            _count(response.is_(None)),
            _count(sa.and_(challenged, answer.is_not(None))),
            _count(sa.and_(challenged, answer.is_(None))),
            _count(answer == ChallengeAnswer.REOPENED),
            _count(answer == ChallengeAnswer.UPHELD),
        )
        .where(*where)
        .group_by(*pair)
        .order_by(*pair)
    )
    rows: dict[tuple[str, str], Figures] = {}
    for force, council, *numbers in counted.all():
        figures_ = rows[force, council] = Figures(force, council)
        for name, number in zip(_COUNTS, numbers, strict=True):
            setattr(figures_, name, int(number or 0))
    received, responded = col(ClosureReview.answer_received_at), col(ClosureReview.responded_at)
    timed = await session.execute(
        sa.select(*pair, _seconds_between(session, received, responded)).where(
            *where, challenged, received.is_not(None), responded.is_not(None)
        )
    )
    for force, council, seconds in timed.all():
        rows[force, council].hours_to_answer.append(max(float(seconds), 0.0) / 3600)
    total = Figures(None, None)
    for figures_ in rows.values():
        for name in _COUNTS:
            setattr(total, name, getattr(total, name) + getattr(figures_, name))
        total.hours_to_answer.extend(figures_.hours_to_answer)
    return ClosureFigures(
        period_from=period_from, period_to=period_to, rows=list(rows.values()), total=total
    )


_COUNTS = (
    "closures",
    "agreed",
    "challenged",
    "awaiting_response",
    "challenges_answered",
    "challenges_open",
    "reopened",
    "upheld",
)
