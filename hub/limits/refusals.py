"""Refusals by the limits, audited like every other refusal, without letting a flood write one
audit append per refused request.

Refusals are group-committed: the first one waits a moment, everything refused meanwhile is
appended with it in one `record_many` (one statement on PostgreSQL), and each refused request
is answered only once its event is written. None is dropped: if the write fails, each of those
callers gets `AUDIT_UNAVAILABLE` (503) instead of its 429.
"""

from __future__ import annotations

import asyncio
import logging

from hub.audit import service as audit
from hub.audit.service import AuditWriteFailed
from hub.db import Database

log = logging.getLogger("hub.limits")

GATHER_SECONDS = 0.05
MAX_BATCH = 1000


class RefusalLog:
    def __init__(self, db: Database, *, gather_seconds: float = GATHER_SECONDS) -> None:
        self._db = db
        self._gather = gather_seconds
        self._pending: list[tuple[audit.EventDraft, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, draft: audit.EventDraft) -> None:
        """Return once the refusal's event is in the log; raise `AuditWriteFailed` if not."""
        written = asyncio.get_running_loop().create_future()
        self._pending.append((draft, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await written

    async def _write_all(self) -> None:
        await asyncio.sleep(self._gather)
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self._db.transaction(write=True) as session:
                    await audit.record_many(session, [draft for draft, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting caller must hear of it
                # The type only, as for every audit failure: a driver message can carry data.
                log.error("refusal events not written: %s", type(error).__name__)  # noqa: TRY400
                failure = AuditWriteFailed("the audit log could not be written")
                for _, written in batch:
                    if not written.done():
                        written.set_exception(failure)
                continue
            for _, written in batch:
                if not written.done():
                    written.set_result(None)
