"""Timelines from the database: each record's clock readings and its receiving councils.

`timelines` loads, for any set of records, everything their stages need in a fixed number of
statements: each kind's records through its declaration's loader (`kinds`), then their
children's councils, receipts and nations; `acknowledge` and `record_return_interview` are the
councils' two writes.
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
from hub.incidents.models import Incident
from hub.investigations.models import Investigation
from hub.missing.models import MissingEpisode, MissingStatus
from hub.protection import service as protection
from hub.protection.models import PoliceProtection
from hub.reference.models import Organisation
from hub.timeliness import kinds
from hub.timeliness.models import RECEIPT_TYPES, FirstSeen, RecordReceipt, note_first_seen
from hub.timeliness.timeline import Recipient, RecordTimes, nation_of

Key = tuple[str, str]  # (record type, record id)


@dataclasses.dataclass(frozen=True)
class RecordTimeline:
    record_type: str
    record_id: str
    records: tuple[RecordTimes, ...]  # the record; for an investigation also each status change
    recipients: tuple[Recipient, ...]  # receiving councils
    receipts: tuple[RecordReceipt, ...]  # every receiving organisation's, schools' too


async def timelines(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, RecordTimeline]:
    """The timelines of the given records (unscoped: callers pass only records they may see)."""
    ids: defaultdict[str, list[str]] = defaultdict(list)
    for record_type, record_id in keys:
        ids[record_type].append(record_id)
    loaded: list[kinds.Loaded] = []
    for declared in kinds.declared():
        if ids[declared.record_type]:
            loaded += await declared.load(session, ids[declared.record_type], None)
    return await _assemble(session, loaded)


async def in_period(
    session: AsyncSession,
    *,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
    force_code: str | None = None,
) -> list[RecordTimeline]:
    """Every record whose event lies in [start, end) and that the hub held at ``as_of``."""
    period = kinds.Period(start=start, end=end, as_of=as_of, force_code=force_code)
    loaded: list[kinds.Loaded] = []
    for declared in kinds.declared():
        loaded += await declared.load(session, None, period)
    timelines_ = await _assemble(session, loaded)
    return list(timelines_.values())


async def _assemble(session: AsyncSession, loaded: list[kinds.Loaded]) -> dict[Key, RecordTimeline]:
    by_key: dict[Key, kinds.Loaded] = {}
    for found_ in loaded:
        by_key[found_.record_type, found_.record_id] = found_
    keys = list(by_key)
    children = {c for found_ in loaded for c in found_.children}
    councils_of = await _child_councils(session, children)
    receipts = await _receipts(session, keys)
    recipients = {key: _receivers(each, councils_of) for key, each in by_key.items()}
    codes = {council for found in recipients.values() for council, _ in found}
    nations = await _nations(session, codes)
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
        records = tuple(by_key[key].records)
        found[key] = RecordTimeline(key[0], key[1], records, to, tuple(seen.values()))
    return found


def _receivers(
    each: kinds.Loaded, councils_of: dict[str, tuple[str, ...]]
) -> list[tuple[str, str | None]]:
    declared = kinds.declaration(each.record_type)
    if declared is not None and declared.receivers is kinds.Receivers.NAMED:
        return sorted(set(each.named), key=lambda named: (named[0], named[1] or ""))
    return _recipients(each.located, each.children, councils_of)


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
