"""The benches' HTTP client (`hub.bench_http`) against a real uvicorn server, and against
servers that answer badly: every answer whole, connections kept and renewed, every fault an
`HttpFailed` (which a bench reports with no rate), never a partial answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hub.bench_http import Client, HttpFailed
from tests.conftest import free_port


async def _echo(request: Request) -> Response:
    client = request.client
    return JSONResponse(
        {
            "body": await request.json() if request.method == "POST" else None,
            "authorization": request.headers.get("authorization"),
            "peer_port": client.port if client else None,
            "path": request.url.path,
            "query": request.url.query,
        },
        status_code=int(request.query_params.get("status", "200")),
    )


async def _chunked(_: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"parts": [', b'"one", "two", ', b'"three"]}'):
            yield part

    return StreamingResponse(parts(), media_type="application/json")


async def _closing(_: Request) -> Response:
    return JSONResponse({"closing": True}, headers={"connection": "close"})


APP = Starlette(
    routes=[
        Route("/echo", _echo, methods=["GET", "POST"]),
        Route("/chunked", _chunked),
        Route("/closing", _closing),
    ]
)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        APP, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_a_post_carries_its_json_and_headers_and_reads_the_whole_answer(base: str) -> None:
    sent = {"query": "{ viewer { role } }", "variables": {"text": 'é ☃ "quoted"', "n": 3}}
    async with Client() as client:
        answer = await client.post(
            f"{base}/echo?x=1", json=sent, headers={"Authorization": "Bearer t"}
        )
    assert answer.status_code == 200
    got = answer.json()
    assert got["body"] == sent
    assert got["authorization"] == "Bearer t"
    assert (got["path"], got["query"]) == ("/echo", "x=1")


async def test_a_refusal_is_an_answer_with_its_status(base: str) -> None:
    async with Client() as client:
        answer = await client.get(f"{base}/echo?status=429")
    assert answer.status_code == 429
    assert answer.json()["path"] == "/echo"


async def test_a_connection_is_kept_and_one_the_server_closed_is_replaced(base: str) -> None:
    async with Client() as client:
        first = (await client.get(f"{base}/echo")).json()["peer_port"]
        again = (await client.get(f"{base}/echo")).json()["peer_port"]
        assert again == first  # kept open between requests
        await asyncio.sleep(1.6)  # past the server's keep-alive (1 s): it closes the connection
        renewed = (await client.get(f"{base}/echo")).json()["peer_port"]
        assert renewed != first
        closing = await client.get(f"{base}/closing")  # says `connection: close`
        assert closing.json() == {"closing": True}
        after = (await client.get(f"{base}/echo")).json()["peer_port"]
        assert after != renewed


async def test_a_connection_idle_near_the_servers_keep_alive_is_not_reused(base: str) -> None:
    """A connection the server may be closing as the next request goes out is left: the
    request would meet a closed connection, a fault of neither end (a bench's turns leave one
    hub's connections idle while the other's run)."""
    async with Client(most_idle=0.2) as client:
        first = (await client.get(f"{base}/echo")).json()["peer_port"]
        assert (await client.get(f"{base}/echo")).json()["peer_port"] == first  # at once: kept
        await asyncio.sleep(0.5)  # the server (keep-alive 1 s) still holds it open
        assert (await client.get(f"{base}/echo")).json()["peer_port"] != first
    async with Client() as client:  # by default, idle up to `MOST_IDLE_SECONDS`
        first = (await client.get(f"{base}/echo")).json()["peer_port"]
        await asyncio.sleep(0.5)
        assert (await client.get(f"{base}/echo")).json()["peer_port"] == first


async def test_requests_in_flight_each_get_their_own_answer(base: str) -> None:
    async with Client() as client:
        answers = await asyncio.gather(
            *(client.post(f"{base}/echo", json={"n": n}) for n in range(20))
        )
    assert [a.json()["body"] for a in answers] == [{"n": n} for n in range(20)]


async def test_a_chunked_answer_is_read_whole(base: str) -> None:
    async with Client() as client:
        answer = await client.get(f"{base}/chunked")
    assert answer.json() == {"parts": ["one", "two", "three"]}


async def _raw_server(reply: bytes | None) -> tuple[asyncio.Server, str]:
    """A server that reads a request head and sends `reply` then closes (None: never answers)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reply is None:
            await asyncio.sleep(2)
        else:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/graphql"


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (b"SSH-2.0-not-http\r\n\r\n", "not an HTTP answer"),
        (b'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"short": ', "IncompleteReadError"),
        (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}", "neither a length"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "ValueError"),
        (None, "no answer within"),
    ],
)
async def test_a_bad_or_missing_answer_is_a_failure(reply: bytes | None, said: str) -> None:
    server, url = await _raw_server(reply)
    try:
        async with Client(timeout=0.5) as client:
            with pytest.raises(HttpFailed, match=said):
                await client.post(url, json={"query": "{ viewer { role } }"})
    finally:
        server.close()


async def test_nothing_listening_is_a_failure() -> None:
    async with Client(timeout=5) as client:
        with pytest.raises(HttpFailed, match="ConnectionRefusedError"):
            await client.get(f"http://127.0.0.1:{free_port()}/readyz")


def test_only_plain_http_to_a_host() -> None:
    with pytest.raises(ValueError, match="plain HTTP"):
        asyncio.run(Client().get("https://127.0.0.1/graphql"))
