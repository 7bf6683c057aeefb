"""An invitation the force has not answered by its target (SD-, ICPC-, RCPC-ANSWER): escalated.

One declaration per kind of meeting, as the targets name them; the stage starts when the force
is invited through the hub and ends with its answer (will attend, or cannot and why). The force
owes the answer; the convening council is waiting for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.escalation.stages import (
    Escalable,
    OpenStage,
    OpenStages,
    Window,
    declare,
    not_escalated,
)
from hub.meetings.models import Meeting, MeetingInvitation, MeetingKind

RECORD_TYPE = "Meeting"
STAGE = "invitation_to_answer"


def _unanswered(kind: MeetingKind) -> OpenStages:
    async def open_stages(session: AsyncSession, window: Window) -> list[OpenStage]:
        meeting = Meeting.__table__  # type: ignore[attr-defined]
        invitation = MeetingInvitation.__table__  # type: ignore[attr-defined]
        invited = invitation.c.invited_at
        query = (
            sa.select(meeting.c.id, invited, invitation.c.force_code, meeting.c.council_code)
            .select_from(invitation.join(meeting, meeting.c.id == invitation.c.meeting_id))
            .where(
                meeting.c.kind == kind.value,
                invitation.c.responded_at.is_(None),
                invitation.c.attendance_recorded_at.is_(None),
                invited > window.started_after,
                invited <= window.started_before,
                not_escalated(window, RECORD_TYPE, meeting.c.id, invitation.c.force_code),
            )
        )
        rows = (await session.execute(query)).all()
        return [
            OpenStage(RECORD_TYPE, meeting_id, started, owed_by=force, waiting=council)
            for meeting_id, started, force, council in rows
        ]

    return open_stages


INVITATIONS_NOT_ANSWERED = [
    declare(
        Escalable(
            kind=kind.value,
            stage=STAGE,
            description=f"an invitation to a {kind.value.replace('_', ' ')} not answered",
            open_stages=_unanswered(kind),
        )
    )
    for kind in MeetingKind
]
