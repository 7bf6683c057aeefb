from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

import strawberry

from hub.children.types import Child, ChildInput, load_child
from hub.graphql.context import Info
from hub.graphql.entity import PoliceRecord
from hub.protection import models
from hub.protection.models import Alternative, ConsultedRole, PlacedIn
from hub.protection.service import ProtectionFilter, ProtectionReport
from hub.reference.types import Organisation, load_organisation
from hub.validation import optional_utc

PlacedInType = strawberry.enum(PlacedIn, name="ProtectionPlacedIn")
ConsultedRoleType = strawberry.enum(
    ConsultedRole,
    name="ProtectionConsultedRole",
    description="Whom in children's social care the officer consulted.",
)
AlternativeType = strawberry.enum(
    Alternative,
    name="ProtectionAlternative",
    description="An alternative to police protection the officer considered; NONE alone.",
)


@strawberry.federation.type(keys=["id"], name="PoliceProtection", authenticated=True)
class PoliceProtection(PoliceRecord):
    """A child taken into police protection (Children Act 1989 s.46)."""

    loader = "police_protection"
    row: strawberry.Private[models.PoliceProtection]
    id: strawberry.ID

    @strawberry.field
    async def child(self, info: Info) -> Child | None:
        return await load_child(info, self.row.child_id)

    @strawberry.field(description="When the child was taken into police protection.")
    def taken_at(self) -> dt.datetime | None:
        return self.row.taken_at

    @strawberry.field
    def recorded_at(self) -> dt.datetime | None:
        return self.row.recorded_at

    @strawberry.field(description="Where the child was placed.")
    def placed_in(self) -> PlacedInType | None:  # type: ignore[valid-type]
        return PlacedIn(self.row.placed_in)

    @strawberry.field(description="The council area the child was placed in, if known.")
    async def placed_council(self, info: Info) -> Organisation | None:
        code = self.row.placed_council_code
        return await load_organisation(info, code) if code else None

    @strawberry.field(
        description="Whether children's social care was consulted before the child was taken."
    )
    def consulted_before(self) -> bool | None:
        return self.row.consulted_before

    @strawberry.field
    def consulted_at(self) -> dt.datetime | None:
        return self.row.consulted_at

    @strawberry.field
    async def consulted_council(self, info: Info) -> Organisation | None:
        code = self.row.consulted_council_code
        return await load_organisation(info, code) if code else None

    @strawberry.field
    def consulted_role(self) -> ConsultedRoleType | None:  # type: ignore[valid-type]
        role = self.row.consulted_role
        return ConsultedRole(role) if role else None

    @strawberry.field
    def alternatives_considered(self) -> list[AlternativeType] | None:  # type: ignore[valid-type]
        return [Alternative(a) for a in self.row.alternatives_considered.split(",")]


@strawberry.input
class RecordPoliceProtectionInput:
    police_reference: str
    child: ChildInput
    taken_at: dt.datetime
    recorded_at: dt.datetime
    placed_in: PlacedInType  # type: ignore[valid-type]
    consulted_before: bool = strawberry.field(
        description="Children's social care consulted before the child was taken; if true, "
        "consultedAt, consultedCouncil and consultedRole are needed."
    )
    alternatives_considered: list[AlternativeType]  # type: ignore[valid-type]
    placed_council: str | None = strawberry.field(
        default=None, description="GSS code of the council area the child was placed in."
    )
    consulted_at: dt.datetime | None = None
    consulted_council: str | None = strawberry.field(
        default=None, description="GSS code of the council consulted."
    )
    consulted_role: ConsultedRoleType | None = None  # type: ignore[valid-type]
    idempotency_key: str | None = None

    def command(self) -> ProtectionReport:
        return ProtectionReport(
            police_reference=self.police_reference,
            child=self.child.details(),
            taken_at=self.taken_at,
            recorded_at=self.recorded_at,
            placed_in=PlacedIn(self.placed_in),
            consulted_before=self.consulted_before,
            alternatives_considered=tuple(Alternative(a) for a in self.alternatives_considered),
            placed_council=self.placed_council,
            consulted_at=self.consulted_at,
            consulted_council=self.consulted_council,
            consulted_role=ConsultedRole(self.consulted_role) if self.consulted_role else None,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class PoliceProtectionFilterInput:
    target: ClassVar[str] = "PoliceProtection"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "child",
        "taken_from": "takenAt",
        "taken_to": "takenAt",
        "placed_in": "placedIn",
        "consulted_before": "consultedBefore",
    }
    child_id: strawberry.ID | None = None
    taken_from: dt.datetime | None = None
    taken_to: dt.datetime | None = None
    placed_in: list[PlacedInType] | None = None  # type: ignore[valid-type]
    consulted_before: bool | None = None

    def where(self) -> ProtectionFilter:
        return ProtectionFilter(
            child_id=str(self.child_id) if self.child_id else None,
            taken_from=optional_utc(self.taken_from, field="filter.takenFrom"),
            taken_to=optional_utc(self.taken_to, field="filter.takenTo"),
            placed_in=tuple(PlacedIn(p) for p in self.placed_in or ()),
            consulted_before=self.consulted_before,
        )
