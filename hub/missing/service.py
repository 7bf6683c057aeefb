"""Missing-child episodes: reported the moment police record them, updated as the child is found."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.access.scope import RowScope
from hub.children import service as children
from hub.children.service import ChildDetails
from hub.db import dialect_of, utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.missing import timeliness as _timeliness  # noqa: F401 - declares the kind
from hub.missing.models import MissingEpisode, MissingFrom, MissingStatus, RiskGrade
from hub.pagination import Listing, Narrowing, Page
from hub.reference.models import OrganisationKind

APP_2017 = "college_of_policing_app_2017"


@dataclasses.dataclass(frozen=True)
class MissingReport:
    police_reference: str
    child: ChildDetails
    reported_missing_at: dt.datetime
    recorded_at: dt.datetime
    risk_grade: RiskGrade
    last_seen_council: str
    missing_from: MissingFrom
    risk_framework: str = APP_2017
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class MissingUpdate:
    police_reference: str
    status: MissingStatus
    at: dt.datetime
    risk_grade: RiskGrade | None = None


@dataclasses.dataclass(frozen=True)
class MissingFilter:
    child_id: str | None = None
    reported_from: dt.datetime | None = None
    reported_to: dt.datetime | None = None
    risk_grades: tuple[RiskGrade, ...] = ()
    statuses: tuple[MissingStatus, ...] = ()


async def _validated(session: AsyncSession, episode: MissingReport) -> MissingReport:
    now = utcnow()
    reported = validation.event_time(
        episode.reported_missing_at, field="input.reportedMissingAt", now=now
    )
    recorded = validation.event_time(episode.recorded_at, field="input.recordedAt", now=now)
    validation.not_before(recorded, reported, field="input.recordedAt", what="reportedMissingAt")
    child = children.normalise(episode.child, field="input.child", today=now.date())
    await validation.require_organisations(
        session,
        [
            (episode.last_seen_council, "input.lastSeenCouncil", OrganisationKind.COUNCIL),
            *children.council_codes(child, field="input.child"),
        ],
    )
    return dataclasses.replace(
        episode,
        police_reference=validation.text(
            episode.police_reference, field="input.policeReference", max_length=64
        ),
        risk_framework=validation.text(
            episode.risk_framework, field="input.riskFramework", max_length=64
        ),
        child=child,
        reported_missing_at=reported,
        recorded_at=recorded,
    )


async def record(
    session: AsyncSession,
    *,
    force_code: str,
    client_id: str,
    episode: MissingReport,
    shared_at: dt.datetime | None = None,
) -> tuple[MissingEpisode, bool]:
    """Record a reported absence once. `shared_at` is internal only (the demo loader's historic
    sharing); GraphQL never passes it."""
    episode = await _validated(session, episode)
    payload_hash = pushes.fingerprint(episode)

    async def find() -> MissingEpisode | None:
        return await pushes.find_pushed(
            session, MissingEpisode, force_code=force_code, push=episode
        )

    async def insert() -> MissingEpisode:
        child = await children.record_from_push(
            session,
            force_code=force_code,
            details=episode.child,
            default_council=episode.last_seen_council,
        )
        row = MissingEpisode(
            child_id=child.id,
            force_code=force_code,
            police_reference=episode.police_reference,
            idempotency_key=episode.idempotency_key,
            payload_hash=payload_hash,
            reported_missing_at=episode.reported_missing_at,
            recorded_at=episode.recorded_at,
            risk_grade=episode.risk_grade,
            risk_framework=episode.risk_framework,
            last_seen_council_code=episode.last_seen_council,
            missing_from=episode.missing_from,
            status=MissingStatus.MISSING,
            pushed_by_client=client_id,
        )
        if shared_at is not None:
            row.shared_at = shared_at
        session.add(row)
        await session.flush()
        return row

    return await pushes.insert_once(
        session, find=find, insert=insert, payload_hash=payload_hash, what="missing episode"
    )


_STATUS_TIME = {MissingStatus.FOUND: "found_at", MissingStatus.RETURNED: "returned_at"}


async def update(
    session: AsyncSession, *, force_code: str, change: MissingUpdate
) -> tuple[MissingEpisode, bool]:
    """Found, then returned (or returned straight away). Replaying a change changes nothing.

    Returns the episode and whether this call changed it.
    """
    if change.status is MissingStatus.MISSING:
        raise InvalidInput("status must be FOUND or RETURNED", field="input.status")
    at = validation.event_time(change.at, field="input.at", now=utcnow())
    episode = (
        await session.execute(
            sa.select(MissingEpisode)
            .where(
                col(MissingEpisode.force_code) == force_code,
                col(MissingEpisode.police_reference) == change.police_reference,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if episode is None:
        raise NotFound(
            "no missing episode with that police reference", field="input.policeReference"
        )
    validation.not_before(
        at, episode.reported_missing_at, field="input.at", what="reportedMissingAt"
    )
    attribute = _STATUS_TIME[change.status]
    already = getattr(episode, attribute)
    if already is not None:
        if already != at:
            raise Conflict(f"the episode was already marked {change.status} at another time")
        return episode, False
    if episode.status == MissingStatus.RETURNED:
        raise Conflict("the child has already returned; a new absence is a new episode")
    found_at = episode.found_at
    if found_at is not None:
        validation.not_before(at, found_at, field="input.at", what="the time found")
    setattr(episode, attribute, at)
    episode.status = change.status
    if change.risk_grade is not None:
        episode.risk_grade = change.risk_grade
    episode.updated_at = utcnow()
    await session.flush()
    return episode, True


@functools.lru_cache(maxsize=1024)
def _listing(scope: RowScope, shape: Narrowing, *, dialect: str | None) -> Listing:
    """The statements of a page of missing episodes, built once per scope and shape of filter."""
    of_child = col(MissingEpisode.child_id) == sa.bindparam("child_id", type_=sa.String)
    return Listing.scoped(
        sa.select(MissingEpisode),
        scope.missing_episodes(),
        scope.missing_episode_branches(),
        shape=shape,
        time_column=col(MissingEpisode.reported_missing_at),
        id_column=col(MissingEpisode.id),
        any_of=(col(MissingEpisode.risk_grade), col(MissingEpisode.status)),
        also={"child_id": of_child},
        dialect=dialect,
    )


async def list_(
    session: AsyncSession, *, scope: RowScope, where: MissingFilter, first: int, after: str | None
) -> Page[MissingEpisode]:
    shape, params = Narrowing.of(
        since=where.reported_from,
        until=where.reported_to,
        any_of=(where.risk_grades, where.statuses),
        given={"child_id": where.child_id},
    )
    listing = _listing(scope, shape, dialect=dialect_of(session))
    return await listing.read(session, params, first=first, after=after)
