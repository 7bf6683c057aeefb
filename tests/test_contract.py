"""The GraphQL contract is a file: `schema/hub.graphql` must be what the code exports."""

from __future__ import annotations

from pathlib import Path

import httpx

from hub.access.models import Role
from hub.graphql.schema import export_sdl
from tests.conftest import LiveServer

CONTRACT = Path(__file__).resolve().parent.parent / "schema" / "hub.graphql"


def test_contract_file_matches_the_code() -> None:
    assert CONTRACT.read_text() == export_sdl(), (
        "schema/hub.graphql is out of date: run `safeguarding-hub schema export`"
    )


def test_contract_is_a_federation_2_subgraph() -> None:
    sdl = CONTRACT.read_text()
    assert 'url: "https://specs.apollo.dev/federation/v2.9"' in sdl
    for entity in ("Child", "Organisation"):
        assert f'type {entity} @key(fields: "id")' in sdl
    for record in ("Incident", "MissingEpisode", "Investigation"):
        assert f'type {record} implements PoliceRecord @key(fields: "id")' in sdl


async def test_entities_resolve_through_the_service_field(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, "E08000025")
    response = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "query": """query($r: [_Any!]!) { _entities(representations: $r) {
                 ... on Organisation { id name kind } } }""",
            "variables": {
                "r": [
                    {"__typename": "Organisation", "id": "E08000025"},
                    {"__typename": "Organisation", "id": "NOPE"},
                ]
            },
        },
    )
    entities = response.json()["data"]["_entities"]
    assert entities == [{"id": "E08000025", "name": "Birmingham", "kind": "COUNCIL"}, None]
    sdl = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": "{ _service { sdl } }"},
        )
    ).json()
    assert (
        'type Incident implements PoliceRecord @key(fields: "id")' in sdl["data"]["_service"]["sdl"]
    )
