"""Webhook endpoints and their deliveries: registering, claiming work, recording each attempt.

The dispatcher (`hub.webhooks.dispatcher`) works only through these functions, and they keep
every decision in the database:

- an endpoint is worked on by one process at a time: claimed with `FOR UPDATE SKIP LOCKED` on
  PostgreSQL (SQLite has one writer and one hub process) and held by a lease that expires, so a
  process that dies leaves nothing stuck;
- new changes become deliveries in the transaction that moves the endpoint's `seen` past them;
- an attempt is counted (`begin_attempt`, conditional on the count it read) in the transaction
  that writes its disclosure to the audit, before anything is sent: two processes can never make
  the same attempt, and one that dies mid-send leaves the delivery due again after its hold;
- its outcome is recorded on the same condition: delivered, or retried after an exponential
  backoff with jitter, or parked in the dead letters after the last attempt.

Services only flush; the caller's transaction commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import logging
import random
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.access.identity import Principal
from hub.access.models import OAuthClient
from hub.changes import service as changes
from hub.changes.models import RecordChange
from hub.cursors import CursorSeal
from hub.db import UTCDateTime, among, dialect_of, rows, utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.settings import Settings
from hub.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from hub.webhooks.signing import new_secret

log = logging.getLogger("hub.webhooks")

MAX_URL_LENGTH = 2000
# Distinct from every other use of the pseudonym key (cursors, pseudonyms).
_SECRET_KEY_INFO = b"safeguarding-hub webhook secret key v1"


@functools.cache
def _secret_seal(pseudonym_key: str) -> CursorSeal:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SECRET_KEY_INFO)
    return CursorSeal(hkdf.derive(pseudonym_key.encode()))


def seal_secret(settings: Settings, client_id: str, secret: str) -> str:
    """The signing secret as stored: encrypted and bound to its client (AES-GCM, under a key
    derived from HUB_PSEUDONYM_KEY), so that a copy of the database signs nothing."""
    seal = _secret_seal(settings.pseudonym_key.get_secret_value())
    return seal.seal(secret, binding=client_id.encode())


def open_secret(settings: Settings, client_id: str, sealed: str) -> str | None:
    """The signing secret, or None if it cannot be opened (HUB_PSEUDONYM_KEY changed)."""
    seal = _secret_seal(settings.pseudonym_key.get_secret_value())
    try:
        return seal.open(sealed, binding=client_id.encode())
    except InvalidInput:
        return None


LOOPBACK_NAMES = frozenset({"localhost"})


def check_url(url: str, settings: Settings) -> str:
    """An endpoint address the hub will POST to: https (or, in development when allowed,
    http on a loopback address), with a host and no credentials. Errors never echo it."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        msg = f"url must be from 1 to {MAX_URL_LENGTH} characters"
        raise InvalidInput(msg, field="url")
    if not url.isprintable() or " " in url:
        raise InvalidInput("url contains spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise InvalidInput("url is not a valid address", field="url") from None
    if not host:
        raise InvalidInput("url names no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry credentials", field="url")
    if parts.fragment:
        raise InvalidInput("url must not have a fragment", field="url")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and settings.webhook_allow_http_loopback and _loopback(host):
        return url
    raise InvalidInput("url must be an https:// address", field="url")


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def register(
    session: AsyncSession, *, principal: Principal, purpose: str, url: str, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """The caller's client's endpoint, delivering changes from now on; and its secret, once."""
    url = check_url(url, settings)
    if principal.user is None:  # the purpose check refuses this first; kept for other callers
        raise InvalidInput("name the person deliveries are for", field="onBehalfOf")
    if await of_client(session, principal.client_id) is not None:
        msg = "this client already has a webhook: remove it before registering another"
        raise Conflict(msg)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        client_id=principal.client_id,
        organisation_code=principal.organisation_code,
        role=principal.role.value,
        purpose=purpose,
        on_behalf_of=principal.user,
        url=url,
        secret=seal_secret(settings, principal.client_id, secret),
        seen=await changes.latest(session),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def of_client(session: AsyncSession, client_id: str) -> WebhookEndpoint | None:
    query = sa.select(WebhookEndpoint).where(col(WebhookEndpoint.client_id) == client_id)
    return (await session.execute(query)).scalar_one_or_none()


async def remove(session: AsyncSession, *, client_id: str) -> WebhookEndpoint:
    """Remove a client's endpoint and every delivery to it (delivered, waiting or parked)."""
    endpoint = await of_client(session, client_id)
    if endpoint is None:
        raise NotFound("this client has no webhook", field="client_id")
    await session.execute(
        sa.delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
    )
    await session.delete(endpoint)
    await session.flush()
    return endpoint


async def list_endpoints(session: AsyncSession) -> Sequence[WebhookEndpoint]:
    query = sa.select(WebhookEndpoint).order_by(
        col(WebhookEndpoint.organisation_code), col(WebhookEndpoint.created_at)
    )
    return (await session.execute(query)).scalars().all()


async def counts(session: AsyncSession, endpoint_id: str) -> dict[str, int]:
    """How many of an endpoint's deliveries are in each state."""
    query = (
        sa.select(col(WebhookDelivery.state), sa.func.count())
        .where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        .group_by(col(WebhookDelivery.state))
    )
    found = {str(state): int(n) for state, n in (await session.execute(query)).all()}
    return {state.value: found.get(state.value, 0) for state in DeliveryState}


# --- The dispatcher's side -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lease:
    """An endpoint this process is delivering to, until its lease runs out (or it lets go)."""

    endpoint_id: str
    client_id: str
    organisation_code: str
    role: str
    purpose: str
    on_behalf_of: str
    url: str
    secret: str = dataclasses.field(repr=False)
    token: str


def _revoked() -> sa.Exists:
    return (
        sa.select(col(OAuthClient.client_id))
        .where(
            col(OAuthClient.client_id) == col(WebhookEndpoint.client_id),
            col(OAuthClient.revoked_at).is_not(None),
        )
        .exists()
    )


def _work_waiting(now: dt.datetime | sa.BindParameter[dt.datetime]) -> sa.ColumnElement[bool]:
    """An endpoint with a delivery due, or changes it has not looked at yet."""
    due = (
        sa.select(col(WebhookDelivery.id))
        .where(
            col(WebhookDelivery.endpoint_id) == col(WebhookEndpoint.id),
            col(WebhookDelivery.state) == DeliveryState.PENDING.value,
            col(WebhookDelivery.next_attempt_at) <= now,
        )
        .exists()
    )
    newest = sa.select(sa.func.coalesce(sa.func.max(col(RecordChange.seq)), 0)).scalar_subquery()
    return sa.or_(due, col(WebhookEndpoint.seen) < newest)


def _claimable(
    now: dt.datetime | sa.BindParameter[dt.datetime], dialect: str | None
) -> list[sa.ColumnElement[bool]]:
    """An endpoint free to claim: no live lease, work waiting, its client not revoked, and not
    one this process is busy with (the list bound as `busy`)."""
    return [
        sa.or_(col(WebhookEndpoint.lease_until).is_(None), col(WebhookEndpoint.lease_until) < now),
        _work_waiting(now),
        ~_revoked(),
        ~among(_ENDPOINT.c.id, "busy", dialect=dialect),
    ]


async def has_work(session: AsyncSession, *, exclude: Sequence[str] = ()) -> bool:
    """Whether any endpoint could be claimed now (a read: checked before taking a write lock).

    Asked after every push that wakes the dispatcher: its query is built once for each
    database, its time and the endpoints this process is busy with bound (`rows`)."""
    query = _has_work(dialect_of(session))
    return bool(await rows(session, query, {"now": utcnow(), "busy": list(exclude)}))


@functools.lru_cache(maxsize=4)
def _has_work(dialect: str | None) -> sa.Select[str]:
    now = sa.bindparam("now", type_=UTCDateTime())
    return sa.select(col(WebhookEndpoint.id)).where(*_claimable(now, dialect)).limit(1)


_ENDPOINT: sa.Table = WebhookEndpoint.__table__  # type: ignore[attr-defined]


async def claim(
    session: AsyncSession,
    *,
    limit: int,
    lease_seconds: float,
    settings: Settings,
    exclude: Sequence[str] = (),
) -> list[Lease]:
    """Up to `limit` endpoints with work waiting that no process holds, leased to the caller.

    PostgreSQL: rows another process is claiming are skipped, not waited for.
    """
    now = utcnow()
    query = (
        sa.select(WebhookEndpoint)
        .where(*_claimable(now, dialect_of(session)))
        .order_by(col(WebhookEndpoint.lease_until).nulls_first(), col(WebhookEndpoint.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    endpoints = list((await session.execute(query, {"busy": list(exclude)})).scalars())
    leases = []
    until = now + dt.timedelta(seconds=lease_seconds)
    for endpoint in endpoints:
        secret = open_secret(settings, endpoint.client_id, endpoint.secret)
        if secret is None:
            log.warning(
                "webhook endpoint %s: its secret cannot be opened (HUB_PSEUDONYM_KEY changed?); "
                "the client must register again",
                endpoint.id,
            )
            continue
        token = str(uuid.uuid4())
        endpoint.lease_token = token
        endpoint.lease_until = until
        leases.append(
            Lease(
                endpoint_id=endpoint.id,
                client_id=endpoint.client_id,
                organisation_code=endpoint.organisation_code,
                role=endpoint.role,
                purpose=endpoint.purpose,
                on_behalf_of=endpoint.on_behalf_of,
                url=endpoint.url,
                secret=secret,
                token=token,
            )
        )
    await session.flush()
    return leases


def _held(lease: Lease) -> list[sa.ColumnElement[bool]]:
    return [
        col(WebhookEndpoint.id) == lease.endpoint_id,
        col(WebhookEndpoint.lease_token) == lease.token,
    ]


async def renew(session: AsyncSession, lease: Lease, *, lease_seconds: float) -> bool:
    """Extend the lease; False when it is no longer this process's (expired and taken)."""
    until = utcnow() + dt.timedelta(seconds=lease_seconds)
    result = await session.execute(
        sa.update(WebhookEndpoint).where(*_held(lease)).values(lease_until=until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, lease: Lease) -> None:
    await session.execute(
        sa.update(WebhookEndpoint).where(*_held(lease)).values(lease_until=None, lease_token=None)
    )


def new_delivery_id() -> str:
    return "msg_" + uuid.uuid4().hex


async def enqueue(session: AsyncSession, lease: Lease, *, limit: int) -> int:
    """Turn up to `limit` changes after the endpoint's `seen` into deliveries due now."""
    seen = (
        await session.execute(sa.select(col(WebhookEndpoint.seen)).where(*_held(lease)))
    ).scalar_one_or_none()
    if seen is None:
        return 0
    batch = await changes.after(session, seen, limit=limit)
    if not batch:
        return 0
    now = utcnow()
    rows = [
        {
            "id": new_delivery_id(),
            "endpoint_id": lease.endpoint_id,
            "change_seq": change.seq,
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for change in batch
    ]
    await session.execute(sa.insert(WebhookDelivery), rows)
    await session.execute(
        sa.update(WebhookEndpoint).where(*_held(lease)).values(seen=batch[-1].seq)
    )
    return len(rows)


@dataclasses.dataclass(frozen=True)
class Due:
    delivery_id: str
    attempts: int
    change: RecordChange


async def due(session: AsyncSession, endpoint_id: str, *, limit: int) -> list[Due]:
    """An endpoint's deliveries due now, oldest change first, each with its change."""
    query = (
        sa.select(WebhookDelivery, RecordChange)
        .join(RecordChange, col(RecordChange.seq) == col(WebhookDelivery.change_seq))
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint_id,
            col(WebhookDelivery.state) == DeliveryState.PENDING.value,
            col(WebhookDelivery.next_attempt_at) <= utcnow(),
        )
        .order_by(col(WebhookDelivery.change_seq))
        .limit(limit)
    )
    return [
        Due(delivery_id=delivery.id, attempts=delivery.attempts, change=change)
        for delivery, change in (await session.execute(query)).all()
    ]


def _pending(delivery_id: str, attempts: int) -> list[sa.ColumnElement[bool]]:
    return [
        col(WebhookDelivery.id) == delivery_id,
        col(WebhookDelivery.state) == DeliveryState.PENDING.value,
        col(WebhookDelivery.attempts) == attempts,
    ]


async def begin_attempt(
    session: AsyncSession, delivery_id: str, *, attempts: int, hold_seconds: float
) -> bool:
    """Count the next attempt, if the delivery still stands at `attempts` (else another process
    made it). Until its outcome is recorded it is not due, for `hold_seconds`."""
    now = utcnow()
    result = await session.execute(
        sa.update(WebhookDelivery)
        .where(*_pending(delivery_id, attempts))
        .values(
            attempts=attempts + 1,
            next_attempt_at=now + dt.timedelta(seconds=hold_seconds),
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def backoff_seconds(attempt: int, settings: Settings, *, rng: random.Random | None = None) -> float:
    """How long after failed attempt number `attempt` (1, 2, ...) the next is made: doubling
    from the base up to the maximum, less a random part of up to half (so that endpoints that
    failed together are not retried together)."""
    ceiling = min(
        settings.webhook_backoff_max_seconds,
        settings.webhook_backoff_seconds * 2 ** min(attempt - 1, 30),
    )
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return float(ceiling) - jitter


async def finish_attempt(
    session: AsyncSession,
    delivery_id: str,
    *,
    attempt: int,
    status_code: int | None,
    error: str | None,
    settings: Settings,
) -> DeliveryState | None:
    """Record attempt number `attempt`'s outcome: delivered, due again later, or dead. None
    when the delivery has moved on (an operator removed it)."""
    now = utcnow()
    values: dict[str, object] = {"last_status_code": status_code, "updated_at": now}
    if error is None:
        state = DeliveryState.DELIVERED
        values |= {"state": state.value, "next_attempt_at": None, "last_error": None}
    elif attempt >= settings.webhook_max_attempts:
        state = DeliveryState.DEAD
        values |= {"state": state.value, "next_attempt_at": None, "last_error": error}
    else:
        state = DeliveryState.PENDING
        wait = dt.timedelta(seconds=backoff_seconds(attempt, settings))
        values |= {"next_attempt_at": now + wait, "last_error": error}
    result = await session.execute(
        sa.update(WebhookDelivery).where(*_pending(delivery_id, attempt)).values(**values)
    )
    return state if result.rowcount else None  # type: ignore[attr-defined]


async def fail_unsent(
    session: AsyncSession, delivery_id: str, *, attempts: int, error: str, settings: Settings
) -> DeliveryState | None:
    """An attempt that never left (its audit could not be written): counted as failed."""
    if not await begin_attempt(session, delivery_id, attempts=attempts, hold_seconds=0):
        return None
    return await finish_attempt(
        session,
        delivery_id,
        attempt=attempts + 1,
        status_code=None,
        error=error,
        settings=settings,
    )


async def drop(session: AsyncSession, delivery_id: str) -> None:
    """A change the client may not see: no delivery, and nothing kept about it."""
    await session.execute(sa.delete(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id))


async def refuse(session: AsyncSession, delivery_id: str, *, code: str) -> None:
    """The agreement now refuses the delivery (purpose or field withdrawn): never sent."""
    await session.execute(
        sa.update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.state) == DeliveryState.PENDING.value,
        )
        .values(
            state=DeliveryState.REFUSED.value,
            next_attempt_at=None,
            last_error=code[:32],
            updated_at=utcnow(),
        )
    )


# --- Operators' side ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    delivery_id: str
    client_id: str
    organisation_code: str
    change_seq: int
    attempts: int
    last_status_code: int | None
    last_error: str | None
    parked_at: dt.datetime


async def dead_letters(session: AsyncSession, *, limit: int = 1000) -> list[DeadLetter]:
    query = (
        sa.select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(col(WebhookDelivery.state) == DeliveryState.DEAD.value)
        .order_by(col(WebhookDelivery.updated_at), col(WebhookDelivery.id))
        .limit(limit)
    )
    return [
        DeadLetter(
            delivery_id=delivery.id,
            client_id=endpoint.client_id,
            organisation_code=endpoint.organisation_code,
            change_seq=delivery.change_seq,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            parked_at=delivery.updated_at,
        )
        for delivery, endpoint in (await session.execute(query)).all()
    ]


async def replay(session: AsyncSession, *, delivery_ids: Sequence[str] | None) -> int:
    """Send dead deliveries again (all of them with None), as fresh: due now, no attempts made.
    A named id that is not a dead delivery is NOT_FOUND, and nothing is replayed."""
    condition = col(WebhookDelivery.state) == DeliveryState.DEAD.value
    if delivery_ids is not None:
        wanted = set(delivery_ids)
        found = set(
            (
                await session.execute(
                    sa.select(col(WebhookDelivery.id)).where(
                        condition, col(WebhookDelivery.id).in_(wanted)
                    )
                )
            ).scalars()
        )
        if missing := sorted(wanted - found):
            msg = f"{len(missing)} of the ids name no dead delivery"
            raise NotFound(msg, field="id")
        condition = sa.and_(condition, col(WebhookDelivery.id).in_(wanted))
    now = utcnow()
    result = await session.execute(
        sa.update(WebhookDelivery)
        .where(condition)
        .values(
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            last_status_code=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def prune(session: AsyncSession, *, before: dt.datetime) -> int:
    """Forget finished deliveries (delivered, or refused by the agreement) last touched before
    `before`; dead letters stay until an operator replays them. Nothing else needs the rows:
    the endpoint's `seen` mark, not old deliveries, keeps a change from being enqueued twice, and
    each delivery's disclosure is in the audit log, which keeps its own retention."""
    result = await session.execute(
        sa.delete(WebhookDelivery).where(
            col(WebhookDelivery.state).in_(
                [DeliveryState.DELIVERED.value, DeliveryState.REFUSED.value]
            ),
            col(WebhookDelivery.updated_at) < before,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
