"""What the partnership figures are: counts per group, and the protections the report lists.

Every figure is a count of rows the SQL grouped (`queries`), so a figure per force, per council,
per month or in total is the sum of the same rows grouped another way; only the median answer
time of joint visit requests is not a sum, and the SQL ranks it per group itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from hub.meetings.models import AttendeeRole


class Grouping(enum.StrEnum):
    FORCE = "force"
    COUNCIL = "council"
    MONTH = "month"
    TOTAL = "total"


GROUPINGS = tuple(Grouping)

# The meeting kinds (hub/meetings), in the order the report shows them.
MEETING_KINDS = {
    "strategy_discussion": "Strategy discussion",
    "initial_child_protection_conference": "Initial child protection conference",
    "review_child_protection_conference": "Review child protection conference",
}
CONFERENCES = frozenset(MEETING_KINDS) - {"strategy_discussion"}
# The report's `kind` filter names these for the other two sections.
JOINT_VISIT_KIND = "joint_visit_request"
PROTECTION_KIND = "police_protection"
PARTNERSHIP_KINDS = (*MEETING_KINDS, JOINT_VISIT_KIND, PROTECTION_KIND)


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    """Which group a row is: one force, one council, one month, or every one (`TOTAL`)."""

    grouping: Grouping
    value: str | None  # the force or council code, or YYYY-MM; None in total

    @property
    def force_code(self) -> str | None:
        return self.value if self.grouping is Grouping.FORCE else None

    @property
    def council_code(self) -> str | None:
        return self.value if self.grouping is Grouping.COUNCIL else None

    @property
    def month(self) -> str | None:
        return self.value if self.grouping is Grouping.MONTH else None


@dataclasses.dataclass(frozen=True, slots=True)
class Attendance:
    """The police's invitations to meetings held, by how they took part.

    In person; virtual (video or phone); a written report only; absent (apologies, did not
    attend, or no attendance recorded although the meeting was held). Pre-birth meetings (an
    unborn child among the children) are their own rows, so that a force that never attends
    them stands out instead of vanishing into its other conferences.
    """

    key: Key
    kind: str
    pre_birth: bool
    invitations: int = 0
    in_person: int = 0
    video: int = 0
    phone: int = 0
    written_report_only: int = 0
    apologies: int = 0
    did_not_attend: int = 0
    not_recorded: int = 0
    reports_submitted: int = 0
    reports_on_time: int = 0  # arrived before the meeting was held

    @property
    def virtual(self) -> int:
        return self.video + self.phone

    @property
    def attended(self) -> int:
        return self.in_person + self.virtual

    @property
    def absent(self) -> int:
        return self.apologies + self.did_not_attend + self.not_recorded

    @property
    def share_attended(self) -> float | None:
        return self.attended / self.invitations if self.invitations else None

    @property
    def share_absent(self) -> float | None:
        return self.absent / self.invitations if self.invitations else None


ATTENDANCE_COUNTS = (
    "invitations",
    "in_person",
    "video",
    "phone",
    "written_report_only",
    "apologies",
    "did_not_attend",
    "not_recorded",
    "reports_submitted",
    "reports_on_time",
)


# The attending officer's rank or role (`recordMeetingAttendance`), junior to senior, then
# staff and others: the seniority columns, in the report's order.
ROLES = tuple(role.value for role in AttendeeRole)


@dataclasses.dataclass(frozen=True, slots=True)
class Seniority:
    """Who a force sent: its invitations to meetings held that it attended (in person or
    virtually), by the attending officer's rank or role, so that seniority can be read."""

    force_code: str
    attended: int = 0
    constable: int = 0
    sergeant: int = 0
    inspector: int = 0
    chief_inspector: int = 0
    superintendent_or_above: int = 0
    police_staff: int = 0
    other: int = 0
    role_not_recorded: int = 0

    @property
    def inspector_or_above(self) -> int:
        return self.inspector + self.chief_inspector + self.superintendent_or_above


SENIORITY_COUNTS = ("attended", *ROLES, "role_not_recorded")


@dataclasses.dataclass(frozen=True, slots=True)
class JointVisits:
    """Councils' requests for a joint visit or ABE interview, and the force's answers."""

    key: Key
    requests: int = 0
    officer_assigned: int = 0
    not_available: int = 0
    unanswered: int = 0
    overdue: int = 0  # unanswered and past the time the visit was needed by
    held_jointly: int = 0  # fulfilled
    social_worker_alone: int = 0
    cancelled: int = 0
    median_answer_hours: float | None = None  # from the request reaching the hub to the answer

    @property
    def answered(self) -> int:
        return self.officer_assigned + self.not_available

    @property
    def share_answered(self) -> float | None:
        return self.answered / self.requests if self.requests else None

    @property
    def share_fulfilled(self) -> float | None:
        return self.held_jointly / self.requests if self.requests else None


JOINT_VISIT_COUNTS = (
    "requests",
    "officer_assigned",
    "not_available",
    "unanswered",
    "overdue",
    "held_jointly",
    "social_worker_alone",
    "cancelled",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Protections:
    """Children taken into police protection (Children Act 1989 s.46)."""

    key: Key
    protections: int = 0
    without_discussion: int = 0  # children's social care not consulted before
    no_alternatives: int = 0  # no alternative to protection recorded as considered

    @property
    def share_without_discussion(self) -> float | None:
        return self.without_discussion / self.protections if self.protections else None


PROTECTION_COUNTS = ("protections", "without_discussion", "no_alternatives")


@dataclasses.dataclass(frozen=True, slots=True)
class ProtectionFinding:
    """A protection taken without discussion with children's social care: the report lists it.

    The child appears only by pseudonym, as a breach's does."""

    record_id: str
    force_code: str
    council_code: str | None  # the child's responsible council
    month: str
    taken_at: dt.datetime
    placed_in: str
    alternatives_considered: str
    child: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class PartnershipData:
    attendance: tuple[Attendance, ...] = ()
    joint_visits: tuple[JointVisits, ...] = ()
    protections: tuple[Protections, ...] = ()
    findings: tuple[ProtectionFinding, ...] = ()  # the earliest first
    seniority: tuple[Seniority, ...] = ()  # per force, in code order

    def attendance_by(self, grouping: Grouping) -> tuple[Attendance, ...]:
        return tuple(row for row in self.attendance if row.key.grouping is grouping)

    def joint_visits_by(self, grouping: Grouping) -> tuple[JointVisits, ...]:
        return tuple(row for row in self.joint_visits if row.key.grouping is grouping)

    def protections_by(self, grouping: Grouping) -> tuple[Protections, ...]:
        return tuple(row for row in self.protections if row.key.grouping is grouping)
