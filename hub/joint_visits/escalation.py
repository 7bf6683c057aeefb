"""A joint visit request the force has not answered by its target (JV-ANSWER): escalated."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.escalation.stages import Escalable, OpenStage, Window, declare, not_escalated
from hub.joint_visits.models import JointVisitRequest

RECORD_TYPE = "JointVisitRequest"


async def unanswered(session: AsyncSession, window: Window) -> list[OpenStage]:
    request = JointVisitRequest.__table__  # type: ignore[attr-defined]
    asked = request.c.shared_at
    query = sa.select(request.c.id, asked, request.c.force_code, request.c.council_code).where(
        request.c.responded_at.is_(None),
        request.c.outcome.is_(None),
        asked > window.started_after,
        asked <= window.started_before,
        not_escalated(window, RECORD_TYPE, request.c.id, request.c.force_code),
    )
    rows = (await session.execute(query)).all()
    return [
        OpenStage(RECORD_TYPE, request_id, started, owed_by=force, waiting=council)
        for request_id, started, force, council in rows
    ]


REQUEST_NOT_ANSWERED = declare(
    Escalable(
        kind="joint_visit_request",
        stage="request_to_answer",
        description="a joint visit request not answered by the force",
        open_stages=unanswered,
    )
)
