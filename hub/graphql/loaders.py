"""Per-request DataLoaders: a nested list costs one statement per level, whatever the page size.

Every loader for case records applies the caller's row scope, so a nested path or an `_entities`
lookup can reach nothing a root query could not.
"""

from __future__ import annotations

import functools
from asyncio import Future
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry.dataloader import AbstractCache, DataLoader
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.access.scope import RowScope
from hub.children.models import Child, ChildReference
from hub.closures.models import ClosureReview
from hub.db import among, dialect_of, record_class, rows
from hub.incidents import service as incidents
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationTransition,
)
from hub.joint_visits import service as joint_visits
from hub.joint_visits.models import JointVisitRequest
from hub.meetings import scope as meeting_scope
from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation
from hub.missing.models import MissingEpisode
from hub.protection import service as protection
from hub.protection.models import PoliceProtection
from hub.reference.models import Organisation

K = TypeVar("K")
V = TypeVar("V")


class KeyCache(AbstractCache[K, V]):
    """A loader's futures by key: strawberry's `DefaultCache` without its key function (every
    key here is its own), its `get` and `set` the dictionary's own methods. A page asks its
    loaders' caches about 240 times; each ask was two Python calls before the lookup."""

    def __init__(self) -> None:
        self.futures: dict[K, Future[V]] = {}
        self.get = self.futures.get  # type: ignore[method-assign, assignment]
        self.set = self.futures.__setitem__  # type: ignore[method-assign, assignment]

    def get(self, key: K) -> Future[V] | None:  # replaced by the dictionary's, per instance
        return self.futures.get(key)

    def set(self, key: K, value: Future[V]) -> None:  # replaced by the dictionary's
        self.futures[key] = value

    def delete(self, key: K) -> None:
        del self.futures[key]

    def clear(self) -> None:
        self.futures.clear()


def _loader(load: Callable[[list[K]], Awaitable[Sequence[V]]]) -> DataLoader[K, V]:
    return DataLoader(load_fn=load, cache_map=KeyCache())


def prime(loader: DataLoader[K, V], values: Mapping[K, V]) -> None:
    """strawberry's `prime_many` (a key already loaded or primed keeps its value): each value
    a finished future in the loader's `KeyCache`, made by the loop in one call. strawberry's
    way took three Python calls a key, sixty keys a page. A loader of another cache, or one
    with a batch still waiting to be sent (whose waiting keys a value must settle), goes
    strawberry's way."""
    cache = loader.cache_map
    batch = loader.batch
    if not isinstance(cache, KeyCache) or (batch is not None and not batch.dispatched):
        loader.prime_many(values)
        return
    futures = cache.futures
    make = loader.loop.create_future
    for key, value in values.items():
        if futures.get(key) is None:
            future = futures[key] = make()
            future.set_result(value)


def _one(
    session: AsyncSession, query: Callable[[list[K]], sa.Select[V]], key: Callable[[V], K]
) -> DataLoader[K, V | None]:
    async def load(keys: list[K]) -> Sequence[V | None]:
        rows = (await session.execute(query(keys))).scalars()
        found = {key(r): r for r in rows}
        return [found.get(k) for k in keys]

    return _loader(load)


def _many(
    session: AsyncSession,
    query: Callable[[list[K]], sa.Select[*tuple[Any, ...]]],
    key: Callable[[Any], K],
    value: Callable[[Any], V] = lambda row: row,
) -> DataLoader[K, list[V]]:
    async def load(keys: list[K]) -> Sequence[list[V]]:
        grouped: defaultdict[K, list[V]] = defaultdict(list)
        for row in (await session.execute(query(keys))).all():
            grouped[key(row)].append(value(row))
        return [grouped[k] for k in keys]

    return _loader(load)


# The loaders a page of records uses most read plain rows of a table's columns (each with the
# model's attribute names), not ORM objects: nothing in a read changes them, and building a
# SQLModel instance each was a tenth of a page. Their statements are built once, keyed by
# scope where the scope applies, so their SQLAlchemy cache keys are computed once too.
_ORGANISATION: sa.Table = Organisation.__table__  # type: ignore[attr-defined]
_CHILD: sa.Table = Child.__table__  # type: ignore[attr-defined]
_INCIDENT_CHILD: sa.Table = IncidentChild.__table__  # type: ignore[attr-defined]


