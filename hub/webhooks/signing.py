"""Signing deliveries, and verifying them as a receiver does (the Standard Webhooks scheme).

Each POST carries three headers:

    webhook-id         the delivery's id: the same on every retry, so a receiver can deduplicate
    webhook-timestamp  when this attempt was signed, in whole seconds since the epoch
    webhook-signature  "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))

The secret is `whsec_` + base64 of 32 random bytes; the key is those bytes. A receiver checks the
signature over the raw body, refuses a timestamp further than its tolerance from its own clock
(an old message replayed later), and refuses an id it has already accepted (`ReplayGuard`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise WebhookVerificationError("the secret is not a whsec_ secret") from error


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(
    secret: str, message_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three webhook headers for one attempt (signed now unless `timestamp` is given)."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(when),
        "webhook-signature": signature(secret, message_id, when, body),
    }


class WebhookVerificationError(Exception):
    """A delivery the receiver must refuse; the message says which check failed."""


class ReplayGuard:
    """The ids a receiver accepted within the tolerance: a reused id is a replay.

    Ids older than the tolerance can be forgotten, as their timestamps are refused anyway.
    """

    def __init__(self, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds
        self._seen: dict[str, float] = {}

    def accept(self, message_id: str, *, now: float) -> None:
        horizon = now - 2 * self.tolerance_seconds
        for old in [k for k, at in self._seen.items() if at < horizon]:
            del self._seen[old]
        if message_id in self._seen:
            msg = "this webhook-id was already accepted (a replay)"
            raise WebhookVerificationError(msg)
        self._seen[message_id] = now


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
    replays: ReplayGuard | None = None,
) -> str:
    """Check a received delivery; return its webhook-id, or raise WebhookVerificationError.

    `received` is the request's headers (any case). With `replays`, an id seen before is
    refused too (remember it only once the delivery has been processed, or accept a retry).
    """
    lowered = {k.lower(): v for k, v in received.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not stamp or not signatures:
        msg = "missing webhook-id, webhook-timestamp or webhook-signature"
        raise WebhookVerificationError(msg)
    try:
        timestamp = int(stamp)
    except ValueError as error:
        raise WebhookVerificationError("webhook-timestamp is not a whole number") from error
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        msg = "webhook-timestamp is outside the tolerance (too old or in the future)"
        raise WebhookVerificationError(msg)
    expected = signature(secret, message_id, timestamp, body)
    # Several space-separated signatures may be sent (during a key rotation): one must match.
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("no signature matches")
    if replays is not None:
        replays.accept(message_id, now=current)
    return message_id
