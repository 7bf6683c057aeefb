"""Who is calling: the principal behind a request, from a verified token and two headers.

A machine client authenticates as itself (the token), and says per request which person it acts
for and why (DPA 2018 s.62 wants both recorded against every read). The headers win over the
token's claims so that one client token can serve many social workers in turn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from hub.access.models import Role
from hub.errors import InvalidInput, Unauthenticated

if TYPE_CHECKING:
    from collections.abc import Mapping

ON_BEHALF_OF_HEADER = "Hub-On-Behalf-Of"
PURPOSE_HEADER = "Hub-Purpose"
MAX_CONTEXT_LENGTH = 128

# Claim names. `org` and `role` are private claims (RFC 7519 s.4.3): the token is only ever
# meant for this hub and the gateway in front of it. The person a client acts for is not `sub`
# (RFC 9068 makes `sub` the client for client credentials) and not `act` (RFC 8693 `act` names
# the *actor*, which here is the client, the reverse of what we need), hence `hub_user`.
ORG_CLAIM = "org"
ROLE_CLAIM = "role"
USER_CLAIM = "hub_user"
PURPOSE_CLAIM = "hub_purpose"
REQUIRED_CLAIMS = ("client_id", ORG_CLAIM, ROLE_CLAIM, "jti", "sub")


class RejectReason(enum.StrEnum):
    MISSING = "missing_token"
    MALFORMED = "malformed_token"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    DISALLOWED_ALGORITHM = "disallowed_algorithm"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_TYPE = "wrong_type"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    REVOKED_CLIENT = "revoked_client"


# Fixed texts: a message never echoes any part of the presented token.
_REJECT_MESSAGES = {
    RejectReason.MISSING: "an access token is required (Authorization: Bearer ...)",
    RejectReason.MALFORMED: "the access token is not a well-formed signed JWT",
    RejectReason.UNKNOWN_KEY: "the access token was signed with a key this hub does not hold",
    RejectReason.BAD_SIGNATURE: "the access token's signature is not valid",
    RejectReason.DISALLOWED_ALGORITHM: "the access token uses a signing algorithm not accepted",
    RejectReason.EXPIRED: "the access token has expired: request a new one",
    RejectReason.NOT_YET_VALID: "the access token is not valid yet (check the clocks)",
    RejectReason.WRONG_ISSUER: "the access token was issued by another authorization server",
    RejectReason.WRONG_AUDIENCE: "the access token is not meant for this hub",
    RejectReason.WRONG_TYPE: "the token is not an access token (typ must be at+jwt)",
    RejectReason.MISSING_CLAIM: "the access token lacks a required claim",
    RejectReason.INVALID_CLAIM: "the access token carries an invalid claim",
    RejectReason.REVOKED_CLIENT: "the client this access token was issued to has been revoked",
}


class TokenRejected(Unauthenticated):
    """An access token was refused; `reason` is stable for clients to branch on."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(_REJECT_MESSAGES[reason])
        self.reason = reason

    @property
    def extensions(self) -> dict[str, str]:
        return {**super().extensions, "reason": self.reason.value}


@dataclasses.dataclass(frozen=True)
class Principal:
    client_id: str
    organisation_code: str
    role: Role
    user: str | None
    purpose: str | None
    token_id: str
    # When the token stops being good: a subscription ends there, and the client resumes
    # with a fresh token from its last cursor.
    expires_at: dt.datetime | None = None


def clean_context_value(value: str | None, *, field: str) -> str | None:
    """Trim a user or purpose value; refuse what would not sit safely in an audit record."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_CONTEXT_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_CONTEXT_LENGTH} characters", field=field)
    if not value.isprintable():
        raise InvalidInput(f"{field} contains control characters", field=field)
    return value


def principal_from_request(headers: Mapping[str, str], claims: Mapping[str, Any]) -> Principal:
    """Merge the request's context headers over the verified token's claims."""
    return Principal(
        client_id=_claim_text(claims, "client_id"),
        organisation_code=_claim_text(claims, ORG_CLAIM),
        role=_claim_role(claims),
        user=_context(headers, ON_BEHALF_OF_HEADER, claims, USER_CLAIM),
        purpose=_context(headers, PURPOSE_HEADER, claims, PURPOSE_CLAIM),
        token_id=_claim_text(claims, "jti"),
        expires_at=_expiry(claims),
    )


def _expiry(claims: Mapping[str, Any]) -> dt.datetime | None:
    exp = claims.get("exp")
    return dt.datetime.fromtimestamp(exp, dt.UTC) if isinstance(exp, int | float) else None


def _context(
    headers: Mapping[str, str], header: str, claims: Mapping[str, Any], claim: str
) -> str | None:
    """The header's value when it has one; a blank header falls back to the token's claim."""
    from_header = clean_context_value(header_value(headers, header), field=header)
    if from_header is not None:
        return from_header
    return clean_context_value(_optional_claim(claims, claim), field=header)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers are case-insensitive; a plain dict (tests, the CLI) may not be.
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _claim_text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise TokenRejected(RejectReason.MISSING_CLAIM)
    if not isinstance(value, str) or not value:
        raise TokenRejected(RejectReason.INVALID_CLAIM)
    return value


def _optional_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise TokenRejected(RejectReason.INVALID_CLAIM)
    return value


def _claim_role(claims: Mapping[str, Any]) -> Role:
    try:
        return Role(_claim_text(claims, ROLE_CLAIM))
    except ValueError:
        raise TokenRejected(RejectReason.INVALID_CLAIM) from None
