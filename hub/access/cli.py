"""Operator commands for identity and scope: machine clients, signing keys, development tokens,
and what each council reaches through a child (`council_reach`).

Mounted by `hub.cli` as `clients`, `keys`, `token` and `reach`. No `from __future__ import
annotations` here: typer reads the parameter annotations at runtime.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, NoReturn, TypeVar

import sqlalchemy as sa
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access import clients, reach
from hub.access.keys import KeySet, KeySetError, prune, rotate
from hub.access.models import OAuthClient, Role
from hub.access.tokens import issue_access_token
from hub.db import NO_DATABASE_HINT, Database, sqlite_file_missing
from hub.errors import HubError
from hub.settings import Settings, get_settings

T = TypeVar("T")

# `sub` and `client_id` of CLI-minted tokens: they come from no registered client.
CLI_CLIENT_ID = "hub-cli"
# An unreachable PostgreSQL host can take minutes to time out; the check is only advisory.
_DB_CHECK_TIMEOUT_SECONDS = 5

clients_app = typer.Typer(help="Machine clients: register, list, revoke.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Token signing keys: rotate, prune, show the public set.", no_args_is_help=True
)

reach_app = typer.Typer(
    help="What each council reaches through a child (council_reach): verify, repair.",
    no_args_is_help=True,
)

OrgOption = Annotated[
    str, typer.Option("--org", help="Organisation code, e.g. WEST_MIDLANDS or E08000025.")
]
RoleOption = Annotated[Role, typer.Option("--role", help="The client's role in the agreement.")]


@clients_app.command("add")
def add_client(
    org: OrgOption,
    role: RoleOption,
    name: Annotated[str, typer.Option("--name", help="A label, e.g. the case system.")] = "",
) -> None:
    """Register a client and print its id and secret (the secret only this once)."""

    async def work(session: AsyncSession) -> tuple[OAuthClient, str]:
        return await clients.create_client(session, organisation_code=org, role=role, name=name)

    client, secret = _in_transaction(work, write=True)
    typer.echo(f"client id: {client.client_id}")
    typer.echo(f"secret:    {secret}")
    typer.echo("The secret is not shown again: store it in the client system now.", err=True)


@clients_app.command("list")
def list_clients(
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation's.")] = None,
) -> None:
    """List clients (never their secrets)."""

    async def work(session: AsyncSession) -> Sequence[OAuthClient]:
        return await clients.list_clients(session, organisation_code=org)

    for client in _in_transaction(work, write=False):
        status = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
        typer.echo(
            f"{client.client_id}\t{client.organisation_code}\t{client.role}\t{status}\t"
            f"created {client.created_at:%Y-%m-%d}\t{client.name}"
        )


@clients_app.command("revoke")
def revoke_client(client_id: Annotated[str, typer.Argument(help="The client to revoke.")]) -> None:
    """Stop a client getting new tokens and refuse the ones it holds."""

    async def work(session: AsyncSession) -> OAuthClient:
        return await clients.revoke_client(session, client_id=client_id)

    _in_transaction(work, write=True)
    ttl = get_settings().client_status_ttl_seconds  # HUB_CLIENT_STATUS_TTL_SECONDS
    typer.echo(f"revoked {client_id}; every hub process refuses its tokens within {ttl:g} seconds")


@reach_app.command("verify")
def verify_reach(
    repair: Annotated[
        bool, typer.Option("--repair", help="Put each wrong record's rows right.")
    ] = False,
) -> None:
    """Recompute every record's rows with the triggers' own functions: the records checked and
    wrong for each list; exit 1 if any is wrong (unless --repair, which puts them right)."""
    url = get_settings().database_url
    if not url.startswith("postgresql"):
        typer.echo("council_reach is kept and read on PostgreSQL only: nothing to verify")
        return

    async def checked() -> reach.ReachCheck:
        db = Database(url)
        try:
            return await reach.check(db, repair=repair)
        finally:
            await db.dispose()

    found = asyncio.run(checked())
    for line in found.lines(repaired=repair):
        typer.echo(line)
    if found.total_wrong and not repair:
        _fail(f"{found.total_wrong} records' rows are wrong: `reach verify --repair` rebuilds them")


@keys_app.command("rotate")
def rotate_keys() -> None:
    """Put a new signing key first; older keys keep verifying until pruned."""
    settings = get_settings()
    keys = _keys_or_fail(lambda: rotate(settings.keys_path, development=not settings.is_production))
    typer.echo(f"signing key is now {keys.signing_key.kid} ({len(keys.kids)} keys in the set)")
    typer.echo(
        "Restart the hub's replicas to sign with it. Prune older keys only once tokens they "
        f"signed have expired ({settings.access_token_ttl_seconds} seconds).",
        err=True,
    )


@keys_app.command("prune")
def prune_keys(
    keep: Annotated[int, typer.Option("--keep", min=1, help="How many newest keys to keep.")] = 2,
) -> None:
    """Drop the oldest keys: tokens they signed stop verifying."""
    settings = get_settings()
    keys = _keys_or_fail(lambda: prune(settings.keys_path, keep=keep))
    typer.echo(f"kept {', '.join(keys.kids)}")


@keys_app.command("show")
def show_keys() -> None:
    """Print the public key set, as published at /.well-known/jwks.json."""
    settings = get_settings()
    keys = _keys_or_fail(lambda: KeySet.for_settings(settings))
    typer.echo(json.dumps(keys.public_jwks(), indent=2))


def token_command(
    org: OrgOption,
    role: RoleOption,
    user: Annotated[
        str | None, typer.Option("--user", help="The person the token acts for.")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="The agreement purpose it is used for.")
    ] = None,
) -> None:
    """Print a short-lived access token and nothing else (development mode only)."""
    settings = get_settings()
    if settings.is_production:
        typer.echo("token refuses production mode: clients get tokens from /oauth/token", err=True)
        raise typer.Exit(2)
    _check_organisation(settings, org, role)
    keys = _keys_or_fail(lambda: KeySet.for_settings(settings))
    try:
        token = issue_access_token(
            settings=settings,
            keys=keys,
            client_id=CLI_CLIENT_ID,
            organisation_code=org,
            role=role,
            user=user,
            purpose=purpose,
        )
    except HubError as error:
        _fail(error.message)
    typer.echo(token)


def _check_organisation(settings: Settings, org: str, role: Role) -> None:
    """Check the organisation and role against the database, when there is one to ask."""
    if not _database_exists(settings.database_url):
        typer.echo("no database: organisation and role not checked", err=True)
        return

    async def work(session: AsyncSession) -> None:
        await clients.check_role_for_organisation(session, organisation_code=org, role=role)

    checked = _with_session(settings, work, write=False)
    try:
        asyncio.run(asyncio.wait_for(checked, _DB_CHECK_TIMEOUT_SECONDS))
    except HubError as error:
        _fail(error.message)
    except (OSError, TimeoutError, sa.exc.DBAPIError):
        typer.echo("database not reachable or not migrated: organisation not checked", err=True)


def _database_exists(url: str) -> bool:
    # Connecting to SQLite creates the file; a token request should not leave one behind.
    return sqlite_file_missing(url) is None


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    missing = sqlite_file_missing(get_settings().database_url)
    if missing is not None:  # connecting would leave an empty database file behind
        _fail(f"no database at {missing}: {NO_DATABASE_HINT}", code=2)
    try:
        return asyncio.run(_with_session(get_settings(), work, write=write))
    except HubError as error:
        _fail(error.message)


async def _with_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool
) -> T:
    db = Database(settings.database_url)
    try:
        async with db.transaction(write=write) as session:
            return await work(session)
    finally:
        await db.dispose()


def _keys_or_fail(action: Callable[[], KeySet]) -> KeySet:
    try:
        return action()
    except KeySetError as error:
        _fail(str(error))


def _fail(message: str, *, code: int = 1) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)
