"""Meetings: a council convenes, the invited forces answer and report, the council records who
came. Every push is validated before anything is stored, and is safe to retry."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.access.scope import RowScope
from hub.children.models import Child
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.meetings import scope as meeting_scope
from hub.meetings.models import (
    ATTENDED,
    CONFERENCES,
    Attendance,
    AttendeeRole,
    DeclineReason,
    InvitationResponse,
    Meeting,
    MeetingChild,
    MeetingInvitation,
    MeetingKind,
    MeetingMode,
)
from hub.pagination import Page, narrowed, paginate
from hub.reference.models import OrganisationKind

MAX_CHILDREN = 20
MAX_FORCES = 10
MAX_REPORT = 20_000
# How far ahead a meeting may be scheduled, and how far an unborn child's expected date of
# delivery may lie from the meeting's day (a pre-birth conference is held in pregnancy; a late
# baby may still be unborn a few weeks after the date).
SCHEDULE_HORIZON = dt.timedelta(days=366)
DELIVERY_BEFORE_MEETING = dt.timedelta(weeks=6)
DELIVERY_AFTER_MEETING = dt.timedelta(weeks=42)


@dataclasses.dataclass(frozen=True)
class ScheduledChild:
    """A born child by the hub's id, or an unborn one by due date and mother's council."""

    child_id: str | None = None
    expected_delivery_date: dt.date | None = None
    mother_council: str | None = None


@dataclasses.dataclass(frozen=True)
class MeetingSchedule:
    council_reference: str
    kind: MeetingKind
    scheduled_at: dt.datetime
    mode: MeetingMode
    recorded_at: dt.datetime
    children: tuple[ScheduledChild, ...]
    invited_forces: tuple[str, ...]
    strategy_discussion_id: str | None = None
    idempotency_key: str | None = None


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


@dataclasses.dataclass(frozen=True)
class MeetingFilter:
    child_id: str | None = None
    scheduled_from: dt.datetime | None = None
    scheduled_to: dt.datetime | None = None
    kinds: tuple[MeetingKind, ...] = ()


# -- scheduling ------------------------------------------------------------------------------


def _scheduled_time(value: dt.datetime, *, now: dt.datetime) -> dt.datetime:
    field = "input.scheduledAt"
    value = validation.aware_utc(value, field=field)
    if value < validation.EARLIEST:
        raise InvalidInput(
            f"{field} is before {validation.EARLIEST.date().isoformat()}", field=field
        )
    if value > now + SCHEDULE_HORIZON:
        raise InvalidInput(f"{field} is more than a year ahead", field=field)
    return value


def _child(given: ScheduledChild, *, index: int, meeting_day: dt.date) -> ScheduledChild:
    field = f"input.children.{index}"
    unborn = given.expected_delivery_date is not None or given.mother_council is not None
    if (given.child_id is None) == (not unborn):
        raise InvalidInput(
            f"{field} needs either childId, or expectedDeliveryDate and motherCouncil",
            field=field,
        )
    if given.child_id is not None:
        return ScheduledChild(child_id=given.child_id.strip())
    due = given.expected_delivery_date
    if due is None:
        raise InvalidInput(
            f"{field}.expectedDeliveryDate is needed for an unborn child",
            field=f"{field}.expectedDeliveryDate",
        )
    if given.mother_council is None:
        raise InvalidInput(
            f"{field}.motherCouncil is needed for an unborn child", field=f"{field}.motherCouncil"
        )
    if not meeting_day - DELIVERY_BEFORE_MEETING <= due <= meeting_day + DELIVERY_AFTER_MEETING:
        raise InvalidInput(
            f"{field}.expectedDeliveryDate is too far from the meeting for an unborn child",
            field=f"{field}.expectedDeliveryDate",
        )
    return given


async def _validated(
    session: AsyncSession, *, council_code: str, scope: RowScope, schedule: MeetingSchedule
) -> MeetingSchedule:
    now = utcnow()
    recorded = validation.event_time(schedule.recorded_at, field="input.recordedAt", now=now)
    scheduled = _scheduled_time(schedule.scheduled_at, now=now)
    if not 0 < len(schedule.children) <= MAX_CHILDREN:
        msg = f"input.children must name from 1 to {MAX_CHILDREN} children"
        raise InvalidInput(msg, field="input.children")
    kids = [
        _child(c, index=i, meeting_day=scheduled.date()) for i, c in enumerate(schedule.children)
    ]
    await _require_our_children(session, scope=scope, kids=kids)
    if not 0 < len(schedule.invited_forces) <= MAX_FORCES:
        msg = f"input.invitedForces must name from 1 to {MAX_FORCES} forces"
        raise InvalidInput(msg, field="input.invitedForces")
    forces = [f.strip() for f in schedule.invited_forces]
    for index, force in enumerate(forces):
        if force in forces[:index]:
            field = f"input.invitedForces.{index}"
            raise InvalidInput(f"{field} names a force already invited", field=field)
    await validation.require_organisations(
        session,
        [
            *(
                (force, f"input.invitedForces.{i}", OrganisationKind.POLICE_FORCE)
                for i, force in enumerate(forces)
            ),
            *(
                (c.mother_council, f"input.children.{i}.motherCouncil", OrganisationKind.COUNCIL)
                for i, c in enumerate(kids)
                if c.mother_council is not None
            ),
        ],
    )
    schedule = dataclasses.replace(
        schedule,
        council_reference=validation.text(
            schedule.council_reference, field="input.councilReference", max_length=64
        ),
        idempotency_key=None
        if schedule.idempotency_key is None
        else validation.text(
            schedule.idempotency_key, field="input.idempotencyKey", max_length=128
        ),
        recorded_at=recorded,
        scheduled_at=scheduled,
        # Order does not change what was pushed: a retry listing them otherwise is the same.
        children=tuple(
            sorted(
                kids,
                key=lambda c: (
                    c.child_id or "",
                    str(c.expected_delivery_date or ""),
                    c.mother_council or "",
                ),
            )
        ),
        invited_forces=tuple(sorted(forces)),
    )
    await _require_discussion(session, council_code=council_code, schedule=schedule)
    return schedule


async def _require_our_children(
    session: AsyncSession, *, scope: RowScope, kids: list[ScheduledChild]
) -> None:
    """Born children by the hub's id: each one the council sees, each named once."""
    ids = [c.child_id for c in kids if c.child_id is not None]
    seen: set[str] = set()
    if ids:
        rows = await session.execute(
            sa.select(col(Child.id)).where(col(Child.id).in_(ids), scope.children())
        )
        seen = set(rows.scalars())
    for index, kid in enumerate(kids):
        if kid.child_id is None:
            continue
        field = f"input.children.{index}.childId"
        if kid.child_id not in seen:
            raise InvalidInput(f"{field} names no child of this council", field=field)
        if kid.child_id in [k.child_id for k in kids[:index]]:
            raise InvalidInput(f"{field} names a child already listed", field=field)


