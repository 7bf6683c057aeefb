"""A record's timeline: its clock readings turned into stages, one set per receiving council.

Every delay is derived here from stored times, never typed in. The same function feeds a
record's `timeline` field and the report's Python path, so the two cannot disagree. Which
stages a record has, and which readings start and end each, its kind's declaration says
(`kinds`): an incident is ``domestic_abuse`` or ``incident``; a missing episode
``missing_episode``; each investigation status change an ``investigation_status`` record of its
own (its id is the change's), while first sight and acknowledgement belong to the investigation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.timeliness import kinds
from hub.timeliness.calendar import month_of
from hub.timeliness.stats import Measured, StageDelay, measure
from hub.timeliness.targets import TargetSet


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
    # The kind's other readings, by slot (`kinds.OWN`).
    readings: Mapping[str, dt.datetime | None] = field(default_factory=dict)

    def at(self, slot: str, to: Recipient | None = None) -> dt.datetime | None:
        """The reading a slot holds (receipts: the receiving council's)."""
        fixed = {
            "event_at": self.event_at,
            "recorded_at": self.recorded_at,
            "shared_at": self.shared_at,
            "returned_at": self.returned_at,
            "interview_at": self.return_interview_at,
        }
        if slot in fixed:
            return fixed[slot]
        if slot == "first_seen_at":
            return to.first_seen_at if to is not None else None
        if slot == "acknowledged_at":
            return to.acknowledged_at if to is not None else None
        return self.readings.get(slot)


def _has(record: RecordTimes, stage: kinds.Stage) -> bool:
    if stage.part is kinds.Part.SHARE and not record.share_stages:
        return False
    if stage.part is kinds.Part.RECEIPT and not record.receipt_stages:
        return False
    return all(record.at(slot) is not None for slot in stage.needs())


def stage_delays(record: RecordTimes, recipients: Iterable[Recipient]) -> list[StageDelay]:
    """Every stage of the record for each receiving council, ended or still open."""
    month = month_of(record.event_at)
    stages = [
        kinds.STAGE_DEFS[name]
        for name in kinds.KIND_STAGES.get(record.kind, ())
        if _has(record, kinds.STAGE_DEFS[name])
    ]
    rows: list[StageDelay] = []
    for to in recipients:
        for stage in stages:
            start = record.at(stage.start, to)
            if start is None:
                continue
            rows.append(
                StageDelay(
                    kind=record.kind,
                    force_code=record.force_code,
                    council_code=to.council_code,
                    month=month,
                    stage=stage.name,
                    start=start,
                    end=record.at(stage.end, to),
                    nation=to.nation,
                    record_id=record.record_id,
                    child_id=to.child_id,
                    due=record.at(stage.deadline) if stage.deadline else None,
                )
            )
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
