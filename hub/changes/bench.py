"""`safeguarding-hub bench-subscriptions`: push-to-delivery latency with many subscribers.

Not a test: it measures. It makes a scratch database, starts `--processes` hub processes on it,
subscribes `--subscribers` council social workers (spread over the processes, each a person of
their own, half under one purpose and half under another), and pushes incidents in their area at
`--rate` a second for `--seconds`. Every subscriber must be sent every push: a missing or failed
delivery is a failed bench, with no figures. Latency is from the moment a push is sent to the
moment a subscriber has the message.

`--path per-subscriber` runs the same with the fan-out off (each subscriber read, resolved and
audited on its own: the hub before fan-out), for a side-by-side figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import col
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.audit import chain
from hub.audit.models import AuditEvent
from hub.bench import (
    COUNCIL,
    FORCE,
    PUSH,
    BenchFailed,
    Figures,
    _failure,
    _incident,
    analysed,
    scratch_database,
    serving_hubs,
)
from hub.bench_read import (
    CpuSeconds,
    CpuSnapshot,
    _backends_cpu,
    _process_cpu,
    _threads_cpu,
)
from hub.db import Database
from hub.migrate import upgrade
from hub.settings import Settings

CHANGES = """subscription Changes { recordChanges { cursor change
  record { __typename id ... on Incident { policeReference type summary } } } }"""
PURPOSES = ("section_47_enquiry", "strategy_discussion")
PATHS = ("fanout", "per-subscriber")
SETTLE_SECONDS, SETTLE_PER_SUBSCRIBER = 1.0, 0.01
WARM_UP_NUMBER = 10**6  # warm-up pushes' references, apart from the timed ones


@dataclasses.dataclass
class SubscriptionFigures:
    path: str
    subscribers: int
    processes: int
    pushes: Figures
    deliveries: Figures
    delivery_events: int  # audit events for the deliveries (one per group per change, fanned out)
    # Each delivery's latency from the moment its push was answered (committed), not sent.
    after_answer: list[float] = dataclasses.field(default_factory=list)
    # CPU seconds while the timed pushes were pushed and delivered: every hub process, the
    # scratch database's backends, this bench. On a shared machine the latencies move with
    # everyone's load; the CPU a push costs moves much less, so side by side it says what changed.
    cpu: CpuSeconds = dataclasses.field(default_factory=CpuSeconds)

    def lines(self) -> list[str]:
        return [
            f"path {self.path}: {self.subscribers} subscribers over {self.processes} processes",
            self.pushes.line(),
            self.deliveries.line() + "  (latency: push sent to message received)",
            (
                f"after the push was answered: p50 "
                f"{statistics.median(self.after_answer or [0.0]) * 1000:.1f} ms, "
                f"p99 {_p99(self.after_answer or [0.0]) * 1000:.1f} ms"
            ),
            (
                f"audit: {self.delivery_events} disclosure events for "
                f"{self.deliveries.count} deliveries"
            ),
            self.cpu.each(
                self.pushes.count, f"push (its {self.subscribers} deliveries included)", hub="hubs"
            ),
        ]


@dataclasses.dataclass
class _Subscriber:
    socket: ClientConnection
    received: dict[str, float] = dataclasses.field(default_factory=dict)  # reference -> when
    failure: str | None = None
    messages: int = 0  # every record sent to it, warm-up included: each must be audited


async def run(
    *,
    database_url: str,
    subscribers: int,
    processes: int,
    rate: float,
    seconds: float,
    path: str = "fanout",
    drain_seconds: float = 60.0,
) -> SubscriptionFigures:
    if path not in PATHS:
        msg = f"path is one of {', '.join(PATHS)}"
        raise ValueError(msg)
    async with scratch_database(database_url, prefix="hub_subs_bench") as url:
        await upgrade(url)
        hub_env = {
            "HUB_SUBSCRIPTION_FANOUT": "true" if path == "fanout" else "false",
            # Every subscriber connects from this one address: room for all, and the pushes.
            "HUB_MAX_CONNECTIONS_PER_CLIENT": str(subscribers + 100),
        }
        async with serving_hubs(url, processes=processes, hub_env=hub_env) as hubs:
            database = make_url(url).database if url.startswith("postgresql") else None

            def cpu() -> CpuSnapshot:
                return CpuSnapshot(
                    sum(_process_cpu(process.pid) for process in hubs.processes),
                    _backends_cpu(database),
                    time.process_time(),
                    _threads_cpu(process.pid for process in hubs.processes),
                )

            measured = await _measure(
                hubs.bases,
                hubs.settings,
                hubs.keys,
                subscribers=subscribers,
                rate=rate,
                seconds=seconds,
                drain_seconds=drain_seconds,
                cpu=cpu,
                analyse=lambda: analysed(url, database),
            )
        events, listed = await _delivery_events(url)
    if listed < measured.messages:
        msg = (
            f"{measured.messages} records were delivered but the audit lists only {listed} "
            "recipients of subscription disclosures; no figures for a run with unaudited deliveries"
        )
        raise BenchFailed(msg)
    return SubscriptionFigures(
        path,
        subscribers,
        processes,
        measured.pushes,
        measured.deliveries,
        events,
        measured.after_answer,
        measured.cpu,
    )


async def _delivery_events(url: str) -> tuple[int, int]:
    """The subscription disclosures in the audit, and the deliveries they list: an event
    fanned out lists its recipients; one sent to one subscriber lists none and is one."""
    db = Database(url)
    try:
        async with db.transaction(write=False) as session:
            query = sa.select(col(AuditEvent.detail)).where(
                col(AuditEvent.operation_kind) == "subscription",
                col(AuditEvent.operation) == "disclosure",
            )
            details = list((await session.execute(query)).scalars())
    finally:
        await db.dispose()
    listed = sum(
        len(chain.recipients_in(None if detail is None else json.loads(detail))) or 1
        for detail in details
    )
    return len(details), listed


def _token(  # noqa: PLR0917 - a token's claims, all needed
    settings: Settings, keys: KeySet, role: Role, org: str, user: str, purpose: str
) -> str:
    return issue_access_token(
        settings=settings,
        keys=keys,
        client_id=f"bench-{role.value}",
        organisation_code=org,
        role=role,
        user=user,
        purpose=purpose,
    )


@contextlib.asynccontextmanager
async def _subscribed(
    bases: list[str], settings: Settings, keys: KeySet, count: int
) -> AsyncIterator[list[_Subscriber]]:
    async with contextlib.AsyncExitStack() as stack:
        subscribers = []
        for number in range(count):
            token = _token(
                settings,
                keys,
                Role.COUNCIL_SOCIAL_WORKER,
                COUNCIL,
                f"bench-sw-{number:04d}",
                PURPOSES[number % len(PURPOSES)],
            )
            url = bases[number % len(bases)].replace("http://", "ws://") + "/graphql"
            try:
                socket = await stack.enter_async_context(
                    connect(
                        url,
                        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                        additional_headers={"Authorization": f"Bearer {token}"},
                        max_queue=None,
                    )
                )
            except (OSError, WebSocketException) as error:
                msg = f"subscriber {number} could not connect ({type(error).__name__})"
                raise BenchFailed(msg) from error
            await socket.send(json.dumps({"type": "connection_init"}))
            ack = json.loads(await socket.recv())
            if ack.get("type") != "connection_ack":
                msg = f"subscriber {number} was not acknowledged ({ack.get('type')})"
                raise BenchFailed(msg)
            payload = {"query": CHANGES}
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            subscribers.append(_Subscriber(socket))
        yield subscribers


async def _listen(subscriber: _Subscriber) -> None:
    try:
        await _read(subscriber)
    except WebSocketException as error:
        subscriber.failure = subscriber.failure or f"the connection closed ({type(error).__name__})"


async def _read(subscriber: _Subscriber) -> None:
    async for raw in subscriber.socket:
        message = orjson.loads(raw)
        if message.get("type") != "next":
            subscriber.failure = subscriber.failure or f"a {message.get('type')} message"
            return
        payload = message["payload"]
        if payload.get("errors"):
            codes = sorted(
                {str((e.get("extensions") or {}).get("code")) for e in payload["errors"]}
            )
            subscriber.failure = subscriber.failure or "errors " + ", ".join(codes)
            continue
        record = ((payload.get("data") or {}).get("recordChanges") or {}).get("record") or {}
        reference = record.get("policeReference")
        if reference is None:
            subscriber.failure = subscriber.failure or "a message without its record"
            continue
        if reference in subscriber.received:
            subscriber.failure = subscriber.failure or "a push delivered twice"
        subscriber.received[reference] = time.perf_counter()
        subscriber.messages += 1


@dataclasses.dataclass(frozen=True)
class _Measured:
    pushes: Figures
    deliveries: Figures
    after_answer: list[float]
    cpu: CpuSeconds  # while the timed pushes were pushed and delivered
    messages: int  # records sent to the subscribers in all, warm-up included


async def _measure(
    bases: list[str],
    settings: Settings,
    keys: KeySet,
    *,
    subscribers: int,
    rate: float,
    seconds: float,
    drain_seconds: float,
    cpu: Callable[[], CpuSnapshot],
    analyse: Callable[[], Awaitable[None]],
) -> _Measured:
    police = {
        "Authorization": "Bearer "
        + _token(settings, keys, Role.POLICE_OFFICER, FORCE, "bench-pc", "police_investigation")
    }
    run_id = uuid.uuid4().hex[:6].upper()
    count = max(1, round(rate * seconds))
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    push_latencies: list[float] = []
    push_failures: list[str] = []
    async with (
        bench_http.Client(timeout=60) as client,
        _subscribed(bases, settings, keys, subscribers) as subs,
    ):
        listeners = [asyncio.create_task(_listen(s)) for s in subs]
        # A new subscription starts at the newest change: pushing while they start would have
        # many catch up on their own (the per-subscriber path) before joining their groups.
        await asyncio.sleep(SETTLE_SECONDS + subscribers * SETTLE_PER_SUBSCRIBER)

        async def push(number: int) -> str:
            payload = _incident(number, run_id)
            reference = str(payload["policeReference"])
            started = time.perf_counter()
            sent[reference] = started
            try:
                response = await client.post(
                    bases[number % len(bases)] + "/graphql",
                    json={"query": PUSH, "variables": {"input": payload}},
                    headers=police,
                )
            except bench_http.HttpFailed as error:
                failure: str | None = f"a push's connection failed ({error})"
            else:
                failure = _failure(response, field="reportIncident")
            answered[reference] = time.perf_counter()
            push_latencies.append(answered[reference] - started)
            if failure is not None:
                push_failures.append(failure)
            return reference

        try:
            await _warm_up(subs, push, deadline=time.perf_counter() + drain_seconds)
            # What the warm-up stored, analysed as autovacuum would (`hub.bench.analysed`).
            await analyse()
            push_latencies.clear()
            cpu_before = cpu()
            begun = time.perf_counter()
            tasks = []
            for number in range(count):
                await asyncio.sleep(max(0.0, begun + number / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(push(number)))
            references = set(await asyncio.gather(*tasks))
            pushed_in = time.perf_counter() - begun
            await _until(subs, references, deadline=time.perf_counter() + drain_seconds)
            delivered_in = time.perf_counter() - begun
            used = cpu_before.until(cpu())
        finally:
            for listener in listeners:
                listener.cancel()
    pushes = Figures(
        "pushes",
        count,
        pushed_in,
        push_latencies,
        len(push_failures),
        push_failures[0] if push_failures else None,
    ).checked()
    deliveries = _deliveries(subs, references, sent, delivered_in).checked()
    after_answer = [s.received[r] - answered[r] for s in subs for r in references]
    return _Measured(pushes, deliveries, after_answer, used, sum(s.messages for s in subs))


async def _warm_up(
    subs: list[_Subscriber], push: Callable[[int], Awaitable[str]], *, deadline: float
) -> None:
    """Push until every subscriber has been sent something: then each has started (a new
    subscription starts at the newest change), and the clock can start."""
    number = WARM_UP_NUMBER
    while not all(s.received for s in subs):
        if time.perf_counter() > deadline or any(s.failure for s in subs):
            failure = next((s.failure for s in subs if s.failure), "no warm-up push reached some")
            msg = f"subscribers did not start: {failure}"
            raise BenchFailed(msg)
        await push(number)
        number += 1
        await _until(subs, set(), deadline=min(deadline, time.perf_counter() + 2), anything=True)
    for subscriber in subs:
        subscriber.received.clear()


async def _until(
    subs: list[_Subscriber], references: set[str], *, deadline: float, anything: bool = False
) -> None:
    """Wait until every subscriber has every reference (or, `anything`, any message), one
    fails, or the deadline passes."""
    while time.perf_counter() < deadline:
        if any(s.failure for s in subs):
            return
        if all((s.received if anything else references <= s.received.keys()) for s in subs):
            return
        await asyncio.sleep(0.05)


def _deliveries(
    subs: list[_Subscriber], references: set[str], sent: dict[str, float], seconds: float
) -> Figures:
    latencies: list[float] = []
    failures: list[str] = []
    for subscriber in subs:
        if subscriber.failure is not None:
            failures.append(subscriber.failure)
        missing = references - subscriber.received.keys()
        if missing:
            failures.append(f"{len(missing)} of {len(references)} pushes never delivered")
        latencies += [
            subscriber.received[r] - sent[r] for r in references if r in subscriber.received
        ]
    expected = len(subs) * len(references)
    return Figures(
        "delivered",
        expected,
        seconds,
        latencies or [0.0],
        len(failures),
        failures[0] if failures else None,
    )


def summary(figures: list[SubscriptionFigures]) -> list[str]:
    """Every run's lines, then each path's medians over its runs and their ratio."""
    lines = [line for figure in figures for line in figure.lines()]
    by_path: dict[str, list[SubscriptionFigures]] = {}
    for figure in figures:
        by_path.setdefault(figure.path, []).append(figure)
    medians = {}
    for path, runs in by_path.items():
        p50 = statistics.median(statistics.median(f.deliveries.latencies) for f in runs)
        p99 = statistics.median(_p99(f.deliveries.latencies) for f in runs)
        spread = [round(_p99(f.deliveries.latencies) * 1000, 1) for f in runs]
        medians[path] = p99
        lines.append(
            f"{path}: median over {len(runs)} runs: p50 {p50 * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms (each run's p99, ms: {spread})"
        )
    if len(medians) == len(PATHS):
        ratio = medians["per-subscriber"] / medians["fanout"]
        lines.append(f"p99 push-to-delivery, per-subscriber / fan-out: {ratio:.1f}x")
    return lines


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
