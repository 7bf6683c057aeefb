"""Each hub process scans for overdue stages every `escalation_scan_seconds` (0: never).

The scanner holds nothing but its timer: what is overdue is read from the database each time,
so a process that starts, stops or dies changes nothing but who scans next.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from sqlalchemy.exc import SQLAlchemyError

from hub.db import Database
from hub.escalation.scan import ScanResult, scan
from hub.timeliness.targets import TargetSet

log = logging.getLogger("hub.escalation")


class EscalationScanner:
    def __init__(
        self, db: Database, targets: TargetSet, *, every: float, horizon: dt.timedelta
    ) -> None:
        self.db = db
        self.targets = targets
        self.every = every
        self.horizon = horizon
        self._task: asyncio.Task[None] | None = None
        self.last: ScanResult | None = None

    def start(self) -> None:
        if self.every > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.last = await scan(self.db, self.targets, horizon=self.horizon)
                if self.last.raised:
                    log.info("escalations raised: %d", self.last.raised)
            except (SQLAlchemyError, OSError) as error:
                # The next turn tries again from stored state; the type only, no record data.
                log.warning("escalation scan failed: %s", type(error).__name__)
            await asyncio.sleep(self.every)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
