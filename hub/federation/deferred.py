"""The hub's part of a gateway response, audited once with the response: one append, not two.

A fetch the federated gateway makes on a caller's behalf (its own token in
`Hub-Gateway-Authorization`, a client `HUB_FEDERATION_GATEWAY_CLIENTS` names, and the response's
report id in `Hub-Gateway-Report`) is not appended to the audit on its own. Its events are held
here, in this process, and the gateway's report of the same response (`POST /federation/audit`,
same gateway, same report id, same caller) writes them in its one append: the response's one
`federated` event then lists what the caller received from every subgraph and everything the
hub released for it. The gateway releases nothing to the caller until that append is written.

The hub does not depend on the gateway reporting for its own part to be logged: an event held
longer than `HUB_FEDERATION_REPORT_WAIT_SECONDS` (no report came to this process: the gateway
failed, or its report reached another hub process) is written by the hub itself, as the fetch's
own event, marked `detail.gateway_report = "none written"`. A report that fails to be written
puts the events it took back, for the same. So a hub fetch is in the audit once (with the
response), or, if the report went elsewhere, twice; never not at all, except that events held
when a process is killed outright (SIGKILL, power) are lost: the response's own event, written
by whichever process the report reached, still names every field the caller received.
Only queries are held; mutations and subscriptions are audited in place as always, and a fetch
without a verified gateway credential (a direct read) is audited on its own, before it leaves.
So is the gateway's fetch without a report id: a response the hub alone serves, which the
gateway does not report (its event is marked as the gateway's, `detail.channel = "gateway"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from hub.audit import service as audit
from hub.audit.service import Actor, AuditWriteFailed
from hub.db import Database
from hub.timeliness.models import FirstSeen

log = logging.getLogger("hub.federation")
Key = tuple[str, str]  # (the gateway's client id, the response's report id)


@dataclasses.dataclass(frozen=True)
class HeldFetch:
    """One hub fetch's events, held for its response's report."""

    actor: Actor
    drafts: tuple[audit.EventDraft, ...]
    first_seen: FirstSeen | None
    deadline: float


class HeldFetches:
    """This process's held fetches, and the writer of those whose report never came."""

    def __init__(
        self,
        db: Database,
        *,
        wait_seconds: float,
        capacity: int,
        lock_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._wait = wait_seconds
        self._capacity = capacity
        self._lock_timeout = lock_timeout
        self._clock = clock
        self._held: dict[Key, list[HeldFetch]] = {}
        self._count = 0
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def hold(
        self,
        key: Key,
        *,
        actor: Actor,
        drafts: Sequence[audit.EventDraft],
        first_seen: FirstSeen | None,
    ) -> bool:
        """Hold a fetch's events for its report; False (write them now) when full or closed."""
        if self._closed or self._count >= self._capacity:
            return False
        fetch = HeldFetch(actor, tuple(drafts), first_seen, self._clock() + self._wait)
        self._held.setdefault(key, []).append(fetch)
        self._count += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_overdue())
        return True

    def take(self, key: Key, actor: Actor) -> list[HeldFetch]:
        """The fetches held for this report and made for this caller (others stay held)."""
        held = self._held.pop(key, None)
        if not held:
            return []
        taken = [fetch for fetch in held if fetch.actor == actor]
        kept = [fetch for fetch in held if fetch.actor != actor]
        if kept:
            self._held[key] = kept
        self._count -= len(taken)
        return taken

    def put_back(self, key: Key, fetches: Sequence[HeldFetch]) -> None:
        """A report's append failed: its fetches are written by the hub itself, when due."""
        if fetches:
            self._held.setdefault(key, []).extend(fetches)
            self._count += len(fetches)

    def _overdue(self, *, everything: bool = False) -> list[HeldFetch]:
        now = self._clock()
        due: list[HeldFetch] = []
        for key in list(self._held):
            fetches = self._held[key]
            late = [f for f in fetches if everything or f.deadline <= now]
            if late:
                due.extend(late)
                rest = [f for f in fetches if not (everything or f.deadline <= now)]
                if rest:
                    self._held[key] = rest
                else:
                    del self._held[key]
        self._count -= len(due)
        return due

    async def _write_overdue(self) -> None:
        """Until nothing is held: write, as the hub's own events, what no report took in time."""
        while self._count:
            await asyncio.sleep(min(1.0, self._wait / 2))
            await self.write_overdue()

    async def write_overdue(self, *, everything: bool = False) -> int:
        """Write the held fetches past their deadline (all, when closing); how many written."""
        due = self._overdue(everything=everything)
        if not due:
            return 0
        try:
            async with self._db.transaction(write=True) as session:
                for fetch in due:
                    drafts = [
                        dataclasses.replace(
                            draft, detail={**(draft.detail or {}), "gateway_report": "none written"}
                        )
                        for draft in fetch.drafts
                    ]
                    await audit.record_many(
                        session,
                        drafts,
                        first_seen=fetch.first_seen,
                        lock_timeout=self._lock_timeout,
                    )
        except (AuditWriteFailed, SQLAlchemyError, OSError) as error:
            # Kept, and tried again on the next round; the type only (no parameters).
            log.error("held gateway fetches not written: %s", type(error).__name__)  # noqa: TRY400 - no traceback: its frames can hold the parameters
            for fetch in due:
                self._held.setdefault(("", ""), []).append(fetch)
            self._count += len(due)
            return 0
        log.warning("%d gateway fetch(es) audited without their report", len(due))
        return len(due)

    async def close(self) -> None:
        """Shutting down: nothing more is held, and everything held is written now."""
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.write_overdue(everything=True)
