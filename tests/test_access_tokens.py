"""Access tokens: issue, verify, every way a token is refused, key rotation, the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from joserfc import jwk, jws, jwt
from starlette.applications import Starlette

from hub.access import clients, oauth, tokens
from hub.access.identity import (
    ON_BEHALF_OF_HEADER,
    ORG_CLAIM,
    PURPOSE_HEADER,
    RejectReason,
    TokenRejected,
    principal_from_request,
)
from hub.access.keys import KeySet, KeySetError, prune, rotate
from hub.access.models import OAuthClient, Role
from hub.access.tokens import (
    authenticate_request,
    bearer_token,
    issue_access_token,
    verify_access_token,
)
from hub.errors import InvalidInput
from hub.settings import Mode, Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

ISSUER = "https://hub.test"
AUDIENCE = "safeguarding-hub"
TTL = 600


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        issuer=ISSUER, audience=AUDIENCE, access_token_ttl_seconds=TTL, data_dir=tmp_path
    )


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate(development=True)


@pytest.fixture(scope="module")
def other_keys() -> KeySet:
    return KeySet.generate(development=True)


def issue(settings: Settings, keys: KeySet, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "client_id": "hub_0123456789abcdef0123",
        "organisation_code": "WEST_MIDLANDS",
        "role": Role.POLICE_OFFICER,
        "user": "pc-4471",
        "purpose": "section_47_enquiry",
    } | overrides
    return issue_access_token(settings=settings, keys=keys, **arguments)


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    signed = jws.extract_compact(token.encode())
    return signed.headers(), json.loads(signed.payload)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def sign(keys: KeySet, claims: dict[str, Any], **header: Any) -> str:
    """A token signed with the set's signing key, with whatever header and claims a test wants."""
    key = keys.signing_key
    full_header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid} | header
    return jwt.encode(full_header, claims, key, default_type=None)


def reissue(settings: Settings, keys: KeySet, **changes: Any) -> str:
    """A genuine token's claims, changed (a None value removes the claim), and signed again."""
    _, claims = parts(issue(settings, keys))
    claims |= changes
    return sign(keys, {k: v for k, v in claims.items() if v is not None})


def rejected(settings: Settings, keys: KeySet, token: str) -> RejectReason:
    with pytest.raises(TokenRejected) as caught:
        verify_access_token(settings=settings, keys=keys, token=token)
    if token:
        assert token not in caught.value.message
    return caught.value.reason


# -- the valid token -------------------------------------------------------------------------


def test_issued_token_verifies_with_the_profile_claims(settings: Settings, keys: KeySet) -> None:
    token = issue(settings, keys)
    header, _ = parts(token)
    claims = verify_access_token(settings=settings, keys=keys, token=token)

    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": keys.signing_key.kid}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["client_id"] == "hub_0123456789abcdef0123"
    assert claims["org"] == "WEST_MIDLANDS"
    assert claims["role"] == "police_officer"
    assert claims["hub_user"] == "pc-4471"
    assert claims["hub_purpose"] == "section_47_enquiry"
    assert claims["scope"] == "hub"
    assert claims["exp"] - claims["iat"] == TTL
    assert abs(claims["iat"] - time.time()) < 5
    assert len(claims["jti"]) >= 16


def test_tokens_have_distinct_ids(settings: Settings, keys: KeySet) -> None:
    ids = {parts(issue(settings, keys))[1]["jti"] for _ in range(5)}
    assert len(ids) == 5


def test_user_and_purpose_are_optional_claims(settings: Settings, keys: KeySet) -> None:
    claims = verify_access_token(
        settings=settings, keys=keys, token=issue(settings, keys, user=None, purpose="  ")
    )
    assert "hub_user" not in claims
    assert "hub_purpose" not in claims


