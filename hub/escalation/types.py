"""`escalations` and `escalationFigures`: overdue stages, for the two organisations concerned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, ClassVar

import strawberry

from hub.access.permissions import ReadsSharingFigures
from hub.escalation import models
from hub.escalation import service as escalations
from hub.escalation.service import EscalationFilter
from hub.graphql.context import Info
from hub.reference.types import Organisation, load_organisation
from hub.timeliness.extract import period_bounds
from hub.timeliness.types import check_period, report_scope
from hub.validation import optional_utc


@strawberry.type(
    name="Escalation",
    description=(
        "A stage not ended by its target's deadline (a missing child not acknowledged, an"
        " invitation not answered...), raised once for the organisation that owes the answer"
        " and the one waiting for it."
    ),
)
class Escalation:
    row: strawberry.Private[models.Escalation]
    id: strawberry.ID

    @classmethod
    def of(cls, row: models.Escalation) -> Escalation:
        return cls(row=row, id=strawberry.ID(row.id))

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Escalation | None:  # noqa: A002
        """The escalation if the caller owes it or waits on it (the changes feed delivers it)."""
        row = await escalations.get(info.context.session, scope=info.context.scope, id_=str(id))
        return None if row is None else cls.of(row)

    @strawberry.field(description="The target whose deadline passed (auth/targets.toml).")
    def target_id(self) -> str | None:
        return self.row.target_id

    @strawberry.field(description="The kind of record and the stage, as the targets name them.")
    def kind(self) -> str | None:
        return self.row.kind

    @strawberry.field
    def stage(self) -> str | None:
        return self.row.stage

    @strawberry.field(description="The overdue record's type: read it with its own query.")
    def record_type(self) -> str | None:
        return self.row.record_type

    @strawberry.field
    def record_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.row.record_id)

    @strawberry.field(description="The organisation that owes the answer.")
    async def owed_by(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.owed_by_code)

    @strawberry.field(description="The organisation waiting for it.")
    async def waiting(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.waiting_code)

    @strawberry.field
    def stage_started_at(self) -> dt.datetime | None:
        return self.row.stage_started_at

    @strawberry.field
    def deadline(self) -> dt.datetime | None:
        return self.row.deadline

    @strawberry.field
    def raised_at(self) -> dt.datetime | None:
        return self.row.raised_at


@strawberry.input
class EscalationFilterInput:
    target: ClassVar[str] = "Escalation"
    tests: ClassVar[Mapping[str, str]] = {
        "target_id": "targetId",
        "raised_from": "raisedAt",
        "raised_to": "raisedAt",
    }
    target_id: str | None = None
    raised_from: dt.datetime | None = None
    raised_to: dt.datetime | None = None

    def where(self) -> EscalationFilter:
        return EscalationFilter(
            target_id=self.target_id,
            raised_from=optional_utc(self.raised_from, field="filter.raisedFrom"),
            raised_to=optional_utc(self.raised_to, field="filter.raisedTo"),
        )


@strawberry.type(description="Escalations raised in a period for one target and two organisations.")
class EscalationFigure:
    target_id: str
    kind: str
    stage: str
    owed_by_code: str = strawberry.field(description="The organisation that owed the answer.")
    waiting_code: str = strawberry.field(description="The organisation that was waiting.")
    raised: int


@strawberry.type
class EscalationQuery:
    @strawberry.field(
        permission_classes=[ReadsSharingFigures],
        description="Escalations raised from `from` to `to` (UK dates), by target and organisation",
    )
    async def escalation_figures(
        self,
        info: Info,
        from_: Annotated[dt.date, strawberry.argument(name="from")],
        to: dt.date,
        force: str | None = None,
        council: str | None = None,
    ) -> list[EscalationFigure] | None:
        check_period(from_, to)
        scope = report_scope(info, force=force, council=council, kind=None)
        start, end = period_bounds(from_, to)
        everyone = scope.force_code is None and scope.council_code is None
        rows = await escalations.figures(
            info.context.session,
            forces=None if everyone else frozenset({scope.force_code} - {None}),  # type: ignore[arg-type]
            councils=None if everyone else frozenset({scope.council_code} - {None}),  # type: ignore[arg-type]
            raised_from=start,
            raised_to=end,
        )
        return [
            EscalationFigure(
                target_id=r.target_id,
                kind=r.kind,
                stage=r.stage,
                owed_by_code=r.owed_by,
                waiting_code=r.waiting,
                raised=r.raised,
            )
            for r in rows
        ]
