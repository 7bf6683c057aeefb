"""Per-client rate and in-flight limits: GCRA (a token bucket without a refill timer).

Each client has a theoretical arrival time `tat`: admitting a request moves it on by one
emission interval (1 / rate); a request is admitted while `tat` stays within `burst` intervals
of now, and while the client has fewer than `in_flight` requests being served. A refusal moves
nothing, so a client that stops flooding is served again as soon as its allowance refills.

On PostgreSQL the state is one row per client in an UNLOGGED table, checked and moved in one
`INSERT ... ON CONFLICT DO UPDATE` on an autocommit connection (one round trip, row-locked, so
every hub process and worker shares one allowance per client, not one each). A released
in-flight slot is freed in this process at once, and in the shared row by the client's next
admission here (the same statement) or, if none comes, by one `UPDATE` for every client
`RELEASE_FLUSH_SECONDS` later: meanwhile another process may count it still. A process killed
mid-request cannot release its slots: a client's count is taken as zero once it has been quiet
for `LEASE_SECONDS`, and a crashed server empties UNLOGGED tables. On SQLite (one process) the
state is in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import create_async_engine

from hub.db import fetch, replace_closed_connections

log = logging.getLogger("hub.limits")

LEASE_SECONDS = 60.0  # longer than any request runs
IN_FLIGHT_RETRY_SECONDS = 1.0
# How long a released slot may stay counted in the shared row, for the other processes: a
# client's next admission here takes its owed releases with it (one round trip, not two), and
# what no admission took is written after this long.
RELEASE_FLUSH_SECONDS = 0.05


class RoleLimit(BaseModel):
    """One role's allowance per client: sustained requests a second, burst, in flight at once."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)
    in_flight: int = Field(ge=1)

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def window(self) -> float:
        return self.burst * self.interval


@dataclasses.dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str | None = None  # "rate" or "in_flight" when refused
    retry_after: float = 0.0


def _decide(tat: float, now: float, in_flight: int, limit: RoleLimit) -> Decision:
    ahead = max(tat, now) + limit.interval - now
    if ahead > limit.window:
        return Decision(admitted=False, reason="rate", retry_after=ahead - limit.window)
    if in_flight >= limit.in_flight:
        return Decision(admitted=False, reason="in_flight", retry_after=IN_FLIGHT_RETRY_SECONDS)
    return Decision(admitted=True)


