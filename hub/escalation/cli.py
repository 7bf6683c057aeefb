"""`safeguarding-hub escalations scan`: raise what is overdue now, once (the processes do it too).

No `from __future__ import annotations` here: typer reads the parameter annotations at runtime.
"""

import asyncio
import datetime as dt
from typing import Annotated

import typer

from hub.db import Database
from hub.escalation.scan import ScanResult, scan
from hub.settings import get_settings
from hub.timeliness.extract import all_targets_for

escalations_app = typer.Typer(
    help="Escalations: stages past their target's deadline, raised once.", no_args_is_help=True
)


@escalations_app.command("scan")
def scan_command(
    horizon_days: Annotated[
        int | None,
        typer.Option(help="Stages started within this many days (default: the setting)."),
    ] = None,
) -> None:
    """Raise every escalation due now; print how many stages were open and how many raised."""
    settings = get_settings()

    async def run() -> ScanResult:
        db = Database(settings.database_url)
        try:
            days = horizon_days or settings.escalation_horizon_days
            return await scan(db, all_targets_for(settings), horizon=dt.timedelta(days=days))
        finally:
            await db.dispose()

    result = asyncio.run(run())
    if result.skipped:
        typer.echo("another hub process is scanning: nothing done")
        return
    typer.echo(
        f"open stages past their shortest deadline: {result.candidates}; "
        f"escalations raised: {result.raised} ({result.seconds:.2f} s)"
    )
