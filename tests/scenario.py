"""A small synthetic world for the agreement's tests: two forces, their councils, two schools.

Records "in" jurisdiction are pushed by WEST_MIDLANDS about Birmingham's children; records "out"
by GREATER_MANCHESTER about Manchester's. A Birmingham child placed in Leicester goes missing.
Each council convenes a strategy discussion about its pupil, inviting its own force.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import sqlalchemy as sa

from hub.access.models import Role
from hub.db import Database
from hub.reference.models import Organisation, OrganisationKind
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_MISSING,
    RECORD_PROTECTION,
    REPORT_INCIDENT,
    REQUEST_JOINT_VISIT,
    THIRD_COUNCIL,
    UPDATE_INVESTIGATION,
    child,
    incident,
    joint_visit,
    missing_episode,
    protection,
    status_change,
)
from tests.meeting_pushes import meeting, schedule

SCHOOL, OTHER_SCHOOL = "TEST-SCHOOL-A", "TEST-SCHOOL-B"

# Who each role is, in the world below ("in" jurisdiction).
ORGANISATION_OF = {
    Role.POLICE_OFFICER: FORCE,
    Role.COUNCIL_SOCIAL_WORKER: COUNCIL,
    Role.SCHOOL_DSL: SCHOOL,
    Role.AUDITOR: "OFSTED",
    Role.DPO: COUNCIL,
    Role.HUB_ADMIN: "HUB",
}


@dataclasses.dataclass
class Side:
    """One side's records: ids by GraphQL type."""

    incident: str
    child: str
    sibling: str
    missing_episode: str
    missing_child: str
    investigation: str
    meeting: str  # the council's strategy discussion about `child`, inviting the force
    joint_visit_request: str  # the council's, to the force, about `child`
    police_protection: str  # the force's, of a child of the council

    def id_of(self, type_name: str) -> str:
        return {
            "Incident": self.incident,
            "Child": self.child,
            "MissingEpisode": self.missing_episode,
            "Investigation": self.investigation,
            "Meeting": self.meeting,
            "JointVisitRequest": self.joint_visit_request,
            "PoliceProtection": self.police_protection,
        }[type_name]


@dataclasses.dataclass
class World:
    inside: Side
    outside: Side


async def ensure_schools(db: Database) -> None:
    async with db.transaction(write=True) as session:
        existing = set(
            (
                await session.execute(
                    sa.select(Organisation.code).where(
                        sa.or_(Organisation.code == SCHOOL, Organisation.code == OTHER_SCHOOL)
                    )
                )
            ).scalars()
        )
        for code in {SCHOOL, OTHER_SCHOOL} - existing:
            session.add(
                Organisation(
                    code=code,
                    name=f"Synthetic school {code[-1]}",
                    kind=OrganisationKind.SCHOOL,
                    nation="england",
                )
            )


async def _push(
    http: httpx.AsyncClient,
    server: LiveServer,
    force: str,
    query: str,
    payload: dict[str, Any],
    *,
    role: Role = Role.POLICE_OFFICER,
) -> dict[str, Any]:
    token = server.token(role, force)
    response = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": {"input": payload}},
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


async def _side(
    http: httpx.AsyncClient, server: LiveServer, *, force: str, council: str, school: str, host: str
) -> Side:
    reference = unique("W-INC")
    pushed = await _push(
        http,
        server,
        force,
        REPORT_INCIDENT,
        incident(
            reference,
            council=council,
            operationalNotes="Synthetic police-only note.",
            children=[
                {
                    "child": child(unique("W-P"), council=council, school=school, nhsNumber=None),
                    "present": True,
                },
                # A sibling at another school: a school must not see them.
                {
                    "child": child(
                        unique("W-S"),
                        council=council,
                        school=OTHER_SCHOOL if school == SCHOOL else None,
                    ),
                    "householdMember": True,
                },
            ],
        ),
    )
    kids = {c["child"]["id"]: c for c in pushed["children"]}
    pupil = next(k for k, c in kids.items() if c["present"])
    sibling = next(k for k in kids if k != pupil)
    episode = await _push(
        http,
        server,
        force,
        RECORD_MISSING,
        missing_episode(
            unique("W-MISS"),
            child_input=child(unique("W-M"), council=council, hostCouncil=host, lookedAfter=True),
            missingFrom="CARE",
            lastSeenCouncil=host,
        ),
    )
    investigation = await _push(
        http,
        server,
        force,
        UPDATE_INVESTIGATION,
        status_change(unique("W-INV"), "OPEN", hours=1, incidentReferences=[reference]),
    )
    discussion = await schedule(
        http,
        server,
        meeting(unique("W-MTG"), children=[{"childId": pupil}], forces=[force]),
        council=council,
    )
    request = await _push(
        http,
        server,
        council,
        REQUEST_JOINT_VISIT,
        joint_visit(unique("W-JV"), pupil, force=force),
        role=Role.COUNCIL_SOCIAL_WORKER,
    )
    # Placed and consulted in the child's own council: no third council sees it.
    protected = await _push(
        http,
        server,
        force,
        RECORD_PROTECTION,
        protection(
            unique("W-PP"),
            child_input=child(unique("W-PC"), council=council),
            placedCouncil=council,
            consultedCouncil=council,
        ),
    )
    return Side(
        joint_visit_request=request["id"],
        police_protection=protected["id"],
        incident=pushed["id"],
        child=pupil,
        sibling=sibling,
        missing_episode=episode["id"],
        missing_child=episode["child"]["id"],
        investigation=investigation["id"],
        meeting=discussion["id"],
    )


async def build_world(http: httpx.AsyncClient, server: LiveServer, db: Database) -> World:
    await ensure_schools(db)
    inside = await _side(
        http, server, force=FORCE, council=COUNCIL, school=SCHOOL, host=HOST_COUNCIL
    )
    outside = await _side(
        http,
        server,
        force=OTHER_FORCE,
        council=OTHER_COUNCIL,
        school=OTHER_SCHOOL,
        host=THIRD_COUNCIL,
    )
    return World(inside=inside, outside=outside)
