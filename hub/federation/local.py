"""Running the gateway (Node, from `schema/`) beside a hub: for the demo, the bench and the tests.

The gateway is the one installed from `schema/package-lock.json` (`npm ci --prefix schema`); this
module only starts it with the environment `schema/gateway.config.mjs` reads, and waits for it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"
GATEWAY_BIN = SCHEMA_DIR / "node_modules" / "@graphql-hive" / "gateway" / "dist" / "bin.js"


class GatewayUnavailable(RuntimeError):
    """The gateway cannot be started here: no Node, or its packages are not installed."""


def gateway_missing() -> str | None:
    """Why the gateway cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH: install Node.js 20 or later"
    if not GATEWAY_BIN.is_file():
        return "the gateway is not installed: run `npm ci --prefix schema`"
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    hub_url: str  # the hub's base URL: JWKS, token and audit endpoints
    subgraphs: dict[str, str]  # subgraph name -> its GraphQL URL
    client_id: str  # the gateway's own OAuth client (HUB_FEDERATION_GATEWAY_CLIENTS)
    client_secret: str
    port: int
    host: str = "127.0.0.1"
    trusted_documents: Path | None = None
    rate_limit: int = 120
    rate_window_seconds: int = 60
    production: bool = False
    issuer: str | None = None  # the hub tokens' `iss`; its base URL unless set otherwise
    audience: str = "safeguarding-hub"

    def environment(self) -> dict[str, str]:
        env = {
            "HUB_URL": self.hub_url,
            # Always set: an inherited HUB_ISSUER (a hub's own setting) must not leak in.
            "HUB_ISSUER": self.issuer or self.hub_url,
            "HUB_AUDIENCE": self.audience,
            "GATEWAY_CLIENT_ID": self.client_id,
            "GATEWAY_CLIENT_SECRET": self.client_secret,
            "GATEWAY_HOST": self.host,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_RATE_LIMIT": str(self.rate_limit),
            "GATEWAY_RATE_WINDOW_SECONDS": str(self.rate_window_seconds),
            "GATEWAY_MODE": "production" if self.production else "development",
        }
        env |= {f"SUBGRAPH_{name.upper()}_URL": url for name, url in self.subgraphs.items()}
        if self.trusted_documents is not None:
            env["GATEWAY_TRUSTED_DOCUMENTS"] = str(self.trusted_documents)
        return env

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"


def start_gateway(settings: GatewaySettings, *, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the gateway and wait until it answers; raise with its log's tail if it does not."""
    missing = gateway_missing()
    if missing is not None:
        raise GatewayUnavailable(missing)
    output = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603 - a fixed command: node and the installed gateway
        ["node", str(GATEWAY_BIN), "supergraph", "supergraph.graphql"],  # noqa: S607 - node from PATH
        cwd=SCHEMA_DIR,
        env={**os.environ, **settings.environment()},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    ready = f"http://{settings.host}:{settings.port}/healthcheck"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(ready, timeout=2).status_code == 200:  # noqa: PLR2004 - HTTP OK
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(process)
    tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
    msg = f"the gateway did not start on port {settings.port}\n{tail}"
    raise GatewayUnavailable(msg)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
