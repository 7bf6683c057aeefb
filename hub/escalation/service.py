"""Reading escalations: an organisation's own (owed by it or waiting on another), and figures."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.access.scope import RowScope
from hub.escalation.models import Escalation
from hub.pagination import Page, paginate


@dataclasses.dataclass(frozen=True)
class EscalationFilter:
    target_id: str | None = None
    raised_from: dt.datetime | None = None
    raised_to: dt.datetime | None = None


def _visible(scope: RowScope) -> sa.ColumnElement[bool]:
    """An organisation sees the escalations it owes an answer to and those it is waiting on."""
    if scope.everything:
        return sa.true()
    ours = scope.forces | scope.councils
    return sa.or_(col(Escalation.owed_by_code).in_(ours), col(Escalation.waiting_code).in_(ours))


def _filtered(scope: RowScope, where: EscalationFilter) -> sa.Select[Escalation]:
    query: sa.Select[Escalation] = sa.select(Escalation).where(_visible(scope))
    if where.target_id is not None:
        query = query.where(col(Escalation.target_id) == where.target_id)
    if where.raised_from is not None:
        query = query.where(col(Escalation.raised_at) >= where.raised_from)
    if where.raised_to is not None:
        query = query.where(col(Escalation.raised_at) <= where.raised_to)
    return query


async def list_(
    session: AsyncSession,
    *,
    scope: RowScope,
    where: EscalationFilter,
    first: int,
    after: str | None,
) -> Page[Escalation]:
    return await paginate(
        session,
        _filtered(scope, where),
        time_column=col(Escalation.raised_at),
        id_column=col(Escalation.id),
        first=first,
        after=after,
    )


async def get(session: AsyncSession, *, scope: RowScope, id_: str) -> Escalation | None:
    query = _filtered(scope, EscalationFilter()).where(col(Escalation.id) == id_)
    return (await session.execute(query)).scalar_one_or_none()


@dataclasses.dataclass(frozen=True)
class EscalationCount:
    target_id: str
    kind: str
    stage: str
    owed_by: str
    waiting: str
    raised: int


async def figures(
    session: AsyncSession,
    *,
    forces: frozenset[str] | None,
    councils: frozenset[str] | None,
    raised_from: dt.datetime,
    raised_to: dt.datetime,
) -> list[EscalationCount]:
    """Escalations raised in the period, by target and by the two organisations.

    `forces`/`councils` None: every organisation (an inspectorate); else those the caller is.
    """
    query = (
        sa.select(
            col(Escalation.target_id),
            col(Escalation.kind),
            col(Escalation.stage),
            col(Escalation.owed_by_code),
            col(Escalation.waiting_code),
            sa.func.count(),
        )
        .where(col(Escalation.raised_at) >= raised_from, col(Escalation.raised_at) < raised_to)
        .group_by(
            col(Escalation.target_id),
            col(Escalation.kind),
            col(Escalation.stage),
            col(Escalation.owed_by_code),
            col(Escalation.waiting_code),
        )
        .order_by(
            col(Escalation.target_id), col(Escalation.owed_by_code), col(Escalation.waiting_code)
        )
    )
    if forces is not None or councils is not None:
        ours = (forces or frozenset()) | (councils or frozenset())
        query = query.where(
            sa.or_(col(Escalation.owed_by_code).in_(ours), col(Escalation.waiting_code).in_(ours))
        )
    rows = (await session.execute(query)).all()
    return [EscalationCount(*row) for row in rows]
