from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, ClassVar

import strawberry
from strawberry.utils.await_maybe import AwaitableOrValue

from hub.base import stored
from hub.children.types import Child, ChildInput, child_of
from hub.graphql.context import Info
from hub.graphql.entity import PoliceRecord
from hub.graphql.resolvers import context_only
from hub.missing import models
from hub.missing.models import MissingFrom, MissingStatus, RiskGrade
from hub.missing.service import APP_2017, MissingFilter, MissingReport, MissingUpdate
from hub.reference.types import Organisation, organisation_of
from hub.validation import optional_utc

RiskGradeType = strawberry.enum(
    RiskGrade, name="MissingRiskGrade", description="College of Policing APP (2017) risk grade."
)
MissingFromType = strawberry.enum(MissingFrom, name="MissingFrom")
MissingStatusType = strawberry.enum(MissingStatus, name="MissingStatus")
_RISK_GRADE, _MISSING_FROM, _STATUS = stored(RiskGrade), stored(MissingFrom), stored(MissingStatus)


@strawberry.federation.type(keys=["id"], name="MissingEpisode", authenticated=True)
class MissingEpisode(PoliceRecord):
    loader = "missing_episode"
    row: strawberry.Private[models.MissingEpisode]
    id: strawberry.ID

    @strawberry.field(graphql_type=Child | None)
    @context_only
    def child(self, info: Info) -> AwaitableOrValue[Child | None]:
        return child_of(info, self.row.child_id)

    @strawberry.field
    def reported_missing_at(self) -> dt.datetime | None:
        return self.row.reported_missing_at

    @strawberry.field
    def recorded_at(self) -> dt.datetime | None:
        return self.row.recorded_at

    @strawberry.field
    def risk_grade(self) -> RiskGradeType | None:  # type: ignore[valid-type]
        return _RISK_GRADE(self.row.risk_grade)

    @strawberry.field(description="The framework the grade came from.")
    def risk_framework(self) -> str | None:
        return self.row.risk_framework

    @strawberry.field(graphql_type=Organisation | None)
    @context_only
    def last_seen_council(self, info: Info) -> AwaitableOrValue[Organisation | None]:
        return organisation_of(info, self.row.last_seen_council_code)

    @strawberry.field
    def missing_from(self) -> MissingFromType | None:  # type: ignore[valid-type]
        return _MISSING_FROM(self.row.missing_from)

    @strawberry.field
    def status(self) -> MissingStatusType | None:  # type: ignore[valid-type]
        return _STATUS(self.row.status)

    @strawberry.field
    def found_at(self) -> dt.datetime | None:
        return self.row.found_at

    @strawberry.field
    def returned_at(self) -> dt.datetime | None:
        return self.row.returned_at

    @classmethod
    async def prefetch(cls, info: Info, rows: Sequence[models.MissingEpisode]) -> None:
        """What a page's episodes will ask for (their children, forces and last-seen councils),
        loaded at once by the request's own scoped loaders: the fields then complete from
        finished loads, without a task each. Only what the selection names and the role sees."""
        loaders = info.context.loaders
        codes = cls.page_organisations(
            info, rows, {"force": "force_code", "lastSeenCouncil": "last_seen_council_code"}
        )
        loads: list[Awaitable[Any]] = []
        if codes:
            loads.append(loaders.organisation.load_many(sorted(codes)))
        if cls.page_wants(info, "child"):
            loads.append(loaders.child.load_many(sorted({r.child_id for r in rows})))
        await asyncio.gather(*loads)


@strawberry.input
class RecordMissingEpisodeInput:
    police_reference: str
    child: ChildInput
    reported_missing_at: dt.datetime
    recorded_at: dt.datetime
    risk_grade: RiskGradeType  # type: ignore[valid-type]
    last_seen_council: str = strawberry.field(description="GSS code of the council area.")
    missing_from: MissingFromType  # type: ignore[valid-type]
    risk_framework: str = APP_2017
    idempotency_key: str | None = None

    def command(self) -> MissingReport:
        return MissingReport(
            police_reference=self.police_reference,
            child=self.child.details(),
            reported_missing_at=self.reported_missing_at,
            recorded_at=self.recorded_at,
            risk_grade=RiskGrade(self.risk_grade),
            last_seen_council=self.last_seen_council,
            missing_from=MissingFrom(self.missing_from),
            risk_framework=self.risk_framework,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class UpdateMissingEpisodeInput:
    police_reference: str
    status: MissingStatusType = strawberry.field(description="FOUND or RETURNED.")  # type: ignore[valid-type]
    at: dt.datetime
    risk_grade: RiskGradeType | None = None  # type: ignore[valid-type]

    def command(self) -> MissingUpdate:
        return MissingUpdate(
            police_reference=self.police_reference,
            status=MissingStatus(self.status),
            at=self.at,
            risk_grade=RiskGrade(self.risk_grade) if self.risk_grade else None,
        )


@strawberry.input
class MissingEpisodeFilterInput:
    target: ClassVar[str] = "MissingEpisode"
    tests: ClassVar[Mapping[str, str]] = {
        "child_id": "child",
        "reported_from": "reportedMissingAt",
        "reported_to": "reportedMissingAt",
        "risk_grades": "riskGrade",
        "statuses": "status",
    }
    child_id: strawberry.ID | None = None
    reported_from: dt.datetime | None = None
    reported_to: dt.datetime | None = None
    risk_grades: list[RiskGradeType] | None = None  # type: ignore[valid-type]
    statuses: list[MissingStatusType] | None = None  # type: ignore[valid-type]

    def where(self) -> MissingFilter:
        return MissingFilter(
            child_id=str(self.child_id) if self.child_id else None,
            reported_from=optional_utc(self.reported_from, field="filter.reportedFrom"),
            reported_to=optional_utc(self.reported_to, field="filter.reportedTo"),
            risk_grades=tuple(RiskGrade(g) for g in self.risk_grades or ()),
            statuses=tuple(MissingStatus(s) for s in self.statuses or ()),
        )
