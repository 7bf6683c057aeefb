from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

import strawberry

from hub.children.types import Child, ChildInput
from hub.closures.models import CLOSED_STATUSES
from hub.closures.types import ClosureReview
from hub.graphql.context import Info
from hub.graphql.entity import PoliceRecord
from hub.incidents.types import Incident
from hub.investigations import models
from hub.investigations.models import InvestigationStatus
from hub.investigations.service import InvestigationFilter, StatusChange
from hub.validation import optional_utc

StatusType = strawberry.enum(InvestigationStatus, name="InvestigationStatus")


@strawberry.type
class StatusChangeRecord:
    """One transition in an investigation's history."""

    row: strawberry.Private[models.InvestigationTransition]

    @strawberry.field
    def from_status(self) -> StatusType | None:  # type: ignore[valid-type]
        return InvestigationStatus(self.row.from_status) if self.row.from_status else None

    @strawberry.field
    def to_status(self) -> StatusType | None:  # type: ignore[valid-type]
        return InvestigationStatus(self.row.to_status)

    @strawberry.field
    def changed_at(self) -> dt.datetime | None:
        return self.row.changed_at

    @strawberry.field
    def reason(self) -> str | None:
        return self.row.reason

    @strawberry.field(description="When the hub received the change.")
    def shared_at(self) -> dt.datetime | None:
        return self.row.shared_at

    @strawberry.field(
        description="The councils' challenges this reopening answered (those in your view)."
    )
    async def reopened_after(self, info: Info) -> list[ClosureReview] | None:
        rows = await info.context.loaders.transition_challenges.load(self.row.id)
        return [ClosureReview.of(r) for r in rows]


@strawberry.federation.type(keys=["id"], name="Investigation", authenticated=True)
class Investigation(PoliceRecord):
    loader = "investigation"
    row: strawberry.Private[models.Investigation]
    id: strawberry.ID

    @strawberry.field
    def status(self) -> StatusType | None:  # type: ignore[valid-type]
        return InvestigationStatus(self.row.status)

    @strawberry.field
    def status_changed_at(self) -> dt.datetime | None:
        return self.row.status_changed_at

    @strawberry.field(description="Every status change, oldest first, each with its reason.")
    async def history(self, info: Info) -> list[StatusChangeRecord] | None:
        rows = await info.context.loaders.investigation_history.load(self.row.id)
        return [StatusChangeRecord(row=r) for r in rows]

    @strawberry.field(
        description="While the investigation is closed: the status change that closed it."
    )
    async def closure_decision(self, info: Info) -> StatusChangeRecord | None:
        if self.row.status not in CLOSED_STATUSES:
            return None
        rows = await info.context.loaders.investigation_history.load(self.row.id)
        closing = None
        for row in reversed(rows):
            if row.to_status not in CLOSED_STATUSES:
                break
            closing = row
        return StatusChangeRecord(row=closing) if closing is not None else None

    @strawberry.field(
        description="Councils' views on its closures, oldest first: a force sees every "
        "council's, a council its own."
    )
    async def closure_reviews(self, info: Info) -> list[ClosureReview] | None:
        rows = await info.context.loaders.investigation_closure_reviews.load(self.row.id)
        return [ClosureReview.of(r) for r in rows]

    @strawberry.field
    async def incidents(self, info: Info) -> list[Incident] | None:
        rows = await info.context.loaders.investigation_incidents.load(self.row.id)
        return [Incident.of(r) for r in rows]

    @strawberry.field
    async def children(self, info: Info) -> list[Child] | None:
        rows = await info.context.loaders.investigation_children.load(self.row.id)
        return [Child.of(r) for r in rows]


@strawberry.input
class UpdateInvestigationStatusInput:
    police_reference: str
    status: StatusType  # type: ignore[valid-type]
    changed_at: dt.datetime
    reason: str
    incident_references: list[str] | None = strawberry.field(
        default=None, description="Police references of this force's incidents to link."
    )
    children: list[ChildInput] | None = None
    idempotency_key: str | None = None

    def command(self) -> StatusChange:
        return StatusChange(
            police_reference=self.police_reference,
            status=InvestigationStatus(self.status),
            changed_at=self.changed_at,
            reason=self.reason,
            incident_references=tuple(self.incident_references or ()),
            children=tuple(c.details() for c in self.children or ()),
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class InvestigationFilterInput:
    target: ClassVar[str] = "Investigation"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "children",
        "changed_from": "statusChangedAt",
        "changed_to": "statusChangedAt",
        "statuses": "status",
    }
    child_id: strawberry.ID | None = None
    changed_from: dt.datetime | None = None
    changed_to: dt.datetime | None = None
    statuses: list[StatusType] | None = None  # type: ignore[valid-type]

    def where(self) -> InvestigationFilter:
        return InvestigationFilter(
            child_id=str(self.child_id) if self.child_id else None,
            changed_from=optional_utc(self.changed_from, field="filter.changedFrom"),
            changed_to=optional_utc(self.changed_to, field="filter.changedTo"),
            statuses=tuple(InvestigationStatus(s) for s in self.statuses or ()),
        )
