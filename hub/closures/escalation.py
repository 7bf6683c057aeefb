"""A council's challenge of a closure the force has not answered: escalated to the force."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.closures.models import ClosureResponse, ClosureReview
from hub.escalation.stages import Escalable, OpenStage, Window, declare, not_escalated

RECORD_TYPE = "ClosureReview"


async def unanswered(session: AsyncSession, window: Window) -> list[OpenStage]:
    review = ClosureReview.__table__  # type: ignore[attr-defined]
    challenged = review.c.responded_at
    query = sa.select(review.c.id, challenged, review.c.force_code, review.c.council_code).where(
        review.c.response == ClosureResponse.CHALLENGE.value,
        review.c.answered_at.is_(None),
        challenged > window.started_after,
        challenged <= window.started_before,
        not_escalated(window, RECORD_TYPE, review.c.id, review.c.force_code),
    )
    rows = (await session.execute(query)).all()
    return [
        OpenStage(RECORD_TYPE, review_id, started, owed_by=force, waiting=council)
        for review_id, started, force, council in rows
    ]


CHALLENGE_NOT_ANSWERED = declare(
    Escalable(
        kind="closure_challenge",
        stage="challenged_to_answered",
        description="a council's challenge of a closure not answered by the force",
        open_stages=unanswered,
    )
)
