"""The background dispatcher: each endpoint's deliveries POSTed in turn, endpoints in parallel.

One task per claimed endpoint (so one delivery in flight per endpoint), at most
`HUB_WEBHOOK_CONCURRENCY` at once per process. Nothing here is on a request's path: a push
only adds to the outbox, and a slow or failing endpoint holds up its own task and nobody
else's. Each POST has connect and read timeouts and an overall deadline. The dispatcher wakes
when changes are committed (the change notifier) and every `HUB_WEBHOOK_POLL_SECONDS` for
retries falling due.

Logs and errors name endpoints and deliveries by id: never an address (its query string may
carry a receiver's token), never a secret, never a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from hub.access.identity import TokenRejected
from hub.db import utcnow
from hub.graphql.audit_trail import DENIAL_CODES
from hub.webhooks import service, signing
from hub.webhooks.payload import WebhookAttempt, body_of, render

if TYPE_CHECKING:
    from hub.app import HubState
    from hub.graphql.federation import HubSchema
    from hub.settings import Settings

log = logging.getLogger("hub.webhooks")

BATCH = 50
PRUNE_EVERY_SECONDS = 3600.0
USER_AGENT = "safeguarding-hub-webhooks/1"


class WithoutQueryStrings(logging.Filter):
    """httpx logs each request's URL at INFO: without its query string (a receiver's token
    may be in it), here as everywhere else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None, fragment=None) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