def _keyed(column: sa.ColumnElement[Any], *, dialect: str | None) -> sa.ColumnElement[bool]:
    """`column` among the `keys` parameter (`among`)."""
    return among(column, "keys", dialect=dialect)


_DIALECTS = ("postgresql", "sqlite", None)
_ORGANISATIONS = {
    dialect: sa.select(*_ORGANISATION.c).where(_keyed(_ORGANISATION.c.code, dialect=dialect))
    for dialect in _DIALECTS
}
_CHILDREN = {
    dialect: sa.select(*_CHILD.c).where(_keyed(_CHILD.c.id, dialect=dialect))
    for dialect in _DIALECTS
}


@functools.lru_cache(maxsize=1024)
def _incident_children(scope: RowScope, *, dialect: str | None) -> sa.Select[Any]:
    return (
        sa.select(*_INCIDENT_CHILD.c)
        .where(_keyed(_INCIDENT_CHILD.c.incident_id, dialect=dialect), scope.incident_children())
        .order_by(_INCIDENT_CHILD.c.child_id)
    )


@functools.lru_cache(maxsize=1024)
def _involved(scope: RowScope, *, dialect: str | None) -> sa.Select[Any]:
    """`_incident_children` with each one's child: the two loads a page makes, in one."""
    return incidents.involved(scope, _keyed(_INCIDENT_CHILD.c.incident_id, dialect=dialect))


_AS_INCIDENT_CHILD = record_class(tuple(_INCIDENT_CHILD.c.keys()))
_AS_CHILD = record_class(tuple(_CHILD.c.keys()))
_SPLIT = len(_INCIDENT_CHILD.c)


def _one_row(session: AsyncSession, statement: sa.Select[Any], key: str) -> DataLoader[Any, Any]:
    async def load(keys: list[Any]) -> Sequence[Any]:
        found = {getattr(r, key): r for r in await rows(session, statement, {"keys": keys})}
        return [found.get(k) for k in keys]

    return _loader(load)


def _many_rows(session: AsyncSession, statement: sa.Select[Any], key: str) -> DataLoader[Any, Any]:
    async def load(keys: list[Any]) -> Sequence[list[Any]]:
        grouped: defaultdict[Any, list[Any]] = defaultdict(list)
        for row in await rows(session, statement, {"keys": keys}):
            grouped[getattr(row, key)].append(row)
        return [grouped[k] for k in keys]

    return _loader(load)


