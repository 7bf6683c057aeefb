"""The partnership figures as the report's tables (Markdown, HTML) and CSV rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping

from hub.partnership.figures import (
    MEETING_KINDS,
    ROLES,
    SENIORITY_COUNTS,
    Attendance,
    Grouping,
    JointVisits,
    Key,
    PartnershipData,
    Protections,
)
from hub.timeliness import formatting as fmt
from hub.timeliness.report_tables import Table

GROUPING_TITLES = {
    Grouping.TOTAL: "In total",
    Grouping.FORCE: "By force",
    Grouping.COUNCIL: "By council",
    Grouping.MONTH: "By month",
}
_GROUP_HEADER = {
    Grouping.TOTAL: "Scope",
    Grouping.FORCE: "Force",
    Grouping.COUNCIL: "Council",
    Grouping.MONTH: "Month",
}
REPORT_GROUPINGS = (Grouping.TOTAL, Grouping.FORCE, Grouping.COUNCIL, Grouping.MONTH)


def _group(key: Key, names: Mapping[str, str]) -> str:
    if key.grouping is Grouping.TOTAL:
        return "all"
    if key.grouping is Grouping.MONTH:
        return key.value or fmt.DASH
    return fmt.org(key.value, names)


def meeting_label(row: Attendance) -> str:
    label = MEETING_KINDS.get(row.kind, row.kind)
    return f"{label}, pre-birth" if row.pre_birth else label


def attendance_table(data: PartnershipData, grouping: Grouping, names: Mapping[str, str]) -> Table:
    rows = tuple(
        (
            _group(r.key, names),
            meeting_label(r),
            str(r.invitations),
            str(r.in_person),
            str(r.virtual),
            str(r.written_report_only),
            str(r.absent),
            fmt.share(r.share_absent),
            str(r.reports_submitted),
            str(r.reports_on_time),
        )
        for r in data.attendance_by(grouping)
    )
    headers = (_GROUP_HEADER[grouping], "Meetings held", "Invited", "In person", "Virtual")
    return Table(
        f"attendance-{grouping.value}",
        (*headers, "Written only", "Absent", "Absent share", "Reports", "Before the meeting"),
        rows,
        frozenset(range(2, 10)),
    )


SENIORITY_TITLE = "Who attended, by rank or role (per force)"


def seniority_table(data: PartnershipData, names: Mapping[str, str]) -> Table:
    """Per force, who attended the meetings it attended: the officer's rank or role."""
    rows = tuple(
        (
            fmt.org(r.force_code, names),
            str(r.attended),
            *(str(getattr(r, role)) for role in ROLES),
            str(r.role_not_recorded),
            str(r.inspector_or_above),
        )
        for r in data.seniority
    )
    roles = tuple(role.replace("_", " ").capitalize() for role in ROLES)
    return Table(
        "attendance-seniority",
        ("Force", "Attended", *roles, "Not recorded", "Inspector or above"),
        rows,
        frozenset(range(1, len(ROLES) + 4)),
    )


def joint_visit_table(data: PartnershipData, grouping: Grouping, names: Mapping[str, str]) -> Table:
    rows = tuple(
        (
            _group(r.key, names),
            str(r.requests),
            str(r.answered),
            str(r.officer_assigned),
            str(r.not_available),
            str(r.unanswered),
            str(r.overdue),
            str(r.held_jointly),
            str(r.social_worker_alone),
            str(r.cancelled),
            fmt.hours(r.median_answer_hours),
        )
        for r in data.joint_visits_by(grouping)
    )
    headers = (_GROUP_HEADER[grouping], "Requests", "Answered", "Officer assigned")
    more = ("Not available", "Unanswered", "Overdue", "Held jointly", "Social worker alone")
    return Table(
        f"joint-visits-{grouping.value}",
        (*headers, *more, "Cancelled", "Median answer"),
        rows,
        frozenset(range(1, 11)),
    )


def protection_table(data: PartnershipData, grouping: Grouping, names: Mapping[str, str]) -> Table:
    rows = tuple(
        (
            _group(r.key, names),
            str(r.protections),
            str(r.without_discussion),
            fmt.share(r.share_without_discussion),
            str(r.no_alternatives),
        )
        for r in data.protections_by(grouping)
    )
    headers = ("Protections", "Without prior discussion", "Share", "No alternative considered")
    return Table(
        f"protections-{grouping.value}",
        (_GROUP_HEADER[grouping], *headers),
        rows,
        frozenset(range(1, 5)),
    )