def test_issuing_refuses_unknown_scope_and_bad_context(settings: Settings, keys: KeySet) -> None:
    with pytest.raises(InvalidInput) as caught:
        issue(settings, keys, scope="admin")
    assert caught.value.field == "scope"
    with pytest.raises(InvalidInput):
        issue(settings, keys, user="x" * 129)
    with pytest.raises(InvalidInput):
        issue(settings, keys, purpose="line\nbreak")


def test_audience_may_be_a_list(settings: Settings, keys: KeySet) -> None:
    token = reissue(settings, keys, aud=["gateway", AUDIENCE])
    assert verify_access_token(settings=settings, keys=keys, token=token)["aud"] == [
        "gateway",
        AUDIENCE,
    ]


def test_media_type_form_of_typ_is_accepted(settings: Settings, keys: KeySet) -> None:
    _, claims = parts(issue(settings, keys))
    token = sign(keys, claims, typ="application/at+jwt")
    assert verify_access_token(settings=settings, keys=keys, token=token)["jti"] == claims["jti"]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", None])
def test_missing_token(settings: Settings, keys: KeySet, token: str | None) -> None:
    with pytest.raises(TokenRejected) as caught:
        bearer_token(token)
    assert caught.value.reason is RejectReason.MISSING
    assert rejected(settings, keys, "") is RejectReason.MISSING


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "token"])
def test_authorization_header_that_is_not_bearer(header: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        bearer_token(header)
    assert caught.value.reason is RejectReason.MALFORMED


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "a.b", "....", f"{b64(b'[1]')}.{b64_json({})}.", "é.é.é"],
)
def test_garbage(settings: Settings, keys: KeySet, token: str) -> None:
    assert rejected(settings, keys, token) is RejectReason.MALFORMED


def test_payload_that_is_not_an_object(settings: Settings, keys: KeySet) -> None:
    key = keys.signing_key
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
    token = jws.serialize_compact(header, b"[1, 2]", key)
    assert rejected(settings, keys, token) is RejectReason.MALFORMED


def test_expired(settings: Settings, keys: KeySet) -> None:
    now = int(time.time())
    token = reissue(settings, keys, iat=now - TTL - 120, exp=now - 120)
    assert rejected(settings, keys, token) is RejectReason.EXPIRED


def test_expiry_within_leeway_is_tolerated(settings: Settings, keys: KeySet) -> None:
    now = int(time.time())
    token = reissue(settings, keys, iat=now - TTL - 5, exp=now - 5)
    assert verify_access_token(settings=settings, keys=keys, token=token)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_issued_in_the_future(settings: Settings, keys: KeySet, claim: str) -> None:
    now = int(time.time())
    token = reissue(settings, keys, **{claim: now + 300}, exp=now + TTL)
    assert rejected(settings, keys, token) is RejectReason.NOT_YET_VALID


def test_lifetime_longer_than_the_hub_issues(settings: Settings, keys: KeySet) -> None:
    now = int(time.time())
    token = reissue(settings, keys, iat=now, exp=now + 10 * 24 * 3600)  # authlib's default
    assert rejected(settings, keys, token) is RejectReason.INVALID_CLAIM


@pytest.mark.parametrize("audience", ["another-service", ["another-service"], ""])
def test_wrong_audience(settings: Settings, keys: KeySet, audience: Any) -> None:
    token = reissue(settings, keys, aud=audience)
    assert rejected(settings, keys, token) is RejectReason.WRONG_AUDIENCE


def test_wrong_issuer(settings: Settings, keys: KeySet) -> None:
    token = reissue(settings, keys, iss="https://elsewhere.test")
    assert rejected(settings, keys, token) is RejectReason.WRONG_ISSUER


def test_wrong_issuer_from_another_hub(settings: Settings, keys: KeySet, tmp_path: Path) -> None:
    elsewhere = Settings(issuer="https://other-hub.test", data_dir=tmp_path)
    token = issue(elsewhere, keys)
    assert rejected(settings, keys, token) is RejectReason.WRONG_ISSUER


