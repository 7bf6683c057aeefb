from __future__ import annotations

from typing import Self

import strawberry
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.base import stored
from hub.graphql.context import Info
from hub.graphql.loaders import at_once
from hub.reference import models
from hub.reference.models import Nation, OrganisationKind

OrganisationKindType = strawberry.enum(OrganisationKind, name="OrganisationKind")
NationType = strawberry.enum(Nation, name="Nation")
_KIND, _NATION = stored(OrganisationKind), stored(Nation)


@strawberry.federation.type(keys=["id"], name="Organisation")
class Organisation:
    """A police force, council, school, inspectorate or the hub operator, by its official code."""

    id: strawberry.ID
    name: str | None
    kind: OrganisationKindType | None  # type: ignore[valid-type]
    nation: NationType | None  # type: ignore[valid-type]
    ons_code: str | None

    @classmethod
    def of(cls, row: models.Organisation) -> Self:
        return cls(
            id=strawberry.ID(row.code),
            name=row.name,
            kind=_KIND(row.kind),
            nation=_NATION(row.nation) if row.nation else None,
            ons_code=row.ons_code,
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Self | None:  # noqa: A002
        row = await info.context.loaders.organisation.load(str(id))
        return cls.of(row) if row else None


def organisation_of(info: Info, code: str | None) -> AwaitableOrValue[Organisation | None]:
    """The organisation at once if this request already loaded it, else once it is loaded."""
    if code is None:
        return None
    loaders = info.context.loaders
    made: Organisation | None = loaders.made_organisations.get(code)
    if made is not None:
        return made
    organisation = at_once(loaders.organisation, code, _organisation)
    if isinstance(organisation, Organisation):
        loaders.made_organisations[code] = organisation
    return organisation


def _organisation(row: models.Organisation | None) -> Organisation | None:
    return Organisation.of(row) if row else None


async def load_organisation(info: Info, code: str | None) -> Organisation | None:
    if code is None:
        return None
    row = await info.context.loaders.organisation.load(code)
    return Organisation.of(row) if row else None
