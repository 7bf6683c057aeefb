"""The demo's closure story: Cleveland-like, a closure a council challenged and the force reopened.

Cleveland Police closes an investigation about a Middlesbrough child with no further action;
Middlesbrough challenges it (evidence of non-accidental injury) the next day and the force
reopens it two days later, linked to the challenge. A second closure, about a Hartlepool child,
the council agrees with. Everything goes through the services, as pushes would; only the hub's
own receipt times are set afterwards (no client can set them), as the other demo stories do.
Every name and reference is invented.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.access.agreement import RowKind
from hub.access.scope import RowScope
from hub.children.service import ChildDetails
from hub.closures import service as closures
from hub.closures.models import ChallengeAnswer, ChallengeReason, ClosureResponse
from hub.investigations import service as investigations
from hub.investigations.models import Investigation, InvestigationStatus, InvestigationTransition

FORCE = "CLEVELAND"
CHALLENGING_COUNCIL, AGREEING_COUNCIL = "E06000002", "E06000001"  # Middlesbrough, Hartlepool
CHALLENGED, AGREED = "DEMO-CLE-INV-00001", "DEMO-CLE-INV-00002"
CLIENT = "demo-loader"
ChildMaker = Callable[..., ChildDetails]


async def _closed(
    session: AsyncSession,
    rng: random.Random,
    make_child: ChildMaker,
    *,
    reference: str,
    council: str,
    number: int,
    closed: dt.datetime,
) -> str:
    child = make_child(rng, number, council)
    for status, at, reason in (
        (InvestigationStatus.OPEN, closed - dt.timedelta(days=12), "Referral from a strategy"),
        (InvestigationStatus.NO_FURTHER_ACTION, closed, "Evidential threshold not met"),
    ):  # fmt: skip
        investigation, *_ = await investigations.update_status(
            session,
            force_code=FORCE,
            client_id=CLIENT,
            change=investigations.StatusChange(
                police_reference=reference,
                status=status,
                changed_at=at,
                reason=reason,
                children=(child,),
            ),
        )
    return investigation.id


async def push_closure_story(
    session: AsyncSession, rng: random.Random, now: dt.datetime, make_child: ChildMaker
) -> int:
    """Push the closures, the challenge and the reopening; return how many pushes were made."""
    closed = now - dt.timedelta(days=30)
    challenged = await _closed(
        session, rng, make_child, reference=CHALLENGED, council=CHALLENGING_COUNCIL,
        number=90_001, closed=closed,
    )  # fmt: skip
    agreed = await _closed(
        session, rng, make_child, reference=AGREED, council=AGREEING_COUNCIL,
        number=90_002, closed=closed,
    )  # fmt: skip
    review, _ = await closures.respond(
        session,
        council_code=CHALLENGING_COUNCIL,
        scope=RowScope.for_rows(RowKind.COUNCIL_CHILDREN, CHALLENGING_COUNCIL),
        client_id=CLIENT,
        given=closures.Response(
            investigation_id=challenged,
            response=ClosureResponse.CHALLENGE,
            reason=ChallengeReason.NON_ACCIDENTAL_INJURY_EVIDENCE,
            text="Medical evidence of injuries inconsistent with the account given (synthetic).",
        ),
    )
    responded = closed + dt.timedelta(days=1)
    answered = responded + dt.timedelta(days=2)
    review, _, _ = await closures.answer(
        session,
        force_code=FORCE,
        client_id=CLIENT,
        given=closures.Answer(
            challenge_id=review.id,
            answer=ChallengeAnswer.REOPENED,
            answered_at=answered,
            text="Reopened after the council's challenge; officer reassigned (synthetic).",
            reopened_status=InvestigationStatus.INVESTIGATING,
        ),
    )
    # Set after the answer, which reads the review again from the database.
    review.responded_at = responded
    review.answer_received_at = answered + dt.timedelta(minutes=5)
    agreeing, _ = await closures.respond(
        session,
        council_code=AGREEING_COUNCIL,
        scope=RowScope.for_rows(RowKind.COUNCIL_CHILDREN, AGREEING_COUNCIL),
        client_id=CLIENT,
        given=closures.Response(investigation_id=agreed, response=ClosureResponse.AGREE),
    )
    agreeing.responded_at = closed + dt.timedelta(days=2)
    await _shared_when_made(session, (challenged, agreed))
    return 7


async def _shared_when_made(session: AsyncSession, investigation_ids: tuple[str, ...]) -> None:
    """The hub's receipt of each status change an hour after it, as a prompt force's would be
    (pushed all at once now, they would look like a batch to the report)."""
    changes = await session.execute(
        sa.select(InvestigationTransition).where(
            col(InvestigationTransition.investigation_id).in_(investigation_ids)
        )
    )
    for change in changes.scalars():
        change.shared_at = change.changed_at + dt.timedelta(hours=1)
    found = await session.execute(
        sa.select(Investigation).where(col(Investigation.id).in_(investigation_ids))
    )
    for investigation in found.scalars():
        first = await session.execute(
            sa.select(sa.func.min(col(InvestigationTransition.changed_at))).where(
                col(InvestigationTransition.investigation_id) == investigation.id
            )
        )
        investigation.shared_at = first.scalar_one() + dt.timedelta(hours=1)
    await session.flush()
