"""`safeguarding-hub vetting-report`: vetting checks per force and council, as Markdown.

No `from __future__ import annotations` here: typer reads the parameter annotations at runtime.
Counts and ages only, never an applicant; logged as a disclosure before it is printed, as the
sharing report is.
"""

import asyncio
import datetime as dt
import getpass
from typing import Annotated

import typer

from hub.audit import service as audit
from hub.db import NO_DATABASE_HINT, Database, sqlite_file_missing, utcnow
from hub.settings import get_settings
from hub.timeliness.calendar import LONDON
from hub.timeliness.cli import OPERATOR_ORGANISATION
from hub.timeliness.extract import all_targets_for
from hub.vetting.figures import FiguresScope, GroupFigures, VettingFigures, disclosure_detail
from hub.vetting.figures import figures as vetting_figures

_COLUMNS = (
    "open",
    "median age (days)",
    "oldest (days)",
    "open past target",
    "completed",
    "within target",
    "share within target",
    "carers waiting",
    "adopters waiting",
)


def _number(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def _row(group: GroupFigures) -> str:
    cells = [
        group.organisation_code,
        str(group.open),
        _number(group.open_median_age_days),
        _number(group.open_oldest_age_days),
        str(group.open_over_target),
        str(group.completed),
        str(group.completed_within_target),
        _number(group.share_within_target, "{:.0%}"),
        str(group.carers_waiting),
        str(group.adopters_waiting),
    ]
    return "| " + " | ".join(cells) + " |"


def render(data: VettingFigures) -> str:
    period = (
        f"Open checks as of {data.as_of:%Y-%m-%d %H:%M} UTC; completed ones from "
        f"{data.completed_from:%Y-%m-%d %H:%M} to {data.completed_until:%Y-%m-%d %H:%M} UTC."
    )
    lines = ["# Police checks on carers and adopters", "", period]
    if data.target is not None:
        target = data.target
        lines += ["", f"Target {target.id}: {target.description}", f"Source: {target.source}"]
    for title, groups in (("force", data.by_force), ("council", data.by_council)):
        lines += ["", f"## By {title}", "", f"| {title} | " + " | ".join(_COLUMNS) + " |"]
        lines.append("|" + "---|" * (len(_COLUMNS) + 1))
        lines += [_row(group) for group in groups] or ["| none |" + " |" * len(_COLUMNS)]
    return "\n".join(lines) + "\n"


async def _figures(
    *, scope: FiguresScope, period_from: dt.date, period_to: dt.date, user: str, purpose: str
) -> VettingFigures:
    settings = get_settings()
    db = Database(settings.database_url)

    def start(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)

    try:
        async with db.transaction(write=True) as session:
            data = await vetting_figures(
                session,
                scope=scope,
                completed_from=start(period_from),
                completed_until=start(period_to + dt.timedelta(days=1)),
                as_of=utcnow(),
                targets=all_targets_for(settings),
            )
            await audit.record_disclosure(
                session,
                actor=audit.Actor(
                    user=user,
                    organisation_code=OPERATOR_ORGANISATION,
                    client_id="hub-cli",
                    role="hub_admin",
                    purpose=purpose,
                ),
                operation_name="vetting figures",
                detail=disclosure_detail(data, report_format="md"),
            )
        return data
    finally:
        await db.dispose()


def vetting_report_command(  # noqa: PLR0917 - typer's options are the parameters
    from_: Annotated[
        str | None, typer.Option("--from", help="First day of completions (default: a year ago).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Last day of completions (default: today).")
    ] = None,
    force: Annotated[str | None, typer.Option("--force", help="One force's checks.")] = None,
    council: Annotated[str | None, typer.Option("--council", help="One council's.")] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the figures are made (logged).")
    ] = "inspection",
    user: Annotated[
        str | None, typer.Option("--user", help="Who runs it, as logged (default: login).")
    ] = None,
) -> None:
    """Vetting checks open (with their age) and completed against T11, per force and council."""
    try:
        period_to = dt.date.fromisoformat(to) if to else utcnow().astimezone(LONDON).date()
        period_from = dt.date.fromisoformat(from_) if from_ else period_to - dt.timedelta(days=364)
    except ValueError:
        typer.echo("--from and --to must be dates such as 2026-01-31", err=True)
        raise typer.Exit(2) from None
    if period_to < period_from:
        typer.echo("--to must not be before --from", err=True)
        raise typer.Exit(2)
    missing = sqlite_file_missing(get_settings().database_url)
    if missing is not None:  # connecting would leave an empty database file behind
        typer.echo(f"no database at {missing}: {NO_DATABASE_HINT}", err=True)
        raise typer.Exit(2)
    data = asyncio.run(
        _figures(
            scope=FiguresScope(force_code=force, council_code=council),
            period_from=period_from,
            period_to=period_to,
            user=user or getpass.getuser(),
            purpose=purpose,
        )
    )
    typer.echo(render(data), nl=False)
