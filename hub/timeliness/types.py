"""Sharing delays in GraphQL: each record's timeline, the councils' two writes, the figures.

The agreement governs every type here (auth/agreement.toml); every field is nullable so that a
field outside a role's view can come back null with FORBIDDEN_FIELD.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Annotated, Any
from weakref import WeakKeyDictionary

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from hub.access.agreement import AuditRows, RowKind
from hub.access.permissions import ReadsSharingFigures
from hub.audit.models import S62Operation
from hub.db import utcnow
from hub.errors import Forbidden, InvalidInput
from hub.graphql.context import Info
from hub.missing.types import MissingEpisode
from hub.reference.types import Organisation, load_organisation
from hub.timeliness import extract, kinds, metrics, service
from hub.timeliness.models import RecordReceipt
from hub.timeliness.report_data import ReportScope, disclosure_detail
from hub.timeliness.report_types import BREACH_PAGE, SharingReport
from hub.timeliness.stats import Measured
from hub.timeliness.targets import RECORD_KINDS as KINDS
from hub.timeliness.targets import STAGES
from hub.timeliness.timeline import judged

MAX_REPORT_DAYS = 731


@strawberry.enum(description="How a stage stands against its target.")
class StageStatus(enum.Enum):
    WITHIN = "within"
    BREACHED = "breached"
    PENDING = "pending"
    UNTARGETED = "untargeted"


@strawberry.type(name="Receipt", description="One receiving organisation's receipt of a record.")
class Receipt:
    row: strawberry.Private[RecordReceipt]

    @strawberry.field
    async def organisation(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.organisation_code)

    @strawberry.field(description="When it first received the record (from the audit).")
    def first_seen_at(self) -> dt.datetime | None:
        return self.row.first_seen_at

    @strawberry.field
    def acknowledged_at(self) -> dt.datetime | None:
        return self.row.acknowledged_at

    @strawberry.field(description="The person who acknowledged, as their organisation names them.")
    def acknowledged_by(self) -> str | None:
        return self.row.acknowledged_by


@strawberry.type(description="One stage of a record's timeline, for one receiving council.")
class TimelineStage:
    item: strawberry.Private[Measured]

    @strawberry.field
    def stage(self) -> str | None:
        return self.item.row.stage

    @strawberry.field
    def description(self) -> str | None:
        return STAGES.get(self.item.row.stage)

    @strawberry.field(description="The record the stage is of: a status change's own id.")
    def record_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.item.row.record_id)

    @strawberry.field
    async def council(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.item.row.council_code)

    @strawberry.field(description="The force the stage is of (for a meeting, the invited force).")
    async def force(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.item.row.force_code)

    @strawberry.field
    def started_at(self) -> dt.datetime | None:
        return self.item.row.start

    @strawberry.field(description="Null while the stage is open.")
    def ended_at(self) -> dt.datetime | None:
        return self.item.row.end

    @strawberry.field(description="Elapsed hours from start to end; null while open.")
    def delay_hours(self) -> float | None:
        return self.item.delay_hours

    @strawberry.field(description="The target this stage is held to (auth/targets.toml).")
    def target_id(self) -> str | None:
        return self.item.target.id if self.item.target else None

    @strawberry.field
    def deadline(self) -> dt.datetime | None:
        return self.item.deadline

    @strawberry.field
    def status(self) -> StageStatus | None:
        return StageStatus(self.item.status)

    @strawberry.field(description="True within target, false breached, null pending or untargeted.")
    def met(self) -> bool | None:
        return {"within": True, "breached": False}.get(self.item.status)


@strawberry.type(description="A record's clock: event, recorded, shared, received, acknowledged.")
class Timeline:
    data: strawberry.Private[service.RecordTimeline]
    measured: strawberry.Private[list[Measured]]

    @strawberry.field
    def kind(self) -> str | None:
        return self.data.records[0].kind if self.data.records else None

    @strawberry.field(
        description="The event: the incident, the report of a missing child, or an "
        "investigation's opening."
    )
    def event_at(self) -> dt.datetime | None:
        return self.data.records[0].event_at if self.data.records else None

    @strawberry.field
    def recorded_at(self) -> dt.datetime | None:
        return self.data.records[0].recorded_at if self.data.records else None

    @strawberry.field
    def shared_at(self) -> dt.datetime | None:
        return self.data.records[0].shared_at if self.data.records else None

    @strawberry.field(description="Missing episodes: when the child returned.")
    def returned_at(self) -> dt.datetime | None:
        return self.data.records[0].returned_at if self.data.records else None

    @strawberry.field(description="Missing episodes: the return home interview.")
    def return_interview_at(self) -> dt.datetime | None:
        return self.data.records[0].return_interview_at if self.data.records else None

    @strawberry.field(description="Each receiving organisation's first sight and acknowledgement.")
    def receipts(self) -> list[Receipt] | None:
        ordered = sorted(self.data.receipts, key=lambda r: (r.first_seen_at, r.organisation_code))
        return [Receipt(row=r) for r in ordered]

    @strawberry.field(description="Every stage per receiving council, with its delay and target.")
    def stages(self) -> list[TimelineStage] | None:
        return [TimelineStage(item=m) for m in self.measured]


_loaders: WeakKeyDictionary[AsyncSession, DataLoader[tuple[str, str], Timeline | None]] = (
    WeakKeyDictionary()
)


async def load_timeline(info: Info, record_type: str, record_id: str) -> Timeline | None:
    """One request's timelines in one batch, whatever the page size."""
    session = info.context.session
    loader = _loaders.get(session)
    if loader is None:
        targets = extract.targets_for(info.context.hub.settings)
        # A force is given its own stages: of a meeting, its own invitation's, not other forces'.
        own = info.context.principal.organisation_code
        force = own if info.context.policy.rows is RowKind.OWN_FORCE else None

        async def load(keys: list[tuple[str, str]]) -> list[Timeline | None]:
            found = await service.timelines(session, keys)
            now = utcnow()
            timelines: list[Timeline | None] = []
            for key in keys:
                data = found.get(key)
                if data is None:
                    timelines.append(None)
                    continue
                if force is not None:
                    own_records = tuple(r for r in data.records if r.force_code == force)
                    data = dataclasses.replace(data, records=own_records)
                measured = [
                    m for r in data.records for m in judged(r, data.recipients, targets, as_of=now)
                ]
                timelines.append(Timeline(data=data, measured=measured))
            return timelines

        loader = _loaders[session] = DataLoader(load_fn=load)
    return await loader.load((record_type, record_id))