def _quiet_addresses() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, WithoutQueryStrings) for f in logger.filters):
        logger.addFilter(WithoutQueryStrings())


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The client every delivery is POSTed with: certificates verified (against the configured
    CA file if there is one), no redirects followed, connect and read timeouts."""
    verify: ssl.SSLContext | bool = True
    if settings.webhook_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(settings.webhook_ca_file))
    timeout = httpx.Timeout(
        connect=settings.webhook_connect_timeout_seconds,
        read=settings.webhook_read_timeout_seconds,
        write=settings.webhook_read_timeout_seconds,
        pool=settings.webhook_connect_timeout_seconds,
    )
    limits = httpx.Limits(
        max_connections=settings.webhook_concurrency,
        max_keepalive_connections=settings.webhook_concurrency,
    )
    return httpx.AsyncClient(
        verify=verify, timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
    )


def deadline_seconds(settings: Settings) -> float:
    """The longest one POST may take, all phases together."""
    return settings.webhook_connect_timeout_seconds + 2 * settings.webhook_read_timeout_seconds


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], *, deadline: float
) -> tuple[int | None, str | None]:
    """(status code, error word or None when delivered) for one POST."""
    try:
        async with asyncio.timeout(deadline):
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True)
            await response.aclose()  # the answer's body is not read: only its status counts
    except TimeoutError:
        return None, "timeout"
    except httpx.TimeoutException:
        return None, "timeout"
    except httpx.ConnectError as error:
        return None, "tls" if isinstance(error.__context__, ssl.SSLError) else "connect"
    except httpx.HTTPError:
        return None, "http"
    if 200 <= response.status_code < 300:  # noqa: PLR2004 - HTTP's success range
        return response.status_code, None
    return response.status_code, "status"


class WebhookDispatcher:
    def __init__(self, hub: HubState, schema: HubSchema) -> None:
        self.hub = hub
        self.schema = schema
        self.settings = hub.settings
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._main: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._closing = False
        # Each POST may take its deadline; a lease outlives it with room to record the outcome.
        self.lease_seconds = 2 * deadline_seconds(self.settings) + 10
        self.hold_seconds = deadline_seconds(self.settings) + 10

    def start(self) -> None:
        if self._main is None:
            _quiet_addresses()
            self._client = http_client(self.settings)
            self._main = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in [self._main, *self._tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        notifier = self.hub.notifier
        await notifier.listen()
        pruned_at: float | None = None
        while not self._closing:
            mark = notifier.mark()
            try:
                if pruned_at is None or time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                    pruned_at = time.monotonic()
                    await self._prune()
                await self._claim()
            except Exception as error:  # noqa: BLE001 - the dispatcher outlives any one failure
                # The type only: a database error's text can carry parameters.
                log.warning("webhook claim failed: %s", type(error).__name__)
            await self._wait(mark)

    async def _prune(self) -> None:
        """Finished deliveries past `webhook_keep_days` go (every process may: it is idempotent)."""
        before = utcnow() - dt.timedelta(days=self.settings.webhook_keep_days)
        async with self.hub.db.transaction(write=True) as session:
            await service.prune(session, before=before)

    async def _wait(self, mark: asyncio.Event) -> None:
        waits = [
            asyncio.ensure_future(mark.wait()),
            asyncio.ensure_future(self._finished.wait()),
        ]
        try:
            await asyncio.wait(
                waits,
                timeout=self.settings.webhook_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for wait in waits:
                wait.cancel()
        if mark.is_set() and not self._finished.is_set():
            # A change woke it: the ones committed in the next moment share its look for work.
            await asyncio.sleep(self.settings.webhook_wake_delay_seconds)
        self._finished.clear()

    async def _claim(self) -> None:
        free = self.settings.webhook_concurrency - len(self._tasks)
        if free <= 0:
            return
        busy = list(self._tasks)
        db = self.hub.db
        # One statement, no BEGIN or COMMIT around it on PostgreSQL (`query_session`).
        async with db.query_session() as session, session.begin():
            if not await service.has_work(session, exclude=busy):
                return
        async with db.transaction(write=True) as session:
            leases = await service.claim(
                session,
                limit=free,
                lease_seconds=self.lease_seconds,
                settings=self.settings,
                exclude=busy,
            )
        for lease in leases:
            self._tasks[lease.endpoint_id] = asyncio.create_task(
                self._endpoint(lease), name=f"webhook-{lease.endpoint_id}"
            )

    async def _endpoint(self, lease: service.Lease) -> None:
        try:
            await self._deliver_all(lease)
        except Exception as error:  # noqa: BLE001 - one endpoint's failure stops only its turn
            # The type only: an error's text can carry parameters or an address. The delivery
            # in hand is due again when its hold ends, or at once if it was never counted.
            log.warning("webhook endpoint %s: %s", lease.endpoint_id, type(error).__name__)
        finally:
            self._tasks.pop(lease.endpoint_id, None)
            self._finished.set()
            with contextlib.suppress(SQLAlchemyError, OSError):
                async with self.hub.db.transaction(write=True) as session:
                    await service.release(session, lease)

    async def _deliver_all(self, lease: service.Lease) -> None:
        db = self.hub.db
        while not self._closing:
            async with db.transaction(write=True) as session:
                if not await service.renew(session, lease, lease_seconds=self.lease_seconds):
                    return  # the lease ran out and another process holds the endpoint
                enqueued = await service.enqueue(session, lease, limit=BATCH)
            renewed = time.monotonic()
            async with db.transaction(write=False) as session:
                waiting = await service.due(session, lease.endpoint_id, limit=BATCH)
            if not waiting and not enqueued:
                return
            for due in waiting:
                if self._closing:
                    return
                try:
                    # Revoked since the claim: its deliveries wait (and resume if reinstated).
                    await self.hub.client_status.check(lease.client_id)
                except TokenRejected:
                    return
                if time.monotonic() - renewed > self.lease_seconds / 2:
                    # Half the lease gone: renewed before the next POST may take its deadline.
                    async with db.transaction(write=True) as session:
                        if not await service.renew(
                            session, lease, lease_seconds=self.lease_seconds
                        ):
                            return
                    renewed = time.monotonic()
                await self._attempt(lease, due)

    async def _attempt(self, lease: service.Lease, due: service.Due) -> None:
        attempt = WebhookAttempt(
            endpoint_id=lease.endpoint_id,
            delivery_id=due.delivery_id,
            change=due.change,
            attempts=due.attempts,
            hold_seconds=self.hold_seconds,
        )
        result = await render(self.hub, self.schema, lease, attempt)
        db = self.hub.db
        if result is None:
            if attempt.out_of_scope:
                async with db.transaction(write=True) as session:
                    await service.drop(session, due.delivery_id)
            return  # else another process made this attempt
        if not attempt.begun or result.data is None:
            await self._unsent(due, result)
            return
        body = json.dumps(body_of(result), separators=(",", ":")).encode()
        headers = {
            **signing.headers(lease.secret, due.delivery_id, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        assert self._client is not None  # noqa: S101 - started before any task
        status, error = await post(
            self._client, lease.url, body, headers, deadline=deadline_seconds(self.settings)
        )
        async with db.transaction(write=True) as session:
            state = await service.finish_attempt(
                session,
                due.delivery_id,
                attempt=attempt.number,
                status_code=status,
                error=error,
                settings=self.settings,
            )
        log.info(
            "webhook delivery %s to endpoint %s, attempt %d: %s (%s)",
            due.delivery_id,
            lease.endpoint_id,
            attempt.number,
            state.value if state else "gone",
            status if status is not None else error,
        )

    async def _unsent(self, due: service.Due, result: Any) -> None:
        """A delivery refused before it left: by the agreement (never sent), or for want of
        its audit (counted as a failed attempt, retried later)."""
        codes = {(e.extensions or {}).get("code") for e in result.errors or []}
        async with self.hub.db.transaction(write=True) as session:
            refused = sorted(str(c) for c in codes if c in DENIAL_CODES)
            if refused:
                await service.refuse(session, due.delivery_id, code=refused[0])
                log.info("webhook delivery %s refused: %s", due.delivery_id, refused[0])
                return
            await service.fail_unsent(
                session,
                due.delivery_id,
                attempts=due.attempts,
                error="audit",
                settings=self.settings,
            )
        log.warning("webhook delivery %s not sent: %s", due.delivery_id, sorted(map(str, codes)))
