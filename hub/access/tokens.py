"""RFC 9068 JWT access tokens: minted by authlib's generator, verified here with joserfc.

The CLI's `token` command and the `/oauth/token` endpoint both mint through `HubTokenGenerator`,
so the two kinds of token cannot drift apart. Verification is written out step by step, each
step with its own rejection reason, because "401" alone leaves an integrator guessing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jws, jwt
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)

from hub.access.identity import (
    ORG_CLAIM,
    PURPOSE_CLAIM,
    REQUIRED_CLAIMS,
    ROLE_CLAIM,
    USER_CLAIM,
    Principal,
    RejectReason,
    TokenRejected,
    clean_context_value,
    header_value,
    principal_from_request,
)
from hub.access.keys import ALGORITHM
from hub.access.models import Role
from hub.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Mapping

    from joserfc import jwk

    from hub.access.keys import KeySet
    from hub.settings import Settings

GRANT_TYPE = "client_credentials"
JWT_TYPE = "at+jwt"
# RFC 9068 s.4: a resource server accepts the media type with or without its prefix.
_ACCEPTED_TYPES = frozenset({JWT_TYPE, f"application/{JWT_TYPE}"})
# Authorization is decided by role and the sharing agreement, not by OAuth scopes; one scope
# names "the hub's API" so that the token says what it is for (RFC 9068 s.2.2.3).
DEFAULT_SCOPE = "hub"
SCOPES_SUPPORTED = (DEFAULT_SCOPE,)
# The hub's replicas share NTP time; a small allowance covers the rest.
LEEWAY_SECONDS = 30
_REASON_FOR_CLAIM = {
    "iss": RejectReason.WRONG_ISSUER,
    "aud": RejectReason.WRONG_AUDIENCE,
    "iat": RejectReason.NOT_YET_VALID,
    "nbf": RejectReason.NOT_YET_VALID,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenSubject:
    """What a token says about its holder; authlib's generator reads it as the OAuth client."""

    client_id: str
    organisation_code: str
    role: Role
    user: str | None = None
    purpose: str | None = None

    def get_client_id(self) -> str:  # authlib's ClientMixin name, read by the generator
        return self.client_id

    def claims(self) -> dict[str, str]:
        claims = {ORG_CLAIM: self.organisation_code, ROLE_CLAIM: self.role.value}
        if self.user is not None:
            claims[USER_CLAIM] = self.user
        if self.purpose is not None:
            claims[PURPOSE_CLAIM] = self.purpose
        return claims


# authlib ships no type information, so its classes are Any to mypy.
class HubTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """authlib's RFC 9068 generator with the hub's keys, audience, lifetime and claims."""

    def __init__(self, *, settings: Settings, keys: KeySet) -> None:
        # An explicit lifetime: authlib's default for client credentials is ten days.
        super().__init__(
            issuer=settings.issuer,
            alg=ALGORITHM,
            expires_generator=settings.access_token_ttl_seconds,
        )
        self._audience = settings.audience
        self._keys = keys

    # The overrides below are called by authlib positionally; unused arguments are `_`-named.

    def get_jwks(self) -> jwk.KeySet:
        return self._keys.signing_jwks()

    def get_audiences(self, _client: TokenSubject, _user: None, _scope: str | None) -> str:
        return self._audience

    def get_extra_claims(
        self, client: TokenSubject, _grant_type: str, _user: None, _scope: str | None
    ) -> dict[str, str]:
        return client.claims()

    def mint(self, subject: TokenSubject, scope: str) -> str:
        token: str = self.access_token_generator(
            client=subject, grant_type=GRANT_TYPE, user=None, scope=scope
        )
        return token


def granted_scope(requested: str | None) -> str:
    """The scope a token carries: the default when none is asked for, else only known scopes."""
    wanted = (requested or "").split()
    if not wanted:
        return DEFAULT_SCOPE
    if not set(wanted) <= set(SCOPES_SUPPORTED):
        raise InvalidInput(f"scope must be one of: {', '.join(SCOPES_SUPPORTED)}", field="scope")
    return " ".join(dict.fromkeys(wanted))


