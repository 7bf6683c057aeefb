"""Vetting checks: a council asks a force, the force answers with an outcome category.

The request is idempotent like a police push, keyed by the council's own reference (and its
idempotency key if it gives one). Only the requesting council and the checking force see a
check; for everyone else it does not exist (`visible`). The outcome is a category: what the
force holds goes to the council through the force's secure channel, never through the hub.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.access.scope import RowScope
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.pagination import Page, narrowed, paginate
from hub.reference.models import OrganisationKind
from hub.vetting.models import (
    VettingCheck,
    VettingOutcome,
    VettingPurpose,
    VettingStatus,
)

MAX_PREVIOUS_POSTCODES = 10
# A UK postcode: outward code (area, district) and inward code (sector, unit).
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}")


@dataclasses.dataclass(frozen=True)
class Applicant:
    """Only what a police check needs: names, date of birth, where they live and lived."""

    reference: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    postcode: str
    previous_postcodes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class VettingRequest:
    council_reference: str
    applicant: Applicant
    purpose: VettingPurpose
    force: str
    requested_at: dt.datetime
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class VettingCompletion:
    check_id: str
    outcome: VettingOutcome
    completed_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class VettingFilter:
    statuses: tuple[VettingStatus, ...] = ()
    purposes: tuple[VettingPurpose, ...] = ()
    requested_from: dt.datetime | None = None
    requested_to: dt.datetime | None = None


def postcode(value: str, *, field: str) -> str:
    """A UK postcode, upper case with one space before the inward code ("SW18 4AB")."""
    packed = "".join(value.split()).upper()
    if not _POSTCODE.fullmatch(packed):
        raise InvalidInput(f"{field} is not a UK postcode", field=field)
    return f"{packed[:-3]} {packed[-3:]}"


def _applicant(given: Applicant, *, field: str, today: dt.date) -> Applicant:
    if given.date_of_birth > today:
        raise InvalidInput(f"{field}.dateOfBirth is in the future", field=f"{field}.dateOfBirth")
    if given.date_of_birth < validation.EARLIEST.date():
        earliest = validation.EARLIEST.date().isoformat()
        raise InvalidInput(
            f"{field}.dateOfBirth is before {earliest}", field=f"{field}.dateOfBirth"
        )
    if len(given.previous_postcodes) > MAX_PREVIOUS_POSTCODES:
        raise InvalidInput(
            f"{field}.previousPostcodes holds more than {MAX_PREVIOUS_POSTCODES} postcodes",
            field=f"{field}.previousPostcodes",
        )
    return Applicant(
        reference=validation.text(given.reference, field=f"{field}.reference", max_length=64),
        given_name=validation.text(given.given_name, field=f"{field}.givenName", max_length=100),
        family_name=validation.text(given.family_name, field=f"{field}.familyName", max_length=100),
        date_of_birth=given.date_of_birth,
        postcode=postcode(given.postcode, field=f"{field}.postcode"),
        previous_postcodes=tuple(
            postcode(code, field=f"{field}.previousPostcodes.{n}")
            for n, code in enumerate(given.previous_postcodes)
        ),
    )


async def _validated(session: AsyncSession, request: VettingRequest) -> VettingRequest:
    now = utcnow()
    key = request.idempotency_key
    validated = dataclasses.replace(
        request,
        council_reference=validation.text(
            request.council_reference, field="input.councilReference", max_length=64
        ),
        applicant=_applicant(request.applicant, field="input.applicant", today=now.date()),
        requested_at=validation.event_time(
            request.requested_at, field="input.requestedAt", now=now
        ),
        idempotency_key=None
        if key is None
        else validation.text(key, field="input.idempotencyKey", max_length=128),
    )
    await validation.require_organisations(
        session, [(request.force, "input.force", OrganisationKind.POLICE_FORCE)]
    )
    return validated


async def request(
    session: AsyncSession, *, council_code: str, client_id: str, check: VettingRequest
) -> tuple[VettingCheck, bool]:
    """Record a council's request once; return it and whether this call stored it."""
    check = await _validated(session, check)
    payload_hash = pushes.fingerprint(check)

    async def find() -> VettingCheck | None:
        keys = [col(VettingCheck.council_reference) == check.council_reference]
        if check.idempotency_key is not None:
            keys.append(col(VettingCheck.idempotency_key) == check.idempotency_key)
        query = sa.select(VettingCheck).where(
            col(VettingCheck.council_code) == council_code, sa.or_(*keys)
        )
        return (await session.execute(query.limit(1))).scalar_one_or_none()

    async def insert() -> VettingCheck:
        applicant = check.applicant
        row = VettingCheck(
            council_code=council_code,
            council_reference=check.council_reference,
            idempotency_key=check.idempotency_key,
            payload_hash=payload_hash,
            force_code=check.force,
            purpose=check.purpose,
            applicant_reference=applicant.reference,
            given_name=applicant.given_name,
            family_name=applicant.family_name,
            date_of_birth=applicant.date_of_birth,
            postcode=applicant.postcode,
            previous_postcodes=",".join(applicant.previous_postcodes),
            requested_at=check.requested_at,
            requested_by_client=client_id,
            status=VettingStatus.OPEN,
        )
        session.add(row)
        await session.flush()
        return row

    return await pushes.insert_once(
        session,
        find=find,
        insert=insert,
        payload_hash=payload_hash,
        what="vetting check",
        reference="council reference",
    )


