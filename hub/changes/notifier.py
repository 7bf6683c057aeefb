"""Waking subscribers when changes are committed, in this process and across hub processes.

In-process, the transaction that published changes pokes the notifier after it commits. On
PostgreSQL a listening connection turns every other process's `NOTIFY` into a poke too. A
subscriber also looks again every `poll_seconds` whatever happens, so a notification lost with a
dropped listening connection delays a delivery but never loses it: the outbox is the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.engine import make_url

from hub.changes.service import CHANNEL

log = logging.getLogger("hub.changes")


class ChangeNotifier:
    def __init__(self, database_url: str, *, poll_seconds: float) -> None:
        self.database_url = database_url
        self.poll_seconds = poll_seconds
        self._event = asyncio.Event()
        self._listener: Any = None
        self._starting = asyncio.Lock()

    def poke(self) -> None:
        """Wake everyone waiting now; later waiters wait for the next poke."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    def mark(self) -> asyncio.Event:
        """Take before reading the outbox; `wait` on it after finding nothing new."""
        return self._event

    async def wait(self, mark: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(mark.wait(), timeout=self.poll_seconds)

    async def listen(self) -> None:
        """On PostgreSQL, start listening for other processes' changes (once)."""
        if not self.database_url.startswith("postgresql") or self._listener is not None:
            return
        async with self._starting:
            if self._listener is not None:
                return
            import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 - PostgreSQL only

            dsn = make_url(self.database_url).set(drivername="postgresql")
            try:
                connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
                await connection.add_listener(CHANNEL, lambda *_: self.poke())
            except (OSError, asyncpg.PostgresError) as error:
                # Polling still delivers everything, only later.
                log.warning("change notifications unavailable: %s", type(error).__name__)
                return
            self._listener = connection

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