def test_alg_none(settings: Settings, keys: KeySet) -> None:
    _, claims = parts(issue(settings, keys))
    header = {"alg": "none", "typ": "at+jwt", "kid": keys.signing_key.kid}
    token = f"{b64_json(header)}.{b64_json(claims)}."
    assert rejected(settings, keys, token) is RejectReason.DISALLOWED_ALGORITHM


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
def test_hs256_keyed_with_the_public_key(settings: Settings, keys: KeySet, encoding: str) -> None:
    """The classic algorithm confusion: an HMAC 'signed' with what the JWKS publishes."""
    _, claims = parts(issue(settings, keys))
    key = keys.signing_key
    secret = {
        "pem": lambda: key.as_pem(private=False),
        "der": lambda: key.as_der(private=False),
        "jwk": lambda: json.dumps(key.as_dict(private=False)).encode(),
    }[encoding]()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{b64_json(header)}.{b64_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert rejected(settings, keys, token) is RejectReason.DISALLOWED_ALGORITHM


def test_other_rsa_algorithm(settings: Settings, keys: KeySet) -> None:
    _, claims = parts(issue(settings, keys))
    unpinned = {k: v for k, v in keys.signing_key.as_dict(private=True).items() if k != "alg"}
    token = jwt.encode(
        {"alg": "PS256", "typ": "at+jwt", "kid": keys.signing_key.kid},
        claims,
        jwk.RSAKey.import_key(unpinned),
        algorithms=["PS256"],
    )
    assert rejected(settings, keys, token) is RejectReason.DISALLOWED_ALGORITHM


def test_unknown_kid(settings: Settings, keys: KeySet, other_keys: KeySet) -> None:
    token = issue(settings, other_keys)
    assert rejected(settings, keys, token) is RejectReason.UNKNOWN_KEY


def test_no_kid(settings: Settings, keys: KeySet) -> None:
    _, claims = parts(issue(settings, keys))
    token = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, keys.signing_key)
    assert rejected(settings, keys, token) is RejectReason.UNKNOWN_KEY


def test_our_kid_on_another_key(settings: Settings, keys: KeySet, other_keys: KeySet) -> None:
    _, claims = parts(issue(settings, keys))
    header = {"alg": "RS256", "typ": "at+jwt", "kid": keys.signing_key.kid}
    token = jwt.encode(header, claims, other_keys.signing_key)
    assert rejected(settings, keys, token) is RejectReason.BAD_SIGNATURE


# -- a signature checked once ----------------------------------------------------------------


