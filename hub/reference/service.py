"""Keeping the organisation table in step with the shipped reference data, and reading it."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.reference import catalogue
from hub.reference.models import ForceCoverage, Organisation, OrganisationKind


@dataclasses.dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    coverage: int


def _catalogue_organisations() -> list[Organisation]:
    forces = [
        Organisation(
            code=f.code,
            name=f.name,
            kind=OrganisationKind.POLICE_FORCE,
            nation=f.nation,
            ons_code=f.ons_code,
        )
        for f in catalogue.police_forces()
    ]
    councils = [
        Organisation(
            code=c.code,
            name=c.name,
            kind=OrganisationKind.COUNCIL,
            nation=c.nation,
            ons_code=c.code,
            council_kind=c.kind,
        )
        for c in catalogue.councils()
    ]
    others = [
        Organisation(code=o.code, name=o.name, kind=o.kind) for o in catalogue.other_organisations()
    ]
    return forces + councils + others


_COMPARED = ("name", "kind", "nation", "ons_code", "council_kind")


async def sync(session: AsyncSession) -> SyncReport:
    """Add new organisations and update renamed ones; never delete (records still point at them)."""
    stored = {o.code: o for o in (await session.execute(sa.select(Organisation))).scalars()}
    added = updated = 0
    for wanted in _catalogue_organisations():
        current = stored.get(wanted.code)
        if current is None:
            session.add(wanted)
            added += 1
        elif any(getattr(current, a) != getattr(wanted, a) for a in _COMPARED):
            for attribute in _COMPARED:
                setattr(current, attribute, getattr(wanted, attribute))
            updated += 1
    await session.flush()
    await session.execute(sa.delete(ForceCoverage))
    pairs = catalogue.coverage()
    session.add_all(ForceCoverage(force_code=f, council_code=c) for f, c in pairs)
    await session.flush()
    return SyncReport(added=added, updated=updated, coverage=len(pairs))


async def list_(
    session: AsyncSession, *, kind: OrganisationKind | None = None
) -> list[Organisation]:
    query = sa.select(Organisation).order_by(col(Organisation.kind), col(Organisation.name))
    if kind is not None:
        query = query.where(col(Organisation.kind) == kind)
    return list((await session.execute(query)).scalars())
