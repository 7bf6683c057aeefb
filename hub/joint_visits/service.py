"""Joint visits: a council asks a force for an officer, the force answers, the council records
what happened. Each step is idempotent: the same step again changes nothing, a different one
under the same key is a CONFLICT.
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
from hub.children.models import Child
from hub.db import dialect_of, utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.joint_visits.models import (
    JointVisitKind,
    JointVisitOutcome,
    JointVisitRequest,
    JointVisitResponse,
    OfficerRole,
    UnavailableReason,
    Urgency,
)
from hub.pagination import ByCode, Listing, Narrowing, Page
from hub.reference.models import OrganisationKind

# How far ahead a visit may be asked for: beyond it a date is a typing error, not a plan.
LONGEST_NOTICE = dt.timedelta(days=366)


@dataclasses.dataclass(frozen=True)
class VisitRequest:
    council_reference: str
    child_id: str
    force: str
    kind: JointVisitKind
    urgency: Urgency
    needed_by: dt.datetime
    recorded_at: dt.datetime
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class VisitAnswer:
    request_id: str
    response: JointVisitResponse
    responded_at: dt.datetime
    officer_role: OfficerRole | None = None
    reason: UnavailableReason | None = None


@dataclasses.dataclass(frozen=True)
class VisitOutcome:
    request_id: str
    outcome: JointVisitOutcome
    at: dt.datetime


@dataclasses.dataclass(frozen=True)
class JointVisitFilter:
    child_id: str | None = None
    requested_from: dt.datetime | None = None
    requested_to: dt.datetime | None = None
    kinds: tuple[JointVisitKind, ...] = ()
    urgencies: tuple[Urgency, ...] = ()
    responses: tuple[JointVisitResponse, ...] = ()
    outcomes: tuple[JointVisitOutcome, ...] = ()
    answered: bool | None = None


@functools.lru_cache(maxsize=1024)
def visible(scope: RowScope) -> sa.ColumnElement[bool]:
    """A force sees the requests made to it; a council those it made and those about its
    children (responsible or host)."""
    if scope.everything:
        return sa.true()
    return sa.or_(
        col(JointVisitRequest.force_code).in_(scope.forces),
        col(JointVisitRequest.council_code).in_(scope.councils),
        scope.child_is_ours(JointVisitRequest.child_id),
    )


@functools.lru_cache(maxsize=1024)
def _branches(scope: RowScope) -> tuple[Branch, ...]:
    """`visible` as the conditions it is the OR of, for PostgreSQL (as
    `RowScope.incident_branches`): the force's and the council's from their (code, time)
    indexes, the child's from what the
    council reaches (`RowScope.reached`)."""
    if scope.everything:
        return ()  # one condition, no OR: the list is one statement
    return (
        ByCode(col(JointVisitRequest.force_code), scope.forces),
        ByCode(col(JointVisitRequest.council_code), scope.councils),
        *scope.reached("joint_visit_request"),
    )


async def _validated(session: AsyncSession, scope: RowScope, visit: VisitRequest) -> VisitRequest:
    now = utcnow()
    recorded = validation.event_time(visit.recorded_at, field="input.recordedAt", now=now)
    needed = validation.aware_utc(visit.needed_by, field="input.neededBy")
    validation.not_before(needed, recorded, field="input.neededBy", what="recordedAt")
    if needed > recorded + LONGEST_NOTICE:
        raise InvalidInput(
            "input.neededBy is more than a year after recordedAt", field="input.neededBy"
        )
    visit = dataclasses.replace(
        visit,
        council_reference=validation.text(
            visit.council_reference, field="input.councilReference", max_length=64
        ),
        recorded_at=recorded,
        needed_by=needed,
    )
    await validation.require_organisations(
        session, [(visit.force, "input.force", OrganisationKind.POLICE_FORCE)]
    )
    seen = await session.execute(
        sa.select(sa.literal(1)).where(col(Child.id) == visit.child_id, scope.children())
    )
    if seen.first() is None:
        raise InvalidInput("input.childId names no child of this council", field="input.childId")
    return visit


async def request(
    session: AsyncSession, *, council_code: str, scope: RowScope, visit: VisitRequest
) -> tuple[JointVisitRequest, bool]:
    """Record a council's request once; returns it and whether this call created it."""
    visit = await _validated(session, scope, visit)
    payload_hash = pushes.fingerprint(visit)

    async def find() -> JointVisitRequest | None:
        return await pushes.find_keyed(
            session,
            JointVisitRequest,
            owner=(col(JointVisitRequest.council_code), council_code),
            reference=(col(JointVisitRequest.council_reference), visit.council_reference),
            idempotency_key=(col(JointVisitRequest.idempotency_key), visit.idempotency_key),
        )

    async def insert() -> JointVisitRequest:
        row = JointVisitRequest(
            council_code=council_code,
            council_reference=visit.council_reference,
            idempotency_key=visit.idempotency_key,
            payload_hash=payload_hash,
            force_code=visit.force,
            child_id=visit.child_id,
            kind=visit.kind,
            urgency=visit.urgency,
            needed_by=visit.needed_by,
            recorded_at=visit.recorded_at,
        )
        session.add(row)
        await session.flush()
        return row

    return await pushes.insert_once(
        session,
        find=find,
        insert=insert,
        payload_hash=payload_hash,
        what="joint visit request",
        reference="council reference",
    )


