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
    # The report and the benchmarks measure every record kind its domain declares.
    import hub.record_kinds  # noqa: F401, PLC0415
    from hub.access.cli import clients_app, keys_app, reach_app, token_command  # noqa: PLC0415
    from hub.audit.cli import audit_app  # noqa: PLC0415
    from hub.escalation.cli import escalations_app  # noqa: PLC0415
    from hub.timeliness.cli import report_command  # noqa: PLC0415
    from hub.vetting.cli import vetting_report_command  # noqa: PLC0415
    from hub.webhooks.cli import webhooks_app  # noqa: PLC0415

    app.add_typer(audit_app, name="audit")
    app.add_typer(escalations_app, name="escalations")
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(clients_app, name="clients")
    app.add_typer(keys_app, name="keys")
    app.add_typer(reach_app, name="reach")
    app.command("token", help="Print a short-lived access token (development only).")(token_command)
    app.command("report")(report_command)
    app.command("vetting-report")(vetting_report_command)
    _mount_federation_commands()


def _mount_federation_commands() -> None:
    from hub.federation import cli as federation  # noqa: PLC0415

    schema_app.command("compose")(federation.compose_command)
    app.command("demo-federated")(federation.demo_federated_command)
    app.command("bench-gateway")(federation.bench_gateway_command)


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

    from hub import server  # noqa: PLC0415
    from hub.settings import get_settings  # noqa: PLC0415

    if workers > 1 and get_settings().database_url.startswith("sqlite"):
        # SQLite's one writer, and no LISTEN/NOTIFY to wake other processes' subscribers.
        typer.echo("more than one worker needs PostgreSQL (HUB_DATABASE_URL)", err=True)
        raise typer.Exit(2)
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **server.options(get_settings()),
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve once loaded."),  # noqa: FBT003 - typer's default
) -> None:
    """Load synthetic data into the hub's database, print a token per role, serve with GraphiQL.

    The data goes in HUB_DATABASE_URL, by default .hub/hub.db; the issuer (from --host and
    --port) is recorded in .hub/issuer for `token` to use.
    """
    from hub import demo as demo_data  # noqa: PLC0415
    from hub.settings import RECORDED_ISSUER, get_settings  # noqa: PLC0415

    # The hub's own database (HUB_DATABASE_URL, else hub.db in HUB_DATA_DIR, else .hub): every
    # other command in the same folder (`audit verify`, `report`, `token`) then sees the demo.
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
    (settings.data_dir / RECORDED_ISSUER).write_text(settings.issuer + "\n", encoding="utf-8")
    introduction = asyncio.run(demo_data.load(settings, base_url=f"http://{host}:{port}"))
    typer.echo(introduction)
    if serve_after:
        serve(host=host, port=port, workers=1)


T = TypeVar("T")


def _measured(work: Coroutine[Any, Any, T]) -> T:
    """A bench's figures, or its reason to print none: the message and exit status 1."""
    from hub.bench import BenchFailed  # noqa: PLC0415
    from hub.bench_http import HttpFailed  # noqa: PLC0415

    try:
        return asyncio.run(work)
    except (BenchFailed, HttpFailed) as failed:
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


@app.command("bench-soak")
def bench_soak(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = BenchDatabase,
    seconds: float = typer.Option(60.0, min=1, help="How long the load runs."),
    slices: int = typer.Option(6, min=2, help="Time slices reported."),
    concurrency: int = typer.Option(8, min=1, help="Requests in flight at once."),
    subscribers: int = typer.Option(4, min=0, help="Live subscriptions held open throughout."),
    vacuum_every: float = typer.Option(
        0,
        min=0,
        help="Seconds between the bench's own VACUUM ANALYZE (PostgreSQL), as autovacuum "
        "would do where the server's is off; 0 for none.",
    ),
) -> None:
    """Mixed pushes, queries and subscriptions for a bounded time: memory growth, p99 drift."""
    from hub.soak import run as run_soak  # noqa: PLC0415

    figures = _measured(
        run_soak(
            database_url=database_url,
            seconds=seconds,
            slices=slices,
            concurrency=concurrency,
            subscribers=subscribers,
            vacuum_every=vacuum_every,
        )
    )
    for line in figures.lines():
        typer.echo(line)


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
    if policy.default_purpose is not None:
        typer.echo(f"  a push's:      {policy.default_purpose} (when it names none)")
    typer.echo(f"  rows:          {policy.rows.value}")
    width = max(len(t) for t in GUARDED_TYPES)
    typer.echo(f"\n  {'type':<{width}}  fields it receives (every other field: FORBIDDEN_FIELD)")
    typer.echo(f"  {'-' * width}  {'-' * 60}")
    for type_name in GUARDED_TYPES:
        fields = policy.fields.get(type_name)
        shown = ", ".join(sorted(fields)) if fields else "(nothing)"
        typer.echo(f"  {type_name:<{width}}  {shown}")


