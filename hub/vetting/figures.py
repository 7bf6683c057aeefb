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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.timeliness.targets import Target, TargetSet
from hub.vetting.models import VettingCheck, VettingPurpose, VettingStatus

KIND = "vetting_check"
STAGE = "requested_to_completed"
CARERS = frozenset({VettingPurpose.FOSTER_CARER, VettingPurpose.CONNECTED_PERSON})
ADOPTERS = frozenset({VettingPurpose.ADOPTER})
_DAY_SECONDS = 86_400


@dataclasses.dataclass(frozen=True)
class FiguresScope:
    """Whose checks: one force's, one council's, or (both None) every one."""

    force_code: str | None = None
    council_code: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Check:
    """One check as the figures need it: judged once, counted under its force and council."""

    force_code: str
    council_code: str
    purpose: str
    applicant_reference: str
    age_days: float | None  # open: days since the request
    within: bool | None  # completed: within the target (None: no target)


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
    targeted: bool = True  # False: the agreement sets no target (T11) to judge them by

    @property
    def share_within_target(self) -> float | None:
        if not self.completed or not self.targeted:
            return None
        return self.completed_within_target / self.completed


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


def _limit_seconds(target: Target | None) -> float | None:
    return None if target is None or target.limit is None else target.limit * 3600


def _group(code: str, checks: Sequence[_Check], *, limit: float | None) -> GroupFigures:
    waiting = [c for c in checks if c.age_days is not None]
    ages = sorted(c.age_days for c in waiting if c.age_days is not None)
    done = [c.within for c in checks if c.age_days is None]

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
        open_over_target=0 if limit is None else sum(a * _DAY_SECONDS > limit for a in ages),
        completed_within_target=sum(1 for within in done if within),
        carers_waiting=applicants(CARERS),
        adopters_waiting=applicants(ADOPTERS),
        targeted=limit is not None,
    )


def _grouped(
    checks: Iterable[_Check], key: str, *, limit: float | None
) -> tuple[GroupFigures, ...]:
    groups: defaultdict[str, list[_Check]] = defaultdict(list)
    for check in checks:
        groups[getattr(check, key)].append(check)
    return tuple(_group(code, groups[code], limit=limit) for code in sorted(groups))


def _query(scope: FiguresScope, completed_from: dt.datetime, completed_until: dt.datetime) -> Any:
    # Read as plain timestamps: the figures judge each check once from its two times, and
    # skipping the per-value zone fix-up (`UTCDateTime`) keeps a national year's read short.
    query = sa.select(
        col(VettingCheck.force_code),
        col(VettingCheck.council_code),
        col(VettingCheck.purpose),
        col(VettingCheck.applicant_reference),
        sa.type_coerce(col(VettingCheck.requested_at), sa.DateTime(timezone=True)),
        sa.type_coerce(col(VettingCheck.completed_at), sa.DateTime(timezone=True)),
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
    return query


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
    connection = await session.connection()
    # SQLite keeps UTC without its zone: compare like with like.
    now = as_of.replace(tzinfo=None) if connection.dialect.name == "sqlite" else as_of
    target = target_of(targets)
    limit = _limit_seconds(target)
    checks = [
        _Check(
            force_code=force_code,
            council_code=council_code,
            purpose=purpose,
            applicant_reference=applicant,
            age_days=None if completed else (now - requested).total_seconds() / _DAY_SECONDS,
            within=None
            if not completed or limit is None
            else (completed - requested).total_seconds() <= limit,
        )
        for force_code, council_code, purpose, applicant, requested, completed in (
            await connection.execute(_query(scope, completed_from, completed_until))
        ).all()
    ]
    return VettingFigures(
        as_of=as_of,
        completed_from=completed_from,
        completed_until=completed_until,
        scope=scope,
        target=target,
        targets_version=targets.version,
        by_force=_grouped(checks, "force_code", limit=limit),
        by_council=_grouped(checks, "council_code", limit=limit),
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