def _checked_answer(answer: VisitAnswer) -> VisitAnswer:
    at = validation.event_time(answer.responded_at, field="input.respondedAt", now=utcnow())
    if answer.response is JointVisitResponse.OFFICER_ASSIGNED:
        if answer.officer_role is None:
            raise InvalidInput(
                "input.officerRole is needed when an officer is assigned", field="input.officerRole"
            )
        if answer.reason is not None:
            raise InvalidInput(
                "input.reason is only for a request the force cannot meet", field="input.reason"
            )
    else:
        if answer.reason is None:
            raise InvalidInput(
                "input.reason is needed when no officer is available", field="input.reason"
            )
        if answer.officer_role is not None:
            raise InvalidInput(
                "input.officerRole is only for an assigned officer", field="input.officerRole"
            )
    return dataclasses.replace(answer, responded_at=at)


async def _locked(
    session: AsyncSession, owner: sa.ColumnElement[bool], request_id: str
) -> JointVisitRequest:
    row = (
        await session.execute(
            sa.select(JointVisitRequest)
            .where(col(JointVisitRequest.id) == request_id, owner)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("no joint visit request with that id", field="input.requestId")
    return row


async def respond(
    session: AsyncSession, *, force_code: str, answer: VisitAnswer
) -> tuple[JointVisitRequest, bool]:
    """The force's answer to a request made to it; the first answer stands."""
    answer = _checked_answer(answer)
    row = await _locked(session, col(JointVisitRequest.force_code) == force_code, answer.request_id)
    validation.not_before(
        answer.responded_at,
        row.recorded_at,
        field="input.respondedAt",
        what="the request's recordedAt",
    )
    given = (answer.response, answer.reason, answer.officer_role, answer.responded_at)
    if row.response is not None:
        if (row.response, row.response_reason, row.officer_role, row.responded_at) == given:
            return row, False
        raise Conflict("the force has already answered this request differently")
    row.response = answer.response
    row.response_reason = answer.reason
    row.officer_role = answer.officer_role
    row.responded_at = answer.responded_at
    await session.flush()
    return row, True


async def record_outcome(
    session: AsyncSession, *, council_code: str, outcome: VisitOutcome
) -> tuple[JointVisitRequest, bool]:
    """What became of the council's own request: held jointly, alone, or cancelled."""
    at = validation.event_time(outcome.at, field="input.at", now=utcnow())
    row = await _locked(
        session, col(JointVisitRequest.council_code) == council_code, outcome.request_id
    )
    validation.not_before(at, row.recorded_at, field="input.at", what="the request's recordedAt")
    if row.outcome is not None:
        if (row.outcome, row.outcome_at) == (outcome.outcome, at):
            return row, False
        raise Conflict("a different outcome was already recorded for this request")
    row.outcome = outcome.outcome
    row.outcome_at = at
    await session.flush()
    return row, True


@functools.lru_cache(maxsize=1024)
def _listing(scope: RowScope, shape: Narrowing, *, dialect: str | None) -> Listing:
    """The statements of a page of joint visit requests, built once per scope and shape of
    filter."""
    also = {
        "child_id": col(JointVisitRequest.child_id) == sa.bindparam("child_id", type_=sa.String),
        "answered": col(JointVisitRequest.response).is_not(None)
        == sa.bindparam("answered", type_=sa.Boolean),
    }
    return Listing.scoped(
        sa.select(JointVisitRequest),
        visible(scope),
        _branches(scope),
        shape=shape,
        time_column=col(JointVisitRequest.recorded_at),
        id_column=col(JointVisitRequest.id),
        any_of=(
            col(JointVisitRequest.kind),
            col(JointVisitRequest.urgency),
            col(JointVisitRequest.response),
            col(JointVisitRequest.outcome),
        ),
        also=also,
        dialect=dialect,
    )


async def list_(
    session: AsyncSession,
    *,
    scope: RowScope,
    where: JointVisitFilter,
    first: int,
    after: str | None,
) -> Page[JointVisitRequest]:
    shape, params = Narrowing.of(
        since=where.requested_from,
        until=where.requested_to,
        any_of=(where.kinds, where.urgencies, where.responses, where.outcomes),
        given={"child_id": where.child_id, "answered": where.answered},
    )
    listing = _listing(scope, shape, dialect=dialect_of(session))
    return await listing.read(session, params, first=first, after=after)