class Limiter(Protocol):
    async def admit(self, client: str, limit: RoleLimit) -> Decision: ...

    async def release(self, client: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """One process's clients (SQLite serves from one process)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}

    async def admit(self, client: str, limit: RoleLimit) -> Decision:
        now = time.monotonic()
        tat = self._tat.get(client, now)
        decision = _decide(tat, now, self._in_flight.get(client, 0), limit)
        if decision.admitted:
            self._tat[client] = max(tat, now) + limit.interval
            self._in_flight[client] = self._in_flight.get(client, 0) + 1
        return decision

    async def release(self, client: str) -> None:
        self._in_flight[client] = max(0, self._in_flight.get(client, 0) - 1)

    async def close(self) -> None:
        """Nothing to close: the state is this process's memory."""


# The row's old values on the right of SET; `excluded.touched` is now, by the database's clock
# (one clock for every hub process). Admitted only if within the rate and under the cap.
_LIVE = (
    f"(CASE WHEN r.touched < excluded.touched - {LEASE_SECONDS} THEN 0 "
    "ELSE GREATEST(r.in_flight - :released, 0) END)"
)
_RATE_OK = "(GREATEST(r.tat, excluded.touched) + :interval - excluded.touched <= :window)"
_ADMIT = f"({_RATE_OK} AND {_LIVE} < :cap)"
_ADMIT_SQL = sa.text(f"""
INSERT INTO rate_limit AS r (client_id, tat, in_flight, touched, admitted)
SELECT :client, now.t + :interval, 1, now.t, true
FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) AS now
ON CONFLICT (client_id) DO UPDATE SET
    admitted = {_ADMIT},
    tat = CASE WHEN {_ADMIT} THEN GREATEST(r.tat, excluded.touched) + :interval ELSE r.tat END,
    in_flight = {_LIVE} + CASE WHEN {_ADMIT} THEN 1 ELSE 0 END,
    touched = excluded.touched
RETURNING admitted, tat, in_flight, touched
""").columns(  # noqa: S608 - constants only; every value is a bound parameter
    *(sa.column(name) for name in ("admitted", "tat", "in_flight", "touched"))
)
_RELEASE_SQL = sa.text(
    "UPDATE rate_limit AS r SET in_flight = GREATEST(r.in_flight - o.released, 0) "
    "FROM unnest(CAST(:clients AS TEXT[]), CAST(:counts AS INTEGER[])) AS o(client_id, released) "
    "WHERE r.client_id = o.client_id"
)


class PostgresLimiter:
    """Every process's clients, in one row each (see the module's docstring)."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        # Its own few connections: a flood's admissions never take one a push is waiting for,
        # and the request's statements stay the request's (tests count them). No pre-ping (a
        # round trip per checkout): a connection the server dropped is retried once instead.
        self._engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, isolation_level="AUTOCOMMIT"
        )
        replace_closed_connections(self._engine)
        # What this process knows without asking: a flood's refusals then cost no round trip
        # (nor a pooled connection another client's push is waiting for).
        self._refused_until: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        # Slots released here and not yet written to the shared rows (`release`).
        self._owed: dict[str, int] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._being_flushed: set[str] = set()  # clients whose owed slots a flush is writing

    async def admit(self, client: str, limit: RoleLimit) -> Decision:
        local = self._known_refusal(client, limit)
        if local is not None:
            return local
        decision = await self._admit_shared(client, limit)
        if decision.admitted:
            self._in_flight[client] = self._in_flight.get(client, 0) + 1
        elif decision.reason == "rate":
            # `tat` only ever moves on, whoever admits: no process admits this client sooner.
            self._refused_until[client] = time.monotonic() + decision.retry_after
        return decision

    def _known_refusal(self, client: str, limit: RoleLimit) -> Decision | None:
        wait = self._refused_until.get(client, 0.0) - time.monotonic()
        if wait > 0:
            return Decision(admitted=False, reason="rate", retry_after=wait)
        if self._in_flight.get(client, 0) >= limit.in_flight:
            # This process alone holds the cap: every process together holds at least as many.
            return Decision(admitted=False, reason="in_flight", retry_after=IN_FLIGHT_RETRY_SECONDS)
        return None

    async def _admit_shared(self, client: str, limit: RoleLimit) -> Decision:
        if client in self._being_flushed:
            # Its released slots are being written: counted until then, so wait for it.
            await asyncio.gather(*self._flushing, return_exceptions=True)
        released = self._owed.pop(client, 0)
        parameters = {
            "client": client,
            "interval": limit.interval,
            "window": limit.window,
            "cap": limit.in_flight,
            "released": released,
        }
        try:
            row = await self._once_more_if_dropped(_ADMIT_SQL, parameters)
        except BaseException:
            self._owe(client, released)  # not written: still owed
            raise
        if row.admitted:
            return Decision(admitted=True)
        decision = _decide(row.tat, row.touched, row.in_flight, limit)
        # The database decided; a last-digit rounding difference must not turn it round.
        return (
            decision
            if not decision.admitted
            else Decision(admitted=False, reason="rate", retry_after=limit.interval)
        )

    async def release(self, client: str) -> None:
        """Free a slot: at once in this process, in the shared row with the client's next
        admission here, or at the latest `RELEASE_FLUSH_SECONDS` from now."""
        self._in_flight[client] = max(0, self._in_flight.get(client, 0) - 1)
        self._owe(client, 1)

    def _owe(self, client: str, count: int) -> None:
        if count <= 0:
            return
        self._owed[client] = self._owed.get(client, 0) + count
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                RELEASE_FLUSH_SECONDS, self._start_flush
            )

    def _start_flush(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Write the releases no admission has taken yet. A slot it cannot write stays owed
        (and the client's lease frees it anyway, `LEASE_SECONDS`)."""
        owed, self._owed = self._owed, {}
        if not owed:
            return
        clients = sorted(owed)
        parameters = {"clients": clients, "counts": [owed[c] for c in clients]}
        self._being_flushed.update(clients)
        try:
            await self._once_more_if_dropped(_RELEASE_SQL, parameters)
        except Exception as error:  # noqa: BLE001 - owed again, and said so
            for client, count in owed.items():
                self._owe(client, count)
            log.warning("in-flight slots not released yet: %s", type(error).__name__)
        finally:
            self._being_flushed.difference_update(clients)

    async def _once_more_if_dropped(
        self, statement: sa.TextClause | sa.TextualSelect, parameters: dict[str, Any]
    ) -> Any:
        try:
            return await self._execute(statement, parameters)
        except sa.exc.DBAPIError as error:
            # After a database restart every pooled connection is dead; SQLAlchemy then
            # discards the pool, so the second attempt opens a fresh connection.
            if not error.connection_invalidated:
                raise
            return await self._execute(statement, parameters)

    async def _execute(
        self, statement: sa.TextClause | sa.TextualSelect, parameters: dict[str, Any]
    ) -> Any:
        found = await fetch(self._engine, statement, parameters)
        return found[0] if found else None

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()
        if self._flush is not None:  # the last write failed: nothing more to try it on
            self._flush.cancel()
            self._flush = None
        await self._engine.dispose()
