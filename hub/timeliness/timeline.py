"""A record's timeline: its clock readings turned into stages, one set per receiving council.

Every delay is derived here from stored times, never typed in. The same function feeds a
record's `timeline` field and the report's Python path, so the two cannot disagree.

Kinds: an incident is ``domestic_abuse`` or ``incident``; a missing episode ``missing_episode``;
each investigation status change is an ``investigation_status`` record of its own (its id is the
change's), while first sight and acknowledgement belong to the investigation as a whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.timeliness.calendar import month_of
from hub.timeliness.stats import Measured, StageDelay, measure
from hub.timeliness.targets import TargetSet

DOMESTIC_ABUSE = "domestic_abuse"


def incident_kind(incident_type: str) -> str:
    return DOMESTIC_ABUSE if incident_type == DOMESTIC_ABUSE else "incident"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A council that receives the record, with its own first sight and acknowledgement."""

    council_code: str
    nation: str
    child_id: str | None
    first_seen_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordTimes:
    kind: str
    record_id: str
    force_code: str
    event_at: dt.datetime
    recorded_at: dt.datetime | None
    shared_at: dt.datetime
    returned_at: dt.datetime | None = None
    return_interview_at: dt.datetime | None = None
    # An investigation's status changes carry the sharing stages and the investigation itself
    # the receipt stages; every other record carries both.
    share_stages: bool = True
    receipt_stages: bool = True


def stage_delays(record: RecordTimes, recipients: Iterable[Recipient]) -> list[StageDelay]:
    """Every stage of the record for each receiving council, ended or still open."""
    month = month_of(record.event_at)
    rows: list[StageDelay] = []
    for to in recipients:

        def stage(
            name: str, start: dt.datetime, end: dt.datetime | None, to: Recipient = to
        ) -> None:
            rows.append(
                StageDelay(
                    kind=record.kind,
                    force_code=record.force_code,
                    council_code=to.council_code,
                    month=month,
                    stage=name,
                    start=start,
                    end=end,
                    nation=to.nation,
                    record_id=record.record_id,
                    child_id=to.child_id,
                )
            )

        if record.share_stages:
            if record.recorded_at is not None:
                stage("event_to_recorded", record.event_at, record.recorded_at)
                stage("recorded_to_shared", record.recorded_at, record.shared_at)
            stage("event_to_shared", record.event_at, record.shared_at)
        if record.receipt_stages:
            stage("shared_to_first_seen", record.shared_at, to.first_seen_at)
            stage("shared_to_acknowledged", record.shared_at, to.acknowledged_at)
        if record.returned_at is not None:
            stage("returned_to_return_interview", record.returned_at, record.return_interview_at)
    return rows


def judged(
    record: RecordTimes,
    recipients: Iterable[Recipient],
    targets: TargetSet,
    *,
    as_of: dt.datetime,
) -> list[Measured]:
    """The record's stages judged against their targets at ``as_of`` (for its timeline)."""
    return measure(stage_delays(record, recipients), targets, as_of=as_of)


def nation_of(nations: Mapping[str, str | None], council_code: str) -> str:
    """A council's calendar nation; councils are English or Welsh, England when unknown."""
    nation = nations.get(council_code)
    return nation if nation in {"england", "wales"} else "england"