async def note_shared(info: Info, record_type: str, row: Any) -> None:
    """A push arrived: its sharing delay into the metrics (codes only, never the record)."""
    declared = kinds.declaration(record_type)
    if declared is None or declared.pushed is None:
        return
    kind, event, council = declared.pushed(row)
    organisation = await info.context.loaders.organisation.load(council)
    nation = organisation.nation if organisation and organisation.nation == "wales" else "england"
    metrics.current().shared(
        kind=kind,
        force_code=row.force_code,
        event_at=event,
        shared_at=row.shared_at,
        nation=nation,
        targets=extract.targets_for(info.context.hub.settings),
    )


# -- the figures -----------------------------------------------------------------------------


def check_period(from_: dt.date, to: dt.date) -> None:
    """A report's or figures' period (UK dates, inclusive): in order, and at most two years."""
    if to < from_:
        raise InvalidInput("to is before from", field="to")
    if (to - from_).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days", field="to")


def report_scope(
    info: Info, *, force: str | None, council: str | None, kind: str | None
) -> ReportScope:
    """A force's or council's own figures only; an inspectorate's as it asks."""
    policy = info.context.policy
    own = info.context.principal.organisation_code
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if policy.rows is RowKind.OWN_FORCE:
        if force not in {None, own}:
            raise Forbidden("a force reads its own figures only")
        force = own
    elif policy.rows is RowKind.COUNCIL_CHILDREN:
        if council not in {None, own}:
            raise Forbidden("a council reads its own figures only")
        council = own
    elif policy.audit_rows is not AuditRows.ALL:
        raise Forbidden("this role may not read sharing figures")
    return ReportScope(force_code=force, council_code=council, kind=kind)


@strawberry.type
class TimelinessQuery:
    @strawberry.field(
        permission_classes=[ReadsSharingFigures],
        description="Sharing delays for events from `from` to `to` (inclusive, UK dates).",
    )
    async def sharing_report(  # noqa: PLR0917 - GraphQL arguments
        self,
        info: Info,
        from_: Annotated[dt.date, strawberry.argument(name="from")],
        to: dt.date,
        force: str | None = None,
        council: str | None = None,
        kind: str | None = None,
    ) -> SharingReport | None:
        check_period(from_, to)
        scope = report_scope(info, force=force, council=council, kind=kind)
        hub = info.context.hub
        data = await extract.report(
            hub.db,
            targets=extract.targets_for(hub.settings),
            period_from=from_,
            period_to=to,
            scope=scope,
            as_of=utcnow(),
            pseudonym_key=hub.settings.pseudonym_key.get_secret_value(),
            agreement_version=hub.agreement.version,
            breach_limit=BREACH_PAGE,
            connections=hub.settings.report_connections,
        )
        # The figures leave the hub: a disclosure in the audit log, as the CLI's report is.
        info.context.served.disclosed(
            info._raw_info,  # noqa: SLF001 - the response path the report occupies
            disclosure_detail(data, report_format="graphql"),
        )
        return SharingReport(data=data)


@strawberry.type
class TimelinessMutation:
    @strawberry.mutation(
        description="Acknowledge a record received. Safe to retry: the first acknowledgement "
        "is kept.",
    )
    async def acknowledge(
        self,
        info: Info,
        record_type: str,
        id: strawberry.ID,  # noqa: A002
    ) -> Receipt | None:
        p = info.context.principal
        receipt, _ = await service.acknowledge(
            info.context.session,
            scope=info.context.scope,
            record_type=record_type,
            record_id=str(id),
            organisation_code=p.organisation_code,
            user=p.user,
        )
        return Receipt(row=receipt)

    @strawberry.mutation(
        description="Record when the return home interview was held (after the child's return).",
    )
    async def record_return_interview(
        self,
        info: Info,
        missing_episode_id: strawberry.ID,
        held_at: dt.datetime,
    ) -> MissingEpisode | None:
        episode, changed = await service.record_return_interview(
            info.context.session,
            scope=info.context.scope,
            episode_id=str(missing_episode_id),
            held_at=held_at,
            council_code=info.context.principal.organisation_code,
        )
        if changed:
            info.context.served.changed("MissingEpisode", episode.id, S62Operation.ALTERATION)
        return MissingEpisode.of(episode)
