"""Investigations and their status history: every change kept, with when and why."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import validation
from hub.access.scope import RowScope
from hub.children import service as children
from hub.children.service import ChildDetails
from hub.closures import service as closures
from hub.closures.models import ClosureReview
from hub.db import dialect_of, utcnow
from hub.errors import Conflict, InvalidInput
from hub.incidents.models import Incident, IncidentChild
from hub.investigations import timeliness as _timeliness  # noqa: F401 - declares the kind
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationStatus,
    InvestigationTransition,
)
from hub.pagination import Listing, Narrowing, Page


@dataclasses.dataclass(frozen=True)
class StatusChange:
    police_reference: str
    status: InvestigationStatus
    changed_at: dt.datetime
    reason: str
    incident_references: tuple[str, ...] = ()
    children: tuple[ChildDetails, ...] = ()
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class InvestigationFilter:
    child_id: str | None = None
    changed_from: dt.datetime | None = None
    changed_to: dt.datetime | None = None
    statuses: tuple[InvestigationStatus, ...] = ()


async def _validated(session: AsyncSession, change: StatusChange) -> StatusChange:
    now = utcnow()
    kids = tuple(
        children.normalise(c, field=f"input.children.{i}", today=now.date())
        for i, c in enumerate(change.children)
    )
    await validation.require_organisations(
        session,
        [
            code
            for i, c in enumerate(kids)
            for code in children.council_codes(c, field=f"input.children.{i}")
        ],
    )
    return dataclasses.replace(
        change,
        police_reference=validation.text(
            change.police_reference, field="input.policeReference", max_length=64
        ),
        reason=validation.text(change.reason, field="input.reason", max_length=2000),
        changed_at=validation.event_time(change.changed_at, field="input.changedAt", now=now),
        children=kids,
    )


async def update_status(
    session: AsyncSession, *, force_code: str, client_id: str, change: StatusChange
) -> tuple[Investigation, bool, bool, list[ClosureReview]]:
    """Open an investigation or move it on. Replaying a change returns it and adds nothing.

    Returns the investigation, whether this call changed it, whether it opened it, and the
    closure reviews a closure asked its children's councils for.
    """
    change = await _validated(session, change)
    investigation = await _locked(session, force_code=force_code, reference=change.police_reference)
    opened = False
    if investigation is None:
        investigation, opened = await _open(session, force_code=force_code, change=change)
    created = opened or await _transition(session, investigation=investigation, change=change)
    reviews: list[ClosureReview] = []
    if created:
        transition = InvestigationTransition(
            investigation_id=investigation.id,
            from_status=None if opened else investigation.status,
            to_status=change.status,
            changed_at=change.changed_at,
            reason=change.reason,
            idempotency_key=change.idempotency_key,
            pushed_by_client=client_id,
        )
        session.add(transition)
        investigation.status = change.status
        investigation.status_changed_at = change.changed_at
        investigation.updated_at = utcnow()
        await _link(session, investigation=investigation, force_code=force_code, change=change)
        await session.flush()
        if closures.is_closing(transition):
            # After the links: a closure asks the councils of every child it now concerns.
            reviews = await closures.open_reviews(
                session, investigation=investigation, closing=transition
            )
    return investigation, created, opened, reviews


async def _locked(
    session: AsyncSession, *, force_code: str, reference: str
) -> Investigation | None:
    query = sa.select(Investigation).where(
        col(Investigation.force_code) == force_code,
        col(Investigation.police_reference) == reference,
    )
    return (await session.execute(query.with_for_update())).scalar_one_or_none()


async def _open(
    session: AsyncSession, *, force_code: str, change: StatusChange
) -> tuple[Investigation, bool]:
    row = Investigation(
        force_code=force_code,
        police_reference=change.police_reference,
        status=change.status,
        status_changed_at=change.changed_at,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        # A concurrent push opened it first; continue as a change to theirs.
        found = await _locked(session, force_code=force_code, reference=change.police_reference)
        if found is None:
            raise
        return found, False
    return row, True


async def _transition(
    session: AsyncSession, *, investigation: Investigation, change: StatusChange
) -> bool:
    """Whether `change` is new. A replay of a recorded change is not; a clash is a CONFLICT."""
    keys = [
        sa.and_(
            col(InvestigationTransition.to_status) == change.status,
            col(InvestigationTransition.changed_at) == change.changed_at,
        )
    ]
    if change.idempotency_key is not None:
        keys.append(col(InvestigationTransition.idempotency_key) == change.idempotency_key)
    recorded = (
        await session.execute(
            sa.select(InvestigationTransition)
            .where(col(InvestigationTransition.investigation_id) == investigation.id, sa.or_(*keys))
            .limit(1)
        )
    ).scalar_one_or_none()
    if recorded is not None:
        same = (recorded.to_status, recorded.changed_at, recorded.reason) == (
            change.status,
            change.changed_at,
            change.reason,
        )
        if not same:
            raise Conflict("a different status change was already pushed for this investigation")
        return False
    validation.not_before(
        change.changed_at,
        investigation.status_changed_at,
        field="input.changedAt",
        what="the investigation's latest status change",
    )
    if investigation.status == change.status:
        raise InvalidInput(f"the investigation is already {change.status}", field="input.status")
    return True


async def _link(
    session: AsyncSession, *, investigation: Investigation, force_code: str, change: StatusChange
) -> None:
    """Links only grow: a later change may name more incidents or children, never fewer."""
    incidents: dict[str, Incident] = {}
    if change.incident_references:
        rows = await session.execute(
            sa.select(Incident).where(
                col(Incident.force_code) == force_code,
                col(Incident.police_reference).in_(change.incident_references),
            )
        )
        incidents = {i.police_reference: i for i in rows.scalars()}
    for index, reference in enumerate(change.incident_references):
        if reference not in incidents:
            field = f"input.incidentReferences.{index}"
            raise InvalidInput(f"{field} names no incident of this force", field=field)
    existing_incidents = set(
        (
            await session.execute(
                sa.select(col(InvestigationIncident.incident_id)).where(
                    col(InvestigationIncident.investigation_id) == investigation.id
                )
            )
        ).scalars()
    )
    session.add_all(
        InvestigationIncident(investigation_id=investigation.id, incident_id=i.id)
        for i in incidents.values()
        if i.id not in existing_incidents
    )
    await _link_children(
        session,
        investigation=investigation,
        force_code=force_code,
        change=change,
        incidents=list(incidents.values()),
    )


async def _link_children(
    session: AsyncSession,
    *,
    investigation: Investigation,
    force_code: str,
    change: StatusChange,
    incidents: list[Incident],
) -> None:
    existing = set(
        (
            await session.execute(
                sa.select(col(InvestigationChild.child_id)).where(
                    col(InvestigationChild.investigation_id) == investigation.id
                )
            )
        ).scalars()
    )
    # The children of a linked incident are children the investigation concerns.
    if incidents:
        linked = await session.execute(
            sa.select(col(IncidentChild.child_id)).where(
                col(IncidentChild.incident_id).in_([i.id for i in incidents])
            )
        )
        for child_id in linked.scalars():
            if child_id not in existing:
                session.add(
                    InvestigationChild(investigation_id=investigation.id, child_id=child_id)
                )
                existing.add(child_id)
    default_council = incidents[0].location_council_code if incidents else None
    for index, details in enumerate(change.children):
        council = details.responsible_council or default_council
        if council is None:
            known = await children.find_by_police_reference(
                session, force_code=force_code, reference=details.police_reference
            )
            if known is None:
                field = f"input.children.{index}.responsibleCouncil"
                raise InvalidInput(
                    f"{field} is needed for a child the hub does not know", field=field
                )
            council = known.responsible_council_code
        child = await children.record_from_push(
            session, force_code=force_code, details=details, default_council=council
        )
        if child.id not in existing:
            session.add(InvestigationChild(investigation_id=investigation.id, child_id=child.id))
            existing.add(child.id)


@functools.lru_cache(maxsize=1024)
def _listing(scope: RowScope, shape: Narrowing, *, dialect: str | None) -> Listing:
    """The statements of a page of investigations, built once per scope and shape of filter."""
    of_child = sa.exists().where(
        col(InvestigationChild.investigation_id) == Investigation.id,
        col(InvestigationChild.child_id) == sa.bindparam("child_id", type_=sa.String),
    )
    return Listing.scoped(
        sa.select(Investigation),
        scope.investigations(),
        scope.investigation_branches(),
        shape=shape,
        time_column=col(Investigation.status_changed_at),
        id_column=col(Investigation.id),
        any_of=(col(Investigation.status),),
        also={"child_id": of_child},
        dialect=dialect,
    )


async def list_(
    session: AsyncSession,
    *,
    scope: RowScope,
    where: InvestigationFilter,
    first: int,
    after: str | None,
) -> Page[Investigation]:
    shape, params = Narrowing.of(
        since=where.changed_from,
        until=where.changed_to,
        any_of=(where.statuses,),
        given={"child_id": where.child_id},
    )
    listing = _listing(scope, shape, dialect=dialect_of(session))
    return await listing.read(session, params, first=first, after=after)