async def _require_discussion(
    session: AsyncSession, *, council_code: str, schedule: MeetingSchedule
) -> None:
    """A conference follows the council's strategy discussion (T4 is measured from it); a review
    conference also follows an initial conference from the same discussion."""
    field = "input.strategyDiscussionId"
    given = schedule.strategy_discussion_id
    if schedule.kind not in CONFERENCES:
        if given is not None:
            raise InvalidInput(f"{field} is only for a child protection conference", field=field)
        return
    if given is None:
        raise InvalidInput(f"{field} is needed for a child protection conference", field=field)
    discussion = (
        await session.execute(
            sa.select(Meeting).where(
                col(Meeting.id) == given,
                col(Meeting.council_code) == council_code,
                col(Meeting.kind) == MeetingKind.STRATEGY_DISCUSSION,
            )
        )
    ).scalar_one_or_none()
    if discussion is None:
        raise InvalidInput(
            f"{field} is not one of this council's strategy discussions", field=field
        )
    validation.not_before(
        schedule.scheduled_at,
        discussion.scheduled_at,
        field="input.scheduledAt",
        what="the strategy discussion",
    )
    if schedule.kind is MeetingKind.REVIEW_CHILD_PROTECTION_CONFERENCE:
        initial = await session.scalar(
            sa.select(sa.func.count()).where(
                col(Meeting.strategy_discussion_id) == given,
                col(Meeting.kind) == MeetingKind.INITIAL_CHILD_PROTECTION_CONFERENCE,
                col(Meeting.scheduled_at) <= schedule.scheduled_at,
            )
        )
        if not initial:
            raise InvalidInput(
                f"{field}: a review conference needs an initial conference from this discussion",
                field=field,
            )


