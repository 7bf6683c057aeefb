"""Revocation that bites: a revoked client's live tokens are refused within seconds.

An access token is good until it expires (up to `HUB_ACCESS_TOKEN_TTL_SECONDS`), and checking
its signature needs no database. So each hub process keeps the set of revoked client ids and
reads it again once it is older than `HUB_CLIENT_STATUS_TTL_SECONDS`: one small query per
process every few seconds, however many requests, and every process on the database sees a
revocation within that time. Tokens minted by the CLI name no registered client and are
unaffected (they are for development only).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlmodel import col, select

from hub.access.identity import Principal, RejectReason, TokenRejected
from hub.access.models import OAuthClient
from hub.access.tokens import authenticate_request

if TYPE_CHECKING:
    from hub.access.keys import KeySet
    from hub.db import Database
    from hub.settings import Settings


class ClientStatus:
    """The revoked clients as this process last read them, at most `ttl_seconds` ago."""

    def __init__(
        self,
        db: Database,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._clock = clock
        self._revoked: frozenset[str] = frozenset()
        self._read_at: float | None = None
        # Requests arriving while the set is stale wait for one read rather than each reading.
        self._lock = asyncio.Lock()

    async def check(self, client_id: str) -> None:
        """Refuse a token whose client is revoked (`revoked_client`)."""
        if client_id in await self._current():
            raise TokenRejected(RejectReason.REVOKED_CLIENT)

    async def _current(self) -> frozenset[str]:
        if self._fresh():
            return self._revoked
        async with self._lock:
            if not self._fresh():  # another request may have read it while this one waited
                self._revoked = await self._read()
                self._read_at = self._clock()
        return self._revoked

    def _fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._ttl

    async def _read(self) -> frozenset[str]:
        query = select(OAuthClient.client_id).where(col(OAuthClient.revoked_at).is_not(None))
        async with self._db.transaction(write=False) as session:
            return frozenset((await session.execute(query)).scalars())


async def authenticate_live(
    headers: Mapping[str, str], *, settings: Settings, keys: KeySet, clients: ClientStatus
) -> Principal:
    """The caller a request's token and context headers name, if the token is good and its
    client not revoked. Every way in (HTTP, the WebSocket upgrade, `connectionParams`, the
    gateway's audit reports) authenticates here, so none can skip the revocation check."""
    principal = authenticate_request(headers, settings=settings, keys=keys)
    await clients.check(principal.client_id)
    return principal
