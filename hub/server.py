"""The HTTP server's limits: how long a connection may take to ask, and how many a client holds.

uvicorn closes a keep-alive connection that sends nothing after a response, and nothing else: a
connection that never sends a request, or sends its head a byte at a time, is held open, and one
address may open as many as it likes. The protocol classes here add three limits, for whichever
HTTP implementation uvicorn would pick (httptools, else h11):

- header timeout: a request head must be complete within `header_timeout_seconds` of the
  connection opening or of the previous response; otherwise the connection is closed.
- idle timeout: uvicorn's keep-alive timer (`idle_timeout_seconds`), armed at the opening too.
- connections per client: a peer address holds at most `max_connections_per_client` open
  connections (WebSockets included); another is answered 503 and closed at once, and counted.

Counts are per server process and per peer address: behind a proxy every connection is the
proxy's. A WebSocket is past its request head, so neither timeout applies to it (subscriptions
stay open; uvicorn's pings look after dead peers).

`serve`, `demo` and the tests' live server all take their uvicorn options from `options`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.util
from collections import Counter
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from hub.settings import Settings

_refused = metrics.get_meter("hub.server").create_counter(
    "hub.connections.refused",
    unit="{connection}",
    description="Connections refused because their client already held the most it may.",
)

_REFUSAL_TEXT = b"too many connections from this address\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s"
    % (len(_REFUSAL_TEXT), _REFUSAL_TEXT)
)


@dataclasses.dataclass(frozen=True)
class Limits:
    header_timeout: float
    idle_timeout: float


class ClientSlots:
    """Open connections per peer address, shared by one server's connections (one event loop)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: Counter[str] = Counter()
        self.refused = 0

    def take(self, host: str) -> bool:
        if self.open[host] >= self.cap:
            self.refused += 1
            _refused.add(1)
            return False
        self.open[host] += 1
        return True

    def hand_over(self, host: str) -> None:
        """A connection changing protocol keeps its slot: taken again whatever the cap."""
        self.open[host] += 1

    def give_back(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]


def _peer(transport: asyncio.BaseTransport) -> str:
    # uvicorn's helper asks only for `get_extra_info`, which every transport has.
    address = get_remote_addr(transport)  # type: ignore[arg-type]
    return address[0] if address else ""


_Http = HttpToolsProtocol | H11Protocol


class ConnectionGuard:
    """One HTTP connection's header timer and client slot (the same for either protocol class)."""

    def __init__(self, protocol: _Http, limits: Limits, slots: ClientSlots) -> None:
        self.protocol = protocol
        self.limits = limits
        self.slots = slots
        self.host: str | None = None  # set while the connection holds a slot
        self.head_timer: asyncio.TimerHandle | None = None

    def opened(self, transport: asyncio.Transport) -> None:
        host = _peer(transport)
        if not self.slots.take(host):
            transport.write(_REFUSAL)
            transport.close()
            return
        self.host = host
        self.await_head()
        # uvicorn arms its keep-alive timer only after a response; a new connection is idle too.
        # Any data cancels it (uvicorn's `data_received`), leaving the header timer to run.
        protocol = self.protocol
        protocol.timeout_keep_alive_task = protocol.loop.call_later(
            self.limits.idle_timeout, protocol.timeout_keep_alive_handler
        )

    def await_head(self) -> None:
        self._stop_timer()
        self.head_timer = self.protocol.loop.call_later(
            self.limits.header_timeout, self._head_overdue
        )

    def _head_overdue(self) -> None:
        # The timer is not stopped when a head completes (the two protocol classes notice that in
        # different places); a request in flight means the head came in time.
        cycle = self.protocol.cycle
        waiting = cycle is None or cycle.response_complete
        if waiting and not self.protocol.transport.is_closing():
            self.protocol.transport.close()

    def handed_over(self) -> None:
        """The connection became a WebSocket: its protocol takes the slot, no timer applies."""
        self._stop_timer()
        self._give_back()

    def closed(self) -> None:
        self._stop_timer()
        self._give_back()

    def _stop_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _give_back(self) -> None:
        if self.host is not None:
            self.slots.give_back(self.host)
            self.host = None


class _Guarded:
    """The hooks both of uvicorn's HTTP protocol classes get: a connection opening, a response
    completing (the next head is awaited), and the connection ending. The upgrade hook differs
    in signature, so each class below adds its own."""

    transport: asyncio.Transport
    timeout_keep_alive: int

    def __init__(self, *args: Any, limits: Limits, slots: ClientSlots, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Seconds, a float: uvicorn's option is whole seconds, its timer takes any.
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]
        self.guard = ConnectionGuard(self, limits, slots)  # type: ignore[arg-type]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        # uvicorn's HTTP protocols are only ever given a full Transport.
        self.guard.opened(transport)  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self.guard.await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed()
        super().connection_lost(exc)  # type: ignore[misc]


class GuardedHttpTools(_Guarded, HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
        self.guard.handed_over()
        super().handle_websocket_upgrade()


class GuardedH11(_Guarded, H11Protocol):
    def handle_websocket_upgrade(self, event: Any) -> None:
        self.guard.handed_over()
        super().handle_websocket_upgrade(event)


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """The WebSocket a guarded HTTP connection upgrades to: it holds the connection's slot."""

    def __init__(self, *args: Any, slots: ClientSlots, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots
        self.host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.host = _peer(transport)
        self.slots.hand_over(self.host)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.slots.give_back(self.host)


_HTTP = {"httptools": GuardedHttpTools, "h11": GuardedH11}


def _default_http() -> str:
    # As uvicorn's "auto": httptools when it is installed.
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def options(settings: Settings, *, http: str | None = None) -> dict[str, Any]:
    """uvicorn's options for the hub: its protocol classes carrying the limits in `settings`.

    The classes are bound with `functools.partial` rather than read from the settings in the
    worker: the partials pickle with uvicorn's config into each worker process, the slots object
    with them (one per process, shared by its HTTP and WebSocket connections).
    """
    limits = Limits(
        header_timeout=settings.header_timeout_seconds,
        idle_timeout=settings.idle_timeout_seconds,
    )
    slots = ClientSlots(settings.max_connections_per_client)
    return {
        "http": functools.partial(_HTTP[http or _default_http()], limits=limits, slots=slots),
        "ws": functools.partial(GuardedWebSocket, slots=slots),
        "proxy_headers": True,
        "access_log": False,
        # No permessage-deflate: each subscription message was compressed for each subscriber
        # on its own, a tenth of a fan-out's CPU for small JSON messages; and compressing
        # caller-chosen text beside records the caller may not read is what compression
        # oracles (CRIME, BREACH) need.
        "ws_per_message_deflate": False,
    }


def slots_of(config: Any) -> ClientSlots:
    """The slots a config's connections count in (for tests and operators' introspection)."""
    slots: ClientSlots = config.ws.keywords["slots"]
    return slots
