"""The partnership figures by aggregate SQL: the same statements on SQLite and PostgreSQL.

Each section is one statement grouped by its finest keys (force, council, month and what is
counted), a few thousand rows nationally, which `_roll_up` sums into the four groupings. Only
the median answer time of joint visit requests is not a sum: one statement ranks the answer
times within each group with window functions (no ordered-set aggregate: SQLite has none) and
averages the middle one or two. The month is the UK month of the event, found by comparing the
time with the bound first instants of the period's months, so no time zone is needed in SQL.
Scopes are indexed conditions: a force reads its invitations, requests and protections only, a
council the meetings it convened, the requests it made and the protections of its children.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from hub.meetings.models import ATTENDED
from hub.partnership import sources as t
from hub.partnership.figures import (
    ATTENDANCE_COUNTS,
    JOINT_VISIT_COUNTS,
    JOINT_VISIT_KIND,
    MEETING_KINDS,
    PROTECTION_COUNTS,
    PROTECTION_KIND,
    ROLES,
    SENIORITY_COUNTS,
    Attendance,
    Grouping,
    JointVisits,
    Key,
    PartnershipData,
    ProtectionFinding,
    Protections,
    Seniority,
)
from hub.timeliness.calendar import LONDON
from hub.timeliness.report_data import ReportScope


class HoursBetween(FunctionElement[float]):
    """Hours from the first time to the second, in the database's own arithmetic."""

    type = sa.Float()
    name = "hours_between"
    inherit_cache = True


@compiles(HoursBetween, "postgresql")
def _hours_postgresql(element: HoursBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)"


@compiles(HoursBetween, "sqlite")
def _hours_sqlite(element: HoursBetween, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC times as text 'YYYY-MM-DD HH:MM:SS.ffffff', which julianday reads.
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 24.0)"


@dataclasses.dataclass(frozen=True)
class Period:
    """The report's events: [start, end), with the first instant of each UK month in it."""

    start: dt.datetime
    end: dt.datetime
    months: tuple[tuple[str, dt.datetime], ...]  # (YYYY-MM, the instant the next month starts)
    as_of: dt.datetime

    @classmethod
    def of(cls, period_from: dt.date, period_to: dt.date, as_of: dt.datetime) -> Period:
        def instant(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)

        months: list[tuple[str, dt.datetime]] = []
        year, month = period_from.year, period_from.month
        while (year, month) <= (period_to.year, period_to.month):
            following = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004
            months.append((f"{year:04d}-{month:02d}", instant(dt.date(*following, 1))))
            year, month = following
        end = instant(period_to + dt.timedelta(days=1))
        return cls(instant(period_from), end, tuple(months), as_of)

    def month(self, column: Any) -> sa.ColumnElement[str]:
        """The UK month (YYYY-MM) of a time in the period, as SQL."""
        whens = [(column < boundary, sa.literal(label)) for label, boundary in self.months[:-1]]
        last = sa.literal(self.months[-1][0])
        return sa.case(*whens, else_=last) if whens else last

    def contains(self, column: Any) -> sa.ColumnElement[bool]:
        return sa.and_(column >= self.start, column < self.end)


def _sections(scope: ReportScope) -> tuple[bool, bool, bool]:
    """Which sections a `kind` filter leaves: (meetings, joint visits, protections)."""
    if scope.kind is None:
        return True, True, True
    return (
        scope.kind in MEETING_KINDS,
        scope.kind == JOINT_VISIT_KIND,
        scope.kind == PROTECTION_KIND,
    )


# -- attendance ------------------------------------------------------------------------------


def _invitations_in(rows: sa.Select[Any], scope: ReportScope) -> sa.Select[Any]:
    """Invitations (joined to their meetings) of the scope's force, council and kind."""
    m, i = t.meeting, t.meeting_invitation
    if scope.force_code is not None:
        rows = rows.where(i.c.force_code == scope.force_code)
    if scope.council_code is not None:
        rows = rows.where(m.c.council_code == scope.council_code)
    if scope.kind is not None:
        rows = rows.where(m.c.kind == scope.kind)
    return rows


