"""`safeguarding-hub bench-flood`: what a flood from one client does to another client's pushes.

Not a test: it measures. A hub process on a scratch database; one police client pushes
incidents one at a time (the victim) while nothing else runs, then while one council client
floods the hub with `concurrency` audited queries at once for as long as the victim pushes.
The same is run on a hub with the limits off, to show what they buy. The victim's p50/p99 with
and without the flood are the figures; the flood's served and refused (429) counts say how
much of it the limits turned away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from http import HTTPStatus

from hub import bench_http
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.bench import (
    COUNCIL,
    FORCE,
    PUSH,
    QUERY,
    UNLIMITED,
    Figures,
    _drive,
    _failure,
    _incident,
    scratch_database,
    serving_hubs,
)
from hub.demo import EXAMPLE_PURPOSE
from hub.migrate import upgrade
from hub.settings import Settings


@dataclasses.dataclass
class FloodFigures:
    label: str
    victim: Figures
    flood_served: int = 0
    flood_refused: int = 0
    flood_other: int = 0

    def line(self) -> str:
        flood = (
            f"  flood: served {self.flood_served}, refused (429) {self.flood_refused}"
            + (f", other errors {self.flood_other}" if self.flood_other else "")
            if self.flood_served + self.flood_refused + self.flood_other
            else ""
        )
        return f"{self.label:<18} {self.victim.line()}{flood}"


def _headers(settings: Settings, keys: KeySet, role: Role, org: str, client: str) -> dict[str, str]:
    token = issue_access_token(
        settings=settings,
        keys=keys,
        client_id=client,
        organisation_code=org,
        role=role,
        user="bench-user",
        purpose=EXAMPLE_PURPOSE[role],
    )
    return {"Authorization": f"Bearer {token}"}


async def _victim(base: str, headers: dict[str, str], pushes: int, run: str) -> Figures:
    async with bench_http.Client(timeout=60) as client:

        async def push(number: int) -> str | None:
            body = {"query": PUSH, "variables": {"input": _incident(number, run)}}
            response = await client.post(f"{base}/graphql", json=body, headers=headers)
            return _failure(response, field="reportIncident")

        return (await _drive("pushes", pushes, 1, push)).checked()


async def _flood(
    base: str, headers: dict[str, str], concurrency: int, stop: asyncio.Event
) -> tuple[int, int, int]:
    served = refused = other = 0
    async with bench_http.Client(timeout=60) as client:

        async def worker() -> None:
            nonlocal served, refused, other
            while not stop.is_set():
                body = {"query": QUERY, "variables": {"first": 20}}
                response = await client.post(f"{base}/graphql", json=body, headers=headers)
                if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                    refused += 1
                elif _failure(response, field="incidents") is None:
                    served += 1
                else:
                    other += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return served, refused, other


async def _measure(
    base: str, settings: Settings, keys: KeySet, *, pushes: int, concurrency: int, label: str
) -> list[FloodFigures]:
    police = _headers(settings, keys, Role.POLICE_OFFICER, FORCE, "bench-victim")
    council = _headers(settings, keys, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, "bench-flooder")
    run = uuid.uuid4().hex[:6].upper()
    quiet = await _victim(base, police, pushes, f"{run}Q")
    stop = asyncio.Event()
    flooding = asyncio.create_task(_flood(base, council, concurrency, stop))
    try:
        loud = await _victim(base, police, pushes, f"{run}F")
    finally:
        stop.set()
        served, refused, other = await flooding
    return [
        FloodFigures(f"no flood{label}", quiet),
        FloodFigures(f"flood{label}", loud, served, refused, other),
    ]


async def _with_hub(
    url: str, *, limits: str | None, pushes: int, concurrency: int, label: str
) -> list[FloodFigures]:
    async with serving_hubs(url, prefix="hub-flood-", rate_limits=limits) as hub:
        return await _measure(
            hub.base, hub.settings, hub.keys, pushes=pushes, concurrency=concurrency, label=label
        )


async def run_flood(
    *, database_url: str, pushes: int, concurrency: int, limits: str | None
) -> list[FloodFigures]:
    """The victim's figures without and with the flood, on a limited hub then an unlimited one."""
    async with scratch_database(database_url, prefix="hub_flood") as url:
        await upgrade(url)
        limited = await _with_hub(
            url, limits=limits, pushes=pushes, concurrency=concurrency, label=", limits on"
        )
        unlimited = await _with_hub(
            url, limits=UNLIMITED, pushes=pushes, concurrency=concurrency, label=", limits off"
        )
    return limited + unlimited
