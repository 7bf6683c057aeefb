"""A police check not completed within T11 (14 days): escalated to the force, for the council."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.escalation.stages import Escalable, OpenStage, Window, declare, not_escalated
from hub.vetting.models import VettingCheck

RECORD_TYPE = "VettingCheck"


async def not_completed(session: AsyncSession, window: Window) -> list[OpenStage]:
    check = VettingCheck.__table__  # type: ignore[attr-defined]
    asked = check.c.requested_at
    query = sa.select(check.c.id, asked, check.c.force_code, check.c.council_code).where(
        check.c.completed_at.is_(None),
        asked > window.started_after,
        asked <= window.started_before,
        not_escalated(window, RECORD_TYPE, check.c.id, check.c.force_code),
    )
    rows = (await session.execute(query)).all()
    return [
        OpenStage(RECORD_TYPE, check_id, started, owed_by=force, waiting=council)
        for check_id, started, force, council in rows
    ]


CHECK_NOT_COMPLETED = declare(
    Escalable(
        kind="vetting_check",
        stage="requested_to_completed",
        description="a police check on a carer or adopter not completed",
        open_stages=not_completed,
    )
)
