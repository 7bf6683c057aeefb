"""The request's trace when nothing receives spans: the caller's joined, else a new one, so that
its audit events still name a trace (`current_trace_id`) without a span built and dropped."""

from __future__ import annotations

from typing import Any

import pytest

from hub import telemetry
from hub.telemetry import TraceContext, current_trace_id

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _trace_ids(headers: list[list[tuple[bytes, bytes]]]) -> list[str | None]:
    seen: list[str | None] = []

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        seen.append(current_trace_id())

    middleware = TraceContext(app)
    for each in headers:
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": each}
        await middleware(scope, None, None)  # type: ignore[arg-type]
    return seen


async def test_unexported_a_request_runs_in_the_callers_trace_or_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With spans exported, test_federation_hub checks the server span joins the caller's.
    monkeypatch.setattr(telemetry, "_exporting", lambda: False)
    traceparent = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01".encode()
    joined, first, second = await _trace_ids([[(b"traceparent", traceparent)], [], []])
    assert joined == CALLER_TRACE
    assert first is not None
    assert second is not None
    assert len(first) == 32
    assert first not in {"0" * 32, second, CALLER_TRACE}
