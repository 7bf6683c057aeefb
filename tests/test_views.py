"""The key views of the agreement, written by hand, and every leak path closed.

The matrix test is generated from the agreement; these say in plain terms what a council, a
force, a school and an inspectorate expect, so the matrix is not only consistent with itself.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from hub.access.models import Role
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_FORCE,
    REPORT_INCIDENT,
    THIRD_COUNCIL,
    child,
    incident,
)
from tests.scenario import OTHER_SCHOOL, SCHOOL, World


async def ask(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: dict[str, Any] | None = None,
    **headers: str,
) -> dict[str, Any]:
    token = server.token(role, org)
    response = await http.post(
        server.graphql_url,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}", **headers},
    )
    body: dict[str, Any] = response.json()
    return body


def forbidden(body: dict[str, Any]) -> set[str]:
    return {
        ".".join(str(p) for p in e["path"])
        for e in body.get("errors", [])
        if e["extensions"]["code"] == "FORBIDDEN_FIELD"
    }


MISSING = (
    "query($id: ID!) { missingEpisode(id: $id) { id status child { id hostCouncil { id } } } }"
)


@pytest.mark.parametrize(
    ("council", "sees"), [(COUNCIL, True), (HOST_COUNCIL, True), (THIRD_COUNCIL, False)]
)
async def test_a_child_missing_from_an_out_of_area_placement(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, council: str, sees: bool
) -> None:
    """Both the responsible and the host council see it; a third council does not."""
    body = await ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        council,
        MISSING,
        {"id": world.inside.missing_episode},
    )
    assert "errors" not in body
    episode = body["data"]["missingEpisode"]
    if sees:
        assert episode["child"]["hostCouncil"]["id"] == HOST_COUNCIL
    else:
        assert episode is None
    listed = await ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        council,
        "{ missingEpisodes(first: 100) { edges { node { id } } } }",
    )
    ids = {e["node"]["id"] for e in listed["data"]["missingEpisodes"]["edges"]}
    assert (world.inside.missing_episode in ids) is sees


NOTICE = """query($id: ID!) { incident(id: $id) { id type occurredAt summary dashRisk
  children { present victim child { id givenName familyName dateOfBirth nhsNumber } } } }"""


async def test_the_school_receives_the_encompass_notice_and_nothing_else(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    body = await ask(
        http, live_server, Role.SCHOOL_DSL, SCHOOL, NOTICE, {"id": world.inside.incident}
    )
    notice = body["data"]["incident"]
    assert notice["type"] == "DOMESTIC_ABUSE"
    assert notice["occurredAt"] is not None
    # Only the school's own pupil, not the sibling at another school.
    assert [c["child"]["id"] for c in notice["children"]] == [world.inside.child]
    pupil = notice["children"][0]
    assert pupil["present"] is True
    assert pupil["child"]["givenName"] == "Alex"
    assert pupil["child"]["dateOfBirth"] == "2015-03-04"
    assert (
        notice["summary"],
        notice["dashRisk"],
        pupil["victim"],
        pupil["child"]["nhsNumber"],
    ) == (None, None, None, None)
    assert forbidden(body) == {
        "incident.summary",
        "incident.dashRisk",
        "incident.children.0.victim",
        "incident.children.0.child.nhsNumber",
    }


async def test_each_school_sees_only_its_own_pupil(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    body = await ask(
        http,
        live_server,
        Role.SCHOOL_DSL,
        OTHER_SCHOOL,
        "query($id: ID!) { incident(id: $id) { children { child { id } } } }",
        {"id": world.inside.incident},
    )
    assert body["data"]["incident"]["children"] == [{"child": {"id": world.inside.sibling}}]


async def test_schools_see_no_other_kind_of_incident(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    neglect = incident(
        unique("NEG"),
        type="NEGLECT",
        children=[{"child": child(unique("NEG-C"), school=SCHOOL), "present": True}],
    )
    pushed = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": REPORT_INCIDENT, "variables": {"input": neglect}},
        )
    ).json()["data"]["reportIncident"]
    body = await ask(
        http,
        live_server,
        Role.SCHOOL_DSL,
        SCHOOL,
        "query($id: ID!) { incident(id: $id) { id } }",
        {"id": pushed["id"]},
    )
    assert body == {"data": {"incident": None}}


async def test_councils_see_the_case_but_not_police_restricted_detail(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    query = "query($id: ID!) { incident(id: $id) { summary dashRisk operationalNotes } }"
    council = await ask(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, query, {"id": world.inside.incident}
    )
    assert council["data"]["incident"]["summary"] == "Synthetic test incident."
    assert council["data"]["incident"]["operationalNotes"] is None
    assert forbidden(council) == {"incident.operationalNotes"}
    police = await ask(
        http, live_server, Role.POLICE_OFFICER, FORCE, query, {"id": world.inside.incident}
    )
    assert police["data"]["incident"]["operationalNotes"] == "Synthetic police-only note."
    assert "errors" not in police


async def test_a_force_sees_only_its_own_records(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    query = "query($a: ID!, $b: ID!) { a: incident(id: $a) { id } b: incident(id: $b) { id } }"
    body = await ask(
        http,
        live_server,
        Role.POLICE_OFFICER,
        OTHER_FORCE,
        query,
        {"a": world.inside.incident, "b": world.outside.incident},
    )
    assert body["data"] == {"a": None, "b": {"id": world.outside.incident}}


@pytest.mark.parametrize(
    ("role", "org"), [(Role.AUDITOR, "OFSTED"), (Role.DPO, COUNCIL), (Role.HUB_ADMIN, "HUB")]
)
async def test_roles_without_case_rows_get_no_case_content(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, role: Role, org: str
) -> None:
    body = await ask(
        http,
        live_server,
        role,
        org,
        """query($id: ID!) {
        incidents(first: 5) { edges { node { id } } } child(id: $id) { id }
        organisations(kind: COUNCIL) { id } }""",
        {"id": world.inside.child},
    )
    assert body["data"]["incidents"] is None
    assert body["data"]["child"] is None
    assert forbidden(body) == {"incidents", "child"}
    assert len(body["data"]["organisations"]) == 175


# -- leak paths ---------------------------------------------------------------------------------


async def test_filtering_on_a_hidden_field_is_refused(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    body = await ask(
        http,
        live_server,
        Role.SCHOOL_DSL,
        SCHOOL,
        "{ incidents(filter: {dashRisks: [MEDIUM]}) { edges { node { id } } } }",
    )
    assert body["data"]["incidents"] is None
    assert body["errors"][0]["extensions"] == {
        "code": "FORBIDDEN_FIELD",
        "type": "Incident",
        "field": "dashRisk",
    }
    allowed = await ask(
        http,
        live_server,
        Role.SCHOOL_DSL,
        SCHOOL,
        "{ incidents(filter: {types: [DOMESTIC_ABUSE]}) { edges { node { id } } } }",
    )
    ids = [e["node"]["id"] for e in allowed["data"]["incidents"]["edges"]]
    assert world.inside.incident in ids


async def test_cursors_carry_no_field_values_and_do_not_cross_scopes(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    page = await ask(
        http,
        live_server,
        Role.POLICE_OFFICER,
        OTHER_FORCE,
        "{ incidents(first: 100) { edges { cursor node { id occurredAt } } } }",
    )
    # The outside world's incident: no child or place of it is the council's (another force's
    # newest incident may be, once another test has pushed one about the council's child).
    (edge,) = [
        e for e in page["data"]["incidents"]["edges"] if e["node"]["id"] == world.outside.incident
    ]
    cursor = edge["cursor"]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert edge["node"]["occurredAt"][:10].encode() not in decoded  # no sort key inside
    elsewhere = await ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        "query($a: String!) { incidents(after: $a) { edges { cursor } } }",
        {"a": cursor},
    )
    assert elsewhere["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "after"}


async def test_pages_walk_the_whole_list_once(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    async def walk(first: int) -> list[str]:
        seen: list[str] = []
        after = None
        while True:
            body = await ask(
                http,
                live_server,
                Role.COUNCIL_SOCIAL_WORKER,
                COUNCIL,
                "query($f: Int, $a: String) { incidents(first: $f, after: $a) { "
                "edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
                {"f": first, "a": after},
            )
            connection = body["data"]["incidents"]
            seen += [e["node"]["id"] for e in connection["edges"]]
            if not connection["pageInfo"]["hasNextPage"]:
                return seen
            after = connection["pageInfo"]["endCursor"]

    # Against the largest pages, not one page: the session's database may hold more than 100.
    seen = await walk(1)
    assert seen == await walk(100)
    assert len(seen) == len(set(seen)) > 1


async def test_out_of_jurisdiction_is_indistinguishable_from_missing(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    query = """query($id: ID!, $r: [_Any!]!) { incident(id: $id) { id }
      _entities(representations: $r) { ... on Incident { id } } }"""
    answers = []
    for record_id in (world.outside.incident, str(uuid.uuid4())):
        answers.append(
            await ask(
                http,
                live_server,
                Role.COUNCIL_SOCIAL_WORKER,
                COUNCIL,
                query,
                {"id": record_id, "r": [{"__typename": "Incident", "id": record_id}]},
            )
        )
    assert answers[0] == answers[1] == {"data": {"incident": None, "_entities": [None]}}


async def test_ids_are_random(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    """Ids reveal neither counts nor order: version 4 UUIDs."""
    for record_id in (world.inside.incident, world.inside.child, world.outside.incident):
        assert uuid.UUID(record_id).version == 4


# -- purpose and person -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Hub-Purpose": ""}, "PURPOSE_REQUIRED"),
        ({"Hub-Purpose": "curiosity"}, "PURPOSE_UNKNOWN"),
        ({"Hub-Purpose": "operation_encompass"}, "PURPOSE_NOT_PERMITTED"),
        ({"Hub-On-Behalf-Of": ""}, "ON_BEHALF_OF_REQUIRED"),
    ],
)
async def test_a_read_needs_a_permitted_purpose_and_a_person_before_any_data_is_touched(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    world: World,
    headers: dict[str, str],
    code: str,
) -> None:
    purpose = None if "Hub-Purpose" in headers else "section_47_enquiry"
    user = None if "Hub-On-Behalf-Of" in headers else "sw-1"
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, user=user, purpose=purpose)
    live_server.statements.clear()
    response = await http.post(
        live_server.graphql_url,
        json={"query": "{ incidents { edges { node { id } } } }"},
        headers={"Authorization": f"Bearer {token}", **{k: v for k, v in headers.items() if v}},
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == code
    assert body.get("data") is None
    # Refused before any case data was touched; the refusal itself is an audit event.
    # (The token check may re-read which clients are revoked: who is asking, not case data.)
    touched = [
        s
        for s in live_server.statements
        if not s.startswith(("BEGIN", "COMMIT")) and "FROM oauth_client" not in s
    ]
    assert touched, "the refusal is audited"
    assert all("audit_" in s for s in touched), touched


async def test_the_viewer_needs_no_purpose(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, purpose=None)
    body = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": "{ viewer { role purpose agreementVersion } }"},
        )
    ).json()
    assert body["data"]["viewer"]["purpose"] is None
    assert body["data"]["viewer"]["agreementVersion"].startswith("sha256:")
