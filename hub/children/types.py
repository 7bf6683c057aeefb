from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.children import models
from hub.children.models import ReferenceKind
from hub.children.service import ChildDetails
from hub.graphql.context import Info
from hub.graphql.entity import Entity
from hub.graphql.loaders import at_once
from hub.reference.types import Organisation, load_organisation

if TYPE_CHECKING:
    from hub.incidents.types import Incident
    from hub.investigations.types import Investigation
    from hub.missing.types import MissingEpisode

ReferenceKindType = strawberry.enum(ReferenceKind, name="ChildReferenceKind")


@strawberry.type
class ChildReference:
    """A reference an organisation holds for the child, e.g. a force's person reference."""

    organisation_code: str
    kind: ReferenceKindType  # type: ignore[valid-type]
    value: str


@strawberry.federation.type(keys=["id"], name="Child", authenticated=True)
class Child(Entity):
    loader = "scoped_child"
    row: strawberry.Private[models.Child]
    id: strawberry.ID

    @strawberry.field
    def given_name(self) -> str | None:
        return self.row.given_name

    @strawberry.field
    def family_name(self) -> str | None:
        return self.row.family_name

    @strawberry.field
    def date_of_birth(self) -> dt.date | None:
        return self.row.date_of_birth

    @strawberry.field
    def nhs_number(self) -> str | None:
        return self.row.nhs_number

    @strawberry.field
    def looked_after(self) -> bool | None:
        return self.row.looked_after

    @strawberry.field
    async def responsible_council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.responsible_council_code)

    @strawberry.field(description="Set when the child is placed out of the responsible area.")
    async def host_council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.host_council_code)

    @strawberry.field
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.school_code)

    @strawberry.field
    async def references(self, info: Info) -> list[ChildReference] | None:
        rows = await info.context.loaders.child_references.load(self.row.id)
        return [
            ChildReference(
                organisation_code=r.organisation_code, kind=ReferenceKind(r.kind), value=r.value
            )
            for r in rows
        ]

    @strawberry.field(description="Incidents concerning the child that the caller may see.")
    async def incidents(
        self, info: Info
    ) -> list[Annotated[Incident, strawberry.lazy("hub.incidents.types")]] | None:
        from hub.incidents.types import Incident  # noqa: PLC0415 - types refer to each other

        return [
            Incident.of(r) for r in await info.context.loaders.child_incidents.load(self.row.id)
        ]

    @strawberry.field
    async def missing_episodes(
        self, info: Info
    ) -> list[Annotated[MissingEpisode, strawberry.lazy("hub.missing.types")]] | None:
        from hub.missing.types import MissingEpisode  # noqa: PLC0415 - types refer to each other

        rows = await info.context.loaders.child_missing_episodes.load(self.row.id)
        return [MissingEpisode.of(r) for r in rows]

    @strawberry.field
    async def investigations(
        self, info: Info
    ) -> list[Annotated[Investigation, strawberry.lazy("hub.investigations.types")]] | None:
        from hub.investigations.types import Investigation  # noqa: PLC0415 - mutual references

        rows = await info.context.loaders.child_investigations.load(self.row.id)
        return [Investigation.of(r) for r in rows]


def child_of(info: Info, child_id: str) -> AwaitableOrValue[Child | None]:
    """The child at once if this request already loaded them, else once they are loaded."""
    return at_once(info.context.loaders.child, child_id, _child)


def _child(row: models.Child | None) -> Child | None:
    return Child.of(row) if row else None


async def load_child(info: Info, child_id: str) -> Child | None:
    row = await info.context.loaders.child.load(child_id)
    return Child.of(row) if row else None


@strawberry.input(description="A child as the police system knows them.")
class ChildInput:
    police_reference: str = strawberry.field(description="The force's person reference.")
    given_name: str
    family_name: str
    date_of_birth: dt.date
    nhs_number: str | None = None
    responsible_council: str | None = strawberry.field(
        default=None, description="Council code (GSS); defaults to the council of the event."
    )
    host_council: str | None = strawberry.field(
        default=None, description="Council code (GSS) where the child is placed out of area."
    )
    looked_after: bool | None = None
    school: str | None = strawberry.field(
        default=None, description="Code of the child's school, for Operation Encompass notices."
    )

    def details(self) -> ChildDetails:
        return ChildDetails(
            police_reference=self.police_reference,
            given_name=self.given_name,
            family_name=self.family_name,
            date_of_birth=self.date_of_birth,
            nhs_number=self.nhs_number,
            responsible_council=self.responsible_council,
            host_council=self.host_council,
            looked_after=self.looked_after,
            school=self.school,
        )
