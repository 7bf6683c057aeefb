"""A police system gets a token, pushes each kind of record; a council system reads them back.

Everything crosses real HTTP to uvicorn with real signed tokens from /oauth/token.
"""

from __future__ import annotations

import httpx

from hub.access import clients
from hub.access.models import Role
from hub.db import Database
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    RECORD_MISSING,
    REPORT_INCIDENT,
    UPDATE_INVESTIGATION,
    UPDATE_MISSING,
    hours_ago,
    incident,
    iso,
    missing_episode,
    status_change,
)


async def _client_token(
    http: httpx.AsyncClient, server: LiveServer, db: Database, role: Role, org: str
) -> str:
    async with db.transaction(write=True) as session:
        client, secret = await clients.create_client(session, organisation_code=org, role=role)
    response = await http.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert 0 < body["expires_in"] <= 3600
    return str(body["access_token"])


async def _gql(
    http: httpx.AsyncClient,
    server: LiveServer,
    token: str,
    query: str,
    variables: dict | None = None,
) -> dict:
    response = await http.post(
        server.graphql_url,
        json={"query": query, "variables": variables or {}},
        headers={
            "Authorization": f"Bearer {token}",
            "Hub-On-Behalf-Of": "sw-0042",
            "Hub-Purpose": "section_47_enquiry",
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_police_push_and_council_read_back(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    police = await _client_token(http, live_server, db, Role.POLICE_OFFICER, FORCE)
    council = await _client_token(http, live_server, db, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)

    incident_ref, missing_ref, investigation_ref = unique("INC"), unique("MISS"), unique("INV")
    pushed = await _gql(
        http, live_server, police, REPORT_INCIDENT, {"input": incident(incident_ref)}
    )
    assert "errors" not in pushed, pushed
    record = pushed["data"]["reportIncident"]
    assert record["force"]["id"] == FORCE
    assert record["locationCouncil"]["id"] == COUNCIL
    assert record["children"][0]["present"] is True
    child_id = record["children"][0]["child"]["id"]

    episode = await _gql(
        http, live_server, police, RECORD_MISSING, {"input": missing_episode(missing_ref)}
    )
    assert episode["data"]["recordMissingEpisode"]["status"] == "MISSING"
    found = await _gql(
        http,
        live_server,
        police,
        UPDATE_MISSING,
        {"input": {"policeReference": missing_ref, "status": "FOUND", "at": iso(hours_ago(1))}},
    )
    assert found["data"]["updateMissingEpisode"]["status"] == "FOUND"
    returned = await _gql(
        http,
        live_server,
        police,
        UPDATE_MISSING,
        {
            "input": {
                "policeReference": missing_ref,
                "status": "RETURNED",
                "at": iso(hours_ago(0.5)),
            }
        },
    )
    assert returned["data"]["updateMissingEpisode"]["returnedAt"] is not None

    opened = await _gql(
        http,
        live_server,
        police,
        UPDATE_INVESTIGATION,
        {
            "input": status_change(
                investigation_ref, "OPEN", hours=3, incidentReferences=[incident_ref]
            )
        },
    )
    assert opened["data"]["updateInvestigationStatus"]["status"] == "OPEN"
    closed = await _gql(
        http,
        live_server,
        police,
        UPDATE_INVESTIGATION,
        {
            "input": status_change(
                investigation_ref, "NO_FURTHER_ACTION", hours=1, reason="Threshold not met"
            )
        },
    )
    history = closed["data"]["updateInvestigationStatus"]["history"]
    assert [(h["fromStatus"], h["toStatus"]) for h in history] == [
        (None, "OPEN"),
        ("OPEN", "NO_FURTHER_ACTION"),
    ]
    assert history[1]["reason"] == "Threshold not met"

    read = await _gql(
        http,
        live_server,
        council,
        """
      query Child($id: ID!) {
        child(id: $id) {
          id responsibleCouncil { id }
          incidents { policeReference summary }
          investigations { policeReference status incidents { policeReference } }
        }
        missingEpisodes(filter: {statuses: [RETURNED]}, first: 100) {
          edges { node { policeReference returnedAt } }
        }
      }""",
        {"id": child_id},
    )
    assert "errors" not in read, read
    assert read["data"]["child"]["responsibleCouncil"]["id"] == COUNCIL
    assert [i["policeReference"] for i in read["data"]["child"]["incidents"]] == [incident_ref]
    # The investigation names no child itself: its linked incident's children are concerned.
    assert read["data"]["child"]["investigations"] == [
        {
            "policeReference": investigation_ref,
            "status": "NO_FURTHER_ACTION",
            "incidents": [{"policeReference": incident_ref}],
        }
    ]
    returned_refs = [e["node"]["policeReference"] for e in read["data"]["missingEpisodes"]["edges"]]
    assert missing_ref in returned_refs

    investigations = await _gql(
        http,
        live_server,
        council,
        """
      { investigations(filter: {statuses: [NO_FURTHER_ACTION]}, first: 100) {
          edges { node { policeReference history { toStatus } } } } }""",
    )
    refs = [e["node"]["policeReference"] for e in investigations["data"]["investigations"]["edges"]]
    assert investigation_ref in refs


async def test_viewer_reflects_token_and_headers(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    response = await http.post(
        live_server.graphql_url,
        json={"query": "{ viewer { role onBehalfOf purpose organisation { id kind } } }"},
        headers={
            "Authorization": f"Bearer {token}",
            "Hub-On-Behalf-Of": "sw-77",
            "Hub-Purpose": "missing_child",
        },
    )
    viewer = response.json()["data"]["viewer"]
    assert viewer == {
        "role": "council_social_worker",
        "onBehalfOf": "sw-77",
        "purpose": "missing_child",
        "organisation": {"id": COUNCIL, "kind": "COUNCIL"},
    }