def attendance_statement(period: Period, scope: ReportScope) -> sa.Select[Any]:
    """Invitations to meetings held in the period, per force, council, month, kind, pre-birth
    and attendance, with the reports sent and sent before the meeting."""
    m, i = t.meeting, t.meeting_invitation
    held = sa.func.coalesce(m.c.held_at, m.c.scheduled_at)
    sent = i.c.report_submitted_at.is_not(None)
    rows = (
        sa.select(
            i.c.force_code.label("force"),
            m.c.council_code.label("council"),
            period.month(m.c.scheduled_at).label("month"),
            m.c.kind,
            m.c.pre_birth,
            i.c.attendance,
            sa.case((sent, 1), else_=0).label("report"),
            sa.case((sa.and_(sent, i.c.report_submitted_at <= held), 1), else_=0).label("on_time"),
        )
        .select_from(i.join(m, m.c.id == i.c.meeting_id))
        .where(period.contains(m.c.scheduled_at), m.c.held_at.is_not(None))
    )
    rows = _invitations_in(rows, scope)
    # Grouped outside: PostgreSQL cannot match a GROUP BY to a CASE of bound parameters.
    r = rows.subquery("invited")
    keys = (r.c.force, r.c.council, r.c.month, r.c.kind, r.c.pre_birth, r.c.attendance)
    return sa.select(
        *keys,
        sa.func.count().label("n"),
        sa.func.sum(r.c.report).label("reports"),
        sa.func.sum(r.c.on_time).label("on_time"),
    ).group_by(*keys)


# An invitation's recorded attendance, counted as.
_ATTENDED_AS = {
    "in_person": "in_person",
    "video": "video",
    "phone": "phone",
    "written_report_only": "written_report_only",
    "apologies": "apologies",
    "did_not_attend": "did_not_attend",
    None: "not_recorded",
}


_ATTENDANCE_AT = {name: index for index, name in enumerate(ATTENDANCE_COUNTS)}


def _attendance(rows: Iterable[Any]) -> tuple[Attendance, ...]:
    # Tallied under plain tuples, the Keys made once per group: a national year has tens of
    # thousands of rows, four groups each.
    tallies: dict[tuple[Grouping, str | None, str, bool], list[int]] = {}
    at = _ATTENDANCE_AT
    invitations, reports, on_time = (
        at["invitations"],
        at["reports_submitted"],
        at["reports_on_time"],
    )
    # Unpacked as tuples (`attendance_statement`'s columns): a row's attributes cost more.
    for force, council, month, kind, born, attended, n, submitted, before in rows:
        mode = at[_ATTENDED_AS.get(attended, "not_recorded")]
        sent, timely, pre_birth = int(submitted or 0), int(before or 0), bool(born)
        for grouping, value in _groups(force, council, month):
            tally = tallies.get((grouping, value, kind, pre_birth))
            if tally is None:
                tally = tallies[grouping, value, kind, pre_birth] = [0] * len(at)
            tally[invitations] += n
            tally[mode] += n
            tally[reports] += sent
            tally[on_time] += timely
    kinds = list(MEETING_KINDS)
    found = [
        Attendance(
            key=Key(grouping, value),
            kind=kind,
            pre_birth=pre_birth,
            **dict(zip(ATTENDANCE_COUNTS, tally, strict=True)),
        )
        for (grouping, value, kind, pre_birth), tally in tallies.items()
    ]
    found.sort(key=lambda a: (*_order(a.key), kinds.index(a.kind), a.pre_birth))
    return tuple(found)


# -- seniority -------------------------------------------------------------------------------


def seniority_statement(period: Period, scope: ReportScope) -> sa.Select[Any]:
    """Invitations to meetings held in the period that the force attended (in person, by
    video or by phone), per force and the attending officer's rank or role."""
    m, i = t.meeting, t.meeting_invitation
    rows = sa.select(i.c.force_code, i.c.attendee_role, sa.func.count().label("n")).select_from(
        i.join(m, m.c.id == i.c.meeting_id)
    )
    rows = rows.where(
        period.contains(m.c.scheduled_at),
        m.c.held_at.is_not(None),
        i.c.attendance.in_(sorted(str(mode) for mode in ATTENDED)),
    )
    return _invitations_in(rows, scope).group_by(i.c.force_code, i.c.attendee_role)


def _seniority(rows: Iterable[Any]) -> tuple[Seniority, ...]:
    tallies: dict[str, dict[str, int]] = {}
    for force, role, n in rows:
        tally = tallies.setdefault(force, dict.fromkeys(SENIORITY_COUNTS, 0))
        tally["attended"] += n
        tally[role if role in ROLES else "role_not_recorded"] += n
    return tuple(Seniority(force_code=force, **tallies[force]) for force in sorted(tallies))


# -- joint visits ----------------------------------------------------------------------------


def _requests(period: Period, scope: ReportScope) -> sa.Select[Any]:
    j = t.joint_visit_request
    rows = sa.select(
        j.c.force_code.label("force"),
        j.c.council_code.label("council"),
        period.month(j.c.recorded_at).label("month"),
    ).where(period.contains(j.c.recorded_at))
    if scope.force_code is not None:
        rows = rows.where(j.c.force_code == scope.force_code)
    if scope.council_code is not None:
        rows = rows.where(j.c.council_code == scope.council_code)
    return rows


