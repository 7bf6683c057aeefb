"""Building the audit's record and child indexes after the appends, off the request path.

An audited request's events are appended (and committed) before any data leaves; their index
rows are not needed for that. After each audited commit the request pokes the indexer, which
runs `chain.catch_up_apart` (each a short transaction of its own) until the indexes hold every
committed event. Readers never wait for it: they read the events it has not reached yet directly
(`service.list_events`). Several hub processes may index at once: the progress row's lock
serialises them, and each carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from hub.audit import chain
from hub.db import Database

log = logging.getLogger("hub.audit")


class AuditIndexer:
    """One per process: a task that runs while there are events to index, started by `poke`.

    It waits `delay` seconds after a poke before indexing, so that one statement indexes the
    events of every request in that time: per request, a statement, a transaction and a commit
    of its own cost more than indexing its rows.
    """

    def __init__(self, db: Database, *, delay: float = 0.0) -> None:
        self.db = db
        self.delay = delay
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # What indexing has cost this process so far (the benchmark reports it).
        self.indexed = 0
        self.seconds = 0.0

    def poke(self) -> None:
        """Events were appended: index them soon (at once if the indexer is idle)."""
        self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._wanted.is_set():
            if self.delay:
                await asyncio.sleep(self.delay)
            self._wanted.clear()
            try:
                await self.index_all()
            except (SQLAlchemyError, OSError, chain.IndexProgressMissing) as error:
                # Nothing is lost: readers read unindexed events directly, and the next
                # append's poke tries again. The type only: no request data in the log.
                log.warning("audit indexing stopped: %s", type(error).__name__)
                return

    async def index_all(self) -> int:
        """Index every event committed so far, a batch per transaction; return how many.

        A batch short of full reached the last event committed when it ran: asking again would
        lock the progress row and commit a transaction for nothing (events committed since
        come with a poke of their own).
        """
        total = 0
        started = time.perf_counter()
        try:
            while True:
                indexed = await chain.catch_up_apart(self.db)
                total += indexed
                if indexed < chain.batch_for(self.db):
                    return total
        finally:
            self.indexed += total
            self.seconds += time.perf_counter() - started

    async def idle(self) -> None:
        """Wait until everything poked so far is indexed (the benchmark, between its turns)."""
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """Stop at shutdown; what is left is indexed by the next process's first poke."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
