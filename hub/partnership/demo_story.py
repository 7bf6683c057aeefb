"""The demo's working-together story: six months of meetings, joint visits and protections.

Each council convenes strategy discussions and child protection conferences with the force
that covers it. West Midlands Police attends Birmingham's, in person or by video; Greater
Manchester Police sends Manchester written reports only; Leicestershire Police attends
Leicester's conferences about born children but never a pre-birth conference. Birmingham's
joint visit requests are answered within hours and held jointly; Leicester's go unanswered.
Greater Manchester takes a child into police protection without a word to children's services.

Everything goes through the domains' services, as a push would; only the historic clock
readings (when the hub received a push, when a written report arrived) are set afterwards, as
`demo_story` does for the incidents: no client can set them. Every name and reference is
invented.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.access.agreement import RowKind
from hub.access.scope import RowScope
from hub.children.models import Child
from hub.children.service import ChildDetails
from hub.joint_visits import service as joint_visits
from hub.joint_visits.models import (
    JointVisitKind,
    JointVisitOutcome,
    JointVisitResponse,
    OfficerRole,
    Urgency,
)
from hub.meetings import answers
from hub.meetings import service as meetings
from hub.meetings.models import (
    Attendance,
    AttendeeRole,
    DeclineReason,
    InvitationResponse,
    MeetingInvitation,
    MeetingKind,
    MeetingMode,
)
from hub.protection import service as protection
from hub.protection.models import Alternative, ConsultedRole, PlacedIn
from hub.timeliness.demo_story import COUNCIL_OF

ATTENDS, WRITES, NOT_PRE_BIRTH = "WEST_MIDLANDS", "GREATER_MANCHESTER", "LEICESTERSHIRE"
UNANSWERED_COUNCIL = COUNCIL_OF[NOT_PRE_BIRTH]  # Leicester
MONTHS = 6


def _attendance(force: str, kind: MeetingKind, pre_birth: bool, rng: random.Random) -> Attendance:
    if force == WRITES:
        return Attendance.WRITTEN_REPORT_ONLY
    if force == NOT_PRE_BIRTH and pre_birth and kind is not MeetingKind.STRATEGY_DISCUSSION:
        return Attendance.DID_NOT_ATTEND if rng.random() < 0.5 else Attendance.APOLOGIES  # noqa: PLR2004
    return Attendance.IN_PERSON if rng.random() < 0.6 else Attendance.VIDEO  # noqa: PLR2004


@dataclasses.dataclass
class _Council:
    session: AsyncSession
    code: str
    force: str
    rng: random.Random
    now: dt.datetime
    pushed: int = 0

    @property
    def scope(self) -> RowScope:
        return RowScope.for_rows(RowKind.COUNCIL_CHILDREN, self.code)

    async def meeting(
        self,
        kind: MeetingKind,
        at: dt.datetime,
        child: meetings.ScheduledChild,
        discussion: str | None = None,
    ) -> str:
        self.pushed += 1
        row, _ = await meetings.schedule(
            self.session,
            council_code=self.code,
            scope=self.scope,
            meeting=meetings.MeetingSchedule(
                council_reference=f"DEMO-MTG-{self.code}-{self.pushed:04d}",
                kind=kind,
                scheduled_at=at,
                mode=MeetingMode.IN_PERSON,
                recorded_at=at - dt.timedelta(days=3),
                children=(child,),
                invited_forces=(self.force,),
                strategy_discussion_id=discussion,
            ),
        )
        # Pushed as it was recorded, and the force invited then.
        row.shared_at = at - dt.timedelta(days=3, minutes=-2)
        invitation = await self.session.get(MeetingInvitation, (row.id, self.force))
        if invitation is not None:
            invitation.invited_at = row.shared_at
        await self._held(row.id, kind, at, pre_birth=child.child_id is None)
        return row.id

    async def _held(
        self, meeting_id: str, kind: MeetingKind, at: dt.datetime, *, pre_birth: bool
    ) -> None:
        attendance = _attendance(self.force, kind, pre_birth, self.rng)
        if attendance is Attendance.WRITTEN_REPORT_ONLY:
            await answers.respond(
                self.session,
                force_code=self.force,
                answer=answers.InvitationAnswer(
                    meeting_id=meeting_id,
                    response=InvitationResponse.CANNOT_ATTEND,
                    responded_at=at - dt.timedelta(days=2),
                    reason=DeclineReason.WRITTEN_REPORT_INSTEAD,
                ),
            )
            await answers.submit_report(
                self.session,
                force_code=self.force,
                report=answers.MeetingReport(meeting_id, "Synthetic written contribution."),
            )
        attended = attendance in {Attendance.IN_PERSON, Attendance.VIDEO}
        await answers.record_attendance(
            self.session,
            council_code=self.code,
            record=answers.AttendanceRecord(
                meeting_id=meeting_id,
                held_at=at,
                attendance=(
                    answers.ForceAttendance(
                        self.force, attendance, AttendeeRole.SERGEANT if attended else None
                    ),
                ),
            ),
        )
        invitation = await self.session.get(MeetingInvitation, (meeting_id, self.force))
        if invitation is not None and invitation.report_submitted_at is not None:
            invitation.report_submitted_at = at - dt.timedelta(days=1)  # it came the day before


async def _children(session: AsyncSession, council: str, count: int) -> list[str]:
    rows = await session.execute(
        sa.select(col(Child.id))
        .where(col(Child.responsible_council_code) == council)
        .order_by(col(Child.id))
        .limit(count)
    )
    return list(rows.scalars())


async def _meetings(council: _Council, children: list[str]) -> None:
    """Per month, two discussions about born children and a conference after one of them; every
    other month a pre-birth discussion and conference; a review three months on."""
    rng, now = council.rng, council.now
    for month in range(MONTHS, 0, -1):
        start = now - dt.timedelta(days=30 * month)
        for week in (0, 2):
            at = start + dt.timedelta(days=7 * week + rng.uniform(0, 3))
            kid = meetings.ScheduledChild(child_id=children[(month * 2 + week) % len(children)])
            discussion = await council.meeting(MeetingKind.STRATEGY_DISCUSSION, at, kid)
            if week:
                continue
            conference_at = at + dt.timedelta(days=14)
            initial = MeetingKind.INITIAL_CHILD_PROTECTION_CONFERENCE
            await council.meeting(initial, conference_at, kid, discussion)
            if month > 3:  # noqa: PLR2004 - a review three months on, inside the six
                review = MeetingKind.REVIEW_CHILD_PROTECTION_CONFERENCE
                await council.meeting(
                    review, conference_at + dt.timedelta(days=90), kid, discussion
                )
        if month % 2 == 0:
            due = (start + dt.timedelta(days=120)).date()
            unborn = meetings.ScheduledChild(
                expected_delivery_date=due, mother_council=council.code
            )
            at = start + dt.timedelta(days=10)
            discussion = await council.meeting(MeetingKind.STRATEGY_DISCUSSION, at, unborn)
            initial = MeetingKind.INITIAL_CHILD_PROTECTION_CONFERENCE
            await council.meeting(initial, at + dt.timedelta(days=12), unborn, discussion)


async def _joint_visits(council: _Council, children: list[str]) -> None:
    """Two requests a month: Birmingham's answered within hours and held jointly, Leicester's
    never answered."""
    rng, now = council.rng, council.now
    for number in range(2 * MONTHS):
        recorded = now - dt.timedelta(days=15 * (number + 1) - rng.uniform(0, 3))
        row, _ = await joint_visits.request(
            council.session,
            council_code=council.code,
            scope=council.scope,
            visit=joint_visits.VisitRequest(
                council_reference=f"DEMO-JV-{council.code}-{number + 1:03d}",
                child_id=children[number % len(children)],
                force=council.force,
                kind=JointVisitKind.VISIT if number % 3 else JointVisitKind.ABE_INTERVIEW,
                urgency=Urgency.WITHIN_24_HOURS,
                needed_by=recorded + dt.timedelta(hours=24),
                recorded_at=recorded,
            ),
        )
        row.shared_at = recorded + dt.timedelta(minutes=3)
        if council.code == UNANSWERED_COUNCIL:
            continue
        answered = row.shared_at + dt.timedelta(hours=rng.uniform(1, 6))
        await joint_visits.respond(
            council.session,
            force_code=council.force,
            answer=joint_visits.VisitAnswer(
                row.id, JointVisitResponse.OFFICER_ASSIGNED, answered, OfficerRole.CONSTABLE
            ),
        )
        await joint_visits.record_outcome(
            council.session,
            council_code=council.code,
            outcome=joint_visits.VisitOutcome(
                row.id, JointVisitOutcome.HELD_JOINTLY, answered + dt.timedelta(hours=12)
            ),
        )


async def _protections(session: AsyncSession, rng: random.Random, now: dt.datetime) -> int:
    """West Midlands talks to Birmingham's emergency duty team first; Greater Manchester
    does not."""
    pushed = 0
    for force in (ATTENDS, WRITES):
        council = COUNCIL_OF[force]
        for number in range(1, 3):
            taken = now - dt.timedelta(days=20 * number + rng.uniform(0, 5))
            consulted = force == ATTENDS
            reference = f"DEMO-PP-{force}-{number}"
            row, _ = await protection.record(
                session,
                force_code=force,
                client_id="demo-loader",
                report=protection.ProtectionReport(
                    police_reference=reference,
                    child=ChildDetails(
                        police_reference=f"{reference}-C",
                        given_name="Robin",
                        family_name="Placeholder",
                        date_of_birth=dt.date(2019, 5, 1),
                        responsible_council=council,
                    ),
                    taken_at=taken,
                    recorded_at=taken + dt.timedelta(hours=1),
                    placed_in=PlacedIn.FOSTER_CARE if consulted else PlacedIn.POLICE_STATION,
                    consulted_before=consulted,
                    alternatives_considered=(
                        (Alternative.FAMILY_OR_FRIENDS,) if consulted else (Alternative.NONE,)
                    ),
                    placed_council=council,
                    consulted_at=taken - dt.timedelta(minutes=40) if consulted else None,
                    consulted_council=council if consulted else None,
                    consulted_role=ConsultedRole.EMERGENCY_DUTY_TEAM if consulted else None,
                ),
            )
            # Pushed as it was recorded, not all at once today (a burst the report would flag).
            row.shared_at = row.recorded_at + dt.timedelta(minutes=5)
            pushed += 1
    return pushed


async def push_partnership_story(
    session: AsyncSession, rng: random.Random, now: dt.datetime
) -> int:
    """Push the three councils' meetings and joint visits and the protections; return how many
    records. Needs the incident story's children (each council's own)."""
    pushed = 0
    for force in (ATTENDS, WRITES, NOT_PRE_BIRTH):
        council = _Council(session, COUNCIL_OF[force], force, rng, now)
        children = await _children(session, council.code, 6)
        await _meetings(council, children)
        await _joint_visits(council, children)
        pushed += council.pushed + 2 * MONTHS
    pushed += await _protections(session, rng, now)
    await session.flush()
    return pushed
