"""Timelines from the database: each record's clock readings and its receiving councils.

`timelines` loads, for any set of records, everything their stages need in a fixed number of
statements (records, children, linked incidents, receipts, nations); `acknowledge` and
`record_return_interview` are the councils' two writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import validation
from hub.access.scope import RowScope
from hub.children.models import Child
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationTransition,
)
from hub.missing.models import MissingEpisode, MissingStatus
from hub.protection import service as protection
from hub.protection.models import PoliceProtection
from hub.reference.models import Organisation
from hub.timeliness.models import RECEIPT_TYPES, FirstSeen, RecordReceipt, note_first_seen
from hub.timeliness.timeline import Recipient, RecordTimes, incident_kind, nation_of

Key = tuple[str, str]  # (record type, record id)


@dataclasses.dataclass(frozen=True)
class RecordTimeline:
    record_type: str
    record_id: str
    records: tuple[RecordTimes, ...]  # the record; for an investigation also each status change
    recipients: tuple[Recipient, ...]  # receiving councils
    receipts: tuple[RecordReceipt, ...]  # every receiving organisation's, schools' too


@dataclasses.dataclass
class _Sources:
    incidents: list[Incident] = dataclasses.field(default_factory=list)
    episodes: list[MissingEpisode] = dataclasses.field(default_factory=list)
    investigations: list[Investigation] = dataclasses.field(default_factory=list)
    transitions: list[InvestigationTransition] = dataclasses.field(default_factory=list)
    # The force of each investigation a status change belongs to.
    forces: dict[str, str] = dataclasses.field(default_factory=dict)


async def timelines(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, RecordTimeline]:
    """The timelines of the given records (unscoped: callers pass only records they may see)."""
    ids: defaultdict[str, list[str]] = defaultdict(list)
    for record_type, record_id in keys:
        ids[record_type].append(record_id)
    sources = _Sources()
    if ids["Incident"]:
        query = sa.select(Incident).where(col(Incident.id).in_(ids["Incident"]))
        sources.incidents = list((await session.execute(query)).scalars())
    if ids["MissingEpisode"]:
        query_m = sa.select(MissingEpisode).where(col(MissingEpisode.id).in_(ids["MissingEpisode"]))
        sources.episodes = list((await session.execute(query_m)).scalars())
    if ids["Investigation"]:
        query_i = sa.select(Investigation).where(col(Investigation.id).in_(ids["Investigation"]))
        sources.investigations = list((await session.execute(query_i)).scalars())
        query_t = sa.select(InvestigationTransition).where(
            col(InvestigationTransition.investigation_id).in_(ids["Investigation"])
        )
        sources.transitions = list((await session.execute(query_t)).scalars())
        sources.forces = {i.id: i.force_code for i in sources.investigations}
    return await _assemble(session, sources)


async def in_period(
    session: AsyncSession,
    *,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
    force_code: str | None = None,
) -> list[RecordTimeline]:
    """Every record whose event lies in [start, end) and that the hub held at ``as_of``."""
    sources = _Sources()
    incident = sa.select(Incident).where(
        col(Incident.occurred_at) >= start,
        col(Incident.occurred_at) < end,
        col(Incident.shared_at) <= as_of,
    )
    episode = sa.select(MissingEpisode).where(
        col(MissingEpisode.reported_missing_at) >= start,
        col(MissingEpisode.reported_missing_at) < end,
        col(MissingEpisode.shared_at) <= as_of,
    )
    investigation = sa.select(Investigation).where(col(Investigation.shared_at) <= as_of)
    if force_code is not None:
        incident = incident.where(col(Incident.force_code) == force_code)
        episode = episode.where(col(MissingEpisode.force_code) == force_code)
        investigation = investigation.where(col(Investigation.force_code) == force_code)
    sources.incidents = list((await session.execute(incident)).scalars())
    sources.episodes = list((await session.execute(episode)).scalars())
    changes = (
        sa.select(InvestigationTransition, col(Investigation.force_code))
        .join(Investigation, col(Investigation.id) == InvestigationTransition.investigation_id)
        .where(
            col(InvestigationTransition.changed_at) >= start,
            col(InvestigationTransition.changed_at) < end,
            col(InvestigationTransition.shared_at) <= as_of,
        )
    )
    if force_code is not None:
        changes = changes.where(col(Investigation.force_code) == force_code)
    for change, force in (await session.execute(changes)).all():
        sources.transitions.append(change)
        sources.forces[change.investigation_id] = force
    opened = {t.investigation_id for t in sources.transitions if t.from_status is None}
    if opened:
        investigation = investigation.where(col(Investigation.id).in_(opened))
        sources.investigations = list((await session.execute(investigation)).scalars())
    timelines_ = await _assemble(session, sources)
    return list(timelines_.values())


async def _assemble(session: AsyncSession, sources: _Sources) -> dict[Key, RecordTimeline]:
    incident_ids = [row.id for row in sources.incidents]
    investigation_ids = list(
        {row.id for row in sources.investigations}
        | {row.investigation_id for row in sources.transitions}
    )
    children_of: defaultdict[Key, set[str]] = defaultdict(set)
    for link in await _links(session, IncidentChild, "incident_id", incident_ids):
        children_of["Incident", link[0]].add(link[1])
    for link in await _links(session, InvestigationChild, "investigation_id", investigation_ids):
        children_of["Investigation", link[0]].add(link[1])
    for episode in sources.episodes:
        children_of["MissingEpisode", episode.id].add(episode.child_id)
    located: defaultdict[Key, set[str]] = defaultdict(set)
    for incident in sources.incidents:
        located["Incident", incident.id].add(incident.location_council_code)
    if investigation_ids:
        linked = await session.execute(
            sa.select(
                col(InvestigationIncident.investigation_id), col(Incident.location_council_code)
            )
            .join(Incident, col(Incident.id) == InvestigationIncident.incident_id)
            .where(col(InvestigationIncident.investigation_id).in_(investigation_ids))
        )
        for investigation_id, council in linked.all():
            located["Investigation", investigation_id].add(council)
    councils_of = await _child_councils(session, {c for kids in children_of.values() for c in kids})
    keys = [
        *(("Incident", i) for i in incident_ids),
        *(("MissingEpisode", e.id) for e in sources.episodes),
        *(("Investigation", i) for i in investigation_ids),
    ]
    receipts = await _receipts(session, keys)
    recipients = {key: _recipients(located[key], children_of[key], councils_of) for key in keys}
    codes = {council for found in recipients.values() for council, _ in found}
    nations = await _nations(session, codes)
    records = _record_times(sources)
    found: dict[Key, RecordTimeline] = {}
    for key in keys:
        seen = receipts.get(key, {})
        to = tuple(
            Recipient(
                council_code=council,
                nation=nation_of(nations, council),
                child_id=child,
                first_seen_at=seen[council].first_seen_at if council in seen else None,
                acknowledged_at=seen[council].acknowledged_at if council in seen else None,
            )
            for council, child in recipients[key]
        )
        found[key] = RecordTimeline(key[0], key[1], tuple(records[key]), to, tuple(seen.values()))
    return found


def _record_times(sources: _Sources) -> defaultdict[Key, list[RecordTimes]]:
    records: defaultdict[Key, list[RecordTimes]] = defaultdict(list)
    for i in sources.incidents:
        records["Incident", i.id].append(
            RecordTimes(
                incident_kind(i.type), i.id, i.force_code, i.occurred_at, i.recorded_at, i.shared_at
            )
        )
    for e in sources.episodes:
        records["MissingEpisode", e.id].append(
            RecordTimes(
                "missing_episode",
                e.id,
                e.force_code,
                e.reported_missing_at,
                e.recorded_at,
                e.shared_at,
                returned_at=e.returned_at,
                return_interview_at=e.return_interview_at,
            )
        )
    opened_at: dict[str, dt.datetime] = {}
    for t in sorted(sources.transitions, key=lambda t: t.changed_at):
        opened_at.setdefault(t.investigation_id, t.changed_at)
    for investigation in sources.investigations:
        records["Investigation", investigation.id].append(
            RecordTimes(
                "investigation_status",
                investigation.id,
                investigation.force_code,
                opened_at.get(investigation.id, investigation.status_changed_at),
                None,
                investigation.shared_at,
                share_stages=False,
            )
        )
    for t in sources.transitions:
        force = sources.forces.get(t.investigation_id)
        if force is None:
            continue
        records["Investigation", t.investigation_id].append(
            RecordTimes(
                "investigation_status",
                t.id,
                force,
                t.changed_at,
                None,
                t.shared_at,
                receipt_stages=False,
            )
        )
    return records


def _recipients(
    located: Iterable[str], children: Iterable[str], councils_of: dict[str, tuple[str, ...]]
) -> list[tuple[str, str | None]]:
    """(council, the child it is about) per receiving council: the location's council and each
    child's responsible and host councils. A council's child is its own child with the smallest
    id, else the record's."""
    kids = sorted(children)
    theirs: defaultdict[str, list[str]] = defaultdict(list)
    for child in kids:
        for council in councils_of.get(child, ()):
            theirs[council].append(child)
    councils = sorted(set(located) | set(theirs))
    fallback = kids[0] if kids else None
    return [(c, theirs[c][0] if theirs.get(c) else fallback) for c in councils]


