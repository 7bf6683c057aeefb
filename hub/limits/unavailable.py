"""Failures a client should retry: the database or the audit store briefly out of reach.

A database restarting, a connection dropped, a pool with no free connection, SQLite's write lock
held too long: none of these says anything about the request, and the same request a moment
later succeeds. They answer HTTP 503 with `SERVICE_UNAVAILABLE` (or `AUDIT_UNAVAILABLE`) and
`Retry-After`, never `INTERNAL`. Pushes are idempotent, so retrying any of them is safe.
A data error (a constraint, a bad value) is not transient and keeps its own code.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import HubError, ServiceUnavailable

log = logging.getLogger("hub.limits")

RETRY_AFTER_SECONDS = 1
# Codes a client may retry after `Retry-After`; each answers HTTP 503 (RATE_LIMITED, 429).
UNAVAILABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", "AUDIT_UNAVAILABLE"})

# SQLSTATE classes and codes of a server that is (re)starting, shutting down, out of
# connections or that cancelled a statement for its own reasons (PostgreSQL appendix A).
_TRANSIENT_CLASSES = ("08", "53", "57P")
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57014"})
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (`orig`, a DBAPI error's cause) and what caused it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa.exc.TimeoutError | sa.exc.InterfaceError):
        return True  # the pool had no connection to give; a connection closed under us
    if isinstance(error, ConnectionError | TimeoutError):
        return True  # refused, reset, or no answer in time
    if isinstance(error, sqlite3.OperationalError):
        return any(busy in str(error) for busy in _SQLITE_BUSY)
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str):
        return state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES)
    # asyncpg's "connection was closed in the middle of operation" and the like, and the state
    # a connection is left in when the server dropped it mid-statement ("cannot switch to
    # state ...; another operation is in progress"): a fresh connection works.
    name = type(error).__name__
    return name in {"ConnectionDoesNotExistError", "InterfaceError"} or (
        name == "InternalClientError" and "another operation" in str(error)
    )


def is_transient(error: BaseException) -> bool:
    """Whether the error is the database being briefly out of reach, anywhere in its chain."""
    return any(_is_transient_one(link) for link in _chain(error))


def any_unavailable(errors: Iterable[BaseException | None]) -> bool:
    return any(error is not None and is_transient(error) for error in errors)


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("the database is briefly unavailable: retry after Retry-After")


def retry_headers(seconds: float = RETRY_AFTER_SECONDS) -> list[tuple[bytes, bytes]]:
    # Whole seconds (RFC 9110), at least one: a client must not retry at once in a loop.
    return [(b"retry-after", str(max(1, round(seconds + 0.499))).encode())]


async def send_error(
    send: Send, status: int, error: HubError, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(
        {"errors": [{"message": error.message, "extensions": error.extensions}]}
    ).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw + headers})
    await send({"type": "http.response.body", "body": body})


class Unavailable:
    """The last guard: a transient database failure escaping any route (the token endpoint,
    the dashboard, a transaction that could not even roll back) is a 503 with `Retry-After`,
    not Starlette's bare 500. Anything else still propagates as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as error:
            if started or not is_transient(error):
                raise
            log.warning("database unavailable (%s): answered 503", type(error).__name__)
            await send_error(send, 503, unavailable(), retry_headers())
