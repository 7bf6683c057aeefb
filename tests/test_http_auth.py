"""Tokens over real HTTP: /oauth/token, the published keys and metadata, and each refusal as 401."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import pytest

from hub.access import clients
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.db import Database
from tests.conftest import LiveServer
from tests.factories import COUNCIL
from tests.test_access_tokens import b64, b64_json, parts, sign


async def _ask(http: httpx.AsyncClient, server: LiveServer, token: str) -> httpx.Response:
    return await http.post(
        server.graphql_url,
        json={"query": "{ viewer { role } }"},
        headers={"Authorization": f"Bearer {token}"},
    )


def _claims(server: LiveServer, **changes: object) -> dict:
    _, claims = parts(server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL))
    return {**claims, **changes}


def _alg_none(server: LiveServer) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": server.keys.signing_key.kid}
    return f"{b64_json(header)}.{b64_json(_claims(server))}."


def _hs256_with_public_key(server: LiveServer) -> str:
    key = server.keys.signing_key
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{b64_json(header)}.{b64_json(_claims(server))}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


BAD_TOKENS = {
    "expired": lambda s: sign(
        s.keys, _claims(s, iat=int(time.time()) - 900, exp=int(time.time()) - 300)
    ),
    "wrong_audience": lambda s: sign(s.keys, _claims(s, aud="another-service")),
    "wrong_issuer": lambda s: sign(s.keys, _claims(s, iss="https://elsewhere.example")),
    "disallowed_algorithm": _alg_none,
    "disallowed_algorithm/hs256": _hs256_with_public_key,
    "unknown_key": lambda s: sign(KeySet.generate(development=True), _claims(s)),
    "malformed_token": lambda _s: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_are_refused_with_401_and_a_reason(
    http: httpx.AsyncClient, live_server: LiveServer, case: str
) -> None:
    response = await _ask(http, live_server, BAD_TOKENS[case](live_server))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED",
        "reason": case.split("/", maxsplit=1)[0],
    }


async def test_client_credentials_token_works_and_wrong_secret_does_not(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    async with db.transaction(write=True) as session:
        client, secret = await clients.create_client(
            session, organisation_code=COUNCIL, role=Role.COUNCIL_SOCIAL_WORKER
        )
    token_url = f"{live_server.url}/oauth/token"
    refused = await http.post(
        token_url, data={"grant_type": "client_credentials"}, auth=(client.client_id, secret + "x")
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    issued = await http.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert issued.status_code == 200
    assert issued.headers["cache-control"] == "no-store"
    header, claims = parts(issued.json()["access_token"])
    assert header["typ"] == "at+jwt"
    assert (claims["org"], claims["role"], claims["client_id"]) == (
        COUNCIL,
        "council_social_worker",
        client.client_id,
    )
    assert claims["exp"] - claims["iat"] == live_server.settings.access_token_ttl_seconds
    viewer = await _ask(http, live_server, issued.json()["access_token"])
    assert viewer.json()["data"]["viewer"]["role"] == "council_social_worker"


async def test_keys_and_metadata_are_published(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    jwks = (await http.get(f"{live_server.url}/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == list(live_server.keys.kids)
    assert all("d" not in k for k in jwks["keys"]), "private parts are never published"
    metadata = (await http.get(f"{live_server.url}/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == live_server.settings.issuer
    assert metadata["token_endpoint"] == f"{live_server.url}/oauth/token"
    assert metadata["jwks_uri"] == f"{live_server.url}/.well-known/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
