"""A missing child the council has not acknowledged (MISSING-ACK): escalated when overdue.

The stage starts when the force shares the episode and ends when each receiving council (the
child's responsible council, and the host council of a child placed out of area) acknowledges
it. The council owes the acknowledgement; the force is waiting for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.children.models import Child
from hub.escalation.stages import Escalable, OpenStage, Window, declare, not_escalated
from hub.missing.models import MissingEpisode
from hub.timeliness.models import RecordReceipt

RECORD_TYPE = "MissingEpisode"


async def unacknowledged(session: AsyncSession, window: Window) -> list[OpenStage]:
    episode = MissingEpisode.__table__  # type: ignore[attr-defined]
    child = Child.__table__  # type: ignore[attr-defined]
    receipt = RecordReceipt.__table__  # type: ignore[attr-defined]
    shared = episode.c.shared_at
    in_window = sa.and_(shared > window.started_after, shared <= window.started_before)
    joined = episode.join(child, child.c.id == episode.c.child_id)
    receivers = sa.union(
        sa.select(
            episode.c.id,
            shared,
            episode.c.force_code,
            child.c.responsible_council_code.label("council"),
        )
        .select_from(joined)
        .where(in_window),
        sa.select(episode.c.id, shared, episode.c.force_code, child.c.host_council_code)
        .select_from(joined)
        .where(in_window, child.c.host_council_code.is_not(None)),
    ).subquery()
    acknowledged = sa.exists().where(
        receipt.c.record_type == RECORD_TYPE,
        receipt.c.record_id == receivers.c.id,
        receipt.c.organisation_code == receivers.c.council,
        receipt.c.acknowledged_at.is_not(None),
    )
    query = sa.select(
        receivers.c.id, receivers.c.shared_at, receivers.c.council, receivers.c.force_code
    ).where(
        ~acknowledged,
        not_escalated(window, RECORD_TYPE, receivers.c.id, receivers.c.council),
    )
    rows = (await session.execute(query)).all()
    return [
        OpenStage(
            record_type=RECORD_TYPE,
            record_id=record_id,
            started_at=started,
            owed_by=council,
            waiting=force,
        )
        for record_id, started, council, force in rows
    ]


MISSING_NOT_ACKNOWLEDGED = declare(
    Escalable(
        kind="missing_episode",
        stage="shared_to_acknowledged",
        description="a missing child not acknowledged by the council",
        open_stages=unacknowledged,
    )
)