def test_a_checked_tokens_claims_are_still_checked_each_time(
    settings: Settings, keys: KeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue(settings, keys)
    claims = verify_access_token(settings=settings, keys=keys, token=token)
    claims[ORG_CLAIM] = "ANOTHER_FORCE"  # the caller's copy: the next request is not changed by it
    assert (
        verify_access_token(settings=settings, keys=keys, token=token)[ORG_CLAIM] == "WEST_MIDLANDS"
    )
    later = time.time() + TTL + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert rejected(settings, keys, token) is RejectReason.EXPIRED


def test_a_tokens_signature_is_checked_once_per_key(
    settings: Settings, keys: KeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    check = tokens._check_signature
    monkeypatch.setattr(
        tokens,
        "_check_signature",
        lambda signed, key: checked.append(key.kid) or check(signed, key),
    )
    token = issue(settings, keys)
    for _ in range(3):
        assert verify_access_token(settings=settings, keys=keys, token=token)
    assert checked == [keys.signing_key.kid]


def test_a_checked_token_fails_once_its_key_is_gone_or_another(
    settings: Settings, keys: KeySet, other_keys: KeySet
) -> None:
    token = issue(settings, keys)
    assert verify_access_token(settings=settings, keys=keys, token=token)
    assert rejected(settings, other_keys, token) is RejectReason.UNKNOWN_KEY
    # The same kid on another key (a key set replaced under the same name): checked again.
    impostor = KeySet.generate(development=True)
    impostor._by_kid = {keys.signing_key.kid: impostor.signing_key}
    assert rejected(settings, impostor, token) is RejectReason.BAD_SIGNATURE
    assert verify_access_token(settings=settings, keys=keys, token=token)


def test_tampered_claims(settings: Settings, keys: KeySet) -> None:
    header, signature = issue(settings, keys).split(".")[0::2]
    _, claims = parts(issue(settings, keys))
    claims["role"] = "hub_admin"
    token = f"{header}.{b64_json(claims)}.{signature}"
    assert rejected(settings, keys, token) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("typ", ["JWT", "jwt", None, "id_token+jwt"])
def test_wrong_type(settings: Settings, keys: KeySet, typ: str | None) -> None:
    _, claims = parts(issue(settings, keys))
    key = keys.signing_key
    header = {"alg": "RS256", "kid": key.kid} | ({"typ": typ} if typ else {})
    token = jwt.encode(header, claims, key, default_type=None)
    assert rejected(settings, keys, token) is RejectReason.WRONG_TYPE


@pytest.mark.parametrize(
    "claim", ["client_id", "org", "role", "jti", "sub", "iss", "aud", "exp", "iat"]
)
def test_missing_claim(settings: Settings, keys: KeySet, claim: str) -> None:
    token = reissue(settings, keys, **{claim: None})
    assert rejected(settings, keys, token) is RejectReason.MISSING_CLAIM


@pytest.mark.parametrize(
    "changes",
    [
        {"role": "chief_constable"},
        {"org": 42},
        {"hub_user": ["a"]},
        {"hub_purpose": "bell\x07"},
        {"exp": "tomorrow"},
    ],
)
def test_invalid_claim(settings: Settings, keys: KeySet, changes: dict[str, Any]) -> None:
    token = reissue(settings, keys, **changes)
    assert rejected(settings, keys, token) is RejectReason.INVALID_CLAIM


def test_rejection_extensions_carry_code_and_reason() -> None:
    error = TokenRejected(RejectReason.EXPIRED)
    assert error.extensions == {"code": "UNAUTHENTICATED", "reason": "expired"}


# -- the principal -----------------------------------------------------------------------------


def test_principal_headers_win_over_claims(settings: Settings, keys: KeySet) -> None:
    token = issue(settings, keys)
    headers = {
        "authorization": f"Bearer {token}",
        ON_BEHALF_OF_HEADER.lower(): "  sw-0002  ",
        PURPOSE_HEADER: "strategy_discussion",
    }
    principal = authenticate_request(headers, settings=settings, keys=keys)

    assert principal.client_id == "hub_0123456789abcdef0123"
    assert principal.organisation_code == "WEST_MIDLANDS"
    assert principal.role is Role.POLICE_OFFICER
    assert principal.user == "sw-0002"
    assert principal.purpose == "strategy_discussion"
    assert principal.token_id == parts(token)[1]["jti"]


def test_principal_falls_back_to_claims_when_headers_are_blank(
    settings: Settings, keys: KeySet
) -> None:
    claims = verify_access_token(settings=settings, keys=keys, token=issue(settings, keys))
    principal = principal_from_request({ON_BEHALF_OF_HEADER: "   "}, claims)
    assert principal.user == "pc-4471"
    assert principal.purpose == "section_47_enquiry"


@pytest.mark.parametrize("value", ["x" * 129, "tab\there", "bell\x07"])
def test_principal_refuses_unsafe_header_values(
    settings: Settings, keys: KeySet, value: str
) -> None:
    claims = verify_access_token(settings=settings, keys=keys, token=issue(settings, keys))
    with pytest.raises(InvalidInput) as caught:
        principal_from_request({PURPOSE_HEADER: value}, claims)
    assert caught.value.field == PURPOSE_HEADER
    assert value not in caught.value.message


def test_request_without_a_token(settings: Settings, keys: KeySet) -> None:
    with pytest.raises(TokenRejected) as caught:
        authenticate_request({PURPOSE_HEADER: "x"}, settings=settings, keys=keys)
    assert caught.value.reason is RejectReason.MISSING


# -- keys --------------------------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_until_pruned(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = rotate(path, development=True)
    old_token = issue(settings, first)

    second = rotate(path, development=True)
    assert second.kids[1:] == first.kids
    assert verify_access_token(settings=settings, keys=KeySet.load(path), token=old_token)
    new_header, _ = parts(issue(settings, second))
    assert new_header["kid"] == second.signing_key.kid != first.signing_key.kid

    pruned = prune(path, keep=1)
    assert pruned.kids == (second.signing_key.kid,)
    reason = rejected(settings, KeySet.load(path), old_token)
    assert reason is RejectReason.UNKNOWN_KEY


def test_prune_keeps_at_least_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    rotate(path)
    with pytest.raises(KeySetError):
        prune(path, keep=0)


def test_development_creates_a_private_key_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "dir")
    created = KeySet.for_settings(settings)

    assert settings.keys_path.exists()
    assert stat.S_IMODE(settings.keys_path.stat().st_mode) == 0o600
    assert created.signing_key.kid is not None
    assert created.signing_key.kid.startswith("dev-")
    assert KeySet.for_settings(settings).kids == created.kids
    assert not list(settings.keys_path.parent.glob("*.tmp"))


def test_published_keys_hold_no_private_parts(keys: KeySet) -> None:
    published = keys.public_jwks()["keys"]
    assert [key["kid"] for key in published] == list(keys.kids)
    for key in published:
        assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}


