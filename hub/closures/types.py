"""GraphQL for closure reviews: what a council said of a closure, and the force's answer."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from hub.audit.models import S62Operation
from hub.closures import figures as figures_
from hub.closures import models, service
from hub.closures.models import (
    ChallengeAnswer,
    ChallengeReason,
    ClosureResponse,
    UpheldReason,
)
from hub.closures.service import Answer, Response
from hub.graphql.context import Info
from hub.investigations.models import InvestigationStatus
from hub.reference.types import Organisation, load_organisation

if TYPE_CHECKING:
    from hub.investigations.types import Investigation, StatusChangeRecord, StatusType

ClosureResponseType = strawberry.enum(ClosureResponse, name="ClosureResponse")
ChallengeReasonType = strawberry.enum(
    ChallengeReason,
    name="ClosureChallengeReason",
    description="Why a council challenges a closure.",
)
ChallengeAnswerType = strawberry.enum(ChallengeAnswer, name="ClosureChallengeAnswer")
UpheldReasonType = strawberry.enum(
    UpheldReason,
    name="ClosureUpheldReason",
    description="Why a force keeps a challenged investigation closed.",
)
_INVESTIGATIONS = "hub.investigations.types"


@strawberry.type(
    description="A council's say on one closure of an investigation about its children: told "
    "when the force closed it; agreed, or challenged and then answered by the force."
)
class ClosureReview:
    row: strawberry.Private[models.ClosureReview]
    id: strawberry.ID

    @classmethod
    def of(cls, row: models.ClosureReview) -> ClosureReview:
        return cls(row=row, id=strawberry.ID(row.id))

    @strawberry.field
    async def investigation(
        self, info: Info
    ) -> Annotated[Investigation, strawberry.lazy(_INVESTIGATIONS)] | None:
        from hub.investigations.types import Investigation  # noqa: PLC0415 - they import these

        return await Investigation.resolve_reference(info, strawberry.ID(self.row.investigation_id))

    @strawberry.field(description="The council asked for its view.")
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.council_code)

    @strawberry.field
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.force_code)

    @strawberry.field(description="The status change that closed the investigation.")
    async def closure(
        self, info: Info
    ) -> Annotated[StatusChangeRecord, strawberry.lazy(_INVESTIGATIONS)] | None:
        return await _transition(info, self.row.closing_transition_id)

    @strawberry.field(description="When the force closed the investigation (its time).")
    def closed_at(self) -> dt.datetime | None:
        return self.row.closed_at

    @strawberry.field(description="When the hub told the council.")
    def requested_at(self) -> dt.datetime | None:
        return self.row.requested_at

    @strawberry.field(description="The council's view; null while it has not answered.")
    def response(self) -> ClosureResponseType | None:  # type: ignore[valid-type]
        return ClosureResponse(self.row.response) if self.row.response else None

    @strawberry.field
    def challenge_reason(self) -> ChallengeReasonType | None:  # type: ignore[valid-type]
        reason = self.row.challenge_reason
        return ChallengeReason(reason) if reason else None

    @strawberry.field(description="What the council said, in its words.")
    def response_text(self) -> str | None:
        return self.row.response_text

    @strawberry.field(description="When the hub received the council's view.")
    def responded_at(self) -> dt.datetime | None:
        return self.row.responded_at

    @strawberry.field(description="Whether a challenge waits for the force's answer.")
    def challenge_open(self) -> bool | None:
        return self.row.response == ClosureResponse.CHALLENGE and self.row.answer is None

    @strawberry.field(description="The force's answer to a challenge.")
    def answer(self) -> ChallengeAnswerType | None:  # type: ignore[valid-type]
        return ChallengeAnswer(self.row.answer) if self.row.answer else None

    @strawberry.field
    def answer_reason(self) -> UpheldReasonType | None:  # type: ignore[valid-type]
        reason = self.row.answer_reason
        return UpheldReason(reason) if reason else None

    @strawberry.field
    def answer_text(self) -> str | None:
        return self.row.answer_text

    @strawberry.field(description="When the force answered (its time).")
    def answered_at(self) -> dt.datetime | None:
        return self.row.answered_at

    @strawberry.field(description="The status change that reopened the investigation.")
    async def reopening(
        self, info: Info
    ) -> Annotated[StatusChangeRecord, strawberry.lazy(_INVESTIGATIONS)] | None:
        return await _transition(info, self.row.reopening_transition_id)


async def _transition(info: Info, transition_id: str | None) -> StatusChangeRecord | None:
    from hub.investigations.types import StatusChangeRecord  # noqa: PLC0415 - they import these

    if transition_id is None:
        return None
    row = await info.context.loaders.transition.load(transition_id)
    return StatusChangeRecord(row=row) if row is not None else None


@strawberry.input
class RespondToInvestigationClosureInput:
    investigation_id: strawberry.ID
    response: ClosureResponseType  # type: ignore[valid-type]
    reason: ChallengeReasonType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="For a challenge (required then)."
    )
    text: str | None = strawberry.field(
        default=None, description="Why: required for a challenge, at most 2000 characters."
    )

    def command(self) -> Response:
        return Response(
            investigation_id=str(self.investigation_id),
            response=ClosureResponse(self.response),
            reason=ChallengeReason(self.reason) if self.reason else None,
            text=self.text,
        )


@strawberry.input
class AnswerClosureChallengeInput:
    challenge_id: strawberry.ID = strawberry.field(description="The challenged ClosureReview.")
    answer: ChallengeAnswerType  # type: ignore[valid-type]
    answered_at: dt.datetime
    text: str = strawberry.field(description="The force's reasons, at most 2000 characters.")
    reason: UpheldReasonType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="For an upheld closure (required then)."
    )
    reopened_status: Annotated[StatusType, strawberry.lazy(_INVESTIGATIONS)] | None = (  # type: ignore[valid-type]
        strawberry.field(default=None, description="For a reopening: OPEN unless given.")
    )

    def command(self) -> Answer:
        return Answer(
            challenge_id=str(self.challenge_id),
            answer=ChallengeAnswer(self.answer),
            answered_at=self.answered_at,
            text=self.text,
            reason=UpheldReason(self.reason) if self.reason else None,
            reopened_status=InvestigationStatus(self.reopened_status or InvestigationStatus.OPEN),
        )


@strawberry.type(
    name="ClosureFigureRow",
    description="One force and council (both null: the total of the rows).",
)
class ClosureFigureRow:
    data: strawberry.Private[figures_.Figures]

    @strawberry.field
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.data.force_code)

    @strawberry.field
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.data.council_code)

    @strawberry.field(description="Closures the council was asked about.")
    def closures(self) -> int | None:
        return self.data.closures

    @strawberry.field(description="Closures with the council's agreement.")
    def agreed(self) -> int | None:
        return self.data.agreed

    @strawberry.field(description="Closures the council challenged (challenges raised).")
    def challenged(self) -> int | None:
        return self.data.challenged

    @strawberry.field(description="Closures the council has not answered yet.")
    def awaiting_response(self) -> int | None:
        return self.data.awaiting_response

    @strawberry.field
    def challenges_answered(self) -> int | None:
        return self.data.challenges_answered

    @strawberry.field(description="Challenges the force has not answered yet.")
    def challenges_open(self) -> int | None:
        return self.data.challenges_open

    @strawberry.field(description="Investigations reopened after a challenge.")
    def reopened_after_challenge(self) -> int | None:
        return self.data.reopened

    @strawberry.field(description="Challenges the force answered by keeping the closure.")
    def upheld(self) -> int | None:
        return self.data.upheld

    @strawberry.field(description="Median hours from a council's challenge to the force's answer.")
    def median_hours_to_answer(self) -> float | None:
        return self.data.median_hours_to_answer


@strawberry.type(
    name="ClosureFigures",
    description="How closures met councils' views, per force and council: figures only.",
)
class ClosureFiguresType:
    data: strawberry.Private[figures_.ClosureFigures]

    @strawberry.field
    def period_from(self) -> dt.date | None:
        return self.data.period_from

    @strawberry.field
    def period_to(self) -> dt.date | None:
        return self.data.period_to

    @strawberry.field
    def rows(self) -> list[ClosureFigureRow] | None:
        return [ClosureFigureRow(data=r) for r in self.data.rows]

    @strawberry.field
    def total(self) -> ClosureFigureRow | None:
        return ClosureFigureRow(data=self.data.total)


@strawberry.type
class ClosureQuery:
    @strawberry.field(
        description="Closures made from `from` to `to` (UTC dates, inclusive) and councils' "
        "views of them: an inspectorate's for all, a force's or council's for its own."
    )
    async def closure_figures(
        self,
        info: Info,
        from_: Annotated[dt.date, strawberry.argument(name="from")],
        to: dt.date,
        force: str | None = None,
        council: str | None = None,
    ) -> ClosureFiguresType | None:
        from hub.timeliness.types import (  # noqa: PLC0415 - its types import records
            check_period,
            report_scope,
        )

        check_period(from_, to)
        scope = report_scope(info, force=force, council=council, kind=None)
        data = await figures_.figures(
            info.context.session,
            period_from=from_,
            period_to=to,
            force_code=scope.force_code,
            council_code=scope.council_code,
        )
        # The figures leave the hub: a disclosure in the audit log, as a sharing report is.
        info.context.served.disclosed(
            info._raw_info,  # noqa: SLF001 - the response path the figures occupy
            {
                "report": "closure figures",
                "period_from": from_.isoformat(),
                "period_to": to.isoformat(),
                "force": scope.force_code,
                "council": scope.council_code,
                "format": "graphql",
            },
        )
        return ClosureFiguresType(data=data)


@strawberry.type
class ClosureMutation:
    @strawberry.mutation(
        description="A council's view of a closure it was told of: AGREE, or CHALLENGE with a "
        "reason and why. Safe to retry; a different view afterwards is a CONFLICT."
    )
    async def respond_to_investigation_closure(
        self,
        info: Info,
        input: RespondToInvestigationClosureInput,  # noqa: A002
    ) -> ClosureReview | None:
        p = info.context.principal
        row, created = await service.respond(
            info.context.session,
            council_code=p.organisation_code,
            scope=info.context.scope,
            client_id=p.client_id,
            given=input.command(),
        )
        if created:
            # Published to the outbox with the request: the force (and the council) are told.
            info.context.served.changed("ClosureReview", row.id, S62Operation.ALTERATION)
        return ClosureReview.of(row)

    @strawberry.mutation(
        description="A force's answer to a council's challenge: REOPENED (a status change back "
        "to an open status, linked to the challenge) or UPHELD with a reason. Safe to retry."
    )
    async def answer_closure_challenge(
        self,
        info: Info,
        input: AnswerClosureChallengeInput,  # noqa: A002
    ) -> ClosureReview | None:
        p = info.context.principal
        row, reopening, created = await service.answer(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            given=input.command(),
        )
        if created:
            info.context.served.changed("ClosureReview", row.id, S62Operation.ALTERATION)
        if reopening is not None:
            info.context.served.changed(
                "Investigation", row.investigation_id, S62Operation.ALTERATION
            )
        return ClosureReview.of(row)
