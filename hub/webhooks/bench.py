"""`bench-webhooks`: delivery throughput and push-to-delivery latency to a local receiver.

Not a test: it measures. A scratch database, a hub served by `python -m hub serve` in a child
process (its dispatcher on, as in production), and a receiver on loopback over TLS in this
process (`hub.webhooks.receiver`: it verifies every signature, as a client system would). Each
of `endpoints` council clients registers a webhook through the API; a force pushes `pushes`
incidents about the council's children, `concurrency` at a time; every endpoint must then be
sent every incident, once, verified. Any failure or missing delivery is a BenchFailed (no rate).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
import uuid

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.bench import (
    COUNCIL,
    FORCE,
    PUSH,
    BenchFailed,
    Figures,
    _drive,
    _failure,
    _incident,
    bearer,
    scratch_database,
    scratch_directory,
    serving_hubs,
)
from hub.migrate import upgrade
from hub.settings import Settings
from hub.webhooks.receiver import Received, Receiver, make_tls, serving

REGISTER = """mutation Register($url: String!) { registerWebhook(url: $url) { secret } }"""


@dataclasses.dataclass
class DeliveryFigures:
    endpoints: int
    deliveries: int
    seconds: float  # from the first push to the last delivery
    latencies: list[float]  # each delivery: from its push's answer to its arrival

    def line(self) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return (
            f"webhooks {self.deliveries:>6} to {self.endpoints} endpoints in "
            f"{self.seconds:6.2f}s  {self.deliveries / self.seconds:8.1f}/s  "
            f"push-to-delivery p50 {statistics.median(ordered) * 1000:7.1f} ms  "
            f"p99 {p99 * 1000:7.1f} ms  errors 0"
        )


async def run(
    *, database_url: str, endpoints: int, pushes: int, concurrency: int, drain_seconds: float
) -> list[str]:
    async with scratch_database(database_url, prefix="hub_bench_webhooks") as url:
        await upgrade(url)
        with scratch_directory("hub-bench-webhooks-tls-") as tls_dir:
            tls = make_tls(tls_dir)
            receiver = Receiver()
            trusted = {"HUB_WEBHOOK_CA_FILE": str(tls.ca_file)}
            with serving(receiver, tls) as receiver_url:
                async with serving_hubs(url, prefix="hub-bench-webhooks-", hub_env=trusted) as hub:
                    return await _measure(
                        hub.base,
                        hub.settings,
                        hub.keys,
                        receiver,
                        receiver_url,
                        endpoints=endpoints,
                        pushes=pushes,
                        concurrency=concurrency,
                        drain_seconds=drain_seconds,
                    )


async def _measure(
    base: str,
    settings: Settings,
    keys: KeySet,
    receiver: Receiver,
    receiver_url: str,
    *,
    endpoints: int,
    pushes: int,
    concurrency: int,
    drain_seconds: float,
) -> list[str]:
    police = bearer(settings, keys, Role.POLICE_OFFICER, FORCE, client="bench")
    run_id = uuid.uuid4().hex[:6].upper()
    pushed_at: dict[str, float] = {}
    url = f"{base}/graphql"
    async with bench_http.Client(timeout=60) as client:
        paths = []
        for number in range(endpoints):
            council = bearer(
                settings, keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, client=f"bench-{number}"
            )
            path = f"hooks/{number}"
            response = await client.post(
                url,
                json={"query": REGISTER, "variables": {"url": f"{receiver_url}/{path}"}},
                headers=council,
            )
            failure = _failure(response, field="registerWebhook")
            if failure is not None:
                msg = f"registering a webhook failed: {failure}"
                raise BenchFailed(msg)
            receiver.expect(path, response.json()["data"]["registerWebhook"]["secret"])
            paths.append(path)

        async def push(number: int) -> str | None:
            body = {"query": PUSH, "variables": {"input": _incident(number, run_id)}}
            response = await client.post(url, json=body, headers=police)
            failure = _failure(response, field="reportIncident")
            if failure is None:
                pushed_at[response.json()["data"]["reportIncident"]["id"]] = time.monotonic()
            return failure

        started = time.monotonic()
        pushed: Figures = (await _drive("pushes", pushes, concurrency, push)).checked()
        deliveries = await _drain(receiver, paths, pushes, drain_seconds)
    latencies = []
    for arrival in deliveries:
        incident_id = json.loads(arrival.body)["data"]["recordChanges"]["record"]["id"]
        latencies.append(arrival.at - pushed_at[incident_id])
    last = max(arrival.at for arrival in deliveries)
    figures = DeliveryFigures(endpoints, len(deliveries), last - started, latencies)
    return [pushed.line(), figures.line()]


async def _drain(
    receiver: Receiver, paths: list[str], pushes: int, seconds: float
) -> list[Received]:
    """Every endpoint's deliveries once all have arrived, or BenchFailed."""
    deadline = time.monotonic() + seconds
    expected = len(paths) * pushes
    while True:
        arrived = [r for path in paths for r in receiver.at(path)]
        refused = [r for r in arrived if r.refused is not None or r.status != 200]  # noqa: PLR2004
        if refused:
            msg = f"{len(refused)} deliveries refused by the receiver (first: {refused[0].refused})"
            raise BenchFailed(msg)
        if len(arrived) > expected:
            msg = f"{len(arrived)} deliveries where {expected} were due: some were sent twice"
            raise BenchFailed(msg)
        if len(arrived) == expected:
            ids = {r.headers["webhook-id"] for r in arrived}
            if len(ids) != expected:
                msg = "a delivery id arrived twice"
                raise BenchFailed(msg)
            return arrived
        if time.monotonic() > deadline:
            msg = f"{expected - len(arrived)} of {expected} deliveries missing after {seconds:.0f}s"
            raise BenchFailed(msg)
        await asyncio.sleep(0.05)
