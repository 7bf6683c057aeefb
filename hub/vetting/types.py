"""Vetting checks in GraphQL: a council requests, a force completes, both read, with figures.

The agreement governs every type here (auth/agreement.toml); every field is nullable so that a
field outside a role's view comes back null with FORBIDDEN_FIELD. Each check served is audited
as a `VettingCheck` record (hub/graphql/audit_trail.py); the figures are a disclosure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, ClassVar, Self

import strawberry

from hub.access.agreement import AuditRows, RowKind
from hub.audit.models import S62Operation
from hub.db import utcnow
from hub.errors import Forbidden
from hub.graphql.connection import Connection
from hub.graphql.context import Info
from hub.graphql.filters import checked
from hub.reference.types import Organisation, load_organisation
from hub.timeliness.calendar import LONDON
from hub.timeliness.extract import all_targets_for
from hub.timeliness.report_types import ReportTarget
from hub.validation import optional_utc
from hub.vetting import figures as vetting_figures
from hub.vetting import models, service
from hub.vetting.models import VettingOutcome, VettingPurpose, VettingStatus
from hub.vetting.service import Applicant, VettingCompletion, VettingFilter, VettingRequest

VettingPurposeType = strawberry.enum(
    VettingPurpose, name="VettingPurpose", description="Why the council asks for the check."
)
VettingStatusType = strawberry.enum(VettingStatus, name="VettingStatus")
VettingOutcomeType = strawberry.enum(
    VettingOutcome,
    name="VettingOutcome",
    description="The outcome's category only: what is held goes through the force's secure "
    "channel, never through the hub.",
)
RECORD_TYPE = "VettingCheck"


@strawberry.type(description="The person a check is about, with only what the check needs.")
class VettingApplicant:
    row: strawberry.Private[models.VettingCheck]

    @strawberry.field(description="The council's own reference for the applicant.")
    def reference(self) -> str | None:
        return self.row.applicant_reference

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
    def postcode(self) -> str | None:
        return self.row.postcode

    @strawberry.field
    def previous_postcodes(self) -> list[str] | None:
        return self.row.previous_postcodes.split(",") if self.row.previous_postcodes else []


@strawberry.type(
    name="VettingCheck",
    description="A council's request for a police check on a prospective carer or adopter.",
)
class VettingCheck:
    row: strawberry.Private[models.VettingCheck]
    id: strawberry.ID

    @classmethod
    def of(cls, row: models.VettingCheck) -> Self:
        return cls(row=row, id=strawberry.ID(row.id))

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Self | None:  # noqa: A002
        """The check if the caller's rows reach it (the changes feed delivers it so)."""
        row = await service.get(info.context.session, scope=info.context.scope, check_id=str(id))
        return None if row is None else cls.of(row)

    @strawberry.field(description="The council that asked.")
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.council_code)

    @strawberry.field(description="The council's own reference for the request.")
    def council_reference(self) -> str | None:
        return self.row.council_reference

    @strawberry.field(description="The force asked.")
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.force_code)

    @strawberry.field
    def purpose(self) -> VettingPurposeType | None:  # type: ignore[valid-type]
        return VettingPurpose(self.row.purpose)

    @strawberry.field
    def applicant(self) -> VettingApplicant | None:
        return VettingApplicant(row=self.row)

    @strawberry.field(description="When the council made the request.")
    def requested_at(self) -> dt.datetime | None:
        return self.row.requested_at

    @strawberry.field(description="When the hub received it (set by the hub).")
    def shared_at(self) -> dt.datetime | None:
        return self.row.shared_at

    @strawberry.field
    def status(self) -> VettingStatusType | None:  # type: ignore[valid-type]
        return VettingStatus(self.row.status)

    @strawberry.field(description="Null while the check is open.")
    def outcome(self) -> VettingOutcomeType | None:  # type: ignore[valid-type]
        return VettingOutcome(self.row.outcome) if self.row.outcome else None

    @strawberry.field(description="When the force completed the check; null while open.")
    def completed_at(self) -> dt.datetime | None:
        return self.row.completed_at


@strawberry.input
class VettingApplicantInput:
    reference: str = strawberry.field(description="The council's own reference for the person.")
    given_name: str
    family_name: str
    date_of_birth: dt.date
    postcode: str = strawberry.field(description="Current address postcode.")
    previous_postcodes: list[str] | None = strawberry.field(
        default=None, description="Earlier addresses' postcodes, at most 10."
    )

    def details(self) -> Applicant:
        return Applicant(
            reference=self.reference,
            given_name=self.given_name,
            family_name=self.family_name,
            date_of_birth=self.date_of_birth,
            postcode=self.postcode,
            previous_postcodes=tuple(self.previous_postcodes or ()),
        )


