# mypy: disallow-untyped-decorators=False
# (as for every hub.*.types module in pyproject.toml: strawberry-graphql/strawberry#1929)
"""The partnership figures in GraphQL, as fields of `SharingReport`.

Governed by the agreement like the report's other types (auth/agreement.toml): every field is
nullable. Figures only: a child appears, in a finding, by pseudonym alone.
"""

from __future__ import annotations

import datetime as dt
import enum

import strawberry

from hub.errors import InvalidInput
from hub.partnership import figures as f
from hub.partnership.figures import Attendance, JointVisits, Key, Protections, Seniority


@strawberry.enum(description="How a report's figures are grouped.")
class FigureGrouping(enum.Enum):
    FORCE = "force"
    COUNCIL = "council"
    MONTH = "month"
    TOTAL = "total"


def _grouping(key: Key) -> FigureGrouping:
    return FigureGrouping(key.grouping.value)


@strawberry.type(
    description="Police invitations to meetings held, by how the force took part: in person, "
    "virtual (video or phone), a written report only, or absent (apologies, did not attend, or "
    "no attendance recorded). Pre-birth meetings are counted apart."
)
class AttendanceFigures:
    grouping: FigureGrouping | None
    force: str | None
    council: str | None = strawberry.field(description="The council that convened the meetings.")
    month: str | None = strawberry.field(description="YYYY-MM of the meetings, in the UK.")
    kind: str | None
    pre_birth: bool | None
    invitations: int | None = strawberry.field(description="Invitations to meetings held.")
    in_person: int | None
    video: int | None
    phone: int | None
    virtual: int | None = strawberry.field(description="Video and phone.")
    written_report_only: int | None
    apologies: int | None
    did_not_attend: int | None
    not_recorded: int | None = strawberry.field(
        description="Held, but no attendance recorded for the force: counted as absent."
    )
    absent: int | None
    share_attended: float | None = strawberry.field(description="In person or virtual (0 to 1).")
    share_absent: float | None
    reports_submitted: int | None
    reports_on_time: int | None = strawberry.field(description="Arrived before the meeting.")

    @classmethod
    def of(cls, row: Attendance) -> AttendanceFigures:
        return cls(
            grouping=_grouping(row.key),
            force=row.key.force_code,
            council=row.key.council_code,
            month=row.key.month,
            kind=row.kind,
            pre_birth=row.pre_birth,
            invitations=row.invitations,
            in_person=row.in_person,
            video=row.video,
            phone=row.phone,
            virtual=row.virtual,
            written_report_only=row.written_report_only,
            apologies=row.apologies,
            did_not_attend=row.did_not_attend,
            not_recorded=row.not_recorded,
            absent=row.absent,
            share_attended=row.share_attended,
            share_absent=row.share_absent,
            reports_submitted=row.reports_submitted,
            reports_on_time=row.reports_on_time,
        )


@strawberry.type(
    description="Who a force sent to the meetings held that it attended (in person or "
    "virtually): the attending officer's rank or role, as the council recorded it."
)
class SeniorityFigures:
    force: str | None
    attended: int | None = strawberry.field(description="Invitations attended.")
    constable: int | None
    sergeant: int | None
    inspector: int | None
    chief_inspector: int | None
    superintendent_or_above: int | None
    police_staff: int | None
    other: int | None
    role_not_recorded: int | None
    inspector_or_above: int | None = strawberry.field(
        description="Inspector, chief inspector, superintendent or above."
    )

    @classmethod
    def of(cls, row: Seniority) -> SeniorityFigures:
        return cls(
            force=row.force_code,
            attended=row.attended,
            constable=row.constable,
            sergeant=row.sergeant,
            inspector=row.inspector,
            chief_inspector=row.chief_inspector,
            superintendent_or_above=row.superintendent_or_above,
            police_staff=row.police_staff,
            other=row.other,
            role_not_recorded=row.role_not_recorded,
            inspector_or_above=row.inspector_or_above,
        )


