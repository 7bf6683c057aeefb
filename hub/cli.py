"""`safeguarding-hub`: run, migrate, demo, manage clients and keys, export the contract."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from hub.access.models import Role

if TYPE_CHECKING:
    from hub.access.agreement import Agreement

app = typer.Typer(
    help="The safeguarding hub: police and councils' children's services sharing, on time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="The GraphQL contract.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
policy_app = typer.Typer(help="The sharing agreement (auth/agreement.toml).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

DEFAULT_SCHEMA_FILE = Path("schema/hub.graphql")


def _mount_access_commands() -> None:
    from hub.access.cli import clients_app, keys_app, token_command  # noqa: PLC0415
    from hub.audit.cli import audit_app  # noqa: PLC0415
    from hub.timeliness.cli import report_command  # noqa: PLC0415

    app.add_typer(audit_app, name="audit")
    app.add_typer(clients_app, name="clients")
    app.add_typer(keys_app, name="keys")
    app.command("token", help="Print a short-lived access token (development only).")(token_command)
    app.command("report")(report_command)


_mount_access_commands()


@app.command()
def migrate() -> None:
    """Apply the database migrations and sync the reference data (forces, councils)."""
    from hub.migrate import upgrade  # noqa: PLC0415
    from hub.settings import get_settings  # noqa: PLC0415

    report = asyncio.run(upgrade(get_settings().database_url))
    typer.echo(
        f"migrated; organisations added {report.added}, updated {report.updated}; "
        f"force coverage pairs {report.coverage}"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL only for more than one)."),
) -> None:
    """Serve the hub (run `migrate` first)."""
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        access_log=False,
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve once loaded."),  # noqa: FBT003 - typer's default
) -> None:
    """Create a demo database of synthetic data, print a token per role, serve with GraphiQL."""
    from hub import demo as demo_data  # noqa: PLC0415
    from hub.settings import Settings, get_settings  # noqa: PLC0415

    # Beside the hub's other files: HUB_DATA_DIR (from the environment or .env), else .hub.
    demo_db = Settings().data_dir / "demo.db"
    os.environ.setdefault("HUB_DATABASE_URL", f"sqlite+aiosqlite:///{demo_db}")
    os.environ["HUB_GRAPHIQL"] = "true"
    os.environ["HUB_INTROSPECTION"] = "true"
    os.environ.setdefault("HUB_ISSUER", f"http://{host}:{port}")
    # An hour (the most the hub issues) so a newcomer's printed tokens outlast a first look.
    os.environ.setdefault("HUB_ACCESS_TOKEN_TTL_SECONDS", "3600")
    get_settings.cache_clear()
    settings = get_settings()
    if settings.is_production:
        typer.echo("demo refuses to run in production mode", err=True)
        raise typer.Exit(2)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    introduction = asyncio.run(demo_data.load(settings, base_url=f"http://{host}:{port}"))
    typer.echo(introduction)
    if serve_after:
        serve(host=host, port=port, workers=1)


T = TypeVar("T")


def _measured(work: Coroutine[Any, Any, T]) -> T:
    """A bench's figures, or its reason to print none: the message and exit status 1."""
    from hub.bench import BenchFailed  # noqa: PLC0415

    try:
        return asyncio.run(work)
    except BenchFailed as failed:
        typer.echo(f"bench failed: {failed}", err=True)
        raise typer.Exit(1) from failed


# The server every bench makes its scratch database on; two benches also run on SQLite.
_BENCH_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
_SCRATCH = "a scratch database is created and dropped"
BenchDatabase = typer.Option(
    _BENCH_SERVER, help=f"A PostgreSQL server ({_SCRATCH}) or a SQLite URL."
)
PostgresBenchDatabase = typer.Option(_BENCH_SERVER, help=f"A PostgreSQL server: {_SCRATCH}.")


@app.command()
def bench(
    database_url: str = BenchDatabase,
    pushes: int = typer.Option(2000, min=1, help="Incidents to push."),
    queries: int = typer.Option(1000, min=1, help="Council queries to run."),
    concurrency: int = typer.Option(16, min=1, help="Requests in flight at once."),
    page_size: int = typer.Option(20, min=2, help="Incidents per council query."),
) -> None:
    """Measure pushes/s, queries/s and p50/p99 latency through a real uvicorn process."""
    from hub.bench import run  # noqa: PLC0415

    figures = _measured(
        run(
            database_url=database_url,
            pushes=pushes,
            queries=queries,
            concurrency=concurrency,
            page_size=page_size,
        )
    )
    backend = database_url.split(":", maxsplit=1)[0]
    typer.echo(f"concurrency {concurrency}, page size {page_size}, {backend}")
    for figure in figures:
        typer.echo(figure.line())