def joint_visit_statement(period: Period, scope: ReportScope) -> sa.Select[Any]:
    """Requests made in the period per force, council, month, answer and outcome; and how many
    were still unanswered after the time they were needed by."""
    j = t.joint_visit_request
    overdue = sa.and_(j.c.response.is_(None), j.c.needed_by < period.as_of)
    r = (
        _requests(period, scope)
        .add_columns(j.c.response, j.c.outcome, sa.case((overdue, 1), else_=0).label("overdue"))
        .subquery("requested")
    )
    keys = (r.c.force, r.c.council, r.c.month, r.c.response, r.c.outcome)
    return sa.select(
        *keys, sa.func.count().label("n"), sa.func.sum(r.c.overdue).label("overdue")
    ).group_by(*keys)


def answer_median_statement(period: Period, scope: ReportScope) -> sa.Select[Any]:
    """The median hours from a request reaching the hub to the force's answer, per group.

    Ranked per group (`row_number`, `count` over it); the middle one or two ranks r satisfy
    n <= 2r <= n + 2, which needs no division."""
    j = t.joint_visit_request
    answered = (
        _requests(period, scope)
        .add_columns(HoursBetween(j.c.shared_at, j.c.responded_at).label("hours"))
        .where(j.c.responded_at.is_not(None))
        .subquery("answered")
    )
    keyed = sa.union_all(
        *(
            sa.select(
                sa.literal_column(f"'{grouping.value}'", sa.String()).label("grouping"),
                sa.cast(value, sa.String()).label("value"),
                answered.c.hours,
            )
            for grouping, value in (
                (Grouping.FORCE, answered.c.force),
                (Grouping.COUNCIL, answered.c.council),
                (Grouping.MONTH, answered.c.month),
                (Grouping.TOTAL, sa.null()),
            )
        )
    ).subquery("keyed")
    group = (keyed.c.grouping, keyed.c.value)
    ranked = sa.select(
        *group,
        keyed.c.hours,
        sa.func.row_number().over(partition_by=group, order_by=keyed.c.hours).label("rank"),
        sa.func.count().over(partition_by=group).label("n"),
    ).subquery("ranked")
    middle = sa.and_(ranked.c.n <= 2 * ranked.c.rank, 2 * ranked.c.rank <= ranked.c.n + 2)
    return (
        sa.select(ranked.c.grouping, ranked.c.value, sa.func.avg(ranked.c.hours).label("median"))
        .where(middle)
        .group_by(ranked.c.grouping, ranked.c.value)
    )


_ANSWER = {"officer_assigned": "officer_assigned", "not_available": "not_available"}
_OUTCOME = {
    "held_jointly": "held_jointly",
    "social_worker_alone": "social_worker_alone",
    "cancelled": "cancelled",
}


def _joint_visits(rows: Iterable[Any], medians: Iterable[Any]) -> tuple[JointVisits, ...]:
    tallies: defaultdict[Key, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(JOINT_VISIT_COUNTS, 0)
    )
    for row in rows:
        for key in _keys(row.force, row.council, row.month):
            tally = tallies[key]
            tally["requests"] += row.n
            tally[_ANSWER.get(row.response, "unanswered")] += row.n
            if row.outcome in _OUTCOME:
                tally[_OUTCOME[row.outcome]] += row.n
            tally["overdue"] += int(row.overdue or 0)
    median = {
        Key(Grouping(row.grouping), row.value): float(row.median)
        for row in medians
        if row.median is not None
    }
    found = [
        JointVisits(key=key, median_answer_hours=median.get(key), **tally)
        for key, tally in tallies.items()
    ]
    return tuple(sorted(found, key=lambda row: _order(row.key)))


# -- police protection -----------------------------------------------------------------------


def _protected(period: Period, scope: ReportScope) -> tuple[sa.Select[Any], Any]:
    p, c = t.police_protection, t.child
    # The child's responsible council; the council the child was placed in if the hub has none.
    # Looked up per protection by the child's key: a join would hash every child in the hub.
    responsible = (
        sa.select(c.c.responsible_council_code).where(c.c.id == p.c.child_id).scalar_subquery()
    )
    council = sa.func.coalesce(responsible, p.c.placed_council_code)
    rows = sa.select(
        p.c.force_code.label("force"),
        council.label("council"),
        period.month(p.c.taken_at).label("month"),
    ).where(period.contains(p.c.taken_at))
    if scope.force_code is not None:
        rows = rows.where(p.c.force_code == scope.force_code)
    if scope.council_code is not None:
        # The same test as `council == code`, in a form the database answers from the council's
        # children (by index) instead of looking up the child of every protection.
        theirs = sa.select(c.c.id).where(c.c.responsible_council_code == scope.council_code)
        rows = rows.where(
            sa.or_(
                p.c.child_id.in_(theirs),
                sa.and_(p.c.placed_council_code == scope.council_code, responsible.is_(None)),
            )
        )
    return rows, p


