"""The federated graph on loopback: the hub with demo data, the council subgraph, the gateway.

One implementation for `demo-federated` and `bench-gateway`. The council subgraph is the test
suite's (`tests/subgraphs/council`): it runs from a checkout, as the gateway does (`schema/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import col

from hub import demo
from hub.access import clients
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.access.tokens import issue_access_token
from hub.bench import UNLIMITED
from hub.children.models import Child
from hub.db import Database
from hub.federation import local
from hub.settings import Settings

CHECKOUT = local.SCHEMA_DIR.parent
CATEGORIES = ("NEGLECT", "EMOTIONAL_ABUSE", "PHYSICAL_ABUSE", "SEXUAL_ABUSE")


@dataclasses.dataclass(frozen=True)
class Stack:
    settings: Settings
    hub_url: str
    gateway_url: str
    children: list[str]  # the demo council's children, each with a case in its system
    introduction: str  # what `demo` prints about the hub itself

    def token(self, *, client_id: str = "demo-council-case-system") -> str:
        """A council social worker's token, naming a person and a purpose."""
        return issue_access_token(
            settings=self.settings,
            keys=KeySet.for_settings(self.settings),
            client_id=client_id,
            organisation_code=demo.COUNCIL_A,
            role=Role.COUNCIL_SOCIAL_WORKER,
            user="demo-user-1",
            purpose=demo.EXAMPLE_PURPOSE[Role.COUNCIL_SOCIAL_WORKER],
        )


async def prepare(settings: Settings, *, base_url: str) -> tuple[str, str, str, list[str], str]:
    """Demo data, the gateway's client, the council's cases: (intro, id, secret, kids, cases)."""
    introduction = await demo.load(settings, base_url=base_url)
    db = Database(settings.database_url)
    try:
        async with db.transaction(write=True) as session:
            gateway, secret = await clients.create_client(
                session, organisation_code="HUB", role=Role.HUB_ADMIN, name="federated gateway"
            )
            rows = await session.execute(
                sa.select(col(Child.id))
                .where(col(Child.responsible_council_code) == demo.COUNCIL_A)
                .order_by(col(Child.id))
                .limit(50)
            )
            children = [str(child_id) for child_id in rows.scalars()]
    finally:
        await db.dispose()
    start = dt.date(2026, 1, 5)
    cases_json = json.dumps(
        {
            "council": demo.COUNCIL_A,
            "cases": {
                child_id: {
                    "socialWorker": f"SW {number:03d} (synthetic)",
                    "category": CATEGORIES[number % len(CATEGORIES)],
                    "startDate": (start + dt.timedelta(days=number)).isoformat(),
                }
                for number, child_id in enumerate(children)
            },
        }
    )
    return introduction, gateway.client_id, secret, children, cases_json


def _wait(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:  # noqa: PLR2004 - up, whatever it says
                return
        time.sleep(0.2)
    msg = f"{what} did not start"
    raise local.GatewayUnavailable(msg)


@contextlib.contextmanager
def running(
    *,
    database_url: str,
    data_dir: Path,
    host: str = "127.0.0.1",
    hub_port: int = 8000,
    council_port: int = 4001,
    gateway_port: int = 4000,
    rate_limit: int = 120,
    graphiql: bool = True,
) -> Iterator[Stack]:
    """Start the three on loopback; stop them all when the block ends."""
    missing = local.gateway_missing()
    if missing is not None:
        raise local.GatewayUnavailable(missing)
    hub_url = f"http://{host}:{hub_port}"
    settings = Settings(database_url=database_url, data_dir=data_dir, issuer=hub_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    cases = data_dir / "council-cases.json"
    introduction, gateway_id, secret, children, cases_json = asyncio.run(
        prepare(settings, base_url=hub_url)
    )
    cases.write_text(cases_json)
    hub_env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_RATE_LIMITS": UNLIMITED,  # a demo or bench on loopback: no per-client cap
        "HUB_DATA_DIR": str(data_dir),
        "HUB_ISSUER": hub_url,
        "HUB_GRAPHIQL": str(graphiql).lower(),
        "HUB_INTROSPECTION": str(graphiql).lower(),
        "HUB_FEDERATION_GATEWAY_CLIENTS": json.dumps([gateway_id]),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        hub = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "hub", "serve", "--host", host, "--port", str(hub_port)],
            env=hub_env,
        )
        processes.append(hub)
        _wait(f"{hub_url}/readyz", hub, "the hub")
        council = subprocess.Popen(  # noqa: S603 - the council subgraph from this checkout
            [
                sys.executable,
                "-m",
                "tests.subgraphs.council",
                "--cases",
                str(cases),
                "--hub",
                hub_url,
                "--host",
                host,
                "--port",
                str(council_port),
            ],
            cwd=CHECKOUT,
        )
        processes.append(council)
        _wait(f"http://{host}:{council_port}/seen", council, "the council subgraph")
        gateway = local.start_gateway(
            local.GatewaySettings(
                hub_url=hub_url,
                subgraphs={
                    "hub": f"{hub_url}/graphql",
                    "council": f"http://{host}:{council_port}/graphql",
                },
                client_id=gateway_id,
                client_secret=secret,
                host=host,
                port=gateway_port,
                rate_limit=rate_limit,
            ),
            log=data_dir / "gateway.log",
        )
        processes.append(gateway)
        yield Stack(
            settings=settings,
            hub_url=hub_url,
            gateway_url=f"http://{host}:{gateway_port}/graphql",
            children=children,
            introduction=introduction,
        )
    finally:
        for process in reversed(processes):
            local.stop(process)