class Loaders:
    """The request's loaders, each built when a field first asks for it: a request uses a
    few of them, and building all of them was a fortieth of a page's time."""

    def __init__(self, session: AsyncSession, scope: RowScope) -> None:
        self._session = session
        self._scope = scope
        known = dialect_of(session)
        self._dialect = known if known in _DIALECTS else None
        # Organisations made from loaded rows, by code (`reference.types.organisation_of`): one
        # for every field that names it (a page's forty organisation fields name two).
        self.made_organisations: dict[str, Any] = {}

    @cached_property
    def organisation(self) -> DataLoader[str, Organisation | None]:
        return _one_row(self._session, _ORGANISATIONS[self._dialect], "code")

    # A child reached through a record the caller may see is part of that record.
    @cached_property
    def child(self) -> DataLoader[str, Child | None]:
        return _one_row(self._session, _CHILDREN[self._dialect], "id")

    @cached_property
    def incident(self) -> DataLoader[str, Incident | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(Incident).where(col(Incident.id).in_(ids), scope.incidents()),
            lambda i: i.id,
        )

    @cached_property
    def missing_episode(self) -> DataLoader[str, MissingEpisode | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(MissingEpisode).where(
                col(MissingEpisode.id).in_(ids), scope.missing_episodes()
            ),
            lambda m: m.id,
        )

    @cached_property
    def investigation(self) -> DataLoader[str, Investigation | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(Investigation).where(
                col(Investigation.id).in_(ids), scope.investigations()
            ),
            lambda i: i.id,
        )

    # Each domain that scopes its own records names its predicate (`visible`).
    @cached_property
    def joint_visit_request(self) -> DataLoader[str, JointVisitRequest | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(JointVisitRequest).where(
                col(JointVisitRequest.id).in_(ids), joint_visits.visible(scope)
            ),
            lambda r: r.id,
        )

    @cached_property
    def police_protection(self) -> DataLoader[str, PoliceProtection | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(PoliceProtection).where(
                col(PoliceProtection.id).in_(ids), protection.visible(scope)
            ),
            lambda p: p.id,
        )

    @cached_property
    def scoped_child(self) -> DataLoader[str, Child | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(Child).where(col(Child.id).in_(ids), scope.children()),
            lambda c: c.id,
        )

    @cached_property
    def incident_children(self) -> DataLoader[str, list[IncidentChild]]:
        return _many_rows(
            self._session, _incident_children(self._scope, dialect=self._dialect), "incident_id"
        )

    async def involved(
        self,
        incident_ids: Sequence[str],
        *,
        carried: Mapping[str, Sequence[Sequence[Any]]] | None = None,
    ) -> None:
        """The incidents' children (`incident_children`) and each one's child (`child`), in
        one statement, each left in its loader's cache as a finished load (`fill`). `carried`:
        those rows by incident, as they came with the incidents (`incidents.involved_of`),
        for every incident named: then no statement at all."""
        involving, children = self.incident_children, self.child
        wanted = [i for i in dict.fromkeys(incident_ids) if involving.cache_map.get(i) is None]
        if not wanted:
            return
        if carried is not None:
            found_rows: Sequence[Sequence[Any]] = [row for i in wanted for row in carried[i]]
        else:
            statement = _involved(self._scope, dialect=self._dialect)
            found_rows = await rows(self._session, statement, {"keys": wanted})
        grouped: dict[str, list[Any]] = {i: [] for i in wanted}
        found: dict[str, Any] = {}
        for row in found_rows:
            involved = _AS_INCIDENT_CHILD(row[:_SPLIT])
            grouped[involved.incident_id].append(involved)
            found[involved.child_id] = _AS_CHILD(row[_SPLIT:])
        prime(involving, grouped)
        prime(children, found)

    @cached_property
    def child_references(self) -> DataLoader[str, list[ChildReference]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: sa.select(ChildReference).where(
                col(ChildReference.child_id).in_(ids), scope.child_references()
            ),
            lambda row: row[0].child_id,
            lambda row: row[0],
        )

    @cached_property
    def child_incidents(self) -> DataLoader[str, list[Incident]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(col(IncidentChild.child_id), Incident)
                .join(Incident, col(Incident.id) == IncidentChild.incident_id)
                .where(col(IncidentChild.child_id).in_(ids), scope.incidents())
                .order_by(col(Incident.occurred_at).desc())
            ),
            lambda row: row[0],
            lambda row: row[1],
        )

    @cached_property
    def child_missing_episodes(self) -> DataLoader[str, list[MissingEpisode]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(MissingEpisode)
                .where(col(MissingEpisode.child_id).in_(ids), scope.missing_episodes())
                .order_by(col(MissingEpisode.reported_missing_at).desc())
            ),
            lambda row: row[0].child_id,
            lambda row: row[0],
        )

    @cached_property
    def child_investigations(self) -> DataLoader[str, list[Investigation]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(col(InvestigationChild.child_id), Investigation)
                .join(Investigation, col(Investigation.id) == InvestigationChild.investigation_id)
                .where(col(InvestigationChild.child_id).in_(ids), scope.investigations())
                .order_by(col(Investigation.status_changed_at).desc())
            ),
            lambda row: row[0],
            lambda row: row[1],
        )

    @cached_property
    def investigation_history(self) -> DataLoader[str, list[InvestigationTransition]]:
        s = self._session
        return _many(
            s,
            lambda ids: (
                sa.select(InvestigationTransition)
                .where(col(InvestigationTransition.investigation_id).in_(ids))
                .order_by(col(InvestigationTransition.changed_at))
            ),
            lambda row: row[0].investigation_id,
            lambda row: row[0],
        )

    @cached_property
    def investigation_incidents(self) -> DataLoader[str, list[Incident]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(col(InvestigationIncident.investigation_id), Incident)
                .join(Incident, col(Incident.id) == InvestigationIncident.incident_id)
                .where(col(InvestigationIncident.investigation_id).in_(ids), scope.incidents())
                .order_by(col(Incident.occurred_at))
            ),
            lambda row: row[0],
            lambda row: row[1],
        )

    @cached_property
    def investigation_children(self) -> DataLoader[str, list[Child]]:
        s = self._session
        return _many(
            s,
            lambda ids: (
                sa.select(col(InvestigationChild.investigation_id), Child)
                .join(Child, col(Child.id) == InvestigationChild.child_id)
                .where(col(InvestigationChild.investigation_id).in_(ids))
                .order_by(col(Child.id))
            ),
            lambda row: row[0],
            lambda row: row[1],
        )

    @cached_property
    def closure_review(self) -> DataLoader[str, ClosureReview | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(ClosureReview).where(
                col(ClosureReview.id).in_(ids), scope.closure_reviews()
            ),
            lambda r: r.id,
        )

    @cached_property
    def investigation_closure_reviews(self) -> DataLoader[str, list[ClosureReview]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(ClosureReview)
                .where(col(ClosureReview.investigation_id).in_(ids), scope.closure_reviews())
                .order_by(col(ClosureReview.requested_at), col(ClosureReview.council_code))
            ),
            lambda row: row[0].investigation_id,
            lambda row: row[0],
        )

    # The challenges a reopening answered (a transition's link back to them).
    @cached_property
    def transition_challenges(self) -> DataLoader[str, list[ClosureReview]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(ClosureReview)
                .where(col(ClosureReview.reopening_transition_id).in_(ids), scope.closure_reviews())
                .order_by(col(ClosureReview.council_code))
            ),
            lambda row: row[0].reopening_transition_id,
            lambda row: row[0],
        )

    # Transitions are part of an investigation the caller already reached.
    @cached_property
    def transition(self) -> DataLoader[str, InvestigationTransition | None]:
        s = self._session
        return _one(
            s,
            lambda ids: sa.select(InvestigationTransition).where(
                col(InvestigationTransition.id).in_(ids)
            ),
            lambda t: t.id,
        )

    @cached_property
    def meeting(self) -> DataLoader[str, Meeting | None]:
        s, scope = self._session, self._scope
        return _one(
            s,
            lambda ids: sa.select(Meeting).where(
                col(Meeting.id).in_(ids), meeting_scope.meetings(scope)
            ),
            lambda m: m.id,
        )

    # Of a meeting the caller sees: every child it is about, and the invitations it may see.
    @cached_property
    def meeting_children(self) -> DataLoader[str, list[MeetingChild]]:
        s = self._session
        return _many(
            s,
            lambda ids: (
                sa.select(MeetingChild)
                .where(col(MeetingChild.meeting_id).in_(ids))
                .order_by(col(MeetingChild.id))
            ),
            lambda row: row[0].meeting_id,
            lambda row: row[0],
        )

    @cached_property
    def meeting_invitations(self) -> DataLoader[str, list[MeetingInvitation]]:
        s, scope = self._session, self._scope
        return _many(
            s,
            lambda ids: (
                sa.select(MeetingInvitation)
                .where(col(MeetingInvitation.meeting_id).in_(ids), meeting_scope.invitations(scope))
                .order_by(col(MeetingInvitation.force_code))
            ),
            lambda row: row[0].meeting_id,
            lambda row: row[0],
        )