@strawberry.type(
    description="Councils' requests for a joint visit or ABE interview: answered, fulfilled "
    "(held jointly), and how long the force took to answer."
)
class JointVisitFigures:
    grouping: FigureGrouping | None
    force: str | None = strawberry.field(description="The force asked.")
    council: str | None = strawberry.field(description="The council that asked.")
    month: str | None = strawberry.field(description="YYYY-MM of the requests, in the UK.")
    requests: int | None
    answered: int | None
    officer_assigned: int | None
    not_available: int | None
    unanswered: int | None
    overdue: int | None = strawberry.field(
        description="Unanswered when the visit was needed by, as of the report."
    )
    held_jointly: int | None = strawberry.field(description="Fulfilled: held jointly.")
    social_worker_alone: int | None
    cancelled: int | None
    share_answered: float | None
    share_fulfilled: float | None
    median_answer_hours: float | None = strawberry.field(
        description="From the request reaching the hub to the force's answer."
    )

    @classmethod
    def of(cls, row: JointVisits) -> JointVisitFigures:
        return cls(
            grouping=_grouping(row.key),
            force=row.key.force_code,
            council=row.key.council_code,
            month=row.key.month,
            requests=row.requests,
            answered=row.answered,
            officer_assigned=row.officer_assigned,
            not_available=row.not_available,
            unanswered=row.unanswered,
            overdue=row.overdue,
            held_jointly=row.held_jointly,
            social_worker_alone=row.social_worker_alone,
            cancelled=row.cancelled,
            share_answered=row.share_answered,
            share_fulfilled=row.share_fulfilled,
            median_answer_hours=row.median_answer_hours,
        )


@strawberry.type(description="Children taken into police protection (Children Act 1989 s.46).")
class ProtectionFigures:
    grouping: FigureGrouping | None
    force: str | None
    council: str | None = strawberry.field(description="The child's responsible council.")
    month: str | None
    protections: int | None
    without_discussion: int | None = strawberry.field(
        description="Children's social care not consulted before the child was taken."
    )
    no_alternatives_considered: int | None
    share_without_discussion: float | None

    @classmethod
    def of(cls, row: Protections) -> ProtectionFigures:
        return cls(
            grouping=_grouping(row.key),
            force=row.key.force_code,
            council=row.key.council_code,
            month=row.key.month,
            protections=row.protections,
            without_discussion=row.without_discussion,
            no_alternatives_considered=row.no_alternatives,
            share_without_discussion=row.share_without_discussion,
        )


@strawberry.type(
    description="A police protection without prior discussion with children's social care: a "
    "finding. The child only by pseudonym."
)
class ProtectionFinding:
    record_id: strawberry.ID | None
    force: str | None
    council: str | None
    month: str | None
    taken_at: dt.datetime | None
    placed_in: str | None
    alternatives_considered: list[str] | None
    child: str | None = strawberry.field(
        description="A keyed pseudonym: the same child, never who."
    )

    @classmethod
    def of(cls, row: f.ProtectionFinding) -> ProtectionFinding:
        return cls(
            record_id=strawberry.ID(row.record_id),
            force=row.force_code,
            council=row.council_code,
            month=row.month,
            taken_at=row.taken_at,
            placed_in=row.placed_in,
            alternatives_considered=[a for a in row.alternatives_considered.split(",") if a],
            child=row.child,
        )


# The most findings one request lists (every one is counted in `ProtectionFigures`).
FINDING_PAGE = 1000


def _chosen(by: FigureGrouping | None) -> frozenset[f.Grouping]:
    return frozenset(f.Grouping) if by is None else frozenset({f.Grouping(by.value)})


def attendance(data: f.PartnershipData, by: FigureGrouping | None) -> list[AttendanceFigures]:
    chosen = _chosen(by)
    return [AttendanceFigures.of(r) for r in data.attendance if r.key.grouping in chosen]


def joint_visits(data: f.PartnershipData, by: FigureGrouping | None) -> list[JointVisitFigures]:
    chosen = _chosen(by)
    return [JointVisitFigures.of(r) for r in data.joint_visits if r.key.grouping in chosen]


def protections(data: f.PartnershipData, by: FigureGrouping | None) -> list[ProtectionFigures]:
    chosen = _chosen(by)
    return [ProtectionFigures.of(r) for r in data.protections if r.key.grouping in chosen]


def findings(data: f.PartnershipData, first: int) -> list[ProtectionFinding]:
    if not 0 <= first <= FINDING_PAGE:
        raise InvalidInput(f"first must be between 0 and {FINDING_PAGE}", field="first")
    return [ProtectionFinding.of(r) for r in data.findings[:first]]


def seniority(data: f.PartnershipData) -> list[SeniorityFigures]:
    return [SeniorityFigures.of(row) for row in data.seniority]
