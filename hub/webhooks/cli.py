"""Operator commands: `webhooks list`, `webhooks dead-letters`, `webhooks replay ID|--all`,
`webhooks prune`.

Mounted by `hub.cli` as `webhooks`. Endpoints are named by id and client, never by address (its
query string may carry a receiver's token) and never with their secrets. No `from __future__
import annotations` here: typer reads the parameter annotations at runtime.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.cli import _fail, _in_transaction
from hub.db import utcnow
from hub.settings import get_settings
from hub.webhooks import service

webhooks_app = typer.Typer(
    help="Webhooks: endpoints, the dead-letter list, replaying it.", no_args_is_help=True
)


@webhooks_app.command("list")
def list_webhooks() -> None:
    """Each client's endpoint, with its deliveries by state."""

    async def work(session: AsyncSession) -> list[tuple[str, str, str, dict[str, int]]]:
        rows = []
        for endpoint in await service.list_endpoints(session):
            counts = await service.counts(session, endpoint.id)
            rows.append((endpoint.id, endpoint.client_id, endpoint.organisation_code, counts))
        return rows

    for endpoint_id, client_id, organisation, counts in _in_transaction(work, write=False):
        states = " ".join(f"{state} {n}" for state, n in counts.items())
        typer.echo(f"{endpoint_id}\t{client_id}\t{organisation}\t{states}")


@webhooks_app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
) -> None:
    """Deliveries parked after their last attempt failed, oldest first."""

    async def work(session: AsyncSession) -> list[service.DeadLetter]:
        return await service.dead_letters(session, limit=limit)

    letters = _in_transaction(work, write=False)
    for letter in letters:
        status = letter.last_status_code if letter.last_status_code is not None else "-"
        typer.echo(
            f"{letter.delivery_id}\t{letter.client_id}\t{letter.organisation_code}\t"
            f"change {letter.change_seq}\tattempts {letter.attempts}\tstatus {status}\t"
            f"error {letter.last_error or '-'}\tparked {letter.parked_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    typer.echo(f"{len(letters)} dead letter(s)", err=True)


@webhooks_app.command("replay")
def replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead deliveries to send again.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead delivery.")] = False,
) -> None:
    """Send dead deliveries again, as new: due now, with all their attempts ahead of them."""
    if bool(ids) == every:
        _fail("name the deliveries to replay, or --all (not both)", code=2)
    chosen: Sequence[str] | None = None if every else list(ids or [])

    async def work(session: AsyncSession) -> int:
        return await service.replay(session, delivery_ids=chosen)

    replayed = _in_transaction(work, write=True)
    typer.echo(f"replayed {replayed} deliver{'y' if replayed == 1 else 'ies'}")


@webhooks_app.command("prune")
def prune(
    keep_days: Annotated[
        int | None,
        typer.Option("--keep-days", min=0, help="Days to keep (default HUB_WEBHOOK_KEEP_DAYS)."),
    ] = None,
) -> None:
    """Forget delivered and refused deliveries older than the days kept; dead letters stay."""
    days = get_settings().webhook_keep_days if keep_days is None else keep_days
    before = utcnow() - dt.timedelta(days=days)

    async def work(session: AsyncSession) -> int:
        return await service.prune(session, before=before)

    pruned = _in_transaction(work, write=True)
    typer.echo(f"pruned {pruned} deliver{'y' if pruned == 1 else 'ies'}")