@strawberry.input
class RequestVettingCheckInput:
    council_reference: str = strawberry.field(description="The council's own reference.")
    applicant: VettingApplicantInput
    purpose: VettingPurposeType  # type: ignore[valid-type]
    force: str = strawberry.field(description="Code of the force asked.")
    requested_at: dt.datetime
    idempotency_key: str | None = None

    def command(self) -> VettingRequest:
        return VettingRequest(
            council_reference=self.council_reference,
            applicant=self.applicant.details(),
            purpose=VettingPurpose(self.purpose),
            force=self.force,
            requested_at=self.requested_at,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class CompleteVettingCheckInput:
    id: strawberry.ID = strawberry.field(description="The check's id, as the hub gave it.")
    outcome: VettingOutcomeType  # type: ignore[valid-type]
    completed_at: dt.datetime

    def command(self) -> VettingCompletion:
        return VettingCompletion(
            check_id=str(self.id),
            outcome=VettingOutcome(self.outcome),
            completed_at=self.completed_at,
        )


@strawberry.input
class VettingCheckFilterInput:
    target: ClassVar[str] = RECORD_TYPE
    tests: ClassVar[Mapping[str, str]] = {
        "statuses": "status",
        "purposes": "purpose",
        "requested_from": "requestedAt",
        "requested_to": "requestedAt",
    }
    statuses: list[VettingStatusType] | None = None  # type: ignore[valid-type]
    purposes: list[VettingPurposeType] | None = None  # type: ignore[valid-type]
    requested_from: dt.datetime | None = None
    requested_to: dt.datetime | None = None

    def where(self) -> VettingFilter:
        return VettingFilter(
            statuses=tuple(VettingStatus(s) for s in self.statuses or ()),
            purposes=tuple(VettingPurpose(p) for p in self.purposes or ()),
            requested_from=optional_utc(self.requested_from, field="filter.requestedFrom"),
            requested_to=optional_utc(self.requested_to, field="filter.requestedTo"),
        )


@strawberry.type(description="One force's or one council's vetting checks.")
class VettingGroupFigures:
    row: strawberry.Private[vetting_figures.GroupFigures]

    @strawberry.field
    async def organisation(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.organisation_code)

    @strawberry.field(description="Checks open now.")
    def open(self) -> int | None:
        return self.row.open

    @strawberry.field(description="Checks completed in the period.")
    def completed(self) -> int | None:
        return self.row.completed

    @strawberry.field(description="Median age of the open checks, in days since the request.")
    def open_median_age_days(self) -> float | None:
        return self.row.open_median_age_days

    @strawberry.field(description="Age of the oldest open check, in days since the request.")
    def open_oldest_age_days(self) -> float | None:
        return self.row.open_oldest_age_days

    @strawberry.field(description="Open checks already past the target (T11).")
    def open_over_target(self) -> int | None:
        return self.row.open_over_target

    @strawberry.field(description="Checks completed in the period within the target.")
    def completed_within_target(self) -> int | None:
        return self.row.completed_within_target

    @strawberry.field(description="Share of the completed checks completed within the target.")
    def share_within_target(self) -> float | None:
        return self.row.share_within_target

    @strawberry.field(description="Foster carers and connected persons with a check open.")
    def carers_waiting(self) -> int | None:
        return self.row.carers_waiting

    @strawberry.field(description="Prospective adopters with a check open.")
    def adopters_waiting(self) -> int | None:
        return self.row.adopters_waiting


@strawberry.type(description="Vetting checks open and completed, per force and per council.")
class VettingFigures:
    data: strawberry.Private[vetting_figures.VettingFigures]

    @strawberry.field(description="Open checks are counted and aged at this moment.")
    def as_of(self) -> dt.datetime | None:
        return self.data.as_of

    @strawberry.field(description="Completed checks are those completed from this moment...")
    def completed_from(self) -> dt.datetime | None:
        return self.data.completed_from

    @strawberry.field(description="...until (before) this one.")
    def completed_until(self) -> dt.datetime | None:
        return self.data.completed_until

    @strawberry.field(description="The target checks are held to (T11), with its source.")
    def target(self) -> ReportTarget | None:
        t = self.data.target
        if t is None:
            return None
        return ReportTarget(
            id=t.id,
            kind=t.kind,
            stage=t.stage,
            limit=t.limit_text,
            description=t.description,
            source=t.source,
            unconfirmed=t.unconfirmed,
        )

    @strawberry.field
    def by_force(self) -> list[VettingGroupFigures] | None:
        return [VettingGroupFigures(row=r) for r in self.data.by_force]

    @strawberry.field
    def by_council(self) -> list[VettingGroupFigures] | None:
        return [VettingGroupFigures(row=r) for r in self.data.by_council]


def figures_scope(
    info: Info, *, force: str | None, council: str | None
) -> vetting_figures.FiguresScope:
    """A force's or council's own checks only; an inspectorate's nationally or as it asks."""
    policy = info.context.policy
    own = info.context.principal.organisation_code
    if policy.rows is RowKind.OWN_FORCE:
        if force not in {None, own}:
            raise Forbidden("a force reads its own figures only")
        force = own
    elif policy.rows is RowKind.COUNCIL_CHILDREN:
        if council not in {None, own}:
            raise Forbidden("a council reads its own figures only")
        council = own
    elif policy.audit_rows is not AuditRows.ALL:
        raise Forbidden("this role may not read vetting figures")
    return vetting_figures.FiguresScope(force_code=force, council_code=council)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)


