"""The demo's vetting story: a force with a backlog of police checks, and one without.

The Metropolitan Police leaves Wandsworth's checks on foster carers open for weeks (in
Wandsworth 23 approved carers could not be used, `../shared/context`); Dorset's adopters wait on
Dorset Police; West Midlands Police completes Birmingham's checks within days (T11: 14 days).
Everything goes through `hub.vetting.service`, as a push would. Every name is invented.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy.ext.asyncio import AsyncSession

from hub.vetting import service as vetting
from hub.vetting.models import VettingOutcome, VettingPurpose

BACKLOG_FORCE, BACKLOG_COUNCIL, BACKLOG_CARERS = "MET", "E09000032", 23  # Wandsworth
ADOPTERS_FORCE, ADOPTERS_COUNCIL, ADOPTERS_WAITING = "DORSET", "E06000059", 6
PROMPT_FORCE, PROMPT_COUNCIL, PROMPT_CHECKS = "WEST_MIDLANDS", "E08000025", 12  # Birmingham
CLIENT = "demo-loader"


def _applicant(rng: random.Random, reference: str) -> vetting.Applicant:
    return vetting.Applicant(
        reference=reference,
        given_name=rng.choice(("Alex", "Sam", "Jo", "Chris", "Robin", "Kim")),
        family_name=rng.choice(("Testcarer", "Example", "Sample", "Fictional")),
        date_of_birth=dt.date(1970, 1, 1) + dt.timedelta(days=rng.randrange(0, 20 * 365)),
        postcode="ZZ99 9ZZ",  # a postcode that is never a real address
    )


async def _ask(
    session: AsyncSession,
    rng: random.Random,
    *,
    council: str,
    force: str,
    number: int,
    purpose: VettingPurpose,
    requested: dt.datetime,
) -> str:
    reference = f"DEMO-VET-{council}-{number:03d}"
    row, _ = await vetting.request(
        session,
        council_code=council,
        client_id=CLIENT,
        check=vetting.VettingRequest(
            council_reference=reference,
            applicant=_applicant(rng, f"APP-{reference}"),
            purpose=purpose,
            force=force,
            requested_at=requested,
        ),
    )
    return row.id


async def push_vetting_story(session: AsyncSession, rng: random.Random, now: dt.datetime) -> int:
    """Push the checks; return how many pushes were made."""
    pushed = 0
    for number in range(BACKLOG_CARERS):
        requested = now - dt.timedelta(days=rng.uniform(20, 90))
        await _ask(session, rng, council=BACKLOG_COUNCIL, force=BACKLOG_FORCE, number=number,
                   purpose=VettingPurpose.FOSTER_CARER, requested=requested)  # fmt: skip
        pushed += 1
    for number in range(ADOPTERS_WAITING):
        requested = now - dt.timedelta(days=rng.uniform(16, 60))
        await _ask(session, rng, council=ADOPTERS_COUNCIL, force=ADOPTERS_FORCE, number=number,
                   purpose=VettingPurpose.ADOPTER, requested=requested)  # fmt: skip
        pushed += 1
    for number in range(PROMPT_CHECKS):
        requested = now - dt.timedelta(days=rng.uniform(10, 120))
        check_id = await _ask(session, rng, council=PROMPT_COUNCIL, force=PROMPT_FORCE,
                              number=number, purpose=VettingPurpose.FOSTER_CARER,
                              requested=requested)  # fmt: skip
        await vetting.complete(
            session,
            force_code=PROMPT_FORCE,
            client_id=CLIENT,
            completion=vetting.VettingCompletion(
                check_id=check_id,
                outcome=VettingOutcome.NO_INFORMATION_HELD,
                completed_at=requested + dt.timedelta(days=rng.uniform(2, 7)),
            ),
        )
        pushed += 2
    return pushed
