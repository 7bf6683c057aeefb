"""Webhook rules that need no server: addresses, the production guard, the backoff, replay,
and the dispatcher's look for work."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.changes import service as changes
from hub.db import utcnow
from hub.errors import InvalidInput
from hub.settings import Mode, Settings
from hub.webhooks import signing
from hub.webhooks.models import WebhookEndpoint
from hub.webhooks.service import backoff_seconds, check_url, has_work, open_secret, seal_secret
from tests.conftest import unique
from tests.factories import COUNCIL


def test_only_https_unless_development_allows_http_on_loopback() -> None:
    strict = Settings()
    assert check_url(" https://case.example.org/hook?t=1 ", strict) == (
        "https://case.example.org/hook?t=1"
    )
    with pytest.raises(InvalidInput):
        check_url("http://127.0.0.1:8080/hook", strict)
    loose = Settings(webhook_allow_http_loopback=True)
    assert check_url("http://127.0.0.1:8080/hook", loose)
    assert check_url("http://localhost/hook", loose)
    assert check_url("http://[::1]:9/hook", loose)
    for address in ["http://10.0.0.1/hook", "http://example.org/hook"]:
        with pytest.raises(InvalidInput) as refused:
            check_url(address, loose)
        assert refused.value.extensions == {"code": "INVALID_INPUT", "field": "url"}


def test_production_refuses_http_endpoints(tmp_path: Path) -> None:
    production = {
        "mode": Mode.PRODUCTION,
        "pseudonym_key": "a-production-secret-for-this-test",
        "signing_keys_file": tmp_path / "keys.json",
    }
    assert Settings(**production).is_production  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="HUB_WEBHOOK_ALLOW_HTTP_LOOPBACK"):
        Settings(**production, webhook_allow_http_loopback=True)  # type: ignore[arg-type]


def test_the_backoff_doubles_to_its_maximum_less_up_to_half_at_random() -> None:
    settings = Settings(webhook_backoff_seconds=10, webhook_backoff_max_seconds=60)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (30, 60)]:
        waits = [backoff_seconds(attempt, settings, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), attempt
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not one value


def test_a_sealed_secret_opens_only_for_its_client_under_the_same_key() -> None:
    settings = Settings(pseudonym_key="one-key-for-this-test")  # type: ignore[arg-type]
    secret = signing.new_secret()
    sealed = seal_secret(settings, "client-a", secret)
    assert secret not in sealed
    assert open_secret(settings, "client-a", sealed) == secret
    assert open_secret(settings, "client-b", sealed) is None
    other = Settings(pseudonym_key="another-key-for-this-test")  # type: ignore[arg-type]
    assert open_secret(other, "client-a", sealed) is None


def test_a_signature_made_by_the_hub_verifies_and_nothing_else_does() -> None:
    secret = signing.new_secret()
    body = b'{"data":{"recordChanges":null}}'
    headers = signing.headers(secret, "msg_1", body, timestamp=1_800_000_000)
    assert signing.verify(secret, headers, body, now=1_800_000_100) == "msg_1"
    with pytest.raises(signing.WebhookVerificationError, match="tolerance"):
        signing.verify(secret, headers, body, now=1_800_000_000 - 301)  # from the future
    with pytest.raises(signing.WebhookVerificationError, match="missing"):
        signing.verify(secret, {"webhook-id": "msg_1"}, body, now=1_800_000_000)
    forged = {**headers, "webhook-id": "msg_2"}  # another id under the same signature
    with pytest.raises(signing.WebhookVerificationError, match="no signature"):
        signing.verify(secret, forged, body, now=1_800_000_000)
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert signing.verify(secret, rotated, body, now=1_800_000_000) == "msg_1"


async def test_work_is_found_for_an_endpoint_free_to_claim_and_only_then(
    session: AsyncSession,
) -> None:
    """`has_work`'s query, built once and bound each time: an endpoint behind on the changes
    has work unless this process is busy with it (`exclude`) or another holds its lease."""
    others = list((await session.execute(sa.select(col(WebhookEndpoint.id)))).scalars())
    newest = await changes.latest(session)
    mine = WebhookEndpoint(
        client_id=unique("hook-client"),
        organisation_code=COUNCIL,
        role="COUNCIL_SOCIAL_WORKER",
        purpose="SAFEGUARDING",
        on_behalf_of="synthetic-user",
        url="https://case.example.org/hook",
        secret="sealed",
        seen=newest - 1,  # a change it has not looked at
    )
    session.add(mine)
    await session.flush()
    assert await has_work(session, exclude=others)
    assert not await has_work(session, exclude=[*others, mine.id])
    mine.lease_until = utcnow() + dt.timedelta(minutes=5)  # another process holds it
    await session.flush()
    assert not await has_work(session, exclude=others)
    mine.lease_until = utcnow() - dt.timedelta(minutes=5)  # its lease ran out
    await session.flush()
    assert await has_work(session, exclude=others)
    mine.seen = newest  # up to date, and no delivery due
    await session.flush()
    assert not await has_work(session, exclude=others)