@app.command("bench-flood")
def bench_flood(
    database_url: str = BenchDatabase,
    pushes: int = typer.Option(300, min=10, help="Pushes by the other client, per phase."),
    concurrency: int = typer.Option(32, min=1, help="The flooding client's requests at once."),
    limits: str | None = typer.Option(
        None, help="HUB_RATE_LIMITS for the limited hub (default: the hub's defaults)."
    ),
) -> None:
    """Measure another client's push p50/p99 with and without one client's flood."""
    from hub.limits.flood import run_flood  # noqa: PLC0415

    figures = _measured(
        run_flood(database_url=database_url, pushes=pushes, concurrency=concurrency, limits=limits)
    )
    typer.echo(f"one client flooding with {concurrency} requests at once; the other pushes")
    for figure in figures:
        typer.echo(figure.line())


def _agreement(path: Path | None) -> Agreement:
    from hub.access.agreement import Agreement, AgreementInvalid, default_path  # noqa: PLC0415
    from hub.graphql.schema import build_schema  # noqa: PLC0415
    from hub.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    chosen = path or settings.agreement_file or default_path()
    try:
        return Agreement.load(chosen, build_schema(settings)._schema)  # noqa: SLF001
    except AgreementInvalid as invalid:
        typer.echo(str(invalid), err=True)
        raise typer.Exit(1) from invalid


AgreementFile = typer.Option(None, "--file", help="Agreement file (default: the hub's).")


@policy_app.command("check")
def policy_check(path: Path | None = AgreementFile) -> None:
    """Validate the agreement against the schema; list every problem."""
    agreement = _agreement(path)
    typer.echo(
        f"ok: {agreement.path} version {agreement.version}: {len(agreement.roles)} roles, "
        f"{len(agreement.purposes)} purposes"
    )


@policy_app.command("explain")
def policy_explain(
    role: Role = typer.Option(..., "--role", help="The role to explain."),
    path: Path | None = AgreementFile,
) -> None:
    """Print what a role sees under the agreement, as a table."""
    from hub.access.agreement import GUARDED_TYPES  # noqa: PLC0415

    policy = _agreement(path).policy(role)
    typer.echo(f"{role.value}: {policy.description}")
    typer.echo(f"  organisations: {', '.join(sorted(policy.organisation_kinds))}")
    typer.echo(f"  purposes:      {', '.join(sorted(policy.purposes))}")
    typer.echo(f"  rows:          {policy.rows.value}")
    width = max(len(t) for t in GUARDED_TYPES)
    typer.echo(f"\n  {'type':<{width}}  fields it receives (every other field: FORBIDDEN_FIELD)")
    typer.echo(f"  {'-' * width}  {'-' * 60}")
    for type_name in GUARDED_TYPES:
        fields = policy.fields.get(type_name)
        shown = ", ".join(sorted(fields)) if fields else "(nothing)"
        typer.echo(f"  {type_name:<{width}}  {shown}")


@app.command("bench-costs")
def bench_costs(
    database_url: str = BenchDatabase,
    records: int = typer.Option(200, min=1, help="Incidents to seed."),
    repeats: int = typer.Option(200, min=1, help="Runs of each path."),
    page_size: int = typer.Option(50, min=1, help="Incidents per query."),
) -> None:
    """The agreement's and the audit's cost: one council query on three paths, ratios printed."""
    from hub.bench import run_costs  # noqa: PLC0415

    figures = _measured(
        run_costs(database_url=database_url, records=records, repeats=repeats, page_size=page_size)
    )
    for line in figures.lines():
        typer.echo(line)


@app.command("bench-audit")
def bench_audit(
    database_url: str = PostgresBenchDatabase,
    events: int = typer.Option(10_000_000, min=1, help="Synthetic access events to load."),
    children: int = typer.Option(200_000, min=1, help="Distinct children they concern."),
) -> None:
    """The audit at national size: a child's access history and verify, with figures."""
    from hub.audit.bench import run as run_audit  # noqa: PLC0415

    report = _measured(run_audit(database_url=database_url, events=events, children=children))
    for line in report.lines():
        typer.echo(line)


@app.command("bench-report")
def bench_report(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = PostgresBenchDatabase,
    incidents: int = typer.Option(1_500_000, min=1, help="Synthetic incidents (a year)."),
    episodes: int = typer.Option(220_000, min=0, help="Synthetic missing episodes."),
    events: int = typer.Option(20_000_000, min=0, help="Synthetic access events."),
    council: str = typer.Option("E08000025", help="The council whose year report is timed."),
    keep: str | None = typer.Option(
        None,
        help="Load into this database and keep it; if it is loaded already, reuse it (to iterate).",
    ),
) -> None:
    """The sharing report at national size: one council's year and the national year, timed."""
    from hub.timeliness.bench import run as run_report  # noqa: PLC0415

    figures = _measured(
        run_report(
            database_url=database_url,
            incidents=incidents,
            episodes=episodes,
            events=events,
            council=council,
            keep=keep,
        )
    )
    for line in figures.lines():
        typer.echo(line)


@schema_app.command("export")
def schema_export(
    output: Path = typer.Option(DEFAULT_SCHEMA_FILE, help="Where to write the SDL."),
) -> None:
    """Write the subgraph SDL (the contract a gateway composes) to a file."""
    from hub.graphql.schema import export_sdl  # noqa: PLC0415

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(export_sdl())
    typer.echo(f"wrote {output}")


def main() -> None:
    app()
