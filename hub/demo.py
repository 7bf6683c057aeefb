"""Synthetic demo data: every name, reference and date here is invented.

The demo pushes its records through the same services a police system's pushes go through, so
what a newcomer sees in GraphiQL is what a force and a council would see.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import textwrap

import hub.record_kinds  # noqa: F401 - the demo's report measures every kind
from hub.access import clients
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.children.service import ChildDetails
from hub.closures.demo_story import push_closure_story
from hub.db import Database, utcnow
from hub.escalation import scan as escalation_scan
from hub.incidents import service as incidents
from hub.investigations import service as investigations
from hub.investigations.models import InvestigationStatus
from hub.investigations.service import StatusChange
from hub.migrate import upgrade
from hub.missing import service as missing
from hub.missing.models import MissingFrom, MissingStatus, RiskGrade
from hub.missing.service import MissingReport, MissingUpdate
from hub.partnership.demo_story import push_partnership_story
from hub.reference.models import Organisation, OrganisationKind
from hub.settings import Settings
from hub.timeliness import extract
from hub.timeliness.demo_story import push_story
from hub.vetting.demo_story import push_vetting_story

# Two forces and the councils they cover; a third council hosts a placed child out of area.
FORCE_A, FORCE_B = "WEST_MIDLANDS", "GREATER_MANCHESTER"
COUNCIL_A, COUNCIL_B, COUNCIL_HOST = (
    "E08000025",
    "E08000003",
    "E06000016",
)  # Birmingham, Manchester, Leicester
DEMO_SCHOOL = "DEMO-SCHOOL-1"
SCHOOL_EVERY = 4  # every fourth child of COUNCIL_A attends DEMO_SCHOOL

GIVEN = ["Alex", "Sam", "Jordan", "Riley", "Casey", "Morgan", "Jamie", "Taylor", "Robin", "Quinn"]
FAMILY = ["Example", "Sample", "Testcase", "Fictional", "Madeup", "Placeholder"]

# A purpose each role may give under auth/agreement.toml, for the printed examples.
EXAMPLE_PURPOSE: dict[Role, str] = {
    Role.POLICE_OFFICER: "police_investigation",
    Role.COUNCIL_SOCIAL_WORKER: "section_47_enquiry",
    Role.SCHOOL_DSL: "operation_encompass",
    Role.AUDITOR: "inspection",
    Role.DPO: "data_protection_review",
    Role.HUB_ADMIN: "hub_operations",
}

DEMO_ROLES: list[tuple[Role, str, str]] = [
    (Role.POLICE_OFFICER, FORCE_A, "West Midlands Police record system (demo)"),
    (Role.COUNCIL_SOCIAL_WORKER, COUNCIL_A, "Birmingham children's services case system (demo)"),
    (Role.SCHOOL_DSL, DEMO_SCHOOL, "Demo Primary School (synthetic)"),
    (Role.AUDITOR, "OFSTED", "Inspectorate analyst (demo)"),
    (Role.DPO, COUNCIL_A, "Birmingham data protection officer (demo)"),
    (Role.HUB_ADMIN, "HUB", "Hub operator (demo)"),
]


def _child(rng: random.Random, number: int, council: str, **extra: object) -> ChildDetails:
    born = dt.date(2010, 1, 1) + dt.timedelta(days=rng.randrange(0, 14 * 365))
    if council == COUNCIL_A and number % SCHOOL_EVERY == 0:
        # Some of the council's children are the demo school's pupils: its designated
        # safeguarding lead has Operation Encompass notices to read.
        extra.setdefault("school", DEMO_SCHOOL)
    return ChildDetails(
        police_reference=f"DEMO-P{number:05d}",
        given_name=rng.choice(GIVEN),
        family_name=rng.choice(FAMILY),
        date_of_birth=born,
        responsible_council=council,
        **extra,  # type: ignore[arg-type]
    )


async def _push_records(db: Database, rng: random.Random) -> int:
    now = utcnow().replace(microsecond=0)
    pushed = 0
    async with db.transaction(write=True) as session:
        session.add(
            Organisation(
                code=DEMO_SCHOOL,
                name="Demo Primary School (synthetic)",
                kind=OrganisationKind.SCHOOL,
                nation="england",
            )
        )
        await session.flush()
        # Six months of incidents from a prompt, a late and a batching force (the report's story).
        pushed += await push_story(session, rng, now, _child)
        # Meetings, joint visits and police protections between the same councils and forces.
        pushed += await push_partnership_story(session, rng, now)
        # Decisions and checks: a force with a vetting backlog, a closure challenged and reopened.
        pushed += await push_vetting_story(session, rng, now)
        pushed += await push_closure_story(session, rng, now, _child)
        first_episode = 100_000
        for number in range(first_episode + 41, first_episode + 51):
            reported = now - dt.timedelta(days=rng.randrange(1, 30))
            placed_out = number % 2 == 0
            child = _child(
                rng,
                number,
                COUNCIL_A,
                looked_after=placed_out,
                host_council=COUNCIL_HOST if placed_out else None,
            )
            episode = MissingReport(
                police_reference=f"DEMO-MISS-{number:05d}",
                child=child,
                reported_missing_at=reported,
                recorded_at=reported + dt.timedelta(minutes=rng.randrange(10, 600)),
                risk_grade=rng.choice(list(RiskGrade)),
                last_seen_council=COUNCIL_HOST if placed_out else COUNCIL_A,
                missing_from=MissingFrom.CARE if placed_out else MissingFrom.HOME,
            )
            recorded = episode.recorded_at
            row, _ = await missing.record(
                session,
                force_code=FORCE_A,
                client_id="demo-loader",
                episode=episode,
                shared_at=recorded + dt.timedelta(minutes=rng.randrange(1, 30)),
            )
            if number % 3 == 0:
                returned = reported + dt.timedelta(hours=rng.randrange(2, 30))
                await missing.update(
                    session,
                    force_code=FORCE_A,
                    change=MissingUpdate(
                        police_reference=episode.police_reference,
                        status=MissingStatus.RETURNED,
                        at=returned,
                    ),
                )
                # Return home interviews: most within 72 hours, one late (T5).
                interview = returned + dt.timedelta(hours=30 if number % 2 else 100)
                if interview < now:
                    row.return_interview_at = interview
                    row.return_interview_by_council = COUNCIL_A
            pushed += 1
        opened = now - dt.timedelta(days=20)
        for step, (status, reason) in enumerate(
            [
                (InvestigationStatus.OPEN, "Referral from a strategy discussion"),
                (InvestigationStatus.INVESTIGATING, "Officer assigned"),
                (InvestigationStatus.NO_FURTHER_ACTION, "Evidential threshold not met"),
            ]
        ):
            await investigations.update_status(
                session,
                force_code=FORCE_A,
                client_id="demo-loader",
                change=StatusChange(
                    police_reference="DEMO-INV-00001",
                    status=status,
                    changed_at=opened + dt.timedelta(days=3 * step),
                    reason=reason,
                    incident_references=("DEMO-INC-00001", "DEMO-INC-00002"),
                ),
            )
            pushed += 1
    return pushed


async def load(settings: Settings, *, base_url: str) -> str:
    """Create the database, load the demo, register a client per role; return what to print."""
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    rng = random.Random(2026)  # fixed: the same demo every time
    try:
        async with db.transaction(write=False) as session:
            loaded = await incidents.get_by_reference(
                session, force_code=FORCE_A, police_reference="DEMO-INC-00001"
            )
        pushed = 0 if loaded else await _push_records(db, rng)
        if pushed:
            # The stages already past their deadline (the checks waiting on the Met, unanswered
            # requests) escalate now, as the served hub's scanner would raise them.
            await escalation_scan.scan(
                db, extract.all_targets_for(settings), horizon=dt.timedelta(days=200)
            )
        keys = KeySet.for_settings(settings)
        lines = [
            f"Demo hub at {base_url}/graphql (GraphiQL in a browser). "
            f"{pushed} synthetic records loaded."
            if pushed
            else f"Demo hub at {base_url}/graphql (GraphiQL in a browser); demo data was loaded."
        ]
        async with db.transaction(write=True) as session:
            for role, org, name in DEMO_ROLES:
                client, secret = await clients.create_client(
                    session, organisation_code=org, role=role, name=name
                )
                token = issue_access_token(
                    settings=settings,
                    keys=keys,
                    client_id=client.client_id,
                    organisation_code=org,
                    role=role,
                    user="demo-user-1",
                    purpose=EXAMPLE_PURPOSE[role],
                )
                lines.append(
                    _client_block(
                        role=role,
                        org=org,
                        client_id=client.client_id,
                        secret=secret,
                        token=token,
                        base=base_url,
                    )
                )
        return "\n".join(lines)
    finally:
        await db.dispose()


_CASES = "incidents(first: 3) { edges { node { %s } } }"
_AUDIT = "accessEvents(first: 3) { edges { node { occurredAt operation recordType purpose } } }"
# What each role's printed example asks for: something its view under the agreement includes,
# so a newcomer's first request is served rather than refused (tests/test_demo.py runs them).
EXAMPLE_QUERY: dict[Role, str] = {
    Role.POLICE_OFFICER: _CASES
    % "policeReference type occurredAt children { child { givenName } }",
    Role.COUNCIL_SOCIAL_WORKER: _CASES
    % "policeReference type occurredAt dashRisk children { child { givenName } }",
    Role.SCHOOL_DSL: _CASES % "type occurredAt children { present child { givenName } }",
    Role.AUDITOR: _AUDIT,
    Role.DPO: _AUDIT,
    Role.HUB_ADMIN: "organisations(kind: POLICE_FORCE) { id name }",
}


def _figures() -> str:
    """The inspectorate's figures of the demo's six months: who attends, who answers."""
    today = utcnow().date()
    return (
        f'sharingReport(from: "{today - dt.timedelta(days=190)}", to: "{today}") {{ '
        "attendance(by: FORCE) { force kind preBirth invitations absent writtenReportOnly } "
        "jointVisits(by: COUNCIL) { council requests unanswered } "
        "protectionFindings { force council takenAt child } }"
    )


def example_query(role: Role) -> str:
    figures = _figures() if role is Role.AUDITOR else ""
    return "{ viewer { role organisation { name } } " + EXAMPLE_QUERY[role] + f" {figures}}}"


def _client_block(
    *, role: Role, org: str, client_id: str, secret: str, token: str, base: str
) -> str:
    query = json.dumps({"query": example_query(role)})
    return textwrap.dedent(f"""
        == {role.value} ({org})
        client id: {client_id}   secret: {secret}
        token:     {token}
        curl -s {base}/graphql -H 'Content-Type: application/json' \\
          -H 'Authorization: Bearer {token}' \\
          -H 'Hub-On-Behalf-Of: demo-user-1' -H 'Hub-Purpose: {EXAMPLE_PURPOSE[role]}' \\
          -d '{query}'
        a new token: curl -s -u {client_id}:{secret} \\
          -d grant_type=client_credentials {base}/oauth/token""")
