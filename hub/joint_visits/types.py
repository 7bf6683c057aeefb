from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

import strawberry

from hub.children.types import Child, load_child
from hub.graphql.context import Info
from hub.graphql.entity import CouncilRecord
from hub.joint_visits import models
from hub.joint_visits.models import (
    JointVisitKind,
    JointVisitOutcome,
    JointVisitResponse,
    OfficerRole,
    UnavailableReason,
    Urgency,
)
from hub.joint_visits.service import JointVisitFilter, VisitAnswer, VisitOutcome, VisitRequest
from hub.reference.types import Organisation, load_organisation
from hub.validation import optional_utc

KindType = strawberry.enum(
    JointVisitKind,
    name="JointVisitKind",
    description="A joint visit, or a joint Achieving Best Evidence (ABE) interview.",
)
UrgencyType = strawberry.enum(Urgency, name="JointVisitUrgency")
ResponseType = strawberry.enum(JointVisitResponse, name="JointVisitResponse")
ReasonType = strawberry.enum(
    UnavailableReason,
    name="JointVisitUnavailableReason",
    description="Why the force cannot meet the request.",
)
# Named for this record: the meetings' attendee roles share the values under their own name.
OfficerRoleType = strawberry.enum(
    OfficerRole, name="JointVisitOfficerRole", description="The assigned officer's rank or role."
)
OutcomeType = strawberry.enum(JointVisitOutcome, name="JointVisitOutcome")


@strawberry.federation.type(keys=["id"], name="JointVisitRequest", authenticated=True)
class JointVisitRequest(CouncilRecord):
    """A council's request for a joint visit or ABE interview, the force's answer, the outcome."""

    loader = "joint_visit_request"
    row: strawberry.Private[models.JointVisitRequest]
    id: strawberry.ID

    @strawberry.field(description="The force asked.")
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.force_code)

    @strawberry.field
    async def child(self, info: Info) -> Child | None:
        return await load_child(info, self.row.child_id)

    @strawberry.field
    def kind(self) -> KindType | None:  # type: ignore[valid-type]
        return JointVisitKind(self.row.kind)

    @strawberry.field
    def urgency(self) -> UrgencyType | None:  # type: ignore[valid-type]
        return Urgency(self.row.urgency)

    @strawberry.field(description="When the council needs the officer by.")
    def needed_by(self) -> dt.datetime | None:
        return self.row.needed_by

    @strawberry.field(description="When the council's system recorded the request.")
    def recorded_at(self) -> dt.datetime | None:
        return self.row.recorded_at

    @strawberry.field(description="The force's answer; null until it answers.")
    def response(self) -> ResponseType | None:  # type: ignore[valid-type]
        return JointVisitResponse(self.row.response) if self.row.response else None

    @strawberry.field(description="Why no officer is available (NOT_AVAILABLE only).")
    def response_reason(self) -> ReasonType | None:  # type: ignore[valid-type]
        reason = self.row.response_reason
        return UnavailableReason(reason) if reason else None

    @strawberry.field(description="The assigned officer's rank or role (OFFICER_ASSIGNED only).")
    def officer_role(self) -> OfficerRoleType | None:  # type: ignore[valid-type]
        return OfficerRole(self.row.officer_role) if self.row.officer_role else None

    @strawberry.field
    def responded_at(self) -> dt.datetime | None:
        return self.row.responded_at

    @strawberry.field(description="What happened, as the council recorded it; null until then.")
    def outcome(self) -> OutcomeType | None:  # type: ignore[valid-type]
        return JointVisitOutcome(self.row.outcome) if self.row.outcome else None

    @strawberry.field(description="When the visit was held, or cancelled.")
    def outcome_at(self) -> dt.datetime | None:
        return self.row.outcome_at


@strawberry.input
class RequestJointVisitInput:
    council_reference: str = strawberry.field(description="The council's own case reference.")
    child_id: strawberry.ID = strawberry.field(description="The hub's id of a child you can see.")
    force: str = strawberry.field(description="Code of the force asked.")
    kind: KindType  # type: ignore[valid-type]
    urgency: UrgencyType  # type: ignore[valid-type]
    needed_by: dt.datetime
    recorded_at: dt.datetime
    idempotency_key: str | None = None

    def command(self) -> VisitRequest:
        return VisitRequest(
            council_reference=self.council_reference,
            child_id=str(self.child_id),
            force=self.force,
            kind=JointVisitKind(self.kind),
            urgency=Urgency(self.urgency),
            needed_by=self.needed_by,
            recorded_at=self.recorded_at,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class RespondToJointVisitRequestInput:
    request_id: strawberry.ID
    response: ResponseType  # type: ignore[valid-type]
    responded_at: dt.datetime
    officer_role: OfficerRoleType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Needed with OFFICER_ASSIGNED."
    )
    reason: ReasonType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Needed with NOT_AVAILABLE."
    )

    def command(self) -> VisitAnswer:
        return VisitAnswer(
            request_id=str(self.request_id),
            response=JointVisitResponse(self.response),
            responded_at=self.responded_at,
            officer_role=OfficerRole(self.officer_role) if self.officer_role else None,
            reason=UnavailableReason(self.reason) if self.reason else None,
        )


@strawberry.input
class RecordJointVisitInput:
    request_id: strawberry.ID
    outcome: OutcomeType  # type: ignore[valid-type]
    at: dt.datetime = strawberry.field(description="When it was held, or cancelled.")

    def command(self) -> VisitOutcome:
        return VisitOutcome(
            request_id=str(self.request_id), outcome=JointVisitOutcome(self.outcome), at=self.at
        )


@strawberry.input
class JointVisitRequestFilterInput:
    target: ClassVar[str] = "JointVisitRequest"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "child",
        "requested_from": "recordedAt",
        "requested_to": "recordedAt",
        "kinds": "kind",
        "urgencies": "urgency",
        "responses": "response",
        "outcomes": "outcome",
        "answered": "response",
    }
    child_id: strawberry.ID | None = None
    requested_from: dt.datetime | None = None
    requested_to: dt.datetime | None = None
    kinds: list[KindType] | None = None  # type: ignore[valid-type]
    urgencies: list[UrgencyType] | None = None  # type: ignore[valid-type]
    responses: list[ResponseType] | None = None  # type: ignore[valid-type]
    outcomes: list[OutcomeType] | None = None  # type: ignore[valid-type]
    answered: bool | None = strawberry.field(
        default=None, description="true: answered by the force; false: still waiting."
    )

    def where(self) -> JointVisitFilter:
        return JointVisitFilter(
            child_id=str(self.child_id) if self.child_id else None,
            requested_from=optional_utc(self.requested_from, field="filter.requestedFrom"),
            requested_to=optional_utc(self.requested_to, field="filter.requestedTo"),
            kinds=tuple(JointVisitKind(k) for k in self.kinds or ()),
            urgencies=tuple(Urgency(u) for u in self.urgencies or ()),
            responses=tuple(JointVisitResponse(r) for r in self.responses or ()),
            outcomes=tuple(JointVisitOutcome(o) for o in self.outcomes or ()),
            answered=self.answered,
        )