@app.command("bench-subscriptions")
def bench_subscriptions(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = BenchDatabase,
    subscribers: int = typer.Option(200, min=1, help="Council subscribers, one person each."),
    processes: int = typer.Option(2, min=1, help="Hub processes (more than one: PostgreSQL)."),
    rate: float = typer.Option(5.0, min=0.1, help="Pushes a second."),
    seconds: float = typer.Option(20.0, min=0.1, help="How long to push for."),
    path: str = typer.Option(
        "fanout", help="fanout, per-subscriber (fan-out off) or both, taking turns."
    ),
    repeats: int = typer.Option(1, min=1, help="Runs of each path."),
    drain_seconds: float = typer.Option(60.0, min=1, help="How long to wait for deliveries."),
) -> None:
    """Push-to-delivery latency with many subscribers; fails if any delivery is missing."""
    from hub.changes.bench import PATHS, run, summary  # noqa: PLC0415

    paths = list(PATHS) if path == "both" else [path]
    if not set(paths) <= set(PATHS):
        typer.echo(f"--path is one of {', '.join(PATHS)} or both", err=True)
        raise typer.Exit(2)

    async def runs() -> list[Any]:
        figures = []
        # Taking turns, each starting with the other path: the machine's drift falls on both.
        for turn in range(repeats):
            for each in paths if turn % 2 == 0 else paths[::-1]:
                figures.append(  # noqa: PERF401 - one at a time: runs must not overlap
                    await run(
                        database_url=database_url,
                        subscribers=subscribers,
                        processes=processes,
                        rate=rate,
                        seconds=seconds,
                        path=each,
                        drain_seconds=drain_seconds,
                    )
                )
        return figures

    for line in summary(_measured(runs())):
        typer.echo(line)


@app.command("bench-peer")
def bench_peer(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = PostgresBenchDatabase,
    concurrency: list[int] = typer.Option([8, 1], help="Requests in flight (repeatable)."),
    requests: int = typer.Option(200, min=1, help="Requests per block."),
    turns: int = typer.Option(5, min=1, help="Blocks of each, taking turns."),
    page_size: int = typer.Option(20, min=2, help="Incidents per query."),
    records: int = typer.Option(200, min=1, help="Incidents to seed."),
) -> None:
    """The hub's council query against PostGraphile v5 on the same database: the rate ratio."""
    from hub.bench_peer import NOTE, run  # noqa: PLC0415

    figures = _measured(
        run(
            database_url=database_url,
            concurrencies=concurrency,
            requests=requests,
            turns=turns,
            page_size=page_size,
            records=records,
        )
    )
    typer.echo(NOTE)
    for figure in figures:
        for line in figure.lines():
            typer.echo(line)


@app.command("bench-pushes")
def bench_pushes(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = PostgresBenchDatabase,
    pushes: int = typer.Option(200, min=1, help="Single pushes per hub per round."),
    concurrency: int = typer.Option(8, min=1, help="Single pushes in flight at once."),
    batch: int = typer.Option(200, min=1, help="Records per batch push (reportIncidents)."),
    batches: int = typer.Option(5, min=0, help="Batch pushes per hub per round (0: none)."),
    rounds: int = typer.Option(5, min=1, help="Rounds the hubs take turns in."),
    workers: str = typer.Option("1", help="Worker counts to serve this code with: 1,2"),
    baseline: Path | None = typer.Option(
        None, help="A source tree of other code (e.g. today's commit) to push to side by side."
    ),
    lock_waits: bool = typer.Option(
        False,  # noqa: FBT003 - typer's default
        help="Sample each hub's database every 10 ms for pushes waiting on a lock, and in what.",
    ),
) -> None:
    """Pushes/s side by side: this code at each worker count, and a baseline's code."""
    from hub.push_bench import run as run_pushes  # noqa: PLC0415

    counts = tuple(int(n) for n in workers.split(","))
    figures = _measured(
        run_pushes(
            database_url=database_url,
            pushes=pushes,
            concurrency=concurrency,
            batch=batch,
            batches=batches,
            rounds=rounds,
            workers=counts,
            baseline=baseline.resolve() if baseline else None,
            lock_waits=lock_waits,
        )
    )
    for line in figures.lines():
        typer.echo(line)


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


