"""Closures a council has a say in: told when a force closes, answered, challenged, reopened.

A force closing an investigation (`CLOSED_STATUSES`) about children opens one review per
council that has those children: the responsible council, and the host council of a child
placed out of area, who holds the section 47 duty where the child lives. Each council agrees or
challenges (`respond`); a challenge stays open until the force reopens the investigation or
upholds its closure (`answer`). Both are idempotent like every push: the same content again
returns what was stored, different content is a CONFLICT, and a bad push stores nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import validation
from hub.access.scope import RowScope
from hub.children.models import Child
from hub.closures.models import (
    CLOSED_STATUSES,
    REOPENED_STATUSES,
    ChallengeAnswer,
    ChallengeReason,
    ClosureResponse,
    ClosureReview,
    UpheldReason,
)
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationStatus,
    InvestigationTransition,
)
from hub.pushes import fingerprint

TEXT_LIMIT = 2000


@dataclasses.dataclass(frozen=True)
class Response:
    investigation_id: str
    response: ClosureResponse
    reason: ChallengeReason | None = None
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class Answer:
    challenge_id: str
    answer: ChallengeAnswer
    answered_at: dt.datetime
    text: str
    reason: UpheldReason | None = None
    reopened_status: InvestigationStatus = InvestigationStatus.OPEN


def is_closing(transition: InvestigationTransition) -> bool:
    """A move into a closed status from an open one (or a first push that is a closure)."""
    return transition.to_status in CLOSED_STATUSES and transition.from_status not in CLOSED_STATUSES


async def open_reviews(
    session: AsyncSession, *, investigation: Investigation, closing: InvestigationTransition
) -> list[ClosureReview]:
    """One pending review per council of the investigation's children, for this closure."""
    rows = await session.execute(
        sa.select(col(Child.responsible_council_code), col(Child.host_council_code))
        .join(InvestigationChild, col(InvestigationChild.child_id) == Child.id)
        .where(col(InvestigationChild.investigation_id) == investigation.id)
    )
    councils = sorted({code for pair in rows.all() for code in pair if code is not None})
    reviews = [
        ClosureReview(
            investigation_id=investigation.id,
            closing_transition_id=closing.id,
            force_code=investigation.force_code,
            council_code=council,
            closed_at=closing.changed_at,
        )
        for council in councils
    ]
    session.add_all(reviews)
    await session.flush()
    return reviews


def _response_checked(given: Response) -> Response:
    text = given.text
    if text is not None:
        text = validation.text(text, field="input.text", max_length=TEXT_LIMIT, required=False)
    if given.response is ClosureResponse.CHALLENGE:
        if given.reason is None:
            raise InvalidInput("input.reason is needed for a challenge", field="input.reason")
        if not text:
            raise InvalidInput(
                "input.text must say why the closure is challenged", field="input.text"
            )
    elif given.reason is not None:
        raise InvalidInput("input.reason is only for a challenge", field="input.reason")
    return dataclasses.replace(given, text=text or None)


