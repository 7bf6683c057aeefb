"""Revocation that bites: a revoked client's live token is refused by every hub process.

Two `safeguarding-hub serve` processes share the test database. A client registered with the
CLI gets a token from one; both accept it; the CLI revokes the client; both then refuse it
(`revoked_client`) within `HUB_CLIENT_STATUS_TTL_SECONDS`, polled here with a generous bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.access.cli import clients_app
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.bench import _free_port
from tests.conftest import LiveServer, cli_settings

ROOT = Path(__file__).resolve().parents[1]
VIEWER = {"query": "{ viewer { clientId role } }"}
# Far beyond the one second the processes below are given: a loaded machine, not a threshold.
GIVE_UP_AFTER_SECONDS = 60

runner = CliRunner()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + GIVE_UP_AFTER_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the hub process exited during start-up"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz").status_code == httpx.codes.OK:
                return
        time.sleep(0.1)
    pytest.fail("the hub process did not become ready")


@pytest.fixture
def two_hubs(live_server: LiveServer) -> Iterator[list[str]]:
    """Two hub processes on the session's database and keys, under one issuer (the first's)."""
    ports = [_free_port(), _free_port()]
    issuer = f"http://127.0.0.1:{ports[0]}"
    env = {
        **os.environ,
        "HUB_DATABASE_URL": live_server.settings.database_url,
        "HUB_DATA_DIR": str(live_server.settings.data_dir),
        "HUB_ISSUER": issuer,
        "HUB_MODE": "development",
        "HUB_CLIENT_STATUS_TTL_SECONDS": "1",
    }
    processes = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env, cwd=ROOT
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def _cli(monkeypatch: pytest.MonkeyPatch, server: LiveServer, *args: str) -> str:
    with cli_settings(monkeypatch, server.settings.database_url, server.settings.data_dir):
        result = runner.invoke(clients_app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


async def _refused_everywhere(http: httpx.AsyncClient, urls: list[str], token: str) -> bool:
    headers = {"Authorization": f"Bearer {token}"}
    responses = [await http.post(f"{url}/graphql", json=VIEWER, headers=headers) for url in urls]
    refused = [
        response.status_code == httpx.codes.UNAUTHORIZED
        and response.json()["errors"][0]["extensions"]["reason"] == "revoked_client"
        for response in responses
    ]
    return all(refused)


async def _subscription_refused(url: str, token: str) -> int | None:
    """The close code a graphql-ws client sending the token in `connectionParams` gets."""
    ws_url = url.replace("http://", "ws://") + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        params = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": params}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), GIVE_UP_AFTER_SECONDS)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_revoking_a_client_stops_its_tokens_on_every_process(
    two_hubs: list[str],
    live_server: LiveServer,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added = await asyncio.to_thread(
        _cli, monkeypatch, live_server, "add", "--org", "E08000025", "--role", "dpo"
    )
    client_id = added.split("client id:")[1].split()[0]
    secret = added.split("secret:")[1].split()[0]
    issued = await http.post(
        f"{two_hubs[0]}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert issued.status_code == httpx.codes.OK, issued.text
    token = issued.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for url in two_hubs:
        served = await http.post(f"{url}/graphql", json=VIEWER, headers=headers)
        assert served.json()["data"]["viewer"]["clientId"] == client_id

    printed = await asyncio.to_thread(_cli, monkeypatch, live_server, "revoke", client_id)
    assert "refuses its tokens within" in printed
    deadline = time.monotonic() + GIVE_UP_AFTER_SECONDS
    while not await _refused_everywhere(http, two_hubs, token):
        assert time.monotonic() < deadline, "a revoked client's token is still served"
        await asyncio.sleep(0.2)
    # Nor may the token open a subscription, whether on the upgrade or in `connectionParams`.
    for url in two_hubs:
        assert await _subscription_refused(url, token) == 4403
    # Another client's token is still served: the refusal is the revoked client's alone.
    settings = live_server.settings.model_copy(update={"issuer": two_hubs[0]})
    other = issue_access_token(
        settings=settings,
        keys=live_server.keys,
        client_id="test-dpo",
        organisation_code="E08000025",
        role=Role.DPO,
        user="test-user",
        purpose="data_protection_review",
    )
    for url in two_hubs:
        still = await http.post(
            f"{url}/graphql", json=VIEWER, headers={"Authorization": f"Bearer {other}"}
        )
        assert still.json()["data"]["viewer"]["clientId"] == "test-dpo"