@strawberry.type
class VettingQuery:
    @strawberry.field(description="Vetting checks the caller's council asked or force was asked.")
    async def vetting_checks(
        self,
        info: Info,
        filter: VettingCheckFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[VettingCheck] | None:
        cursors = info.context.cursors(info.field_name)
        page = await service.list_(
            info.context.session,
            scope=info.context.scope,
            where=checked(info, filter or VettingCheckFilterInput()),
            first=info.context.page_size(first),
            after=cursors.open(after),
        )
        return Connection[VettingCheck].of(page, VettingCheck.of, cursors)

    @strawberry.field
    async def vetting_check(self, info: Info, id: strawberry.ID) -> VettingCheck | None:  # noqa: A002
        row = await service.get(info.context.session, scope=info.context.scope, check_id=str(id))
        return VettingCheck.of(row) if row is not None else None

    @strawberry.field(
        description="Vetting checks open now and completed from `from` to `to` (inclusive, UK "
        "dates; by default the last 365 days), per force and council. Never an applicant."
    )
    async def vetting_figures(
        self,
        info: Info,
        from_: Annotated[dt.date | None, strawberry.argument(name="from")] = None,
        to: dt.date | None = None,
        force: str | None = None,
        council: str | None = None,
    ) -> VettingFigures | None:
        from hub.timeliness.types import check_period  # noqa: PLC0415 - its types import records

        as_of = utcnow()
        to = to or as_of.astimezone(LONDON).date()
        from_ = from_ or to - dt.timedelta(days=364)
        check_period(from_, to)
        data = await vetting_figures.figures(
            info.context.session,
            scope=figures_scope(info, force=force, council=council),
            completed_from=_day_start(from_),
            completed_until=_day_start(to + dt.timedelta(days=1)),
            as_of=as_of,
            targets=all_targets_for(info.context.hub.settings),
        )
        # The figures leave the hub: a disclosure in the audit log, as the sharing report is.
        info.context.served.disclosed(
            info._raw_info,  # noqa: SLF001 - the response path the figures occupy
            vetting_figures.disclosure_detail(data, report_format="graphql"),
        )
        return VettingFigures(data=data)


@strawberry.type
class VettingMutation:
    @strawberry.mutation(
        description="A council's fostering or adoption team asks a force for a police check on "
        "an applicant. Safe to retry: keyed by the council's reference (and idempotency key)."
    )
    async def request_vetting_check(
        self,
        info: Info,
        input: RequestVettingCheckInput,  # noqa: A002
    ) -> VettingCheck | None:
        p = info.context.principal
        row, created = await service.request(
            info.context.session,
            council_code=p.organisation_code,
            client_id=p.client_id,
            check=input.command(),
        )
        if created:  # published to the outbox: the force's systems are told of the request
            info.context.served.changed(RECORD_TYPE, row.id, S62Operation.COLLECTION)
        return VettingCheck.of(row)

    @strawberry.mutation(
        description="The force asked answers with the outcome's category only. Safe to retry; "
        "another outcome for a completed check is a CONFLICT."
    )
    async def complete_vetting_check(
        self,
        info: Info,
        input: CompleteVettingCheckInput,  # noqa: A002
    ) -> VettingCheck | None:
        p = info.context.principal
        row, changed = await service.complete(
            info.context.session,
            force_code=p.organisation_code,
            client_id=p.client_id,
            completion=input.command(),
        )
        if changed:  # published to the outbox: the council is told of the completion
            info.context.served.changed(RECORD_TYPE, row.id, S62Operation.ALTERATION)
        return VettingCheck.of(row)