def findings_table(data: PartnershipData, names: Mapping[str, str], max_rows: int) -> Table:
    """Each protection without prior discussion, the earliest first; the child by pseudonym."""
    shown = data.findings[:max_rows]
    rows = tuple(
        (
            fmt.local_time(f.taken_at),
            fmt.org(f.force_code, names),
            fmt.org(f.council_code, names) if f.council_code else fmt.DASH,
            f.placed_in.replace("_", " "),
            f.alternatives_considered.replace("_", " ").replace(",", ", ") or "none recorded",
            f.child or fmt.DASH,
            f.record_id,
        )
        for f in shown
    )
    headers = ("Taken", "Force", "Council", "Placed in", "Alternatives considered")
    total = sum(r.without_discussion for r in data.protections_by(Grouping.TOTAL))
    return Table(
        "protection-findings",
        (*headers, "Child (pseudonym)", "Record"),
        rows,
        hidden=max(total - len(shown), 0),
    )


def method_notes() -> list[str]:
    return [
        (
            "Attendance counts each invited force once per meeting held (a meeting not yet held "
            "is not counted), by the council's record after the meeting: in person; virtual "
            "(video or phone); a written report only; absent (apologies, did not attend, or no "
            "attendance recorded for the force). Pre-birth meetings, about an unborn child, are "
            "counted apart. A report is on time when it arrived before the meeting was held. "
            "Who attended counts the invitations a force attended (in person or virtually) by "
            "the attending officer's rank or role, as the council recorded it."
        ),
        (
            "Joint visit requests count in the month the council recorded them. Answered: an "
            "officer assigned or not available; overdue: unanswered after the time the visit "
            "was needed by. The answer time runs from the request reaching the hub to the "
            "force's answer (median: the middle one, or the mean of the two middle ones)."
        ),
        (
            "A police protection counts in the month the child was taken, for the force and for "
            "the child's responsible council (the council the child was placed in when the hub "
            "holds no responsible council). One taken without children's social care consulted "
            "before is a finding, listed with the child only by pseudonym."
        ),
    ]


# -- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "pre_birth",
    "invitations",
    *SENIORITY_COUNTS,
    "in_person",
    "video",
    "phone",
    "written_report_only",
    "apologies",
    "did_not_attend",
    "not_recorded",
    "absent",
    "reports_submitted",
    "reports_on_time",
    "requests",
    "officer_assigned",
    "not_available",
    "unanswered",
    "overdue",
    "held_jointly",
    "social_worker_alone",
    "cancelled",
    "median_answer_hours",
    "protections",
    "without_discussion",
    "no_alternatives",
    "taken_at",
    "placed_in",
    "alternatives_considered",
)

Cell = str | int | float | bool | dt.datetime | None


def _keyed(key: Key) -> dict[str, Cell]:
    return {
        "grouping": key.grouping.value,
        "force_code": key.force_code,
        "council_code": key.council_code,
        "month": key.month,
    }


def _counts(row: Attendance | JointVisits | Protections) -> dict[str, Cell]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.name != "key"}


def csv_rows(data: PartnershipData) -> Iterator[tuple[str, dict[str, Cell]]]:
    """(section, raw values by column) for the report's CSV, which formats them."""
    for a in data.attendance:
        counts = _counts(a) | {"absent": a.absent}
        yield "attendance", _keyed(a.key) | counts
    for r in data.seniority:
        keyed: dict[str, Cell] = {"grouping": "force", "force_code": r.force_code}
        yield "attendance_seniority", keyed | {n: getattr(r, n) for n in SENIORITY_COUNTS}
    for j in data.joint_visits:
        yield "joint_visits", _keyed(j.key) | _counts(j)
    for p in data.protections:
        yield "protections", _keyed(p.key) | _counts(p)
    for f in data.findings:
        yield (
            "protection_finding",
            {
                "force_code": f.force_code,
                "council_code": f.council_code,
                "month": f.month,
                "record_id": f.record_id,
                "child": f.child,
                "taken_at": f.taken_at,
                "placed_in": f.placed_in,
                "alternatives_considered": f.alternatives_considered,
            },
        )