def issue_access_token(
    *,
    settings: Settings,
    keys: KeySet,
    client_id: str,
    organisation_code: str,
    role: Role | str,
    user: str | None = None,
    purpose: str | None = None,
    scope: str | None = None,
) -> str:
    """Mint an access token exactly like `/oauth/token` would, for the given subject."""
    subject = TokenSubject(
        client_id=client_id,
        organisation_code=organisation_code,
        role=Role(role),
        user=clean_context_value(user, field="user"),
        purpose=clean_context_value(purpose, field="purpose"),
    )
    return HubTokenGenerator(settings=settings, keys=keys).mint(subject, granted_scope(scope))


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer ...` header (RFC 6750 s.2.1)."""
    if authorization is None or not authorization.strip():
        raise TokenRejected(RejectReason.MISSING)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected(RejectReason.MALFORMED)
    return token.strip()


def authenticate_request(
    headers: Mapping[str, str], *, settings: Settings, keys: KeySet
) -> Principal:
    """The principal behind a request: its bearer token verified, its context headers merged."""
    token = bearer_token(header_value(headers, "Authorization"))
    claims = verify_access_token(settings=settings, keys=keys, token=token)
    return principal_from_request(headers, claims)


def verify_access_token(*, settings: Settings, keys: KeySet, token: str) -> dict[str, Any]:
    """The claims of a valid hub access token; `TokenRejected` with a reason otherwise.

    A token whose signature this process has already checked (`_SIGNED`) is not checked again
    while the key that signed it is still one of `keys`; its claims (expiry, issuer, audience,
    the hub's own) are checked afresh on every request."""
    if not token:
        raise TokenRejected(RejectReason.MISSING)
    signed = _SIGNED.get(token)
    if signed is None or keys.verification_key(signed.kid) is not signed.key:
        signed = _signature_checked(token, keys)
        _SIGNED.remember(token, signed)
    claims = dict(signed.claims)
    _check_registered_claims(claims, settings)
    _check_hub_claims(claims, settings)
    return claims


@dataclasses.dataclass(frozen=True)
class _Signed:
    kid: str
    key: jwk.RSAKey
    claims: Mapping[str, Any]


class _SignedTokens:
    """The tokens this process has checked the signatures of, the newest `size` of them.

    A client sends the same token on every request until it expires, and checking its RSA
    signature (with the parsing around it) was a tenth of an empty request's CPU."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tokens: dict[str, _Signed] = {}

    def get(self, token: str) -> _Signed | None:
        return self._tokens.get(token)

    def remember(self, token: str, signed: _Signed) -> None:
        if len(self._tokens) >= self._size:
            del self._tokens[next(iter(self._tokens))]  # the oldest
        self._tokens[token] = signed


_SIGNED = _SignedTokens(4096)


def _signature_checked(token: str, keys: KeySet) -> _Signed:
    signed = _parse(token)
    header = signed.headers()
    # The algorithm is pinned before any key is touched: this is what stops `alg: none` and an
    # HS256 token "signed" with our public key from ever reaching a verifier.
    if header.get("alg") != ALGORITHM:
        raise TokenRejected(RejectReason.DISALLOWED_ALGORITHM)
    key = _verification_key(header, keys)
    _check_signature(signed, key)
    if str(header.get("typ", "")).lower() not in _ACCEPTED_TYPES:
        raise TokenRejected(RejectReason.WRONG_TYPE)
    return _Signed(kid=header["kid"], key=key, claims=_claims(signed))


def _parse(token: str) -> jws.CompactSignature:
    try:
        return jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError):
        raise TokenRejected(RejectReason.MALFORMED) from None


def _verification_key(header: Mapping[str, Any], keys: KeySet) -> jwk.RSAKey:
    kid = header.get("kid")
    key = keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenRejected(RejectReason.UNKNOWN_KEY)
    return key


def _check_signature(signed: jws.CompactSignature, key: jwk.RSAKey) -> None:
    try:
        valid = jws.validate_compact(signed, key, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError):
        raise TokenRejected(RejectReason.MALFORMED) from None
    if not valid:
        raise TokenRejected(RejectReason.BAD_SIGNATURE)


def _claims(signed: jws.CompactSignature) -> dict[str, Any]:
    try:
        claims = json.loads(signed.payload)
    except (TypeError, ValueError):
        raise TokenRejected(RejectReason.MALFORMED) from None
    if not isinstance(claims, dict):
        raise TokenRejected(RejectReason.MALFORMED)
    return claims


def _check_registered_claims(claims: dict[str, Any], settings: Settings) -> None:
    options: dict[str, jwt.ClaimsOption] = {name: {"essential": True} for name in REQUIRED_CLAIMS}
    options |= {
        "iss": {"essential": True, "value": settings.issuer},
        "aud": {"essential": True, "value": settings.audience},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    registry = jwt.JWTClaimsRegistry(None, LEEWAY_SECONDS, **options)
    try:
        registry.validate(claims)
    except MissingClaimError:
        raise TokenRejected(RejectReason.MISSING_CLAIM) from None
    except ExpiredTokenError:
        raise TokenRejected(RejectReason.EXPIRED) from None
    except ClaimError as error:
        raise TokenRejected(_reason_for_invalid(error.claim, claims)) from None


def _reason_for_invalid(claim: str, claims: dict[str, Any]) -> RejectReason:
    # joserfc reports a malformed time and a future time alike; only the second is a clock issue.
    if claim in {"iat", "nbf"} and not _is_number(claims.get(claim)):
        return RejectReason.INVALID_CLAIM
    return _REASON_FOR_CLAIM.get(claim, RejectReason.INVALID_CLAIM)


def _check_hub_claims(claims: dict[str, Any], settings: Settings) -> None:
    # A lifetime longer than the hub ever issues means the token was not minted by this code.
    if claims["exp"] - claims["iat"] > settings.access_token_ttl_seconds + LEEWAY_SECONDS:
        raise TokenRejected(RejectReason.INVALID_CLAIM)
    # Building the principal checks the client, organisation, role and context claims' shapes.
    try:
        principal_from_request({}, claims)
    except InvalidInput:
        raise TokenRejected(RejectReason.INVALID_CLAIM) from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
