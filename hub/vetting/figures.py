"""Vetting figures per force and per council (issue 14 item 5; T11 in the standards).

Open checks are counted as they stand now, with their age from the council's request; completed
checks are those completed in the period asked. A check meets the target (T11 in
auth/targets.toml) when it is completed within the target's limit of its request. Carers and
adopters waiting are the applicants (by the council's reference) with a check still open:
one applicant checked by two forces waits once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.timeliness.targets import Target, TargetSet
from hub.vetting.models import VettingCheck, VettingPurpose, VettingStatus

KIND = "vetting_check"
STAGE = "requested_to_completed"
CARERS = frozenset({VettingPurpose.FOSTER_CARER, VettingPurpose.CONNECTED_PERSON})
ADOPTERS = frozenset({VettingPurpose.ADOPTER})
_DAY = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class FiguresScope:
    """Whose checks: one force's, one council's, or (both None) every one."""

    force_code: str | None = None
    council_code: str | None = None


@dataclasses.dataclass(frozen=True)
class _Check:
    force_code: str
    council_code: str
    purpose: str
    applicant_reference: str
    requested_at: dt.datetime
    completed_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class GroupFigures:
    """One force's or one council's checks."""

    organisation_code: str
    open: int
    completed: int
    open_median_age_days: float | None
    open_oldest_age_days: float | None
    open_over_target: int
    completed_within_target: int
    carers_waiting: int
    adopters_waiting: int

    @property
    def share_within_target(self) -> float | None:
        return self.completed_within_target / self.completed if self.completed else None


@dataclasses.dataclass(frozen=True)
class VettingFigures:
    as_of: dt.datetime
    completed_from: dt.datetime
    completed_until: dt.datetime
    scope: FiguresScope
    target: Target | None
    targets_version: str
    by_force: tuple[GroupFigures, ...]
    by_council: tuple[GroupFigures, ...]


def target_of(targets: TargetSet) -> Target | None:
    """The agreement's target for completing a check (T11), if it sets one."""
    found = targets.for_stage(KIND, STAGE)
    return found[0] if found else None


def _limit(target: Target | None) -> dt.timedelta | None:
    return None if target is None or target.limit is None else dt.timedelta(hours=target.limit)


def _group(
    code: str, checks: Sequence[_Check], *, as_of: dt.datetime, limit: dt.timedelta | None
) -> GroupFigures:
    ages = sorted((as_of - c.requested_at) / _DAY for c in checks if c.completed_at is None)
    done = [c.completed_at - c.requested_at for c in checks if c.completed_at is not None]
    waiting = [c for c in checks if c.completed_at is None]

    def applicants(purposes: frozenset[VettingPurpose]) -> int:
        return len(
            {(c.council_code, c.applicant_reference) for c in waiting if c.purpose in purposes}
        )

    return GroupFigures(
        organisation_code=code,
        open=len(ages),
        completed=len(done),
        open_median_age_days=statistics.median(ages) if ages else None,
        open_oldest_age_days=ages[-1] if ages else None,
        open_over_target=0 if limit is None else sum(a * _DAY > limit for a in ages),
        completed_within_target=0 if limit is None else sum(d <= limit for d in done),
        carers_waiting=applicants(CARERS),
        adopters_waiting=applicants(ADOPTERS),
    )


def _grouped(
    checks: Iterable[_Check], key: str, *, as_of: dt.datetime, limit: dt.timedelta | None
) -> tuple[GroupFigures, ...]:
    groups: defaultdict[str, list[_Check]] = defaultdict(list)
    for check in checks:
        groups[getattr(check, key)].append(check)
    return tuple(_group(code, groups[code], as_of=as_of, limit=limit) for code in sorted(groups))


async def figures(
    session: AsyncSession,
    *,
    scope: FiguresScope,
    completed_from: dt.datetime,
    completed_until: dt.datetime,
    as_of: dt.datetime,
    targets: TargetSet,
) -> VettingFigures:
    """Open checks now, and checks completed in [completed_from, completed_until)."""
    query = sa.select(
        col(VettingCheck.force_code),
        col(VettingCheck.council_code),
        col(VettingCheck.purpose),
        col(VettingCheck.applicant_reference),
        col(VettingCheck.requested_at),
        col(VettingCheck.completed_at),
    ).where(
        sa.or_(
            col(VettingCheck.status) == VettingStatus.OPEN,
            sa.and_(
                col(VettingCheck.completed_at) >= completed_from,
                col(VettingCheck.completed_at) < completed_until,
            ),
        )
    )
    if scope.force_code is not None:
        query = query.where(col(VettingCheck.force_code) == scope.force_code)
    if scope.council_code is not None:
        query = query.where(col(VettingCheck.council_code) == scope.council_code)
    checks = [_Check(*row) for row in (await session.execute(query)).all()]
    target = target_of(targets)
    limit = _limit(target)
    return VettingFigures(
        as_of=as_of,
        completed_from=completed_from,
        completed_until=completed_until,
        scope=scope,
        target=target,
        targets_version=targets.version,
        by_force=_grouped(checks, "force_code", as_of=as_of, limit=limit),
        by_council=_grouped(checks, "council_code", as_of=as_of, limit=limit),
    )


def disclosure_detail(data: VettingFigures, *, report_format: str) -> dict[str, object]:
    """What the audit log records of the figures leaving the hub: never an applicant."""
    return {
        "report": "vetting figures",
        "completed_from": data.completed_from.isoformat(),
        "completed_until": data.completed_until.isoformat(),
        "force": data.scope.force_code,
        "council": data.scope.council_code,
        "format": report_format,
        "targets_version": data.targets_version,
    }
