from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import strawberry
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.base import stored
from hub.children.types import Child, ChildInput, child_of
from hub.graphql.compiled import Served
from hub.graphql.context import Info
from hub.graphql.entity import PoliceRecord
from hub.graphql.loaders import at_once, fill, prime
from hub.graphql.resolvers import context_only
from hub.graphql.selection import selects
from hub.incidents import models
from hub.incidents.models import DashRisk, IncidentType
from hub.incidents.service import (
    IncidentFilter,
    IncidentReport,
    InvolvedChild,
    involved_of,
    organisations_of,
)
from hub.json_records import Spec
from hub.reference.types import Organisation, organisation_of
from hub.validation import optional_utc

IncidentTypeType = strawberry.enum(IncidentType, name="IncidentType")
DashRiskType = strawberry.enum(DashRisk, name="DashRisk", description="SafeLives DASH risk level.")
_TYPE, _DASH_RISK = stored(IncidentType), stored(DashRisk)


@strawberry.type
class IncidentChild:
    """How a child was involved: present, a member of the household, a victim (any may hold)."""

    row: strawberry.Private[models.IncidentChild]

    @strawberry.field(graphql_type=Child | None)
    @context_only
    def child(self, info: Info) -> AwaitableOrValue[Child | None]:
        return child_of(info, self.row.child_id)

    @strawberry.field
    def present(self) -> bool | None:
        return self.row.present

    @strawberry.field
    def household_member(self) -> bool | None:
        return self.row.household_member

    @strawberry.field
    def victim(self) -> bool | None:
        return self.row.victim


@strawberry.federation.type(keys=["id"], name="Incident", authenticated=True)
class Incident(PoliceRecord):
    loader = "incident"
    row: strawberry.Private[models.Incident]
    id: strawberry.ID
    if TYPE_CHECKING:
        served: Served | None
    else:
        served = None  # not a field: a written read's JSON (`written`)

    @strawberry.field
    def type(self) -> IncidentTypeType | None:  # type: ignore[valid-type]
        return _TYPE(self.row.type)

    @strawberry.field(description="When the incident happened.")
    def occurred_at(self) -> dt.datetime | None:
        return self.row.occurred_at

    @strawberry.field(description="When the force recorded it in its own system.")
    def recorded_at(self) -> dt.datetime | None:
        return self.row.recorded_at

    @strawberry.field(graphql_type=Organisation | None)
    @context_only
    def location_council(self, info: Info) -> AwaitableOrValue[Organisation | None]:
        return organisation_of(info, self.row.location_council_code)

    @strawberry.field
    def dash_risk(self) -> DashRiskType | None:  # type: ignore[valid-type]
        return _DASH_RISK(self.row.dash_risk) if self.row.dash_risk else None

    @strawberry.field
    def summary(self) -> str | None:
        return self.row.summary

    @strawberry.field(description="Police-restricted operational detail.")
    def operational_notes(self) -> str | None:
        return self.row.operational_notes

    @strawberry.field(graphql_type=list[IncidentChild] | None)
    @context_only
    def children(self, info: Info) -> AwaitableOrValue[list[IncidentChild] | None]:
        return at_once(info.context.loaders.incident_children, self.row.id, _involved)

    @classmethod
    def written(cls, row: Any, spec: Spec, *, every_child: bool) -> Incident:
        """An incident read written as `spec`'s JSON (`hub.graphql.compiled`)."""
        made = cls.of(row)
        made.served = Served.of(row, spec, every_child=every_child)
        return made

    @staticmethod
    def carries_children(info: Info) -> bool:
        """Whether a page of incidents is read with its involved children, in its own
        statement (`incidents.list_`'s `involved`): the selection names each one's child, and
        the caller's role sees them."""
        sees = info.context.policy.sees
        return (
            sees("Incident", "children")
            and sees("IncidentChild", "child")
            and selects(info, "edges", "node", "children", "child")
        )

    @classmethod
    async def prefetch(cls, info: Info, rows: Sequence[models.Incident]) -> None:
        """What a page's items will ask for, loaded at once: their fields then complete from
        finished loads, without a task each. Only what the selection names and the caller's
        role may see; the loaders are the request's own, scoped as a field's load would be."""
        loaders = info.context.loaders
        codes = cls.page_organisations(
            info, rows, {"force": "force_code", "locationCouncil": "location_council_code"}
        )
        # The page's organisations came with its incidents (`service.organisations_of`); any
        # other is loaded, with what other fields of the request ask for in the same batch.
        came = organisations_of(rows) if codes else {}
        prime(loaders.organisation, {code: came[code] for code in codes if code in came})
        organisations = loaders.organisation.load_many(sorted(codes)) if codes else None
        if cls.page_wants(info, "children"):
            ids = [r.id for r in rows]
            if cls.carries_children(info):
                dialect = info.context.session.get_bind().dialect
                carried = involved_of(rows, info.context.scope, dialect)
                await loaders.involved(ids, carried=carried)
            else:
                await fill(loaders.incident_children, ids)
        if organisations is not None:
            await organisations