async def _visible_investigation(
    session: AsyncSession, scope: RowScope, investigation_id: str, *, field: str
) -> Investigation:
    found = (
        await session.execute(
            sa.select(Investigation)
            .where(col(Investigation.id) == investigation_id, scope.investigations())
            .with_for_update()
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("no investigation with this id in your view", field=field)
    return found


async def _closing(session: AsyncSession, investigation: Investigation) -> str | None:
    """The transition that closed the investigation, while it is closed."""
    if investigation.status not in CLOSED_STATUSES:
        return None
    latest = await session.execute(
        sa.select(InvestigationTransition)
        .where(col(InvestigationTransition.investigation_id) == investigation.id)
        .order_by(col(InvestigationTransition.changed_at).desc())
    )
    closing = None
    for transition in latest.scalars():
        if transition.to_status not in CLOSED_STATUSES:
            break
        closing = transition.id
    return closing


async def respond(
    session: AsyncSession,
    *,
    council_code: str,
    scope: RowScope,
    client_id: str,
    given: Response,
) -> tuple[ClosureReview, bool]:
    """A council's view of a closure. Returns the review and whether this call recorded it."""
    given = _response_checked(given)
    investigation = await _visible_investigation(
        session, scope, given.investigation_id, field="input.investigationId"
    )
    review = (
        await session.execute(
            sa.select(ClosureReview)
            .where(
                col(ClosureReview.investigation_id) == investigation.id,
                col(ClosureReview.council_code) == council_code,
            )
            .order_by(col(ClosureReview.requested_at).desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    payload = fingerprint(given)
    if review is not None and review.response is not None:
        if review.response_hash != payload:
            raise Conflict("a different response to this closure was already recorded")
        return review, False
    closing = await _closing(session, investigation)
    if closing is None:
        raise InvalidInput("the investigation is not closed", field="input.investigationId")
    if review is None or review.closing_transition_id != closing:
        raise InvalidInput(
            "your council is not asked for a view on this closure", field="input.investigationId"
        )
    review.response = given.response
    review.challenge_reason = given.reason
    review.response_text = given.text
    review.responded_at = utcnow()
    review.responded_by_client = client_id
    review.response_hash = payload
    await session.flush()
    return review, True


def _answer_checked(given: Answer) -> Answer:
    text = validation.text(given.text, field="input.text", max_length=TEXT_LIMIT)
    answered_at = validation.event_time(given.answered_at, field="input.answeredAt", now=utcnow())
    if given.answer is ChallengeAnswer.UPHELD and given.reason is None:
        raise InvalidInput("input.reason is needed to uphold a closure", field="input.reason")
    if given.answer is ChallengeAnswer.REOPENED:
        if given.reason is not None:
            raise InvalidInput("input.reason is only for an upheld closure", field="input.reason")
        if given.reopened_status not in REOPENED_STATUSES:
            raise InvalidInput(
                "input.reopenedStatus must be an open status", field="input.reopenedStatus"
            )
    return dataclasses.replace(given, text=text, answered_at=answered_at)


async def answer(
    session: AsyncSession,
    *,
    force_code: str,
    client_id: str,
    given: Answer,
) -> tuple[ClosureReview, InvestigationTransition | None, bool]:
    """A force's answer to a challenge: the review, the reopening it made (if any), and
    whether this call recorded the answer."""
    given = _answer_checked(given)
    challenged = sa.select(ClosureReview).where(
        col(ClosureReview.id) == given.challenge_id,
        col(ClosureReview.force_code) == force_code,
        col(ClosureReview.response) == ClosureResponse.CHALLENGE,
    )
    found = (await session.execute(challenged)).scalar_one_or_none()
    if found is None:
        raise NotFound("no challenge with this id to your force", field="input.challengeId")
    # The investigation first, then the review: the order `respond` and a status push take
    # them in, so that no two of them wait for each other.
    await session.execute(
        sa.select(col(Investigation.id))
        .where(col(Investigation.id) == found.investigation_id)
        .with_for_update()
    )
    # Read again under the lock: a concurrent answer may have committed since.
    locked = challenged.with_for_update().execution_options(populate_existing=True)
    review = (await session.execute(locked)).scalar_one()
    payload = fingerprint(given)
    if review.answer is not None:
        if review.answer_hash != payload:
            raise Conflict("a different answer to this challenge was already recorded")
        return review, None, False
    reopening = None
    if given.answer is ChallengeAnswer.REOPENED:
        reopening = await _reopen(session, review=review, given=given, client_id=client_id)
        review.reopening_transition_id = reopening.id
    review.answer = given.answer
    review.answer_reason = given.reason
    review.answer_text = given.text
    review.answered_at = given.answered_at
    review.answer_received_at = utcnow()
    review.answered_by_client = client_id
    review.answer_hash = payload
    await session.flush()
    return review, reopening, True


async def _reopen(
    session: AsyncSession, *, review: ClosureReview, given: Answer, client_id: str
) -> InvestigationTransition:
    """The investigation back to an open status, as a transition linked to the challenge.

    If the force already reopened it after this closure (by a status push), that reopening is
    the answer; otherwise the hub records one now.
    """
    investigation = (
        await session.execute(
            sa.select(Investigation).where(col(Investigation.id) == review.investigation_id)
        )
    ).scalar_one()  # locked by `answer`
    later = (
        await session.execute(
            sa.select(InvestigationTransition)
            .where(
                col(InvestigationTransition.investigation_id) == investigation.id,
                col(InvestigationTransition.changed_at) >= review.closed_at,
                col(InvestigationTransition.to_status).in_(REOPENED_STATUSES),
            )
            .order_by(col(InvestigationTransition.changed_at))
            .limit(1)
        )
    ).scalar_one_or_none()
    if later is not None:
        return later
    validation.not_before(
        given.answered_at,
        investigation.status_changed_at,
        field="input.answeredAt",
        what="the investigation's latest status change",
    )
    transition = InvestigationTransition(
        investigation_id=investigation.id,
        from_status=investigation.status,
        to_status=given.reopened_status,
        changed_at=given.answered_at,
        reason=given.text,
        pushed_by_client=client_id,
    )
    session.add(transition)
    investigation.status = given.reopened_status
    investigation.status_changed_at = given.answered_at
    investigation.updated_at = utcnow()
    await session.flush()
    return transition


async def for_investigations(
    session: AsyncSession, scope: RowScope, investigation_ids: list[str]
) -> list[ClosureReview]:
    """The reviews of these investigations the caller may see, oldest first."""
    rows = await session.execute(
        sa.select(ClosureReview)
        .where(col(ClosureReview.investigation_id).in_(investigation_ids), scope.closure_reviews())
        .order_by(col(ClosureReview.requested_at), col(ClosureReview.council_code))
    )
    return list(rows.scalars())
