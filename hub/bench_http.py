"""The benches' HTTP client: HTTP/1.1 over connections kept open, JSON by orjson.

The benches ran on httpx, which cost their client 1.3 ms of CPU a push and 1.75 ms a page
(the `cpu/...` lines): on two cores shared with the hubs and their database, the client took a
fifth of the machine that the hubs it measured were competing for, and added its own time to
every latency. This client does only what a bench needs: a POST of JSON (or a GET) to a hub it
started, on a connection kept open, the answer read by its `Content-Length` (or its chunks),
its status and JSON. Anything else it meets (a malformed head, a connection closed mid-answer,
a timeout) is an `HttpFailed`, which a bench reports as a failure, never as a rate.

aiohttp's client would also have done (it cost a few times this one's CPU a request, and a
sixth of httpx's), at the price of eight packages more in every install (aiohttp and seven it
brings), for the benches alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import orjson


class HttpFailed(Exception):
    """A request that got no complete HTTP answer."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer: what the benches read of one (named as httpx names them)."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)


@dataclasses.dataclass(frozen=True)
class _Target:
    host: str
    port: int
    path: str
    authority: bytes


@functools.lru_cache(maxsize=64)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        msg = f"the benches' client speaks plain HTTP to a host: {url!r}"
        raise ValueError(msg)
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.hostname, port, path, f"{parts.hostname}:{port}".encode())


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def usable(self, *, most_idle: float) -> bool:
        """Not closed by either end, nor left idle long enough that the hub may be closing it
        (it closes one idle past its keep-alive, `Settings.idle_timeout_seconds`): a request
        sent as the hub's close crossed it would find the connection gone, an error that is
        neither the hub's answer nor its fault (a bench's turns leave one hub's connections
        idle while the other's run)."""
        if time.monotonic() - self.idle_since > most_idle:
            return False
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes) -> tuple[Answer, bool]:
        """The answer to `request`, and whether the connection may carry another."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            msg = f"not an HTTP answer: {lines[0][:40]!r}"
            raise HttpFailed(msg)
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = await self._chunks()
        elif b"content-length" in fields:
            content = await self.reader.readexactly(int(fields[b"content-length"]))
        else:
            msg = "an answer with neither a length nor chunks"
            raise HttpFailed(msg)
        again = fields.get(b"connection", b"").lower() != b"close"
        return Answer(int(code), content), again

    async def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])


# A kept connection idle longer is not reused: well inside the hub's default keep-alive (5 s).
MOST_IDLE_SECONDS = 2.0
# What a connection's faults raise: each an `HttpFailed` naming it.
_FAULTS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class Client:
    """Keep-alive connections to the hosts it is asked about; as many as are in flight."""

    def __init__(self, *, timeout: float = 60, most_idle: float = MOST_IDLE_SECONDS) -> None:
        self.timeout = timeout
        self.most_idle = most_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    async def post(
        self, url: str, *, json: Any, headers: Mapping[str, str] | None = None
    ) -> Answer:
        body = orjson.dumps(json)
        return await self._send(url, b"POST", body, headers)

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Answer:
        return await self._send(url, b"GET", None, headers)

    async def _send(
        self, url: str, method: bytes, body: bytes | None, headers: Mapping[str, str] | None
    ) -> Answer:
        target = _target(url)
        head = [
            b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target.path.encode(), target.authority)
        ]
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        head.append(b"\r\n")
        request = b"".join(head) + (body or b"")
        key = (target.host, target.port)
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                connection = await self._connection(key)
                answer, again = await connection.exchange(request)
        except BaseException as e:
            if connection is not None:
                connection.close()  # half-used: never given to another request
            if isinstance(e, HttpFailed) or not isinstance(e, _FAULTS):
                raise  # cancelled, or said already
            # TimeoutError is an OSError too: named first.
            said = f"no answer within {self.timeout:g} s" if isinstance(e, TimeoutError) else ""
            msg = f"{method.decode()} {target.path}: {said or type(e).__name__}"
            raise HttpFailed(msg) from e
        if again:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(connection)
        else:
            connection.close()
        return answer

    async def _connection(self, key: tuple[str, int]) -> _Connection:
        idle = self._idle.get(key, [])
        while idle:
            connection = idle.pop()
            if connection.usable(most_idle=self.most_idle):
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(*key)
        return _Connection(reader, writer)
