"""What the hub's entity types share: built from one row, resolved by id through a scoped loader."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import strawberry
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.graphql.context import Info
from hub.graphql.resolvers import context_only
from hub.graphql.selection import selects
from hub.reference.types import Organisation, load_organisation, organisation_of

if TYPE_CHECKING:
    from hub.timeliness.types import Timeline


_new = object.__new__


class Entity:
    """`of` and `resolve_reference` for a type wrapping one row and keyed by its id.

    `loader` names the request's DataLoader for the type; it applies the caller's row scope, so
    an `_entities` lookup from a gateway reaches exactly what a root query would.
    """

    loader: ClassVar[str]

    if TYPE_CHECKING:
        row: Any
        id: strawberry.ID

        def __init__(self, *, row: Any, id: strawberry.ID) -> None: ...  # noqa: A002

    @classmethod
    def of(cls, row: Any) -> Self:
        """What strawberry's `__init__(*, row, id)` does, without a keyword call: a page makes
        one per record (`test_entity_types_are_made_of_a_row_and_its_id` holds every entity
        type to that `__init__`). `strawberry.ID` is `str` at run time: no call either."""
        made = _new(cls)
        made.row = row
        made.id = row.id
        return made

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Self | None:  # noqa: A002
        row = await getattr(info.context.loaders, cls.loader).load(str(id))
        return cls.of(row) if row is not None else None

    @classmethod
    def page_wants(cls, info: Info, field: str) -> bool:
        """Whether each record of a page of these (a root list's `edges { node }`) will
        complete `field`: the selection names it and the caller's role sees it. What a page's
        prefetch loads at once, before its records' fields ask one by one."""
        return info.context.policy.sees(cls.__name__, field) and selects(
            info, "edges", "node", field
        )

    @classmethod
    def page_organisations(
        cls, info: Info, rows: Sequence[Any], codes: Mapping[str, str]
    ) -> set[str]:
        """The codes of the organisations a page's records will ask for: for each field of
        `codes` (GraphQL name -> the row's attribute holding the code) the page wants, each
        record's code, where it names one."""
        return {
            code
            for field, attribute in codes.items()
            if cls.page_wants(info, field)
            for code in map(operator.attrgetter(attribute), rows)
            if code
        }


@strawberry.interface(description="A record a police force pushed to the hub.")
class PoliceRecord(Entity):
    row: strawberry.Private[Any]
    id: strawberry.ID

    @strawberry.field(graphql_type=Organisation | None)
    @context_only
    def force(self, info: Info) -> AwaitableOrValue[Organisation | None]:
        return organisation_of(info, self.row.force_code)

    @strawberry.field(description="The force's own reference for the record.")
    def police_reference(self) -> str | None:
        reference: str = self.row.police_reference
        return reference

    @strawberry.field(description="When the hub received it (set by the hub).")
    def shared_at(self) -> dt.datetime | None:
        shared: dt.datetime = self.row.shared_at
        return shared

    @strawberry.field(
        description="The record's clock: each stage's delay per receiving council, against its "
        "target (auth/targets.toml)."
    )
    async def timeline(
        self, info: Info
    ) -> Annotated[Timeline, strawberry.lazy("hub.timeliness.types")] | None:
        from hub.timeliness.types import load_timeline  # noqa: PLC0415 - the types import records

        # Each record type's class is named as its GraphQL type (Incident, MissingEpisode, ...).
        return await load_timeline(info, type(self).__name__, str(self.row.id))


@strawberry.interface(
    description="A record a council pushed to the hub (a joint visit request, a meeting)."
)
class CouncilRecord(Entity):
    row: strawberry.Private[Any]
    id: strawberry.ID

    @strawberry.field(description="The council that pushed it.")
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.council_code)

    @strawberry.field(description="The council's own reference for the record.")
    def council_reference(self) -> str | None:
        reference: str = self.row.council_reference
        return reference

    @strawberry.field(description="When the hub received it (set by the hub).")
    def shared_at(self) -> dt.datetime | None:
        shared: dt.datetime = self.row.shared_at
        return shared
