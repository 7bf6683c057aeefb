"""Police protection (Children Act 1989 s.46), pushed by the force the moment it is recorded.

Whether children's social care was consulted before the child was taken is part of the record,
with whom and when: a protection with no prior discussion is what the inspectorate looks for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.access.scope import Branch, RowScope
from hub.children import service as children
from hub.children.service import ChildDetails
from hub.db import dialect_of, utcnow
from hub.errors import InvalidInput
from hub.pagination import ByCode, Listing, Narrowing, Page
from hub.protection.models import Alternative, ConsultedRole, PlacedIn, PoliceProtection
from hub.reference.models import OrganisationKind


@dataclasses.dataclass(frozen=True)
class ProtectionReport:
    police_reference: str
    child: ChildDetails
    taken_at: dt.datetime
    recorded_at: dt.datetime
    placed_in: PlacedIn
    consulted_before: bool
    alternatives_considered: tuple[Alternative, ...]
    placed_council: str | None = None
    consulted_at: dt.datetime | None = None
    consulted_council: str | None = None
    consulted_role: ConsultedRole | None = None
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class ProtectionFilter:
    child_id: str | None = None
    taken_from: dt.datetime | None = None
    taken_to: dt.datetime | None = None
    placed_in: tuple[PlacedIn, ...] = ()
    consulted_before: bool | None = None


@functools.lru_cache(maxsize=1024)
def visible(scope: RowScope) -> sa.ColumnElement[bool]:
    """A force sees the protections it pushed; a council those of its children (responsible or
    host), those placed in its area and those it was consulted about."""
    if scope.everything:
        return sa.true()
    return sa.or_(
        col(PoliceProtection.force_code).in_(scope.forces),
        scope.child_is_ours(PoliceProtection.child_id),
        col(PoliceProtection.placed_council_code).in_(scope.councils),
        col(PoliceProtection.consulted_council_code).in_(scope.councils),
    )


@functools.lru_cache(maxsize=1024)
def _branches(scope: RowScope) -> tuple[Branch, ...]:
    """`visible` as the conditions it is the OR of, for PostgreSQL (as
    `RowScope.incident_branches`): the force's, the placing and the consulted council's from
    their (code, time) indexes, the child's from what the
    council reaches (`RowScope.reached`)."""
    if scope.everything:
        return ()  # one condition, no OR: the list is one statement
    return (
        ByCode(col(PoliceProtection.force_code), scope.forces),
        *scope.reached("police_protection"),
        ByCode(col(PoliceProtection.placed_council_code), scope.councils),
        ByCode(col(PoliceProtection.consulted_council_code), scope.councils),
    )


def _consultation(
    report: ProtectionReport, *, taken: dt.datetime, now: dt.datetime
) -> dt.datetime | None:
    """Who was consulted before, and when: all three given exactly when the answer is yes."""
    named = {
        "consultedAt": report.consulted_at,
        "consultedCouncil": report.consulted_council,
        "consultedRole": report.consulted_role,
    }
    for name, value in named.items():
        field = f"input.{name}"
        if report.consulted_before and value is None:
            raise InvalidInput(f"{field} is needed when consultedBefore is true", field=field)
        if not report.consulted_before and value is not None:
            raise InvalidInput(f"{field} is only for a consultation before", field=field)
    if report.consulted_at is None:
        return None
    at = validation.event_time(report.consulted_at, field="input.consultedAt", now=now)
    if at > taken:
        raise InvalidInput(
            "input.consultedAt is after takenAt: a consultation before must come first",
            field="input.consultedAt",
        )
    return at


def _alternatives(given: tuple[Alternative, ...]) -> tuple[Alternative, ...]:
    chosen = tuple(sorted(set(given)))
    field = "input.alternativesConsidered"
    if not chosen:
        raise InvalidInput(f"{field} must name at least one (NONE when none was)", field=field)
    if Alternative.NONE in chosen and len(chosen) > 1:
        raise InvalidInput(f"{field} cannot hold NONE with other alternatives", field=field)
    return chosen


async def _validated(session: AsyncSession, report: ProtectionReport) -> ProtectionReport:
    now = utcnow()
    taken = validation.event_time(report.taken_at, field="input.takenAt", now=now)
    recorded = validation.event_time(report.recorded_at, field="input.recordedAt", now=now)
    validation.not_before(recorded, taken, field="input.recordedAt", what="takenAt")
    consulted_at = _consultation(report, taken=taken, now=now)
    child = children.normalise(report.child, field="input.child", today=now.date())
    councils = [
        (report.placed_council, "input.placedCouncil"),
        (report.consulted_council, "input.consultedCouncil"),
    ]
    await validation.require_organisations(
        session,
        [
            *((code, f, OrganisationKind.COUNCIL) for code, f in councils if code is not None),
            *children.council_codes(child, field="input.child"),
        ],
    )
    return dataclasses.replace(
        report,
        police_reference=validation.text(
            report.police_reference, field="input.policeReference", max_length=64
        ),
        child=child,
        taken_at=taken,
        recorded_at=recorded,
        consulted_at=consulted_at,
        alternatives_considered=_alternatives(report.alternatives_considered),
    )


async def _council_of(session: AsyncSession, *, force_code: str, report: ProtectionReport) -> str:
    """The council a child new to the force is recorded under: the one named for the child,
    else the one the child was placed in or consulted."""
    named = report.child.responsible_council or report.placed_council or report.consulted_council
    if named is not None:
        return named
    known = await children.find_by_police_reference(
        session, force_code=force_code, reference=report.child.police_reference
    )
    if known is None:
        field = "input.child.responsibleCouncil"
        raise InvalidInput(f"{field} is needed for a child the hub does not know", field=field)
    return known.responsible_council_code


async def record(
    session: AsyncSession, *, force_code: str, client_id: str, report: ProtectionReport
) -> tuple[PoliceProtection, bool]:
    """Record a police protection once; returns it and whether this call created it."""
    report = await _validated(session, report)
    payload_hash = pushes.fingerprint(report)

    async def find() -> PoliceProtection | None:
        return await pushes.find_pushed(
            session, PoliceProtection, force_code=force_code, push=report
        )

    async def insert() -> PoliceProtection:
        council = await _council_of(session, force_code=force_code, report=report)
        child = await children.record_from_push(
            session, force_code=force_code, details=report.child, default_council=council
        )
        row = PoliceProtection(
            force_code=force_code,
            police_reference=report.police_reference,
            idempotency_key=report.idempotency_key,
            payload_hash=payload_hash,
            child_id=child.id,
            taken_at=report.taken_at,
            recorded_at=report.recorded_at,
            placed_in=report.placed_in,
            placed_council_code=report.placed_council,
            consulted_before=report.consulted_before,
            consulted_at=report.consulted_at,
            consulted_council_code=report.consulted_council,
            consulted_role=report.consulted_role,
            alternatives_considered=",".join(report.alternatives_considered),
            pushed_by_client=client_id,
        )
        session.add(row)
        await session.flush()
        return row

    return await pushes.insert_once(
        session, find=find, insert=insert, payload_hash=payload_hash, what="police protection"
    )


@functools.lru_cache(maxsize=1024)
def _listing(scope: RowScope, shape: Narrowing, *, dialect: str | None) -> Listing:
    """The statements of a page of police protections, built once per scope and shape of
    filter."""
    also = {
        "child_id": col(PoliceProtection.child_id) == sa.bindparam("child_id", type_=sa.String),
        "consulted_before": col(PoliceProtection.consulted_before)
        == sa.bindparam("consulted_before", type_=sa.Boolean),
    }
    return Listing.scoped(
        sa.select(PoliceProtection),
        visible(scope),
        _branches(scope),
        shape=shape,
        time_column=col(PoliceProtection.taken_at),
        id_column=col(PoliceProtection.id),
        any_of=(col(PoliceProtection.placed_in),),
        also=also,
        dialect=dialect,
    )


async def list_(
    session: AsyncSession,
    *,
    scope: RowScope,
    where: ProtectionFilter,
    first: int,
    after: str | None,
) -> Page[PoliceProtection]:
    shape, params = Narrowing.of(
        since=where.taken_from,
        until=where.taken_to,
        any_of=(where.placed_in,),
        given={"child_id": where.child_id, "consulted_before": where.consulted_before},
    )
    listing = _listing(scope, shape, dialect=dialect_of(session))
    return await listing.read(session, params, first=first, after=after)
