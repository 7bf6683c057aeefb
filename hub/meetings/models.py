"""Meetings, the children they are about, and one invitation per invited force.

Table and column names are the shared contract of issue 13 (the timeliness report reads them).
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class MeetingKind(enum.StrEnum):
    STRATEGY_DISCUSSION = "strategy_discussion"
    INITIAL_CHILD_PROTECTION_CONFERENCE = "initial_child_protection_conference"
    REVIEW_CHILD_PROTECTION_CONFERENCE = "review_child_protection_conference"


CONFERENCES = frozenset(
    {
        MeetingKind.INITIAL_CHILD_PROTECTION_CONFERENCE,
        MeetingKind.REVIEW_CHILD_PROTECTION_CONFERENCE,
    }
)


class MeetingMode(enum.StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"
    PHONE = "phone"


class InvitationResponse(enum.StrEnum):
    WILL_ATTEND = "will_attend"
    CANNOT_ATTEND = "cannot_attend"


class DeclineReason(enum.StrEnum):
    NO_OFFICER_AVAILABLE = "no_officer_available"
    INSUFFICIENT_NOTICE = "insufficient_notice"
    NOT_A_POLICE_MATTER = "not_a_police_matter"
    WRITTEN_REPORT_INSTEAD = "written_report_instead"
    CONFLICTING_COMMITMENT = "conflicting_commitment"
    OTHER = "other"


class Attendance(enum.StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"
    PHONE = "phone"
    WRITTEN_REPORT_ONLY = "written_report_only"
    APOLOGIES = "apologies"
    DID_NOT_ATTEND = "did_not_attend"


# An officer took part: their rank or role is what seniority is read from.
ATTENDED = frozenset({Attendance.IN_PERSON, Attendance.VIDEO, Attendance.PHONE})


class AttendeeRole(enum.StrEnum):
    CONSTABLE = "constable"
    SERGEANT = "sergeant"
    INSPECTOR = "inspector"
    CHIEF_INSPECTOR = "chief_inspector"
    SUPERINTENDENT_OR_ABOVE = "superintendent_or_above"
    POLICE_STAFF = "police_staff"
    OTHER = "other"


class Meeting(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("council_code", "council_reference"),
        sa.UniqueConstraint("council_code", "idempotency_key"),
    )

    id: str = id_field()
    council_code: str = org_field()
    council_reference: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    payload_hash: str = Field(max_length=64)
    # Longer than other enums' 32: "initial_child_protection_conference" is 35 characters.
    kind: str = Field(max_length=40, index=True)
    scheduled_at: dt.datetime = utc_field(index=True)
    mode: str = enum_field()
    strategy_discussion_id: str | None = Field(
        default=None, foreign_key="meeting.id", max_length=36, index=True, nullable=True
    )
    pre_birth: bool = False
    recorded_at: dt.datetime = utc_field()
    shared_at: dt.datetime = utc_field(now=True)
    held_at: dt.datetime | None = utc_field(nullable=True)


class MeetingChild(SQLModel, table=True):
    """A child the meeting is about: a born child by the hub's id, or an unborn child known only
    by the expected date of delivery and the mother's council."""

    __tablename__ = "meeting_child"

    id: str = id_field()
    meeting_id: str = Field(foreign_key="meeting.id", max_length=36, index=True)
    child_id: str | None = Field(
        default=None, foreign_key="child.id", max_length=36, index=True, nullable=True
    )
    expected_delivery_date: dt.date | None = None
    mother_council_code: str | None = org_field(nullable=True)


class MeetingInvitation(SQLModel, table=True):
    """One invited force: its answer, its written contribution, and whether it attended."""

    __tablename__ = "meeting_invitation"

    meeting_id: str = Field(foreign_key="meeting.id", primary_key=True, max_length=36)
    force_code: str = Field(
        foreign_key="organisation.code", primary_key=True, max_length=32, index=True
    )
    invited_at: dt.datetime = utc_field()
    response: str | None = enum_field(nullable=True)
    response_reason: str | None = enum_field(nullable=True)
    responded_at: dt.datetime | None = utc_field(nullable=True)
    report_submitted_at: dt.datetime | None = utc_field(nullable=True)
    report_text: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    attendance: str | None = enum_field(nullable=True)
    attendee_role: str | None = enum_field(nullable=True)
    attendance_recorded_at: dt.datetime | None = utc_field(nullable=True)