async def _find(
    session: AsyncSession, *, council_code: str, schedule: MeetingSchedule
) -> Meeting | None:
    keys = [col(Meeting.council_reference) == schedule.council_reference]
    if schedule.idempotency_key is not None:
        keys.append(col(Meeting.idempotency_key) == schedule.idempotency_key)
    query = sa.select(Meeting).where(col(Meeting.council_code) == council_code, sa.or_(*keys))
    return (await session.execute(query.limit(1))).scalar_one_or_none()


async def schedule(
    session: AsyncSession, *, council_code: str, scope: RowScope, meeting: MeetingSchedule
) -> tuple[Meeting, bool]:
    """Record a meeting once, with its children and one invitation per force.

    Returns the meeting and whether this call created it (a retry returns the stored one).
    """
    meeting = await _validated(session, council_code=council_code, scope=scope, schedule=meeting)
    payload_hash = pushes.fingerprint(meeting)

    async def find() -> Meeting | None:
        return await _find(session, council_code=council_code, schedule=meeting)

    async def insert() -> Meeting:
        row = Meeting(
            council_code=council_code,
            council_reference=meeting.council_reference,
            idempotency_key=meeting.idempotency_key,
            payload_hash=payload_hash,
            kind=meeting.kind,
            scheduled_at=meeting.scheduled_at,
            mode=meeting.mode,
            strategy_discussion_id=meeting.strategy_discussion_id,
            pre_birth=any(c.child_id is None for c in meeting.children),
            recorded_at=meeting.recorded_at,
        )
        session.add(row)
        await session.flush()
        session.add_all(
            MeetingChild(
                meeting_id=row.id,
                child_id=c.child_id,
                expected_delivery_date=c.expected_delivery_date,
                mother_council_code=c.mother_council,
            )
            for c in meeting.children
        )
        session.add_all(
            MeetingInvitation(meeting_id=row.id, force_code=force, invited_at=row.shared_at)
            for force in meeting.invited_forces
        )
        await session.flush()
        return row

    return await pushes.insert_once(
        session,
        find=find,
        insert=insert,
        payload_hash=payload_hash,
        what="meeting",
        reference="council reference",
    )


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


# -- reading ---------------------------------------------------------------------------------


def _filtered(scope: RowScope, where: MeetingFilter) -> sa.Select[Meeting]:
    query = sa.select(Meeting).where(meeting_scope.meetings(scope))
    if where.child_id is not None:
        query = query.where(
            sa.exists().where(
                col(MeetingChild.meeting_id) == Meeting.id,
                col(MeetingChild.child_id) == where.child_id,
            )
        )
    return narrowed(
        query,
        time_column=col(Meeting.scheduled_at),
        since=where.scheduled_from,
        until=where.scheduled_to,
        any_of={col(Meeting.kind): where.kinds},
    )


async def list_(
    session: AsyncSession, *, scope: RowScope, where: MeetingFilter, first: int, after: str | None
) -> Page[Meeting]:
    return await paginate(
        session,
        _filtered(scope, where),
        time_column=col(Meeting.scheduled_at),
        id_column=col(Meeting.id),
        first=first,
        after=after,
    )