_new = object.__new__


def _involved(rows: list[models.IncidentChild]) -> list[IncidentChild]:
    # What `IncidentChild(row=r)` does, without strawberry's keyword `__init__` for each link of
    # a page (`test_entity_types_are_made_of_a_row_and_its_id` holds it to that `__init__`).
    made = []
    for row in rows:
        link = _new(IncidentChild)
        link.row = row
        made.append(link)
    return made


@strawberry.input
class InvolvedChildInput:
    child: ChildInput
    present: bool = False
    household_member: bool = False
    victim: bool = False


# Planned: a force's batch of 200 spent 40% of its time in Strawberry's conversion of them.
@strawberry.input
class ReportIncidentInput:
    police_reference: str
    type: IncidentTypeType  # type: ignore[valid-type]
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    location_council: str = strawberry.field(description="GSS code of the council area.")
    children: list[InvolvedChildInput]
    dash_risk: DashRiskType | None = None  # type: ignore[valid-type]
    summary: str = ""
    operational_notes: str = strawberry.field(
        default="", description="Police-restricted detail; the agreement keeps it from others."
    )
    idempotency_key: str | None = None

    def command(self) -> IncidentReport:
        return IncidentReport(
            police_reference=self.police_reference,
            type=IncidentType(self.type),
            occurred_at=self.occurred_at,
            recorded_at=self.recorded_at,
            location_council=self.location_council,
            children=tuple(
                InvolvedChild(
                    child=c.child.details(),
                    present=c.present,
                    household_member=c.household_member,
                    victim=c.victim,
                )
                for c in self.children
            ),
            dash_risk=DashRisk(self.dash_risk) if self.dash_risk else None,
            summary=self.summary,
            operational_notes=self.operational_notes,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class IncidentFilterInput:
    target: ClassVar[str] = "Incident"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "children",
        "occurred_from": "occurredAt",
        "occurred_to": "occurredAt",
        "types": "type",
        "dash_risks": "dashRisk",
    }
    child_id: strawberry.ID | None = None
    occurred_from: dt.datetime | None = None
    occurred_to: dt.datetime | None = None
    types: list[IncidentTypeType] | None = None  # type: ignore[valid-type]
    dash_risks: list[DashRiskType] | None = None  # type: ignore[valid-type]

    def where(self) -> IncidentFilter:
        return IncidentFilter(
            child_id=str(self.child_id) if self.child_id else None,
            occurred_from=optional_utc(self.occurred_from, field="filter.occurredFrom"),
            occurred_to=optional_utc(self.occurred_to, field="filter.occurredTo"),
            types=tuple(IncidentType(t) for t in self.types or ()),
            dash_risks=tuple(DashRisk(r) for r in self.dash_risks or ()),
        )
