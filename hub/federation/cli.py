"""The federated graph's commands: compose the supergraph, run the federated demo, bench it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import typer

from hub.federation import local


def compose_command(
    check: bool = typer.Option(
        False,  # noqa: FBT003 - typer's default
        "--check",
        help="Write nothing; fail if schema/supergraph.graphql is not what the subgraphs compose.",
    ),
) -> None:
    """Compose schema/supergraph.graphql from the hub's SDL and the other subgraphs' SDL files.

    The Guild's composition library writes it; Apollo's must compose the same inputs too.
    Needs Node and `npm ci --prefix schema`.
    """
    from hub.graphql.schema import export_sdl  # noqa: PLC0415

    node = shutil.which("node")
    if node is None or not (local.SCHEMA_DIR / "node_modules").is_dir():
        typer.echo("compose needs Node 20+ and `npm ci --prefix schema`", err=True)
        raise typer.Exit(2)
    hub_sdl = local.SCHEMA_DIR / "hub.graphql"
    if check:
        if hub_sdl.read_text() != export_sdl():
            typer.echo(
                "schema/hub.graphql is stale: run `safeguarding-hub schema export`", err=True
            )
            raise typer.Exit(1)
    else:
        hub_sdl.write_text(export_sdl())
    arguments = [node, "compose.mjs", *(["--check"] if check else [])]
    done = subprocess.run(arguments, cwd=local.SCHEMA_DIR, check=False)  # noqa: S603 - node, our script
    raise typer.Exit(done.returncode)


def demo_federated_command(
    host: str = typer.Option("127.0.0.1", help="Interface the three listen on."),
    hub_port: int = typer.Option(8000, help="The hub's port."),
    council_port: int = typer.Option(4001, help="The council subgraph's port."),
    gateway_port: int = typer.Option(4000, help="The gateway's port."),
) -> None:
    """The hub with demo data, a council's case system and the gateway in front, on loopback."""
    from hub.federation import stack  # noqa: PLC0415
    from hub.settings import Settings  # noqa: PLC0415

    data_dir = Settings().data_dir
    database_url = os.environ.get(
        "HUB_DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'demo-federated.db'}"
    )
    try:
        with stack.running(
            database_url=database_url,
            data_dir=Path(data_dir),
            host=host,
            hub_port=hub_port,
            council_port=council_port,
            gateway_port=gateway_port,
        ) as running:
            typer.echo(_introduction(running))
            while True:
                time.sleep(3600)
    except local.GatewayUnavailable as problem:
        typer.echo(f"demo-federated: {problem}", err=True)
        raise typer.Exit(1) from problem
    except KeyboardInterrupt:
        typer.echo("stopped")


def _introduction(running: object) -> str:
    from hub.federation.stack import Stack  # noqa: PLC0415

    assert isinstance(running, Stack)  # noqa: S101 - narrowing for the type checker
    child = running.children[0]
    query = (
        '{"query":"query($id: ID!) { child(id: $id) { givenName familyName '
        'allocatedSocialWorker childProtectionPlan { category startDate } } }",'
        f'"variables":{{"id":"{child}"}}}}'
    )
    return "\n".join(
        [
            (
                f"Gateway at {running.gateway_url} (GraphiQL in a browser), in front of the hub "
                f"({running.hub_url}/graphql) and Birmingham's case system (the council subgraph)."
            ),
            "A Birmingham social worker's token (1 hour):",
            f"  TOKEN={running.token()}",
            "One query, answered by both subgraphs, audited once as the caller received it:",
            (
                f'  curl -s {running.gateway_url} -H "Authorization: Bearer $TOKEN" '
                f"-H 'Content-Type: application/json' -d '{query}'"
            ),
            "Ctrl+C stops all three.",
        ]
    )


def bench_gateway_command(
    requests: int = typer.Option(2000, min=10, help="Requests per path (direct, gateway)."),
    rounds: int = typer.Option(10, min=1, help="Rounds each path is run in, interleaved."),
    concurrency: int = typer.Option(8, min=1, help="Requests in flight at once."),
    database_url: str | None = typer.Option(
        None,
        help="A PostgreSQL server (a scratch database is created and dropped); else SQLite.",
    ),
) -> None:
    """The same council query direct to the hub and through the gateway, interleaved."""
    from hub.bench import BenchFailed  # noqa: PLC0415
    from hub.federation.bench import run  # noqa: PLC0415

    try:
        figures = run(
            requests=requests, rounds=rounds, concurrency=concurrency, database_url=database_url
        )
    except (BenchFailed, local.GatewayUnavailable) as failed:
        typer.echo(f"bench failed: {failed}", err=True)
        raise typer.Exit(1) from failed
    direct, gateway, _ = figures
    backend = "PostgreSQL" if database_url else "SQLite"
    typer.echo(f"concurrency {concurrency}, {rounds} interleaved rounds, {backend}")
    for figure in figures:
        typer.echo(figure.line())
    ratio = (gateway.count / gateway.seconds) / (direct.count / direct.seconds)
    typer.echo(f"through the gateway: {ratio:.2f}x of direct (target at least 0.70x)")
