"""The demo prints an example request for each role: each one is served, not refused."""

from __future__ import annotations

import httpx
import pytest

from hub.access.models import Role
from hub.demo import EXAMPLE_PURPOSE, example_query
from tests.conftest import LiveServer
from tests.scenario import ORGANISATION_OF, World


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_each_roles_printed_example_is_served(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, role: Role
) -> None:
    del world  # records for the case roles' examples to find
    token = live_server.token(role, ORGANISATION_OF[role], user=None, purpose=None)
    response = await http.post(
        live_server.graphql_url,
        json={"query": example_query(role)},
        # The headers the demo's printed curl line sends.
        headers={
            "Authorization": f"Bearer {token}",
            "Hub-On-Behalf-Of": "demo-user-1",
            "Hub-Purpose": EXAMPLE_PURPOSE[role],
        },
    )
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["viewer"]["role"] == role.value
    answered = [value for key, value in body["data"].items() if key != "viewer"]
    assert answered
    assert all(value is not None for value in answered)
