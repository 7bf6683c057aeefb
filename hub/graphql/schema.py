"""The hub's Federation 2 subgraph: police push, councils read, every field typed and scoped."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig

import hub.record_kinds  # noqa: F401 - the timelines and reports measure every kind
from hub.access.policy import PurposeOfAccess
from hub.access.scope import RowScope
from hub.audit.models import S62Operation
from hub.audit.types import AuditQuery
from hub.changes.types import Subscription
from hub.children.types import Child
from hub.closures.types import ClosureMutation, ClosureQuery
from hub.errors import InvalidInput
from hub.escalation import service as escalation_service
from hub.escalation.types import Escalation, EscalationFilterInput, EscalationQuery
from hub.graphql.compiled import written_spec
from hub.graphql.connection import Connection
from hub.graphql.context import Info
from hub.graphql.documents import CachedDocuments, DocumentLimits, ValidDocuments
from hub.graphql.executor import HubExecutor
from hub.graphql.extensions import (
    ErrorCodes,
    ErrorCodesWithoutSuggestions,
    RequestTransaction,
    UnauditedTransaction,
)
from hub.graphql.federation import HubSchema
from hub.graphql.filters import GuardedFilter, checked
from hub.graphql.input_plans import plan_inputs
from hub.graphql.inputs import InputText
from hub.graphql.resolvers import lean_resolvers
from hub.graphql.scalars import OVERRIDES
from hub.graphql.transport import SubscriptionsOverWebSocket
from hub.incidents import batch as incident_batch
from hub.incidents import service as incidents
from hub.incidents.types import Incident, IncidentFilterInput, ReportIncidentInput
from hub.investigations import service as investigations
from hub.investigations.types import (
    Investigation,
    InvestigationFilterInput,
    UpdateInvestigationStatusInput,
)
from hub.joint_visits import service as joint_visits
from hub.joint_visits.types import (
    JointVisitRequest,
    JointVisitRequestFilterInput,
    RecordJointVisitInput,
    RequestJointVisitInput,
    RespondToJointVisitRequestInput,
)
from hub.meetings import service as meetings
from hub.meetings.types import Meeting, MeetingFilterInput, MeetingMutation
from hub.missing import service as missing
from hub.missing.types import (
    MissingEpisode,
    MissingEpisodeFilterInput,
    RecordMissingEpisodeInput,
    UpdateMissingEpisodeInput,
)
from hub.pagination import Page
from hub.protection import service as protection
from hub.protection.types import (
    PoliceProtection,
    PoliceProtectionFilterInput,
    RecordPoliceProtectionInput,
)
from hub.reference import service as reference
from hub.reference.models import OrganisationKind
from hub.reference.types import Organisation, OrganisationKindType, load_organisation
from hub.settings import Settings

if TYPE_CHECKING:
    from graphql.validation import ASTValidationRule
from hub.telemetry import OperationTracing
from hub.timeliness.types import TimelinessMutation, TimelinessQuery, note_shared
from hub.vetting.types import VettingMutation, VettingQuery
from hub.webhooks.types import WebhookMutation, WebhookQuery

WhereT = TypeVar("WhereT")
WhereT_contra = TypeVar("WhereT_contra", contravariant=True)
RowT = TypeVar("RowT")
NodeT = TypeVar("NodeT")


class RecordList(Protocol[WhereT_contra, RowT]):
    """A service's `list_`: a page of the records in the caller's scope that match the filter."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        scope: RowScope,
        where: WhereT_contra,
        first: int,
        after: str | None,
    ) -> Page[RowT]: ...


async def _connection(
    info: Info,
    list_: RecordList[WhereT, RowT],
    given: GuardedFilter[WhereT],
    node: Callable[[RowT], NodeT],
    *,
    first: int | None,
    after: str | None,
    prefetch: Callable[[Info, list[RowT]], Awaitable[None]] | None = None,
) -> Connection[NodeT]:
    """A root list field: the filter checked against the caller's view, then one page of it.

    Its cursors are bound to the field (`incidents`, ...): a cursor is useless on another list.
    `prefetch` loads what the page's items will ask for before they are completed.
    """
    cursors = info.context.cursors(info.field_name)
    page = await list_(
        info.context.session,
        scope=info.context.scope,
        where=checked(info, given),
        first=info.context.page_size(first),
        after=cursors.open(after),
    )
    if prefetch is not None and page.items:
        await prefetch(info, page.items)
    return Connection[NodeT].of(page, node, cursors)


