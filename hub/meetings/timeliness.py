"""Meetings as the timeliness report measures them: a record kind declared once (`kinds`).

A meeting's kind is its own (strategy discussion, initial or review conference). It is measured
per invited force, for the convening council: the invitation to the force's answer, the
invitation to its written report (due before the meeting), and, for an initial child protection
conference, the strategy discussion that led to it to the conference held (T4: 15 working
days). The discussion's time is when it was held, else when it was scheduled.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation, MeetingKind
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

INITIAL = MeetingKind.INITIAL_CHILD_PROTECTION_CONFERENCE.value

STAGES = (
    kinds.Stage(
        "invitation_to_answer",
        "shared_at",
        "reading_1_at",
        "invitation to the force's answer",
    ),
    kinds.Stage(
        "invitation_to_report",
        "shared_at",
        "reading_2_at",
        "invitation to the force's written report",
        deadline="event_at",
        deadline_text="the meeting",
    ),
    kinds.Stage(
        "discussion_to_conference",
        "reading_3_at",
        "reading_4_at",
        "strategy discussion to initial conference held",
        kinds=frozenset({INITIAL}),
    ),
)


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    query = sa.select(Meeting, MeetingInvitation).join(
        MeetingInvitation, col(MeetingInvitation.meeting_id) == Meeting.id
    )
    if ids is not None:
        query = query.where(col(Meeting.id).in_(ids))
    if period is not None:
        query = query.where(
            col(Meeting.scheduled_at) >= period.start,
            col(Meeting.scheduled_at) < period.end,
            col(MeetingInvitation.invited_at) <= period.as_of,
        )
        if period.force_code is not None:
            query = query.where(col(MeetingInvitation.force_code) == period.force_code)
    rows = (await session.execute(query)).all()
    meetings = {meeting.id: meeting for meeting, _ in rows}
    discussions = await _discussions(session, meetings.values())
    children = await _first_children(session, list(meetings))
    found = {
        m.id: kinds.Loaded("Meeting", m.id, [], named=[(m.council_code, children.get(m.id))])
        for m in meetings.values()
    }
    for meeting, invitation in sorted(rows, key=lambda row: row[1].force_code):
        found[meeting.id].records.append(
            RecordTimes(
                meeting.kind,
                meeting.id,
                invitation.force_code,
                meeting.scheduled_at,
                meeting.recorded_at,
                invitation.invited_at,
                readings={
                    "reading_1_at": invitation.responded_at,
                    "reading_2_at": invitation.report_submitted_at,
                    "reading_3_at": discussions.get(meeting.strategy_discussion_id or ""),
                    "reading_4_at": meeting.held_at,
                },
            )
        )
    return list(found.values())


async def _discussions(
    session: AsyncSession, meetings: Iterable[Meeting]
) -> dict[str, dt.datetime]:
    """When each conference's strategy discussion took place: held, else as scheduled."""
    ids = {m.strategy_discussion_id for m in meetings if m.strategy_discussion_id}
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(col(Meeting.id), col(Meeting.held_at), col(Meeting.scheduled_at)).where(
            col(Meeting.id).in_(ids)
        )
    )
    return {i: held if held is not None else scheduled for i, held, scheduled in rows.all()}


async def _first_children(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    """Each meeting's born child with the smallest id (the stage facts' `child_id`)."""
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(col(MeetingChild.meeting_id), col(MeetingChild.child_id)).where(
            col(MeetingChild.meeting_id).in_(ids), col(MeetingChild.child_id).is_not(None)
        )
    )
    found: defaultdict[str, list[str]] = defaultdict(list)
    for meeting_id, child_id in rows.all():
        if child_id is not None:
            found[meeting_id].append(child_id)
    return {meeting_id: min(children) for meeting_id, children in found.items()}


SQL = kinds.FactsSql(
    base="""
  SELECT m.id, m.council_code, m.kind, m.scheduled_at, m.recorded_at, m.held_at,
    m.strategy_discussion_id
  FROM meeting m WHERE true /*ONLY*/""",
    only="m.id",
    records="""
  SELECT b.id AS subject_id, b.id AS record_id, b.kind, i.force_code,
    b.scheduled_at AS event_at, b.recorded_at, i.invited_at AS shared_at,
    i.responded_at AS reading_1_at, i.report_submitted_at AS reading_2_at,
    coalesce(d.held_at, d.scheduled_at) AS reading_3_at, b.held_at AS reading_4_at
  FROM {base} b JOIN meeting_invitation i ON i.meeting_id = b.id
  LEFT JOIN meeting d ON d.id = b.strategy_discussion_id""",
    named="""
  SELECT b.id AS subject_id, b.council_code AS council,
    (SELECT min(c.child_id) FROM meeting_child c WHERE c.meeting_id = b.id) AS child_id
  FROM {base} b""",
    depends_on={
        # A conference is timed from the strategy discussion that led to it.
        "Meeting": "SELECT id FROM meeting WHERE strategy_discussion_id = ANY(:ids)",
    },
)

MEETINGS = kinds.register(
    kinds.RecordKind(
        record_type="Meeting",
        table="meeting",
        kinds={
            MeetingKind.STRATEGY_DISCUSSION.value: "Strategy discussion",
            INITIAL: "Initial child protection conference",
            MeetingKind.REVIEW_CHILD_PROTECTION_CONFERENCE.value: (
                "Review child protection conference"
            ),
        },
        readings={
            "event_at": "the meeting, as scheduled",
            "recorded_at": "recorded by the council",
            "shared_at": "the force invited",
            "reading_1_at": "the force's answer",
            "reading_2_at": "the force's written report",
            "reading_3_at": "the strategy discussion that led to the conference",
            "reading_4_at": "the meeting held",
        },
        stages=STAGES,
        receivers=kinds.Receivers.NAMED,
        load=load,
        sql=SQL,
        models={Meeting: "id", MeetingInvitation: "meeting_id", MeetingChild: "meeting_id"},
        position=50,
    )
)