R = TypeVar("R")


async def fill(loader: DataLoader[K, V], keys: Sequence[K]) -> list[V]:
    """The values for `keys`, those the request has not loaded yet fetched in one batch with
    the loader's own function, each left in its cache as a finished load: what a page's items
    then ask for completes at once (`at_once`), and a key's value is the same object however it
    is asked for. A load of the same keys (`load_many`) costs a future, a task entry and a
    callback per key; a page's prefetch asked for sixty."""
    cache = loader.cache_map
    wanted = [key for key in dict.fromkeys(keys) if cache.get(key) is None]
    if wanted:
        values = await loader.load_fn(wanted)
        prime(
            loader,
            {
                key: value
                for key, value in zip(wanted, values, strict=True)
                if not isinstance(value, BaseException)  # left for a load, which raises it
            },
        )
    found: list[V] = []
    for key in keys:
        future = cache.get(key)
        found.append(
            future.result() if future is not None and future.done() else await loader.load(key)
        )
    return found


def at_once(loader: DataLoader[K, V], key: K, then: Callable[[V], R]) -> AwaitableOrValue[R]:
    """`then` of the loader's value for `key`: at once when this request already loaded it, so
    graphql-core completes the field without an awaitable (no task per item of a list); else
    once the loader's batch returns. A failed load fails the field either way."""
    future = loader.cache_map.get(key)
    if future is not None and future.done():
        try:
            # One call where three asked (cancelled? failed?) before: the usual load succeeded.
            value = future.result()
        except BaseException:  # noqa: BLE001, S110 - cancelled or failed: the loader's (`later`)
            pass
        else:
            return then(value)

    async def later() -> R:
        return then(await loader.load(key))

    return later()
