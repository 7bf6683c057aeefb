"""Meetings in GraphQL: the record, its children and invitations, the pushes and the filter."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import ClassVar, TypeVar

import strawberry

from hub.audit.models import S62Operation
from hub.children.types import Child, load_child
from hub.graphql.context import Info
from hub.graphql.entity import Entity
from hub.meetings import models, service
from hub.meetings.models import (
    Attendance,
    AttendeeRole,
    DeclineReason,
    InvitationResponse,
    MeetingKind,
    MeetingMode,
)
from hub.meetings.service import (
    AttendanceRecord,
    ForceAttendance,
    InvitationAnswer,
    MeetingFilter,
    MeetingReport,
    MeetingSchedule,
    ScheduledChild,
)
from hub.reference.types import Organisation, load_organisation
from hub.validation import optional_utc

EnumT = TypeVar("EnumT", bound=enum.StrEnum)
MeetingKindType = strawberry.enum(MeetingKind, name="MeetingKind")
MeetingModeType = strawberry.enum(MeetingMode, name="MeetingMode")
ResponseType = strawberry.enum(InvitationResponse, name="MeetingInvitationResponse")
DeclineReasonType = strawberry.enum(DeclineReason, name="MeetingDeclineReason")
AttendanceType = strawberry.enum(Attendance, name="MeetingAttendance")
AttendeeRoleType = strawberry.enum(
    AttendeeRole, name="MeetingAttendeeRole", description="The attending officer's rank or role."
)


def _or_none(kind: type[EnumT], value: str | None) -> EnumT | None:
    return None if value is None else kind(value)


@strawberry.type(description="A child the meeting is about; an unborn child has no record yet.")
class MeetingChild:
    row: strawberry.Private[models.MeetingChild]

    @strawberry.field
    async def child(self, info: Info) -> Child | None:
        return await load_child(info, self.row.child_id) if self.row.child_id else None

    @strawberry.field(description="True for an unborn child, known by the two fields below.")
    def unborn(self) -> bool | None:
        return self.row.child_id is None

    @strawberry.field
    def expected_delivery_date(self) -> dt.date | None:
        return self.row.expected_delivery_date

    @strawberry.field
    async def mother_council(self, info: Info) -> Organisation | None:
        code = self.row.mother_council_code
        return await load_organisation(info, code) if code else None


@strawberry.type(description="One invited force: its answer, its report, its attendance.")
class MeetingInvitation:
    row: strawberry.Private[models.MeetingInvitation]

    @strawberry.field
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.force_code)

    @strawberry.field(description="When the hub told the force (the meeting's sharedAt).")
    def invited_at(self) -> dt.datetime | None:
        return self.row.invited_at

    @strawberry.field
    def response(self) -> ResponseType | None:  # type: ignore[valid-type]
        return _or_none(InvitationResponse, self.row.response)

    @strawberry.field
    def response_reason(self) -> DeclineReasonType | None:  # type: ignore[valid-type]
        return _or_none(DeclineReason, self.row.response_reason)

    @strawberry.field
    def responded_at(self) -> dt.datetime | None:
        return self.row.responded_at

    @strawberry.field(description="When the force's written report reached the hub.")
    def report_submitted_at(self) -> dt.datetime | None:
        return self.row.report_submitted_at

    @strawberry.field
    def report_text(self) -> str | None:
        return self.row.report_text

    @strawberry.field
    def attendance(self) -> AttendanceType | None:  # type: ignore[valid-type]
        return _or_none(Attendance, self.row.attendance)

    @strawberry.field
    def attendee_role(self) -> AttendeeRoleType | None:  # type: ignore[valid-type]
        return _or_none(AttendeeRole, self.row.attendee_role)

    @strawberry.field
    def attendance_recorded_at(self) -> dt.datetime | None:
        return self.row.attendance_recorded_at


@strawberry.federation.type(keys=["id"], name="Meeting", authenticated=True)
class Meeting(Entity):
    """A strategy discussion or child protection conference a council convenes."""

    loader = "meeting"
    row: strawberry.Private[models.Meeting]
    id: strawberry.ID

    @strawberry.field(description="The convening council.")
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.council_code)

    @strawberry.field(description="The council's own reference for the meeting.")
    def council_reference(self) -> str | None:
        return self.row.council_reference

    @strawberry.field
    def kind(self) -> MeetingKindType | None:  # type: ignore[valid-type]
        return MeetingKind(self.row.kind)

    @strawberry.field
    def mode(self) -> MeetingModeType | None:  # type: ignore[valid-type]
        return MeetingMode(self.row.mode)

    @strawberry.field(description="When the meeting is to be held.")
    def scheduled_at(self) -> dt.datetime | None:
        return self.row.scheduled_at

    @strawberry.field(description="True when any child of the meeting is unborn.")
    def pre_birth(self) -> bool | None:
        return self.row.pre_birth

    @strawberry.field(description="When the council's system recorded the scheduling.")
    def recorded_at(self) -> dt.datetime | None:
        return self.row.recorded_at

    @strawberry.field(description="When the hub received it (set by the hub).")
    def shared_at(self) -> dt.datetime | None:
        return self.row.shared_at

    @strawberry.field(description="When the meeting was held, once its attendance is recorded.")
    def held_at(self) -> dt.datetime | None:
        return self.row.held_at

    @strawberry.field(description="For a conference: the strategy discussion that led to it.")
    async def strategy_discussion(self, info: Info) -> Meeting | None:
        if self.row.strategy_discussion_id is None:
            return None
        return await Meeting.resolve_reference(info, strawberry.ID(self.row.strategy_discussion_id))

    @strawberry.field
    async def children(self, info: Info) -> list[MeetingChild] | None:
        rows = await info.context.loaders.meeting_children.load(self.row.id)
        return [MeetingChild(row=r) for r in rows]

    @strawberry.field(description="The invitations the caller may see: a force only its own.")
    async def invitations(self, info: Info) -> list[MeetingInvitation] | None:
        rows = await info.context.loaders.meeting_invitations.load(self.row.id)
        return [MeetingInvitation(row=r) for r in rows]


@strawberry.input(description="A born child by the hub's id, or an unborn child.")
class MeetingChildInput:
    child_id: strawberry.ID | None = strawberry.field(
        default=None, description="A child the council sees in the hub."
    )
    expected_delivery_date: dt.date | None = strawberry.field(
        default=None, description="For an unborn child, with motherCouncil."
    )
    mother_council: str | None = strawberry.field(
        default=None, description="For an unborn child: the mother's council (GSS code)."
    )

    def details(self) -> ScheduledChild:
        return ScheduledChild(
            child_id=str(self.child_id) if self.child_id is not None else None,
            expected_delivery_date=self.expected_delivery_date,
            mother_council=self.mother_council,
        )


@strawberry.input
class ScheduleMeetingInput:
    council_reference: str = strawberry.field(description="The council's own reference.")
    kind: MeetingKindType  # type: ignore[valid-type]
    scheduled_at: dt.datetime
    mode: MeetingModeType  # type: ignore[valid-type]
    recorded_at: dt.datetime = strawberry.field(
        description="When the council's system recorded the scheduling."
    )
    children: list[MeetingChildInput]
    invited_forces: list[str] = strawberry.field(description="Codes of the forces invited.")
    strategy_discussion_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a conference: the council's strategy discussion that led to it.",
    )
    idempotency_key: str | None = None

    def command(self) -> MeetingSchedule:
        return MeetingSchedule(
            council_reference=self.council_reference,
            kind=MeetingKind(self.kind),
            scheduled_at=self.scheduled_at,
            mode=MeetingMode(self.mode),
            recorded_at=self.recorded_at,
            children=tuple(c.details() for c in self.children),
            invited_forces=tuple(self.invited_forces),
            strategy_discussion_id=(
                str(self.strategy_discussion_id) if self.strategy_discussion_id else None
            ),
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class RespondToMeetingInvitationInput:
    meeting_id: strawberry.ID
    response: ResponseType  # type: ignore[valid-type]
    reason: DeclineReasonType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Why the force cannot attend (needed then, only then)."
    )
    responded_at: dt.datetime

    def command(self) -> InvitationAnswer:
        return InvitationAnswer(
            meeting_id=str(self.meeting_id),
            response=InvitationResponse(self.response),
            responded_at=self.responded_at,
            reason=DeclineReason(self.reason) if self.reason is not None else None,
        )


@strawberry.input
class SubmitMeetingReportInput:
    meeting_id: strawberry.ID
    report: str = strawberry.field(description="The force's written contribution.")

    def command(self) -> MeetingReport:
        return MeetingReport(meeting_id=str(self.meeting_id), text=self.report)


@strawberry.input
class ForceAttendanceInput:
    force: str
    attendance: AttendanceType  # type: ignore[valid-type]
    attendee_role: AttendeeRoleType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Needed for an officer who attended, only then."
    )


@strawberry.input
class RecordMeetingAttendanceInput:
    meeting_id: strawberry.ID
    held_at: dt.datetime
    attendance: list[ForceAttendanceInput] = strawberry.field(
        description="One entry per invited force."
    )

    def command(self) -> AttendanceRecord:
        return AttendanceRecord(
            meeting_id=str(self.meeting_id),
            held_at=self.held_at,
            attendance=tuple(
                ForceAttendance(
                    force=a.force,
                    attendance=Attendance(a.attendance),
                    attendee_role=AttendeeRole(a.attendee_role) if a.attendee_role else None,
                )
                for a in self.attendance
            ),
        )


@strawberry.input
class MeetingFilterInput:
    target: ClassVar[str] = "Meeting"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "children",
        "scheduled_from": "scheduledAt",
        "scheduled_to": "scheduledAt",
        "kinds": "kind",
    }
    child_id: strawberry.ID | None = None
    scheduled_from: dt.datetime | None = None
    scheduled_to: dt.datetime | None = None
    kinds: list[MeetingKindType] | None = None  # type: ignore[valid-type]

    def where(self) -> MeetingFilter:
        return MeetingFilter(
            child_id=str(self.child_id) if self.child_id else None,
            scheduled_from=optional_utc(self.scheduled_from, field="filter.scheduledFrom"),
            scheduled_to=optional_utc(self.scheduled_to, field="filter.scheduledTo"),
            kinds=tuple(MeetingKind(k) for k in self.kinds or ()),
        )


def _noted(info: Info, row: models.Meeting, operation: S62Operation | None) -> Meeting:
    """The push's answer; a push that stored something says so to the audit and the feed."""
    if operation is not None:
        info.context.served.changed("Meeting", row.id, operation)
    return Meeting.of(row)


