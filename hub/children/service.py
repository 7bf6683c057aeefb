"""Finding the child a push is about, or recording a new one, by the references agencies hold."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import validation
from hub.audit import service as audit
from hub.audit.service import ServedRecord
from hub.base import new_id
from hub.children.models import Child, ChildLink, ChildReference, ReferenceKind
from hub.db import utcnow
from hub.errors import InvalidInput
from hub.reference.models import OrganisationKind

NHS_NUMBER = re.compile(r"^\d{10}$")
MATCHED_BY_NHS_NUMBER = "nhs_number"


@dataclasses.dataclass(frozen=True)
class ChildDetails:
    """A child as a police system knows them; `police_reference` is the force's person reference."""

    police_reference: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    nhs_number: str | None = None
    responsible_council: str | None = None
    host_council: str | None = None
    looked_after: bool | None = None
    school: str | None = None


def normalise(details: ChildDetails, *, field: str, today: dt.date) -> ChildDetails:
    if details.date_of_birth > today:
        raise InvalidInput(f"{field}.dateOfBirth is in the future", field=f"{field}.dateOfBirth")
    if details.date_of_birth < validation.EARLIEST.date():
        earliest = validation.EARLIEST.date().isoformat()
        raise InvalidInput(
            f"{field}.dateOfBirth is before {earliest}", field=f"{field}.dateOfBirth"
        )
    nhs = details.nhs_number.replace(" ", "") if details.nhs_number else None
    if nhs is not None and not NHS_NUMBER.match(nhs):
        raise InvalidInput(f"{field}.nhsNumber must be 10 digits", field=f"{field}.nhsNumber")
    return dataclasses.replace(
        details,
        police_reference=validation.text(
            details.police_reference, field=f"{field}.policeReference", max_length=64
        ),
        given_name=validation.text(details.given_name, field=f"{field}.givenName", max_length=100),
        family_name=validation.text(
            details.family_name, field=f"{field}.familyName", max_length=100
        ),
        nhs_number=nhs,
    )


def council_codes(details: ChildDetails, *, field: str) -> list[tuple[str, str, OrganisationKind]]:
    named = [
        (details.responsible_council, f"{field}.responsibleCouncil"),
        (details.host_council, f"{field}.hostCouncil"),
    ]
    codes = [(code, path, OrganisationKind.COUNCIL) for code, path in named if code is not None]
    if details.school is not None:
        codes.append((details.school, f"{field}.school", OrganisationKind.SCHOOL))
    return codes


async def find_by_police_reference(
    session: AsyncSession, *, force_code: str, reference: str
) -> Child | None:
    return (
        await session.execute(
            sa.select(Child)
            .join(ChildReference, col(ChildReference.child_id) == Child.id)
            .where(
                col(ChildReference.organisation_code) == force_code,
                col(ChildReference.kind) == ReferenceKind.POLICE_PERSON,
                col(ChildReference.value) == reference,
            )
        )
    ).scalar_one_or_none()


async def record_from_push(
    session: AsyncSession, *, force_code: str, details: ChildDetails, default_council: str
) -> Child:
    """The child a push names, as the pushing force holds them: found by the force's reference
    or among the force's own children by NHS number, else recorded as the force's new child.

    A child another organisation holds is never returned nor changed by a push: an NHS number
    that matches one is linked (a combination), and the force gets a row of its own. What the
    force now says about placement (councils, school, looked after) updates its own row, as an
    alteration; names and dates of birth are kept as first recorded.
    """
    child = await find_by_police_reference(
        session, force_code=force_code, reference=details.police_reference
    )
    if child is None and details.nhs_number is not None:
        child = await _held_by_force(session, force_code=force_code, nhs_number=details.nhs_number)
        if child is not None:
            # A new person reference for a child the force recorded already: its own to extend.
            await _add_reference(session, child=child, force_code=force_code, details=details)
    if child is None:
        return await _create(
            session, force_code=force_code, details=details, default_council=default_council
        )
    apply_placement(session, child, details)
    return child