@strawberry.type(description="Who the hub takes the caller to be, from the token and headers.")
class Viewer:
    client_id: str
    role: str
    on_behalf_of: str | None
    purpose: str | None
    agreement_version: str = strawberry.field(
        description="The version of the sharing agreement this request is served under."
    )
    organisation_code: strawberry.Private[str]

    @strawberry.field
    async def organisation(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.organisation_code)


@strawberry.type
class Query(AuditQuery, TimelinessQuery, EscalationQuery, VettingQuery, ClosureQuery, WebhookQuery):
    @strawberry.field
    def viewer(self, info: Info) -> Viewer:
        p = info.context.principal
        return Viewer(
            client_id=p.client_id,
            role=p.role,
            on_behalf_of=p.user,
            purpose=p.purpose,
            agreement_version=info.context.hub.agreement.version,
            organisation_code=p.organisation_code,
        )

    @strawberry.field(description="Reference data: forces, councils and the other organisations.")
    async def organisations(
        self,
        info: Info,
        kind: OrganisationKindType | None = None,  # type: ignore[valid-type]
    ) -> list[Organisation] | None:
        rows = await reference.list_(
            info.context.session, kind=OrganisationKind(kind) if kind else None
        )
        return [Organisation.of(r) for r in rows]

    @strawberry.field
    async def incidents(
        self,
        info: Info,
        filter: IncidentFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Incident] | None:
        given = filter or IncidentFilterInput()
        spec = written_spec(info)
        if spec is not None:
            # Each incident as its selection's JSON, written by the database (`compiled`).
            every_child = info.context.scope.sees_every_incident_child
            return await _connection(
                info,
                functools.partial(incidents.list_, served=spec),
                given,
                lambda row: Incident.written(row, spec, every_child=every_child),
                first=first,
                after=after,
            )
        return await _connection(
            info,
            functools.partial(incidents.list_, involved=Incident.carries_children(info)),
            given,
            Incident.of,
            first=first,
            after=after,
            prefetch=Incident.prefetch,
        )

    @strawberry.field
    async def missing_episodes(
        self,
        info: Info,
        filter: MissingEpisodeFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[MissingEpisode] | None:
        given = filter or MissingEpisodeFilterInput()
        return await _connection(
            info,
            missing.list_,
            given,
            MissingEpisode.of,
            first=first,
            after=after,
            prefetch=MissingEpisode.prefetch,
        )

    @strawberry.field
    async def investigations(
        self,
        info: Info,
        filter: InvestigationFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Investigation] | None:
        given = filter or InvestigationFilterInput()
        return await _connection(
            info, investigations.list_, given, Investigation.of, first=first, after=after
        )

    @strawberry.field(
        description="Escalations the caller's organisation owes an answer to or is waiting on."
    )
    async def escalations(
        self,
        info: Info,
        filter: EscalationFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Escalation] | None:
        given = filter or EscalationFilterInput()
        return await _connection(
            info, escalation_service.list_, given, Escalation.of, first=first, after=after
        )

    @strawberry.field(
        description="Strategy discussions and child protection conferences in the caller's "
        "view, by when they are scheduled, newest first."
    )
    async def meetings(
        self,
        info: Info,
        filter: MeetingFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Meeting] | None:
        given = filter or MeetingFilterInput()
        return await _connection(info, meetings.list_, given, Meeting.of, first=first, after=after)

    @strawberry.field(
        description="Joint visit and ABE interview requests: a council's own and those about its "
        "children; a force's, those made to it."
    )
    async def joint_visit_requests(
        self,
        info: Info,
        filter: JointVisitRequestFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[JointVisitRequest] | None:
        given = filter or JointVisitRequestFilterInput()
        return await _connection(
            info, joint_visits.list_, given, JointVisitRequest.of, first=first, after=after
        )

    @strawberry.field(description="Police protections (Children Act 1989 s.46), newest first.")
    async def police_protections(
        self,
        info: Info,
        filter: PoliceProtectionFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[PoliceProtection] | None:
        given = filter or PoliceProtectionFilterInput()
        return await _connection(
            info, protection.list_, given, PoliceProtection.of, first=first, after=after
        )

    @strawberry.field
    async def child(self, info: Info, id: strawberry.ID) -> Child | None:  # noqa: A002
        return await Child.resolve_reference(info, id)

    @strawberry.field
    async def incident(self, info: Info, id: strawberry.ID) -> Incident | None:  # noqa: A002
        return await Incident.resolve_reference(info, id)

    @strawberry.field
    async def missing_episode(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
    ) -> MissingEpisode | None:
        return await MissingEpisode.resolve_reference(info, id)

    @strawberry.field
    async def investigation(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
    ) -> Investigation | None:
        return await Investigation.resolve_reference(info, id)

    @strawberry.field
    async def meeting(self, info: Info, id: strawberry.ID) -> Meeting | None:  # noqa: A002
        return await Meeting.resolve_reference(info, id)

    @strawberry.field
    async def joint_visit_request(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
    ) -> JointVisitRequest | None:
        return await JointVisitRequest.resolve_reference(info, id)

    @strawberry.field
    async def police_protection(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002
    ) -> PoliceProtection | None:
        return await PoliceProtection.resolve_reference(info, id)


async def _incidents_pushed(info: Info, reported: incident_batch.Reported) -> None:
    """What pushed incidents tell the audit and the metrics, for those the push created."""
    # The organisations the push's checks read: the metrics and the response read them again.
    info.context.loaders.organisation.prime_many(reported.organisations)
    served = info.context.served
    for stored in reported.records:
        if not stored.created:
            continue
        row = stored.record
        served.changed("Incident", row.id, S62Operation.COLLECTION)
        if stored.child_ids is not None:
            served.created_with("Incident", row.id, stored.child_ids)
        await note_shared(info, "Incident", row)


@strawberry.type
class Mutation(
    TimelinessMutation, VettingMutation, ClosureMutation, MeetingMutation, WebhookMutation
):
    @strawberry.mutation(
        description="Push an incident the moment it is recorded. Safe to retry.",
    )
    async def report_incident(self, info: Info, input: ReportIncidentInput) -> Incident | None:  # noqa: A002
        p = info.context.principal
        reported = await incident_batch.report_one(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            report=input.command(),
        )
        await _incidents_pushed(info, reported)
        (stored,) = reported.records
        return Incident.of(stored.record)

    @strawberry.mutation(
        description=(
            "Push many incidents at once (a force loading its history), all or none: a record "
            "that fails its checks is named (`input.3.occurredAt`) and nothing is stored. Each "
            "record is idempotent as in reportIncident, so a retried batch stores nothing new. "
            "At most `HUB_MAX_PUSH_BATCH` records (200 by default)."
        ),
    )
    async def report_incidents(
        self,
        info: Info,
        input: list[ReportIncidentInput],  # noqa: A002
    ) -> list[Incident] | None:
        limit = info.context.hub.settings.max_push_batch
        if not 0 < len(input) <= limit:
            msg = f"input must hold from 1 to {limit} incidents"
            raise InvalidInput(msg, field="input")
        p = info.context.principal
        reported = await incident_batch.report_many(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            reports=[given.command() for given in input],
        )
        await _incidents_pushed(info, reported)
        return [Incident.of(each.record) for each in reported.records]

    @strawberry.mutation(
        description="Push a missing-child episode the moment it is reported. Safe to retry.",
    )
    async def record_missing_episode(
        self,
        info: Info,
        input: RecordMissingEpisodeInput,  # noqa: A002
    ) -> MissingEpisode | None:
        p = info.context.principal
        row, created = await missing.record(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            episode=input.command(),
        )
        if created:
            info.context.served.changed("MissingEpisode", row.id, S62Operation.COLLECTION)
            await note_shared(info, "MissingEpisode", row)
        return MissingEpisode.of(row)

    @strawberry.mutation(
        description="Mark a missing child found or returned. Safe to retry.",
    )
    async def update_missing_episode(
        self,
        info: Info,
        input: UpdateMissingEpisodeInput,  # noqa: A002
    ) -> MissingEpisode | None:
        row, changed = await missing.update(
            info.context.session,
            force_code=info.context.principal.organisation_code,
            change=input.command(),
        )
        if changed:
            info.context.served.changed("MissingEpisode", row.id, S62Operation.ALTERATION)
        return MissingEpisode.of(row)

    @strawberry.mutation(
        description="Open an investigation or change its status, with the reason. Safe to retry.",
    )
    async def update_investigation_status(
        self,
        info: Info,
        input: UpdateInvestigationStatusInput,  # noqa: A002
    ) -> Investigation | None:
        p = info.context.principal
        row, changed, opened, reviews = await investigations.update_status(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            change=input.command(),
        )
        if changed:
            operation = S62Operation.COLLECTION if opened else S62Operation.ALTERATION
            info.context.served.changed("Investigation", row.id, operation)
        for review in reviews:
            # A closure: each council of its children is told through the outbox, at commit.
            info.context.served.changed("ClosureReview", review.id, S62Operation.COLLECTION)
        return Investigation.of(row)

    @strawberry.mutation(
        description="A council asks a force for a joint visit or ABE interview. Safe to retry.",
    )
    async def request_joint_visit(
        self,
        info: Info,
        input: RequestJointVisitInput,  # noqa: A002
    ) -> JointVisitRequest | None:
        row, created = await joint_visits.request(
            info.context.session,
            council_code=info.context.principal.organisation_code,
            scope=info.context.scope,
            visit=input.command(),
        )
        if created:
            info.context.served.changed("JointVisitRequest", row.id, S62Operation.COLLECTION)
        return JointVisitRequest.of(row)

    @strawberry.mutation(
        description="The force answers a joint visit request made to it: an officer assigned "
        "(with rank or role), or not available (with the reason). Safe to retry.",
    )
    async def respond_to_joint_visit_request(
        self,
        info: Info,
        input: RespondToJointVisitRequestInput,  # noqa: A002
    ) -> JointVisitRequest | None:
        row, changed = await joint_visits.respond(
            info.context.session,
            force_code=info.context.principal.organisation_code,
            answer=input.command(),
        )
        if changed:
            info.context.served.changed("JointVisitRequest", row.id, S62Operation.ALTERATION)
        return JointVisitRequest.of(row)

    @strawberry.mutation(
        description="The council records what became of its joint visit request: held jointly, "
        "by the social worker alone, or cancelled. Safe to retry.",
    )
    async def record_joint_visit(
        self,
        info: Info,
        input: RecordJointVisitInput,  # noqa: A002
    ) -> JointVisitRequest | None:
        row, changed = await joint_visits.record_outcome(
            info.context.session,
            council_code=info.context.principal.organisation_code,
            outcome=input.command(),
        )
        if changed:
            info.context.served.changed("JointVisitRequest", row.id, S62Operation.ALTERATION)
        return JointVisitRequest.of(row)

    @strawberry.mutation(
        description="Push a police protection (Children Act 1989 s.46) the moment it is "
        "recorded. Safe to retry.",
    )
    async def record_police_protection(
        self,
        info: Info,
        input: RecordPoliceProtectionInput,  # noqa: A002
    ) -> PoliceProtection | None:
        p = info.context.principal
        row, created = await protection.record(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            report=input.command(),
        )
        if created:
            info.context.served.changed("PoliceProtection", row.id, S62Operation.COLLECTION)
        return PoliceProtection.of(row)


MAX_ALIASES = 15  # a document's aliases: enough for any real screen, few enough to bound one


def query_limits(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """The served schema's validation rules for a document's depth and aliases."""
    return DocumentLimits.rules_for(max_depth=settings.max_query_depth, max_aliases=MAX_ALIASES)


def build_schema(
    settings: Settings, *, enforce_agreement: bool = True, audit: bool = True
) -> HubSchema:
    """The served schema: the agreement enforced and every response audited.

    Turning either off is for the benchmarks' side-by-side baselines only; the app never does.
    In production the schema names itself only to the gateway, and not in its errors either.
    """
    gate: list[type[SchemaExtension]] = [PurposeOfAccess] if enforce_agreement else []
    if audit and not enforce_agreement:
        msg = "an audited schema needs the agreement enforced: the audit is of what it released"
        raise ValueError(msg)
    documents = ValidDocuments()  # this schema's: its validation rules are fixed below
    limits = query_limits(settings)
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        ErrorCodesWithoutSuggestions if settings.is_production else ErrorCodes,
        lambda: CachedDocuments(documents),
        OperationTracing,
        *gate,
        lambda: DocumentLimits(limits, max_tokens=2000),
        InputText,
        SubscriptionsOverWebSocket,  # before the transaction: a refused one opens none
        RequestTransaction if audit else UnauditedTransaction,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    schema = HubSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Organisation, Child],
        extensions=extensions,
        federation_version="2.9",
        scalar_overrides=OVERRIDES,
        config=StrawberryConfig(auto_camel_case=True),
        # The agreement's field gate and the audit's noting, per selection; it also replays
        # what a subscriber's group resolved and audited (`hub.changes.fanout`).
        execution_context_class=HubExecutor.for_schema(
            gates=enforce_agreement,
            notes_served=audit,
            contract=enforce_agreement and settings.is_production,
        ),
    )
    lean_resolvers(schema._schema, schema.config.info_class)  # noqa: SLF001 - its fields' resolvers
    plan_inputs(schema._schema)  # noqa: SLF001 - its input types' conversion
    return schema


def export_sdl() -> str:
    """The subgraph's SDL as a gateway sees it (with federation directives), ending in a newline."""
    return build_schema(Settings()).as_str().rstrip() + "\n"