def protection_statement(period: Period, scope: ReportScope) -> sa.Select[Any]:
    rows, p = _protected(period, scope)
    considered = p.c.alternatives_considered
    nothing_else = sa.or_(considered.is_(None), considered.in_(["", "none"]))
    r = rows.add_columns(
        sa.case((p.c.consulted_before, 0), else_=1).label("without"),
        sa.case((nothing_else, 1), else_=0).label("no_alternatives"),
    ).subquery("protected")
    keys = (r.c.force, r.c.council, r.c.month, r.c.without, r.c.no_alternatives)
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys)


def findings_statement(period: Period, scope: ReportScope, limit: int | None) -> sa.Select[Any]:
    """The protections taken without a discussion with children's social care, earliest first."""
    rows, p = _protected(period, scope)
    found = (
        rows.add_columns(
            p.c.id, p.c.taken_at, p.c.placed_in, p.c.alternatives_considered, p.c.child_id
        )
        .where(sa.not_(p.c.consulted_before))
        .order_by(p.c.taken_at, p.c.id)
    )
    return found if limit is None else found.limit(limit)


def _protections(rows: Iterable[Any]) -> tuple[Protections, ...]:
    tallies: defaultdict[Key, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(PROTECTION_COUNTS, 0)
    )
    for row in rows:
        for key in _keys(row.force, row.council, row.month):
            tally = tallies[key]
            tally["protections"] += row.n
            tally["without_discussion"] += row.n * int(row.without)
            tally["no_alternatives"] += row.n * int(row.no_alternatives)
    found = [Protections(key=key, **tally) for key, tally in tallies.items()]
    return tuple(sorted(found, key=lambda row: _order(row.key)))


# -- together --------------------------------------------------------------------------------


def _groups(
    force: str | None, council: str | None, month: str
) -> tuple[tuple[Grouping, str | None], ...]:
    """A row's four groups, as (grouping, value)."""
    return (
        (Grouping.FORCE, force),
        (Grouping.COUNCIL, council),
        (Grouping.MONTH, month),
        (Grouping.TOTAL, None),
    )


def _keys(force: str | None, council: str | None, month: str) -> tuple[Key, ...]:
    return (
        Key(Grouping.FORCE, force),
        Key(Grouping.COUNCIL, council),
        Key(Grouping.MONTH, month),
        Key(Grouping.TOTAL, None),
    )


_GROUPING_ORDER = {grouping: index for index, grouping in enumerate(Grouping)}


def _order(key: Key) -> tuple[int, str]:
    return _GROUPING_ORDER[key.grouping], key.value or ""


# A national year groups and ranks a million rows: in memory, not spilled to disk; compiling
# these statements (JIT) costs a second each and saves nothing (as for the delays' parts).
_POSTGRESQL_SETTINGS = ("SET LOCAL work_mem = '256MB'", "SET LOCAL jit = off")


async def measure(
    session: AsyncSession,
    *,
    period: Period,
    scope: ReportScope,
    pseudonymise: Callable[[str], str],
    finding_limit: int | None = None,
) -> PartnershipData:
    """Every partnership figure of the period in `scope`, read in the session's transaction.

    `finding_limit` lists only the earliest protections without discussion (all are counted)."""
    meetings, visits, protections = _sections(scope)
    data: dict[str, Any] = {}
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        for setting in _POSTGRESQL_SETTINGS:
            await session.execute(sa.text(setting))
    if meetings:
        rows = (await session.execute(attendance_statement(period, scope))).all()
        data["attendance"] = _attendance(rows)
        rows = (await session.execute(seniority_statement(period, scope))).all()
        data["seniority"] = _seniority(rows)
    if visits:
        rows = (await session.execute(joint_visit_statement(period, scope))).all()
        medians = (await session.execute(answer_median_statement(period, scope))).all()
        data["joint_visits"] = _joint_visits(rows, medians)
    if protections:
        rows = (await session.execute(protection_statement(period, scope))).all()
        data["protections"] = _protections(rows)
        listed = await session.execute(findings_statement(period, scope, finding_limit))
        data["findings"] = tuple(
            ProtectionFinding(
                record_id=row.id,
                force_code=row.force,
                council_code=row.council,
                month=row.month,
                taken_at=row.taken_at,
                placed_in=row.placed_in,
                alternatives_considered=row.alternatives_considered or "",
                child=pseudonymise(row.child_id) if row.child_id else None,
            )
            for row in listed
        )
    return PartnershipData(**data)
