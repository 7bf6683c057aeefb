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
from collections import defaultdict
from collections.abc import Iterable

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

    def add(self, review: ClosureReview) -> None:
        self.closures += 1
        if review.response is None:
            self.awaiting_response += 1
            return
        if review.response == ClosureResponse.AGREE:
            self.agreed += 1
            return
        self.challenged += 1
        if review.answer is None:
            self.challenges_open += 1
            return
        self.challenges_answered += 1
        if review.answer == ChallengeAnswer.REOPENED:
            self.reopened += 1
        else:
            self.upheld += 1
        if review.answer_received_at is not None and review.responded_at is not None:
            seconds = (review.answer_received_at - review.responded_at).total_seconds()
            self.hours_to_answer.append(max(seconds, 0.0) / 3600)

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


def tally(
    reviews: Iterable[ClosureReview], *, period_from: dt.date, period_to: dt.date
) -> ClosureFigures:
    by_pair: defaultdict[tuple[str, str], Figures] = defaultdict(lambda: Figures(None, None))
    total = Figures(None, None)
    for review in reviews:
        figures = by_pair[review.force_code, review.council_code]
        figures.force_code, figures.council_code = review.force_code, review.council_code
        figures.add(review)
        total.add(review)
    rows = [by_pair[key] for key in sorted(by_pair)]
    return ClosureFigures(period_from=period_from, period_to=period_to, rows=rows, total=total)


async def figures(
    session: AsyncSession,
    *,
    period_from: dt.date,
    period_to: dt.date,
    force_code: str | None = None,
    council_code: str | None = None,
) -> ClosureFigures:
    start = dt.datetime.combine(period_from, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(period_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    query = sa.select(ClosureReview).where(
        col(ClosureReview.closed_at) >= start, col(ClosureReview.closed_at) < end
    )
    if force_code is not None:
        query = query.where(col(ClosureReview.force_code) == force_code)
    if council_code is not None:
        query = query.where(col(ClosureReview.council_code) == council_code)
    rows = (await session.execute(query)).scalars()
    return tally(rows, period_from=period_from, period_to=period_to)