async def _links(
    session: AsyncSession,
    table: type[IncidentChild | InvestigationChild],
    key: str,
    ids: list[str],
) -> list[tuple[str, str]]:
    if not ids:
        return []
    record = getattr(table, key)
    child: Any = table.child_id
    rows = await session.execute(sa.select(record, child).where(record.in_(ids)))
    return [(a, b) for a, b in rows.all()]


async def _child_councils(session: AsyncSession, ids: set[str]) -> dict[str, tuple[str, ...]]:
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(
            col(Child.id), col(Child.responsible_council_code), col(Child.host_council_code)
        ).where(col(Child.id).in_(ids))
    )
    return {i: tuple(c for c in (r, h) if c) for i, r, h in rows.all()}


async def _receipts(session: AsyncSession, keys: list[Key]) -> dict[Key, dict[str, RecordReceipt]]:
    found: defaultdict[Key, dict[str, RecordReceipt]] = defaultdict(dict)
    by_type: defaultdict[str, list[str]] = defaultdict(list)
    for record_type, record_id in keys:
        by_type[record_type].append(record_id)
    for record_type, ids in by_type.items():
        query = sa.select(RecordReceipt).where(
            col(RecordReceipt.record_type) == record_type, col(RecordReceipt.record_id).in_(ids)
        )
        for receipt in (await session.execute(query)).scalars():
            found[record_type, receipt.record_id][receipt.organisation_code] = receipt
    return found


