"""`bench-gateway`: the same council query direct to the hub and through the gateway.

Interleaved in one run (a round direct, a round through the gateway, and again), each request
with variables of its own (the gateway must not merge identical requests in flight, and the
audit counts each). The hub's part of the query is what both paths can answer; the cross-
subgraph query (hub and council fields) through the gateway is measured beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from hub import bench_http
from hub.bench import Figures, _drive, _failure, _free_port, scratch_database, scratch_directory
from hub.federation import stack

HUB_PART = (
    """query CouncilChild($id: ID!) { child(id: $id) { id givenName familyName dateOfBirth } }"""
)
CROSS = """query CouncilChildCase($id: ID!) {
  child(id: $id) {
    id givenName familyName dateOfBirth
    allocatedSocialWorker childProtectionPlan { category startDate }
  }
}"""


def _merged(name: str, rounds: list[Figures]) -> Figures:
    errors = [r for r in rounds if r.errors]
    return Figures(
        name,
        sum(r.count for r in rounds),
        sum(r.seconds for r in rounds),
        [latency for r in rounds for latency in r.latencies],
        sum(r.errors for r in rounds),
        errors[0].first_error if errors else None,
    )


async def _measure(
    running: stack.Stack, *, requests: int, rounds: int, concurrency: int
) -> list[Figures]:
    token = running.token(client_id="bench-gateway")
    headers = {"Authorization": f"Bearer {token}"}
    children = running.children
    direct_url = f"{running.hub_url}/graphql"
    sequence = 0

    def caller(
        http: bench_http.Client, url: str, query: str
    ) -> Callable[[int], Awaitable[str | None]]:
        async def call(_: int) -> str | None:
            nonlocal sequence
            sequence += 1
            # Distinct variables per request: the child, and a number no other request has.
            variables: dict[str, Any] = {"id": children[sequence % len(children)], "n": sequence}
            response = await http.post(
                url, json={"query": query, "variables": variables}, headers=headers
            )
            return _failure(response, field="child")

        return call

    direct: list[Figures] = []
    gateway: list[Figures] = []
    cross: list[Figures] = []
    per_round = max(1, requests // rounds)
    async with bench_http.Client(timeout=60) as http:
        for _ in range(rounds):
            direct.append(
                await _drive("direct", per_round, concurrency, caller(http, direct_url, HUB_PART))
            )
            gateway.append(
                await _drive(
                    "gateway", per_round, concurrency, caller(http, running.gateway_url, HUB_PART)
                )
            )
            cross.append(
                await _drive(
                    "cross", per_round, concurrency, caller(http, running.gateway_url, CROSS)
                )
            )
    return [
        _merged("direct", direct).checked(),
        _merged("gateway", gateway).checked(),
        _merged("cross", cross).checked(),
    ]


@contextlib.contextmanager
def _database(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """A SQLite file in `data_dir` by default; a scratch database on a PostgreSQL server named."""
    if database_url is None:
        yield f"sqlite+aiosqlite:///{data_dir / 'hub.db'}"
        return
    scratch = scratch_database(database_url, prefix="hub_bench_gateway")
    # The stack runs its own event loops in between: the scratch database's lives around them.
    with asyncio.Runner() as runner:
        url = runner.run(scratch.__aenter__())
        try:
            yield url
        finally:
            runner.run(scratch.__aexit__(None, None, None))


def run(
    *, requests: int, rounds: int, concurrency: int, database_url: str | None = None
) -> list[Figures]:
    with (
        scratch_directory("hub-bench-gateway-") as data_dir,
        _database(database_url, data_dir) as url,
        stack.running(
            database_url=url,
            data_dir=data_dir,
            hub_port=_free_port(),
            council_port=_free_port(),
            gateway_port=_free_port(),
            rate_limit=10 * requests,  # the bench is one client: its limit is not what is measured
            graphiql=False,
        ) as running,
    ):
        return asyncio.run(
            _measure(running, requests=requests, rounds=rounds, concurrency=concurrency)
        )