def production(path: Path) -> Settings:
    return Settings(
        mode=Mode.PRODUCTION, signing_keys_file=path, pseudonym_key="a-real-pseudonym-key"
    )


def test_production_refuses_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeySetError, match="production mode needs"):
        KeySet.for_settings(production(tmp_path / "absent.json"))
    assert not (tmp_path / "absent.json").exists()


def test_production_refuses_development_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    rotate(path, development=True)
    rotate(path, development=False)
    with pytest.raises(KeySetError, match="development keys"):
        KeySet.for_settings(production(path))

    prune(path, keep=1)
    keys = KeySet.for_settings(production(path))
    assert keys.signing_key.kid is not None
    assert keys.signing_key.kid.startswith("hub-")


def test_unreadable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(KeySetError, match="cannot read"):
        KeySet.load(path)
    path.write_text(json.dumps({"keys": [KeySet.generate(development=True).public_jwks()]}))
    with pytest.raises(KeySetError):
        KeySet.load(path)


# -- the token endpoint, with the database stood in for ---------------------------------------

CLIENT_ID = "hub_00112233445566778899"
SECRET = "correct-horse-battery-staple-0123456789"


class _Session:
    def __init__(self, rows: dict[str, OAuthClient]) -> None:
        self.rows = rows

    async def get(self, _model: type[OAuthClient], client_id: str) -> OAuthClient | None:
        return self.rows.get(client_id)


class _Database:
    def __init__(self, rows: dict[str, OAuthClient]) -> None:
        self.rows = rows
        self.writes: list[bool] = []

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[_Session]:
        self.writes.append(write)
        yield _Session(self.rows)


@pytest.fixture(scope="module")
def registered() -> OAuthClient:
    return OAuthClient(
        client_id=CLIENT_ID,
        secret_hash=clients.hash_secret(SECRET),
        organisation_code="E08000025",
        role=Role.COUNCIL_SOCIAL_WORKER.value,
    )


@pytest.fixture
def database(registered: OAuthClient) -> _Database:
    return _Database({CLIENT_ID: registered})


