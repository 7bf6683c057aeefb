"""Answers to a meeting: the invited force's (will it attend, its written report) and, after
the meeting, the convening council's record of who attended. Each safe to retry."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import validation
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.meetings.models import (
    ATTENDED,
    Attendance,
    AttendeeRole,
    DeclineReason,
    InvitationResponse,
    Meeting,
    MeetingInvitation,
)

MAX_REPORT = 20_000


@dataclasses.dataclass(frozen=True)
class InvitationAnswer:
    meeting_id: str
    response: InvitationResponse
    responded_at: dt.datetime
    reason: DeclineReason | None = None


@dataclasses.dataclass(frozen=True)
class MeetingReport:
    meeting_id: str
    text: str


@dataclasses.dataclass(frozen=True)
class ForceAttendance:
    force: str
    attendance: Attendance
    attendee_role: AttendeeRole | None = None


@dataclasses.dataclass(frozen=True)
class AttendanceRecord:
    meeting_id: str
    held_at: dt.datetime
    attendance: tuple[ForceAttendance, ...]


# -- the invited force's side ----------------------------------------------------------------


async def _invitation(
    session: AsyncSession, *, meeting_id: str, force_code: str
) -> tuple[Meeting, MeetingInvitation]:
    """The force's own invitation, locked; any other meeting does not exist for it."""
    found = (
        await session.execute(
            sa.select(Meeting, MeetingInvitation)
            .join(MeetingInvitation, col(MeetingInvitation.meeting_id) == Meeting.id)
            .where(col(Meeting.id) == meeting_id, col(MeetingInvitation.force_code) == force_code)
            .with_for_update()
        )
    ).one_or_none()
    if found is None:
        raise NotFound("no meeting with that id invites this force", field="input.meetingId")
    return found[0], found[1]


async def respond(
    session: AsyncSession, *, force_code: str, answer: InvitationAnswer
) -> tuple[Meeting, bool]:
    """Will attend, or cannot (with a reason). A later answer replaces an earlier one; the same
    answer again changes nothing. Returns the meeting and whether this call changed it."""
    now = utcnow()
    at = validation.event_time(answer.responded_at, field="input.respondedAt", now=now)
    if answer.response is InvitationResponse.CANNOT_ATTEND and answer.reason is None:
        raise InvalidInput(
            "input.reason is needed when the force cannot attend", field="input.reason"
        )
    if answer.response is InvitationResponse.WILL_ATTEND and answer.reason is not None:
        raise InvalidInput(
            "input.reason is only for a force that cannot attend", field="input.reason"
        )
    meeting, invitation = await _invitation(
        session, meeting_id=answer.meeting_id, force_code=force_code
    )
    validation.not_before(
        at,
        invitation.invited_at - validation.MAX_CLOCK_SKEW,
        field="input.respondedAt",
        what="the invitation",
    )
    given = (answer.response.value, answer.reason.value if answer.reason else None, at)
    stored = (invitation.response, invitation.response_reason, invitation.responded_at)
    if given == stored:
        return meeting, False
    if invitation.responded_at is not None and at <= invitation.responded_at:
        raise Conflict("a different or later answer to this invitation was already pushed")
    if meeting.held_at is not None:
        raise Conflict("the meeting was held and its attendance recorded: answers are closed")
    invitation.response, invitation.response_reason, invitation.responded_at = given
    await session.flush()
    return meeting, True


async def submit_report(
    session: AsyncSession, *, force_code: str, report: MeetingReport
) -> tuple[Meeting, bool]:
    """The force's written contribution, stamped with the hub's time of arrival. The same report
    again changes nothing; a different one after it is a CONFLICT (the first is what counts)."""
    text = validation.text(report.text, field="input.report", max_length=MAX_REPORT)
    meeting, invitation = await _invitation(
        session, meeting_id=report.meeting_id, force_code=force_code
    )
    if invitation.report_text is not None:
        if invitation.report_text != text:
            raise Conflict("a different report was already submitted for this invitation")
        return meeting, False
    invitation.report_text = text
    invitation.report_submitted_at = utcnow()
    await session.flush()
    return meeting, True


# -- after the meeting -----------------------------------------------------------------------


def _attendance_checked(record: AttendanceRecord, invited: set[str]) -> dict[str, ForceAttendance]:
    by_force: dict[str, ForceAttendance] = {}
    for index, entry in enumerate(record.attendance):
        field = f"input.attendance.{index}"
        force = entry.force.strip()
        if force not in invited:
            raise InvalidInput(
                f"{field}.force was not invited to this meeting", field=f"{field}.force"
            )
        if force in by_force:
            raise InvalidInput(f"{field}.force is listed twice", field=f"{field}.force")
        attended = entry.attendance in ATTENDED
        if attended and entry.attendee_role is None:
            msg = f"{field}.attendeeRole is needed for an officer who attended"
            raise InvalidInput(msg, field=f"{field}.attendeeRole")
        if not attended and entry.attendee_role is not None:
            msg = f"{field}.attendeeRole is only for an officer who attended"
            raise InvalidInput(msg, field=f"{field}.attendeeRole")
        by_force[force] = dataclasses.replace(entry, force=force)
    if set(by_force) != invited:
        raise InvalidInput(
            "input.attendance must cover every invited force", field="input.attendance"
        )
    return by_force


async def record_attendance(
    session: AsyncSession, *, council_code: str, record: AttendanceRecord
) -> tuple[Meeting, bool]:
    """When the meeting was held and, per invited force, how it took part. Recorded once: the
    same record again changes nothing, a different one is a CONFLICT."""
    held_at = validation.event_time(record.held_at, field="input.heldAt", now=utcnow())
    meeting = (
        await session.execute(
            sa.select(Meeting)
            .where(col(Meeting.id) == record.meeting_id, col(Meeting.council_code) == council_code)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if meeting is None:
        raise NotFound(
            "no meeting with that id was convened by this council", field="input.meetingId"
        )
    invitations = {
        i.force_code: i
        for i in (
            await session.execute(
                sa.select(MeetingInvitation)
                .where(col(MeetingInvitation.meeting_id) == meeting.id)
                .with_for_update()
            )
        ).scalars()
    }
    entries = _attendance_checked(record, set(invitations))
    if meeting.held_at is not None:
        same = meeting.held_at == held_at and all(
            (invitations[f].attendance, invitations[f].attendee_role)
            == (e.attendance.value, e.attendee_role.value if e.attendee_role else None)
            for f, e in entries.items()
        )
        if not same:
            raise Conflict("a different attendance was already recorded for this meeting")
        return meeting, False
    now = utcnow()
    meeting.held_at = held_at
    for force, entry in entries.items():
        invitation = invitations[force]
        invitation.attendance = entry.attendance
        invitation.attendee_role = entry.attendee_role
        invitation.attendance_recorded_at = now
    await session.flush()
    return meeting, True