async def complete(
    session: AsyncSession, *, force_code: str, client_id: str, completion: VettingCompletion
) -> tuple[VettingCheck, bool]:
    """The force's answer, once: the same answer again changes nothing, another is a CONFLICT.

    Only a check asked of this force can be completed by it; any other id is NOT_FOUND, as a
    check the force may not see does not exist for it.
    """
    completed_at = validation.event_time(
        completion.completed_at, field="input.completedAt", now=utcnow()
    )
    check = (
        await session.execute(
            sa.select(VettingCheck)
            .where(
                col(VettingCheck.id) == completion.check_id,
                col(VettingCheck.force_code) == force_code,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if check is None:
        raise NotFound("no vetting check with that id was asked of this force", field="input.id")
    validation.not_before(
        completed_at, check.requested_at, field="input.completedAt", what="requestedAt"
    )
    if check.status == VettingStatus.COMPLETED:
        if check.outcome != completion.outcome or check.completed_at != completed_at:
            raise Conflict("the check was already completed with another outcome or time")
        return check, False
    check.status = VettingStatus.COMPLETED
    check.outcome = completion.outcome
    check.completed_at = completed_at
    check.completed_by_client = client_id
    check.updated_at = utcnow()
    await session.flush()
    return check, True


def visible(scope: RowScope) -> sa.ColumnElement[bool]:
    """The checks a caller sees: those its council asked, or its force was asked. Nobody else,
    whatever their rows: an applicant is not a child, so no council sees another's applicants.
    """
    if scope.everything:
        return sa.true()
    return sa.or_(
        col(VettingCheck.council_code).in_(scope.councils),
        col(VettingCheck.force_code).in_(scope.forces),
    )


async def get(session: AsyncSession, *, scope: RowScope, check_id: str) -> VettingCheck | None:
    query = sa.select(VettingCheck).where(col(VettingCheck.id) == check_id, visible(scope))
    return (await session.execute(query)).scalar_one_or_none()


async def list_(
    session: AsyncSession, *, scope: RowScope, where: VettingFilter, first: int, after: str | None
) -> Page[VettingCheck]:
    query = narrowed(
        sa.select(VettingCheck).where(visible(scope)),
        time_column=col(VettingCheck.requested_at),
        since=where.requested_from,
        until=where.requested_to,
        any_of={
            col(VettingCheck.status): where.statuses,
            col(VettingCheck.purpose): where.purposes,
        },
    )
    return await paginate(
        session,
        query,
        time_column=col(VettingCheck.requested_at),
        id_column=col(VettingCheck.id),
        first=first,
        after=after,
    )