async def _held_by_force(
    session: AsyncSession, *, force_code: str, nhs_number: str
) -> Child | None:
    query = (
        sa.select(Child)
        .join(ChildReference, col(ChildReference.child_id) == Child.id)
        .where(
            col(Child.nhs_number) == nhs_number,
            col(ChildReference.organisation_code) == force_code,
            col(ChildReference.kind) == ReferenceKind.POLICE_PERSON,
        )
        .order_by(col(Child.created_at), col(Child.id))
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


_PLACEMENT = (  # (ChildDetails attribute, Child column, GraphQL field the audit names)
    ("responsible_council", "responsible_council_code", "responsibleCouncil"),
    ("host_council", "host_council_code", "hostCouncil"),
    ("school", "school_code", "school"),
    ("looked_after", "looked_after", "lookedAfter"),
)


def apply_placement(session: AsyncSession, child: Child, details: ChildDetails) -> None:
    """Called only with a child the pushing force holds: it is the force's record to change."""
    changed = []
    for attribute, column, field in _PLACEMENT:
        value = getattr(details, attribute)
        if value is not None and getattr(child, column) != value:
            setattr(child, column, value)
            changed.append(field)
    if changed:
        child.updated_at = utcnow()
        audit.note_alteration(session, _audited(child, fields=tuple(sorted(changed))))


def _audited(child: Child, *, fields: tuple[str, ...] = ()) -> ServedRecord:
    return ServedRecord(
        record_type="Child",
        record_id=child.id,
        fields=fields,
        child_ids=(child.id,),
        owner=child.responsible_council_code,
    )


async def _create(
    session: AsyncSession, *, force_code: str, details: ChildDetails, default_council: str
) -> Child:
    child = new_child(details, default_council=default_council)
    try:
        async with session.begin_nested():
            session.add(child)
            await session.flush()
            await _add_reference(session, child=child, force_code=force_code, details=details)
    except IntegrityError:
        # Another push recorded the same child a moment ago: use theirs.
        found = await find_by_police_reference(
            session, force_code=force_code, reference=details.police_reference
        )
        if found is None:
            raise
        return found
    await _link_matches(session, child=child, force_code=force_code)
    return child


def new_child(details: ChildDetails, *, default_council: str) -> Child:
    """The force's new child as the push describes them (not yet added to the session)."""
    return Child(**new_child_row(details, default_council=default_council))


def new_child_row(details: ChildDetails, *, default_council: str) -> dict[str, Any]:
    """`new_child`'s every column, for an INSERT of many (a model object each cost more than
    the database's work for them)."""
    now = utcnow()
    return {
        "id": new_id(),
        "given_name": details.given_name,
        "family_name": details.family_name,
        "date_of_birth": details.date_of_birth,
        "nhs_number": details.nhs_number,
        "responsible_council_code": details.responsible_council or default_council,
        "host_council_code": details.host_council,
        "school_code": details.school,
        "looked_after": bool(details.looked_after),
        "created_at": now,
        "updated_at": now,
    }


def police_reference(child: Child, *, force_code: str, details: ChildDetails) -> ChildReference:
    """The force's person reference for the child, by which its later pushes find them."""
    return ChildReference(
        child_id=child.id,
        organisation_code=force_code,
        kind=ReferenceKind.POLICE_PERSON,
        value=details.police_reference,
    )


async def _link_matches(session: AsyncSession, *, child: Child, force_code: str) -> None:
    """Link the force's new child to those others hold under the same NHS number.

    Matching may link records, and that is a combination the audit logs; it never lets the
    force read or change the other organisations' rows.
    """
    if child.nhs_number is None:
        return
    matched = (
        await session.execute(
            sa.select(Child).where(
                col(Child.nhs_number) == child.nhs_number, col(Child.id) != child.id
            )
        )
    ).scalars()
    for other in matched:
        session.add(
            ChildLink(
                child_id=child.id,
                matched_child_id=other.id,
                matched_by=MATCHED_BY_NHS_NUMBER,
                organisation_code=force_code,
            )
        )
        audit.note_combination(session, _audited(other), matched_by=MATCHED_BY_NHS_NUMBER)
    await session.flush()


async def _add_reference(
    session: AsyncSession, *, child: Child, force_code: str, details: ChildDetails
) -> None:
    session.add(police_reference(child, force_code=force_code, details=details))
    await session.flush()
