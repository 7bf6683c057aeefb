"""Incidents police notify councils about: pushed once, read by those in jurisdiction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.access.scope import RowScope, one_of
from hub.children import service as children
from hub.children.models import Child
from hub.children.service import ChildDetails
from hub.db import Nested, dialect_of, record_class, utcnow
from hub.errors import InvalidInput
from hub.incidents import timeliness as _timeliness  # noqa: F401 - declares the kind
from hub.incidents.models import DashRisk, Incident, IncidentChild, IncidentType
from hub.json_records import SERVED, SERVED_CHILDREN, Spec, Writer
from hub.pagination import Listing, Narrowing, Page
from hub.reference.models import Organisation, OrganisationKind


@dataclasses.dataclass(frozen=True)
class InvolvedChild:
    child: ChildDetails
    present: bool = False
    household_member: bool = False
    victim: bool = False


@dataclasses.dataclass(frozen=True)
class IncidentReport:
    police_reference: str
    type: IncidentType
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    location_council: str
    children: tuple[InvolvedChild, ...]
    dash_risk: DashRisk | None = None
    summary: str = ""
    operational_notes: str = ""
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class IncidentFilter:
    child_id: str | None = None
    occurred_from: dt.datetime | None = None
    occurred_to: dt.datetime | None = None
    types: tuple[IncidentType, ...] = ()
    dash_risks: tuple[DashRisk, ...] = ()


def checked(
    report: IncidentReport, *, now: dt.datetime, at: str = "input"
) -> tuple[IncidentReport, list[tuple[str, str, OrganisationKind]]]:
    """The report normalised, and the organisation codes it names (with their fields) for the
    caller to look up: a batch looks up all of its records' codes at once. `at` is the path
    of the report in the request (`input`, or `input.3` in a batch), which errors name."""
    occurred = validation.event_time(report.occurred_at, field=f"{at}.occurredAt", now=now)
    recorded = validation.event_time(report.recorded_at, field=f"{at}.recordedAt", now=now)
    validation.not_before(recorded, occurred, field=f"{at}.recordedAt", what="occurredAt")
    if not report.children:
        raise InvalidInput(f"{at}.children must name at least one child", field=f"{at}.children")
    involved = tuple(
        dataclasses.replace(
            c,
            child=children.normalise(c.child, field=f"{at}.children.{i}.child", today=now.date()),
        )
        for i, c in enumerate(report.children)
    )
    codes = [
        (report.location_council, f"{at}.locationCouncil", OrganisationKind.COUNCIL),
        *(
            code
            for i, c in enumerate(involved)
            for code in children.council_codes(c.child, field=f"{at}.children.{i}.child")
        ),
    ]
    normalised = dataclasses.replace(
        report,
        police_reference=validation.text(
            report.police_reference, field=f"{at}.policeReference", max_length=64
        ),
        operational_notes=validation.text(
            report.operational_notes,
            field=f"{at}.operationalNotes",
            max_length=4000,
            required=False,
        ),
        summary=validation.text(
            report.summary, field=f"{at}.summary", max_length=4000, required=False
        ),
        occurred_at=occurred,
        recorded_at=recorded,
        children=involved,
    )
    return normalised, codes


async def _validated(session: AsyncSession, report: IncidentReport) -> IncidentReport:
    normalised, codes = checked(report, now=utcnow())
    await validation.require_organisations(session, codes)
    return normalised


async def report(
    session: AsyncSession,
    *,
    force_code: str,
    client_id: str,
    incident: IncidentReport,
    shared_at: dt.datetime | None = None,
) -> tuple[Incident, bool]:
    """Record a pushed incident once; the same push again returns it, a different one conflicts.

    `shared_at` is internal only: the demo loader sets a historic one to tell a story of sharing
    delays. GraphQL never passes it; a push is shared when the hub receives it.
    """
    incident = await _validated(session, incident)
    payload_hash = pushes.fingerprint(incident)

    async def find() -> Incident | None:
        return await pushes.find_pushed(session, Incident, force_code=force_code, push=incident)

    async def insert() -> Incident:
        row = Incident(
            force_code=force_code,
            police_reference=incident.police_reference,
            idempotency_key=incident.idempotency_key,
            payload_hash=payload_hash,
            type=incident.type,
            occurred_at=incident.occurred_at,
            recorded_at=incident.recorded_at,
            location_council_code=incident.location_council,
            dash_risk=incident.dash_risk,
            summary=incident.summary,
            operational_notes=incident.operational_notes,
            pushed_by_client=client_id,
        )
        if shared_at is not None:
            row.shared_at = shared_at
        session.add(row)
        await session.flush()
        await _link_children(session, row=row, force_code=force_code, incident=incident)
        return row

    return await pushes.insert_once(
        session, find=find, insert=insert, payload_hash=payload_hash, what="incident"
    )


async def _link_children(
    session: AsyncSession, *, row: Incident, force_code: str, incident: IncidentReport
) -> None:
    links: dict[str, IncidentChild] = {}
    for involved in incident.children:
        child = await children.record_from_push(
            session,
            force_code=force_code,
            details=involved.child,
            default_council=incident.location_council,
        )
        link = links.setdefault(child.id, IncidentChild(incident_id=row.id, child_id=child.id))
        link.present |= involved.present
        link.household_member |= involved.household_member
        link.victim |= involved.victim
    session.add_all(links.values())
    await session.flush()


# A page of incidents reads plain rows of the table (the model's attribute names), not ORM
# objects: a read changes nothing, and building a SQLModel instance per record is costly.
_INCIDENT: sa.Table = Incident.__table__  # type: ignore[attr-defined]


_ORGANISATION: sa.Table = Organisation.__table__  # type: ignore[attr-defined]
# A page's incidents come with their force's and their council's organisation rows (the names
# a page shows), in the same statement: one round trip fewer than loading them after.
_WITH_ORGANISATIONS = {
    prefix: sa.alias(_ORGANISATION, f"{prefix}organisation") for prefix in ("force__", "council__")
}
_ORGANISATION_KEYS = tuple(_ORGANISATION.c.keys())
_AS_ORGANISATION = record_class(_ORGANISATION_KEYS)  # the organisation loader's rows
# (the code's attribute, all the columns' attributes) of each organisation a page's row carries
_CARRIED = tuple(
    (
        operator.attrgetter(f"{prefix}code"),
        operator.attrgetter(*(prefix + key for key in _ORGANISATION_KEYS)),
    )
    for prefix in _WITH_ORGANISATIONS
)


def organisations_of(rows: Sequence[Any]) -> dict[str, Any]:
    """The organisation rows (as the organisation loader's) that came with a page's incidents,
    by code: each incident's force and council, where it names one that exists."""
    found: dict[str, Any] = {}
    for row in rows:
        for code_of, columns_of in _CARRIED:
            code = code_of(row)
            if code is not None and code not in found:
                found[code] = _AS_ORGANISATION(columns_of(row))
    return found


# What a written page's rows carry besides their JSON (`_with_served`, `_served_columns`): the
# id (the record's, the audit's and the cursor's) and the force's code (whose record it is, for
# the audit). The rest of the columns stay in the database: read, turned into Python values
# and dropped, they were a twentieth of a written page's instructions. Such a row cannot be
# completed field by field, nor does it need to be: the executor writes it whole or refuses.
WRITTEN_ROW = ("id", "force_code")


_INCIDENT_CHILD: sa.Table = IncidentChild.__table__  # type: ignore[attr-defined]
_CHILD: sa.Table = Child.__table__  # type: ignore[attr-defined]
# The column a page's incidents carry their involved children in (`list_`'s `involved`).
INVOLVED = "involved__"


def involved(scope: RowScope, incidents: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The children of the `incidents` the caller sees (a school only its own pupils), each
    with its child's row, in the order of their ids."""
    return (
        sa.select(*_INCIDENT_CHILD.c, *_CHILD.c)
        .join_from(_INCIDENT_CHILD, _CHILD, _CHILD.c.id == _INCIDENT_CHILD.c.child_id)
        .where(incidents, scope.incident_children())
        .order_by(_INCIDENT_CHILD.c.child_id)
    )


@functools.lru_cache(maxsize=1024)
def _carried(scope: RowScope) -> Nested:
    """Each incident's involved children, as a column of the incident's own row."""
    return Nested(involved(scope, _INCIDENT_CHILD.c.incident_id == _INCIDENT.c.id), "child_id")


def involved_of(
    rows: Sequence[Any], scope: RowScope, dialect: Dialect
) -> dict[str, list[tuple[Any, ...]]] | None:
    """The involved children (`involved`'s rows) that came with a page's incidents, by
    incident id; None if the page was read without them."""
    if not rows or not hasattr(rows[0], INVOLVED):
        return None
    nested = _carried(scope)
    return {row.id: nested.rows(getattr(row, INVOLVED), dialect) for row in rows}


@functools.lru_cache(maxsize=1024)
def _listing(
    scope: RowScope,
    shape: Narrowing,
    *,
    dialect: str | None,
    involved: bool = False,
    served: Spec | None = None,
) -> Listing:
    """The statements of a page of incidents, built once per scope and shape of filter (and
    compiled selection: `served`, each row then written as its JSON, `hub.graphql.compiled`)."""
    force, council = _WITH_ORGANISATIONS.values()
    carried = (
        column.label(prefix + column.key)
        for prefix, organisation in _WITH_ORGANISATIONS.items()
        for column in organisation.c
    )
    columns = (*_INCIDENT.c, *carried)
    if served is not None and dialect != "postgresql":
        columns = tuple(_INCIDENT.c[key] for key in WRITTEN_ROW)
    query = sa.select(*columns).select_from(
        _INCIDENT.outerjoin(force, force.c.code == _INCIDENT.c.force_code).outerjoin(
            council, council.c.code == _INCIDENT.c.location_council_code
        )
    )
    finish = None
    if served is not None and dialect == "postgresql":
        finish = functools.partial(_with_served, scope, served)
    elif served is not None:
        query = query.add_columns(*_served_columns(scope, served))
    elif involved and dialect == "postgresql":
        finish = functools.partial(_with_involved, scope)
    elif involved:
        query = query.add_columns(_carried(scope).column(dialect).label(INVOLVED))
    of_child = sa.exists().where(
        col(IncidentChild.incident_id) == Incident.id,
        col(IncidentChild.child_id) == sa.bindparam("child_id", type_=sa.String),
    )
    return Listing.scoped(
        query,
        scope.incidents(),
        scope.incident_branches(),
        shape=shape,
        time_column=col(Incident.occurred_at),
        id_column=col(Incident.id),
        any_of=(col(Incident.type), col(Incident.dash_risk)),
        also={"child_id": of_child},
        dialect=dialect,
        finish=finish,
    )


def _with_involved(scope: RowScope, page: sa.CTE) -> sa.Select[Any]:
    """A page's incidents with their involved children, read for the page at once: one
    aggregate over the page's links, where a SELECT correlated with each incident ran once for
    each (a hash join of the link and child tables each time, on a small database)."""
    among_page = one_of(_INCIDENT_CHILD.c.incident_id, sa.select(page.c.id))
    grouped = _carried(scope).grouped_by(
        _INCIDENT_CHILD.c.incident_id, involved(scope, among_page), "postgresql"
    )
    return sa.select(page, grouped.c.rows.label(INVOLVED)).select_from(
        page.outerjoin(grouped, grouped.c.key == page.c.id)
    )


def _involved_source(name: str) -> Any:
    """An involved child's columns (`involved`), its child's as `child:<column>`."""
    if name.startswith("child:"):
        return _CHILD.c[name.removeprefix("child:")]
    return _INCIDENT_CHILD.c[name]


def _children_specs(spec: Spec) -> list[Spec]:
    return [item[2] for _, item in spec if item[0] == "nested" and item[1] == "children"]


def _with_served(scope: RowScope, spec: Spec, page: sa.CTE) -> sa.Select[Any]:
    """A page's incidents, each written as `spec`'s JSON, its children with it: one aggregate
    over the page's involved children, as `_with_involved` reads them."""
    among_page = one_of(_INCIDENT_CHILD.c.incident_id, sa.select(page.c.id))
    order = _INCIDENT_CHILD.c.child_id
    inner = Writer("postgresql")
    specs = _children_specs(spec)
    aggregates = [
        sa.func.json_agg(aggregate_order_by(inner.record(each, _involved_source), order)).label(
            f"served_{index}"
        )
        for index, each in enumerate(specs)
    ]
    owners = sa.func.json_build_array(_CHILD.c.id, _CHILD.c.responsible_council_code)
    grouped = (
        involved(scope, among_page)
        .with_only_columns(
            _INCIDENT_CHILD.c.incident_id.label("key"),
            sa.cast(sa.func.json_agg(aggregate_order_by(owners, order)), sa.Text).label("owners"),
            *aggregates,
        )
        .order_by(None)
        .group_by(_INCIDENT_CHILD.c.incident_id)
        .subquery("grouped")
    )
    none = sa.cast(sa.literal_column("'[]'"), postgresql.JSON)
    writer = Writer(
        "postgresql",
        children=lambda each: sa.func.coalesce(grouped.c[f"served_{specs.index(each)}"], none),
    )
    # As text: asyncpg's JSON codec would make it Python objects again.
    record = sa.cast(writer.record(spec, lambda name: page.c[name]), sa.Text)
    return sa.select(
        *(page.c[key] for key in WRITTEN_ROW),
        record.label(SERVED),
        grouped.c.owners.label(SERVED_CHILDREN),
    ).select_from(page.outerjoin(grouped, grouped.c.key == page.c.id))


def _served_columns(scope: RowScope, spec: Spec) -> list[Any]:
    """SQLite's: each incident written as `spec`'s JSON, its children by a correlated SELECT
    each (in the order of their ids, as `involved` has them)."""
    mine = involved(scope, _INCIDENT_CHILD.c.incident_id == _INCIDENT.c.id)

    def in_order(*columns: Any) -> sa.Subquery:
        return mine.with_only_columns(*columns).correlate(_INCIDENT).subquery("involved")

    def children(each: Spec) -> Any:
        rows = in_order(Writer("sqlite").record(each, _involved_source).label("item"))
        return sa.select(
            sa.func.json_group_array(sa.func.json(rows.c.item), type_=sa.Text())
        ).scalar_subquery()

    def source(name: str) -> Any:
        for prefix, organisation in _WITH_ORGANISATIONS.items():
            if name.startswith(prefix):
                return organisation.c[name.removeprefix(prefix)]
        return _INCIDENT.c[name]

    owners = in_order(_CHILD.c.id.label("child"), _CHILD.c.responsible_council_code.label("owner"))
    return [
        Writer("sqlite", children=children).record(spec, source).label(SERVED),
        sa.select(
            sa.func.json_group_array(
                sa.func.json_array(owners.c.child, owners.c.owner), type_=sa.Text()
            )
        )
        .scalar_subquery()
        .label(SERVED_CHILDREN),
    ]


async def list_(
    session: AsyncSession,
    *,
    scope: RowScope,
    where: IncidentFilter,
    first: int,
    after: str | None,
    involved: bool = False,
    served: Spec | None = None,
) -> Page[Incident]:
    """A page of the incidents in `scope` that match `where`; with `involved`, each row
    carries its children (`involved_of`), read in the same statement; with `served`, each row
    carries itself as that selection's JSON instead (`hub.graphql.compiled`)."""
    shape, params = Narrowing.of(
        since=where.occurred_from,
        until=where.occurred_to,
        any_of=(where.types, where.dash_risks),
        given={"child_id": where.child_id},
    )
    listing = _listing(
        scope,
        shape,
        involved=involved and served is None,
        served=served,
        dialect=dialect_of(session),
    )
    return await listing.read(session, params, first=first, after=after, rows=True)


async def get_by_reference(
    session: AsyncSession, *, force_code: str, police_reference: str
) -> Incident | None:
    query = sa.select(Incident).where(
        col(Incident.force_code) == force_code,
        col(Incident.police_reference) == police_reference,
    )
    return (await session.execute(query)).scalar_one_or_none()