@app.command("bench-read")
def bench_read(  # noqa: PLR0917 - typer's options are the parameters
    database_url: str = BenchDatabase,
    baseline: str = typer.Option("9ac7754", help="The commit to measure against (today's code)."),
    records: int = typer.Option(40, min=1, help="Records to seed in each hub."),
    page_size: int = typer.Option(20, min=1, help="Records per council page."),
    listed: str = typer.Option(
        "incidents",
        "--list",
        help="The council's list paged: incidents (the issue's page) or missing-episodes.",
    ),
    turns: int = typer.Option(10, min=1, help="Turns each series takes."),
    block: int = typer.Option(100, min=1, help="Requests per series per turn."),
    instructions: int = typer.Option(
        0,
        min=0,
        help="Instead of timing: count the instructions of this many requests of each kind, "
        "each hub under valgrind's callgrind (the same count whatever the machine's load).",
    ),
    new_env: list[str] = typer.Option(
        [],
        help="A hub setting, KEY=VALUE (HUB_...), for this code's hub only (repeatable). With "
        "--baseline this commit, a setting against the default, side by side. Work a hub "
        "leaves running after a block (on PostgreSQL, the audit's indexing) runs on into "
        "the next block, which may be the other hub's.",
    ),
) -> None:
    """The council page side by side: the baseline commit's hub and this one, in turns.

    With a SQLite URL each hub gets a database file of its own in its scratch directory.
    """
    from hub.bench_read import (  # noqa: PLC0415
        LISTS,
        InstructionFigures,
        ReadFigures,
        run_instructions,
        run_read,
    )

    if listed not in LISTS:
        msg = f"is one of {', '.join(LISTS)}"
        raise typer.BadParameter(msg, param_hint="--list")
    same: dict[str, Any] = {
        "database_url": database_url,
        "baseline": baseline,
        "records": records,
        "page_size": page_size,
        "listed": LISTS[listed],
    }
    figures: InstructionFigures | ReadFigures
    if instructions:
        if new_env:
            msg = "is for timed runs, not with --instructions"
            raise typer.BadParameter(msg, param_hint="--new-env")
        figures = _measured(run_instructions(**same, requests=instructions))
    else:
        figures = _measured(run_read(**same, turns=turns, block=block, new_env=new_env))
    for line in figures.lines():
        typer.echo(line)


@app.command("bench-listing")
def bench_listing(
    database_url: str = PostgresBenchDatabase,
    others: int = typer.Option(100_000, min=1, help="Other councils' records of each kind."),
    runs: int = typer.Option(20, min=1, help="Times each statement is run and timed."),
    even: bool = typer.Option(
        False,  # noqa: FBT003 - typer's default
        help="Spread the records over every council, the council's own among them.",
    ),
    ours: int = typer.Option(
        30,
        min=21,
        help="The council's own records of each kind, half reached only through a child.",
    ),
) -> None:
    """A council's page of each scoped list, as one statement and by branches, side by side."""
    from hub.bench_listing import run as run_listing  # noqa: PLC0415

    listed = run_listing(database_url=database_url, others=others, runs=runs, even=even, ours=ours)
    figures = _measured(listed)
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
    strategy_discussions: int = typer.Option(230_590, min=0, help="Strategy discussions."),
    initial_conferences: int = typer.Option(72_100, min=0, help="Initial conferences."),
    review_conferences: int = typer.Option(110_000, min=0, help="Review conferences."),
    joint_visits: int = typer.Option(90_000, min=0, help="Joint visit requests."),
    protections: int = typer.Option(25_000, min=0, help="Police protections."),
) -> None:
    """The sharing report at national size: one council's year and the national year, timed.

    The year holds the police's records and the partnership's: meetings with their invitations,
    joint visit requests and police protections (STANDARDS.md volumes where there are some).
    """
    from hub.partnership.bench import Volumes  # noqa: PLC0415
    from hub.timeliness.bench import run as run_report  # noqa: PLC0415

    figures = _measured(
        run_report(
            database_url=database_url,
            incidents=incidents,
            episodes=episodes,
            events=events,
            council=council,
            keep=keep,
            volumes=Volumes(
                strategy_discussions=strategy_discussions,
                initial_conferences=initial_conferences,
                review_conferences=review_conferences,
                joint_visits=joint_visits,
                protections=protections,
            ),
        )
    )
    for line in figures.lines():
        typer.echo(line)


@app.command("bench-escalation")
def bench_escalation(
    database_url: str = PostgresBenchDatabase,
    episodes: int = typer.Option(216_000, min=1, help="Synthetic missing episodes (a year)."),
) -> None:
    """Escalation scanning over a national year of open stages: first scan and steady scan."""
    from hub.escalation.bench import run as run_escalation  # noqa: PLC0415

    figures = _measured(run_escalation(database_url=database_url, episodes=episodes))
    for line in figures.lines():
        typer.echo(line)


@app.command("bench-webhooks")
def bench_webhooks(
    database_url: str = BenchDatabase,
    endpoints: int = typer.Option(4, min=1, help="Council clients, each with a webhook."),
    pushes: int = typer.Option(500, min=1, help="Incidents to push (each to every endpoint)."),
    concurrency: int = typer.Option(8, min=1, help="Pushes in flight at once."),
    drain_seconds: float = typer.Option(120.0, min=1, help="How long to wait for deliveries."),
) -> None:
    """Webhook deliveries/s and push-to-delivery latency to a TLS receiver on loopback."""
    from hub.webhooks.bench import run as run_webhooks  # noqa: PLC0415

    lines = _measured(
        run_webhooks(
            database_url=database_url,
            endpoints=endpoints,
            pushes=pushes,
            concurrency=concurrency,
            drain_seconds=drain_seconds,
        )
    )
    for line in lines:
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