@strawberry.type
class MeetingMutation:
    @strawberry.mutation(
        description="A council convenes a strategy discussion or child protection conference "
        "and invites forces; they are told at once (recordChanges). Safe to retry.",
    )
    async def schedule_meeting(
        self,
        info: Info,
        input: ScheduleMeetingInput,  # noqa: A002
    ) -> Meeting | None:
        context = info.context
        row, created = await service.schedule(
            context.session,
            council_code=context.principal.organisation_code,
            scope=context.scope,
            meeting=input.command(),
        )
        return _noted(info, row, S62Operation.COLLECTION if created else None)

    @strawberry.mutation(
        description="An invited force answers: will attend, or cannot (with a reason). Safe to "
        "retry; a later answer replaces an earlier one.",
    )
    async def respond_to_meeting_invitation(
        self,
        info: Info,
        input: RespondToMeetingInvitationInput,  # noqa: A002
    ) -> Meeting | None:
        row, changed = await service.respond(
            info.context.session,
            force_code=info.context.principal.organisation_code,
            answer=input.command(),
        )
        return _noted(info, row, S62Operation.ALTERATION if changed else None)

    @strawberry.mutation(
        description="An invited force's written contribution; the hub stamps when it arrived. "
        "Safe to retry.",
    )
    async def submit_meeting_report(
        self,
        info: Info,
        input: SubmitMeetingReportInput,  # noqa: A002
    ) -> Meeting | None:
        row, changed = await service.submit_report(
            info.context.session,
            force_code=info.context.principal.organisation_code,
            report=input.command(),
        )
        return _noted(info, row, S62Operation.ALTERATION if changed else None)

    @strawberry.mutation(
        description="After the meeting, the convening council records when it was held and how "
        "each invited force took part. Safe to retry.",
    )
    async def record_meeting_attendance(
        self,
        info: Info,
        input: RecordMeetingAttendanceInput,  # noqa: A002
    ) -> Meeting | None:
        row, changed = await service.record_attendance(
            info.context.session,
            council_code=info.context.principal.organisation_code,
            record=input.command(),
        )
        return _noted(info, row, S62Operation.ALTERATION if changed else None)
