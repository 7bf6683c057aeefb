"""The demo's sharing story: six months of incidents from three forces that share differently.

West Midlands shares each incident within the hour; Greater Manchester days late; Leicestershire
saves them up and sends a week's records every Monday at 09:00 (the inspectorate's "notifications
sent in batches"). Councils acknowledge: Birmingham within hours, Manchester often days later.
Every name and reference is invented. Historic `shared_at` values use the services' internal-only
keyword; no client can set one.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from hub.children.service import ChildDetails
from hub.incidents import service as incidents
from hub.incidents.models import DashRisk, IncidentType
from hub.incidents.service import IncidentReport, InvolvedChild
from hub.timeliness.calendar import LONDON
from hub.timeliness.models import RecordReceipt

PROMPT, LATE, BATCHING = "WEST_MIDLANDS", "GREATER_MANCHESTER", "LEICESTERSHIRE"
COUNCIL_OF = {PROMPT: "E08000025", LATE: "E08000003", BATCHING: "E06000016"}
DAYS = 182


def _hours(rng: random.Random, low: float, high: float) -> dt.timedelta:
    return dt.timedelta(hours=rng.uniform(low, high))


def next_monday_nine(moment: dt.datetime) -> dt.datetime:
    """The first Monday 09:00 (UK time) after `moment`: when the batching force uploads."""
    local = moment.astimezone(LONDON)
    days = (7 - local.weekday()) % 7 or 7
    monday = (local + dt.timedelta(days=days)).date()
    return dt.datetime.combine(monday, dt.time(9), tzinfo=LONDON).astimezone(dt.UTC)


def _shared(
    force: str, rng: random.Random, recorded: dt.datetime, sent: dict[str, int]
) -> dt.datetime:
    if force == PROMPT:
        return recorded + dt.timedelta(minutes=rng.uniform(2, 40))
    if force == LATE:
        return recorded + _hours(rng, 40, 150)
    upload = next_monday_nine(recorded)
    key = upload.isoformat()
    sent[key] = sent.get(key, 0) + 1
    # The upload job sends one record every few seconds.
    return upload + dt.timedelta(seconds=7 * sent[key])


def _receipt_times(force: str, rng: random.Random) -> tuple[dt.timedelta, dt.timedelta]:
    """(first seen, acknowledged) after sharing: Birmingham is quick, Manchester slow."""
    if force == PROMPT:
        return _hours(rng, 0.1, 2), _hours(rng, 2, 10)
    if force == LATE:
        return _hours(rng, 1, 20), _hours(rng, 20, 80)
    return _hours(rng, 0.2, 3), _hours(rng, 3, 20)


async def push_story(
    session: AsyncSession,
    rng: random.Random,
    now: dt.datetime,
    child: Callable[[random.Random, int, str], ChildDetails],
) -> int:
    """Push the three forces' incidents; return how many. References start at DEMO-INC-00001."""
    number = 0
    sent: dict[str, int] = {}
    for force in (PROMPT, LATE, BATCHING):
        council = COUNCIL_OF[force]
        for day in range(DAYS, 0, -1):
            occurred = now - dt.timedelta(days=day) + _hours(rng, 0, 23)
            recorded = occurred + dt.timedelta(minutes=rng.uniform(10, 180))
            shared = _shared(force, rng, recorded, sent)
            if shared > now:
                continue  # not sent yet: the hub cannot know of it
            number += 1
            report = IncidentReport(
                police_reference=f"DEMO-INC-{number:05d}",
                type=IncidentType.DOMESTIC_ABUSE if number % 5 else IncidentType.NEGLECT,
                occurred_at=occurred,
                recorded_at=recorded,
                location_council=council,
                children=(
                    InvolvedChild(
                        child=child(rng, number, council),
                        present=number % 2 == 0,
                        household_member=True,
                    ),
                ),
                dash_risk=rng.choice(list(DashRisk)),
                summary="Synthetic demo incident: no real people or places.",
            )
            row, _ = await incidents.report(
                session,
                force_code=force,
                client_id="demo-loader",
                incident=report,
                shared_at=shared,
            )
            seen, acknowledged = _receipt_times(force, rng)
            if shared + seen < now:
                session.add(
                    RecordReceipt(
                        record_type="Incident",
                        record_id=row.id,
                        organisation_code=council,
                        first_seen_at=shared + seen,
                        acknowledged_at=shared + acknowledged
                        if shared + acknowledged < now
                        else None,
                        acknowledged_by="demo-sw-1" if shared + acknowledged < now else None,
                    )
                )
    await session.flush()
    return number
