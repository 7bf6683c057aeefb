"""`safeguarding-hub report`: the sharing-delays report as Markdown, HTML or CSV.

No `from __future__ import annotations` here: typer reads the parameter annotations at runtime.
The report is itself a disclosure (DPA 2018 s.62): it is logged, with its scope and format,
before a byte of it is written.
"""

import asyncio
import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated

import typer

from hub.access.agreement import default_path, file_version
from hub.audit import service as audit
from hub.db import NO_DATABASE_HINT, Database, sqlite_file_missing, utcnow
from hub.settings import get_settings
from hub.timeliness import extract
from hub.timeliness.report import SHOWN_BREACHES, Format, render
from hub.timeliness.report_data import ReportData, ReportScope, disclosure_detail
from hub.timeliness.targets import RECORD_KINDS as KINDS

OPERATOR_ORGANISATION = "HUB"


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        typer.echo(f"{option} must be a date such as 2026-01-31", err=True)
        raise typer.Exit(2) from None


async def _report(
    *,
    period_from: dt.date,
    period_to: dt.date,
    scope: ReportScope,
    report_format: str,
    user: str,
    purpose: str,
) -> ReportData:
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        data = await extract.report(
            db,
            targets=extract.targets_for(settings),
            period_from=period_from,
            period_to=period_to,
            scope=scope,
            as_of=utcnow(),
            pseudonym_key=settings.pseudonym_key.get_secret_value(),
            agreement_version=file_version(settings.agreement_file or default_path()),
            # The CSV lists every breach; Markdown and HTML show the longest (all are counted).
            breach_limit=None if report_format == "csv" else SHOWN_BREACHES,
            connections=settings.report_connections,
        )
        async with db.transaction(write=True) as session:
            await audit.record_disclosure(
                session,
                actor=audit.Actor(
                    user=user,
                    organisation_code=OPERATOR_ORGANISATION,
                    client_id="hub-cli",
                    role="hub_admin",
                    purpose=purpose,
                ),
                operation_name="sharing report",
                detail=disclosure_detail(data, report_format=report_format),
            )
        return data
    finally:
        await db.dispose()


def report_command(  # noqa: PLR0917 - typer's options are the parameters
    from_: Annotated[str, typer.Option("--from", help="First day of the events (a UK date).")],
    to: Annotated[str, typer.Option("--to", help="Last day of the events, included.")],
    force: Annotated[str | None, typer.Option("--force", help="One force's records.")] = None,
    council: Annotated[str | None, typer.Option("--council", help="One council's.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help=f"One kind: {', '.join(KINDS)}.")
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="md, html or csv.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the report is made (logged).")
    ] = "inspection",
    user: Annotated[
        str | None, typer.Option("--user", help="Who runs it, as logged (default: login).")
    ] = None,
) -> None:
    """Sharing delays per force, council, kind and month against the agreement's targets.

    The HTML is one self-contained file with charts. Children appear only as pseudonyms. The
    report is logged as a disclosure before it is written.
    """
    period_from, period_to = _day(from_, "--from"), _day(to, "--to")
    if period_to < period_from:
        typer.echo("--to must not be before --from", err=True)
        raise typer.Exit(2)
    if format_ not in {"md", "html", "csv"}:
        typer.echo("--format must be md, html or csv", err=True)
        raise typer.Exit(2)
    if kind is not None and kind not in KINDS:
        typer.echo(f"--kind must be one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    report_format: Format = format_  # type: ignore[assignment]
    missing = sqlite_file_missing(get_settings().database_url)
    if missing is not None:  # connecting would leave an empty database file behind
        typer.echo(f"no database at {missing}: {NO_DATABASE_HINT}", err=True)
        raise typer.Exit(2)
    data = asyncio.run(
        _report(
            period_from=period_from,
            period_to=period_to,
            scope=ReportScope(force_code=force, council_code=council, kind=kind),
            report_format=report_format,
            user=user or getpass.getuser(),
            purpose=purpose,
        )
    )
    text = render(data, report_format)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8", newline="")
    typer.echo(f"wrote {output} ({data.breach_count} breaches)", err=True)