@pytest.fixture
async def endpoint(
    settings: Settings, keys: KeySet, database: _Database
) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=oauth.routes())
    app.state.hub = SimpleNamespace(settings=settings, keys=keys, db=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def request_token(
    endpoint: httpx.AsyncClient, data: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    form = {"grant_type": "client_credentials"} if data is None else data
    return await endpoint.post("/oauth/token", data=form, **kwargs)


async def test_endpoint_issues_the_same_shape_as_the_cli(
    endpoint: httpx.AsyncClient, settings: Settings, keys: KeySet
) -> None:
    response = await request_token(endpoint, auth=(CLIENT_ID, SECRET))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TTL
    assert body["scope"] == "hub"

    claims = verify_access_token(settings=settings, keys=keys, token=body["access_token"])
    assert claims["client_id"] == claims["sub"] == CLIENT_ID
    assert claims["org"] == "E08000025"
    assert claims["role"] == "council_social_worker"
    assert claims["exp"] - claims["iat"] == TTL
    cli_claims = parts(issue(settings, keys, user=None, purpose=None))[1]
    assert set(claims) == set(cli_claims)
    assert parts(body["access_token"])[0] == parts(issue(settings, keys))[0]


async def test_endpoint_accepts_client_secret_post(endpoint: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    assert (await request_token(endpoint, form)).status_code == 200


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [(CLIENT_ID, "wrong"), ("hub_unknown", SECRET), (CLIENT_ID, ""), ("x" * 65, SECRET)],
)
async def test_endpoint_refuses_bad_credentials(
    endpoint: httpx.AsyncClient, client_id: str, secret: str
) -> None:
    response = await request_token(endpoint, auth=(client_id, secret))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["cache-control"] == "no-store"


async def test_endpoint_refuses_missing_credentials(endpoint: httpx.AsyncClient) -> None:
    response = await request_token(endpoint)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_endpoint_refuses_a_revoked_client(
    endpoint: httpx.AsyncClient, database: _Database, registered: OAuthClient
) -> None:
    database.rows[CLIENT_ID] = registered.model_copy(update={"revoked_at": registered.created_at})
    response = await request_token(endpoint, auth=(CLIENT_ID, SECRET))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("grant_type=password", "unsupported_grant_type"),
        ("grant_type=authorization_code&code=x", "unsupported_grant_type"),
        ("", "invalid_request"),
        ("scope=hub", "invalid_request"),
        ("grant_type=client_credentials&grant_type=client_credentials", "invalid_request"),
        (f"grant_type=client_credentials&client_secret={SECRET}", "invalid_request"),
        ("grant_type=client_credentials&scope=admin", "invalid_scope"),
        ("grant_type=client_credentials&x=" + "a" * 5000, "invalid_request"),
        (
            "grant_type=client_credentials&" + "&".join(f"f{i}=1" for i in range(20)),
            "invalid_request",
        ),
    ],
)
async def test_endpoint_refuses_bad_requests(
    endpoint: httpx.AsyncClient, body: str, error: str
) -> None:
    response = await endpoint.post(
        "/oauth/token",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(CLIENT_ID, SECRET),
    )
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert set(response.json()) <= {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"


async def test_endpoint_wants_a_form(endpoint: httpx.AsyncClient) -> None:
    response = await endpoint.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, auth=(CLIENT_ID, SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_endpoint_reads_the_database_in_a_read_transaction(
    endpoint: httpx.AsyncClient, database: _Database
) -> None:
    await request_token(endpoint, auth=(CLIENT_ID, SECRET))
    assert database.writes == [False]


async def test_endpoint_refuses_plain_http_off_loopback(
    endpoint: httpx.AsyncClient, settings: Settings
) -> None:
    settings.issuer = "http://hub.internal"
    response = await request_token(endpoint, auth=(CLIENT_ID, SECRET))
    assert response.status_code == 400
    assert response.json()["error"] == "insecure_transport"


async def test_jwks_and_metadata(endpoint: httpx.AsyncClient, keys: KeySet) -> None:
    assert (await endpoint.get("/.well-known/jwks.json")).json() == keys.public_jwks()
    metadata = (await endpoint.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