async def _nations(session: AsyncSession, codes: set[str]) -> dict[str, str | None]:
    if not codes:
        return {}
    rows = await session.execute(
        sa.select(col(Organisation.code), col(Organisation.nation)).where(
            col(Organisation.code).in_(codes)
        )
    )
    return dict(rows.all())


# -- the councils' writes ----------------------------------------------------------------------


async def _visible(
    session: AsyncSession, scope: RowScope, record_type: str, record_id: str
) -> bool:
    predicates: dict[str, tuple[Any, Callable[[], sa.ColumnElement[bool]]]] = {
        "Incident": (Incident, scope.incidents),
        "MissingEpisode": (MissingEpisode, scope.missing_episodes),
        "Investigation": (Investigation, scope.investigations),
        "PoliceProtection": (PoliceProtection, lambda: protection.visible(scope)),
    }
    if record_type not in predicates:
        raise InvalidInput(
            f"recordType must be one of {', '.join(RECEIPT_TYPES)}", field="recordType"
        )
    model, predicate = predicates[record_type]
    query = sa.select(sa.literal(1)).select_from(model).where(model.id == record_id, predicate())
    return (await session.execute(query)).first() is not None


async def acknowledge(
    session: AsyncSession,
    *,
    scope: RowScope,
    record_type: str,
    record_id: str,
    organisation_code: str,
    user: str | None,
    at: dt.datetime | None = None,
) -> tuple[RecordReceipt, bool]:
    """The council acknowledges a record it may see; the first acknowledgement is kept.

    Returns the receipt and whether this call acknowledged it. Acknowledging a record not yet
    read through the hub also records its first sight at the same moment.
    """
    if not await _visible(session, scope, record_type, record_id):
        raise NotFound("no such record", field="id")
    now = at or utcnow()
    # Race-free without locks: the receipt exists after the insert-or-ignore, and only one
    # UPDATE can find it still unacknowledged.
    await note_first_seen(session, FirstSeen.of(organisation_code, [(record_type, record_id)], now))
    key = (
        col(RecordReceipt.record_type) == record_type,
        col(RecordReceipt.record_id) == record_id,
        col(RecordReceipt.organisation_code) == organisation_code,
    )
    acknowledged = await session.execute(
        sa.update(RecordReceipt)
        .where(*key, col(RecordReceipt.acknowledged_at).is_(None))
        .values(acknowledged_at=now, acknowledged_by=user)
    )
    receipt = (
        await session.execute(
            sa.select(RecordReceipt).where(*key).execution_options(populate_existing=True)
        )
    ).scalar_one()
    return receipt, getattr(acknowledged, "rowcount", 0) == 1


async def record_return_interview(
    session: AsyncSession,
    *,
    scope: RowScope,
    episode_id: str,
    held_at: dt.datetime,
    council_code: str,
) -> tuple[MissingEpisode, bool]:
    """A council records the return home interview of a child it may see, once the child is back.

    The same time again changes nothing; another time once one is recorded is a CONFLICT.
    """
    held = validation.event_time(held_at, field="heldAt", now=utcnow())
    episode = (
        await session.execute(
            sa.select(MissingEpisode)
            .where(col(MissingEpisode.id) == episode_id, scope.missing_episodes())
            .with_for_update()
        )
    ).scalar_one_or_none()
    if episode is None:
        raise NotFound("no such missing episode", field="missingEpisodeId")
    if episode.status != MissingStatus.RETURNED or episode.returned_at is None:
        raise InvalidInput("the child has not returned yet", field="missingEpisodeId")
    validation.not_before(held, episode.returned_at, field="heldAt", what="the child's return")
    if episode.return_interview_at is not None:
        if episode.return_interview_at != held:
            raise Conflict("a return home interview was already recorded at another time")
        return episode, False
    episode.return_interview_at = held
    episode.return_interview_by_council = council_code
    episode.updated_at = utcnow()
    await session.flush()
    return episode, True
