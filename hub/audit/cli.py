"""`safeguarding-hub audit`: verify the chain, export the log, erase past retention.

No `from __future__ import annotations` here: typer reads the parameter annotations at runtime.
Every export is itself logged (a `disclosure` event) before any event leaves, and every erasure
(an `erasure` event) in the same transaction as the deletion.
"""

import asyncio
import contextlib
import datetime as dt
import getpass
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn, TextIO, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.keys import KeySet, KeySetError
from hub.audit import chain, checkpoint, export, retention, service, verify
from hub.db import NO_DATABASE_HINT, Database, sqlite_file_missing
from hub.errors import HubError
from hub.settings import get_settings

T = TypeVar("T")

CLI_CLIENT_ID = "hub-cli"
OPERATOR_ORGANISATION = "HUB"
OPERATOR_ROLE = "hub_admin"

audit_app = typer.Typer(
    help="The audit log: verify the hash chain, export events, erase past retention.",
    no_args_is_help=True,
)

UserOption = Annotated[
    str | None,
    typer.Option("--user", help="The person running the command, as logged (default: login)."),
]


def parse_when(text: str, *, end_of_day: bool = False) -> dt.datetime:
    """A date is a UTC day (its end, when it closes a range); a time must carry its offset."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return start + dt.timedelta(days=1) if end_of_day else start
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"not a date or ISO time: {text!r}", code=2)
    if moment.tzinfo is None:
        _fail(f"give a timezone offset (e.g. {text}Z): times are not guessed", code=2)
    return moment


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user with no passwd entry
        return "unknown-operator"


def _actor(user: str | None, purpose: str) -> service.Actor:
    return service.Actor(
        user=user or _login(),
        organisation_code=OPERATOR_ORGANISATION,
        client_id=CLI_CLIENT_ID,
        role=OPERATOR_ROLE,
        purpose=purpose,
    )


CheckpointFile = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A file of signed checkpoints (one a line): prove the log still extends each.",
        exists=True,
        dir_okay=False,
    ),
]


@audit_app.command("verify")
def verify_command(
    batch_size: Annotated[
        int | None, typer.Option(min=100, help="Events per batch or COPY segment.")
    ] = None,
    checkpoint_file: CheckpointFile = None,
) -> None:
    """Check every event's hash and link; print OK with figures, or the first problem (exit 1)."""
    checkpoints = _read_checkpoints(checkpoint_file) if checkpoint_file is not None else []

    async def work(session: AsyncSession) -> tuple[verify.VerifyReport, list[str | None]]:
        await chain.begin_snapshot(session)
        report = await verify.verify(session, batch_size=batch_size)
        return report, [await checkpoint.extends(session, point) for point in checkpoints]

    report, cut = _run(work, write=False)
    if report.problem is not None:
        problem = report.problem
        typer.echo(f"FAILED at seq {problem.seq}: {problem.reason} ({problem.message})")
        typer.echo(f"{report.checked:,} events verified before it", err=True)
        raise typer.Exit(1)
    span = f"seq {report.first_seq}..{report.last_seq}" if report.checked else "empty log"
    typer.echo(
        f"OK {report.checked:,} events ({span}) in {report.seconds:.2f} s, "
        f"{report.rate:,.0f} events/s"
    )
    if report.erased_through is not None:
        typer.echo(f"starts after a lawful erasure through seq {report.erased_through}")
    # Recording this hash elsewhere (a ticket, a letter) anchors the chain outside the database.
    typer.echo(f"head hash {report.last_hash}")
    _report_checkpoints(checkpoints, cut)


def _read_checkpoints(path: Path) -> list[checkpoint.Checkpoint]:
    keys = _keys()
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        _fail(f"no checkpoints in {path}")
    read = []
    for number, line in enumerate(lines, start=1):
        try:
            read.append(checkpoint.read(line, keys))
        except checkpoint.CheckpointInvalid as invalid:
            _fail(f"{path} line {number}: {invalid}")
    return read


def _report_checkpoints(checkpoints: list[checkpoint.Checkpoint], cut: list[str | None]) -> None:
    """Each checkpoint the log still extends, or the first it does not (exit 1)."""
    for point, problem in zip(checkpoints, cut, strict=True):
        taken = f"checkpoint seq {point.seq} of {point.issued_at:%Y-%m-%dT%H:%M:%SZ}"
        if problem is not None:
            typer.echo(f"FAILED {taken}: the log does not extend it ({problem})")
            raise typer.Exit(1)
    if checkpoints:
        last = checkpoints[-1].seq
        typer.echo(f"extends {len(checkpoints)} checkpoint(s), the last at seq {last}")


@audit_app.command("checkpoint")
def checkpoint_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Append it to this file (one a line), e.g. on another host."
        ),
    ] = None,
) -> None:
    """Print the chain's head (seq and hash) signed with the hub's key: keep it off the database."""
    settings = get_settings()
    keys = _keys()
    point = _run(lambda session: checkpoint.current(session, issuer=settings.issuer), write=False)
    signed = point.signed(keys)
    if output is None:
        typer.echo(signed)
    else:
        with output.open("a", encoding="utf-8") as sink:
            sink.write(signed + "\n")
    typer.echo(f"checkpoint at seq {point.seq}, head hash {point.head_hash}", err=True)


def _keys() -> KeySet:
    try:
        return KeySet.for_settings(get_settings())
    except KeySetError as error:
        _fail(str(error))


@audit_app.command("export")
def export_command(  # noqa: PLR0917 - typer's options are the parameters
    from_: Annotated[str, typer.Option("--from", help="First UTC day (or ISO time with offset).")],
    to: Annotated[str, typer.Option("--to", help="Last UTC day, included (or an ISO time).")],
    format_: Annotated[
        export.ExportFormat, typer.Option("--format", help="jsonl or csv.")
    ] = export.ExportFormat.JSONL,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    real_child_ids: Annotated[
        bool,
        typer.Option(
            "--real-child-ids", help="Export child ids, not pseudonyms (needed to re-hash)."
        ),
    ] = False,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the log is disclosed (logged).")
    ] = "data_protection_review",
    user: UserOption = None,
) -> None:
    """Stream events that occurred in a range, in constant memory; the export is itself logged."""
    start, end = parse_when(from_), parse_when(to, end_of_day=True)
    if end <= start:
        _fail("--to must be after --from", code=2)
    key = None if real_child_ids else get_settings().pseudonym_key.get_secret_value()
    total = _run(
        lambda session: _log_export(
            session, start, end, format_, actor=_actor(user, purpose), real=real_child_ids
        ),
        write=True,
    )
    with _opened(output) as sink, _progress(total) as advance:

        async def work(session: AsyncSession) -> None:
            await chain.begin_snapshot(session)
            chunks = export.stream(
                session,
                occurred_from=start,
                occurred_to=end,
                format=format_,
                pseudonym_key=key,
                on_rows=advance,
            )
            async for chunk in chunks:
                sink.write(chunk)

        _run(work, write=False)
    typer.echo(f"exported {total:,} events", err=True)


async def _log_export(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    format_: export.ExportFormat,
    *,
    actor: service.Actor,
    real: bool,
) -> int:
    total = await export.count(session, occurred_from=start, occurred_to=end)
    await service.record_disclosure(
        session,
        actor=actor,
        operation_name="audit export",
        detail={
            "occurred_from": chain.timestamp_text(start),
            "occurred_to": chain.timestamp_text(end),
            "format": format_.value,
            "events": total,
            "child_ids": "real" if real else "pseudonyms",
        },
    )
    return total


@audit_app.command("erase")
def erase_command(
    before: Annotated[
        str | None,
        typer.Option(help="Erase events before this UTC day or time (default: the retention)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Erase, rather than say what would go.")
    ] = False,
    user: UserOption = None,
) -> None:
    """Erase events past retention, oldest first; the erasure is logged and verify still passes."""
    cutoff = parse_when(before) if before is not None else _retention_cutoff()
    if not yes:
        count = _run(lambda session: retention.count_before(session, cutoff=cutoff), write=False)
        typer.echo(f"{count:,} events occurred before {cutoff.isoformat()}; add --yes to erase")
        raise typer.Exit(1)
    actor = _actor(user, "hub_operations")
    report = _run(
        lambda session: retention.erase_before(session, cutoff=cutoff, actor=actor), write=True
    )
    if report.erased == 0:
        typer.echo(f"nothing to erase before {cutoff.isoformat()}")
        return
    typer.echo(
        f"erased {report.erased:,} events (seq {report.first_seq}..{report.last_seq}); "
        f"logged as seq {report.erasure_seq}"
    )


def _retention_cutoff() -> dt.datetime:
    days = get_settings().audit_retention_days  # HUB_AUDIT_RETENTION_DAYS
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


@contextlib.contextmanager
def _opened(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8", newline="") as sink:
        yield sink


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silence when piped or logged."""
    if not sys.stderr.isatty():
        yield lambda _rows: None
        return
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("exporting", total=total)
        yield lambda rows: progress.advance(task, rows)


def _run(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    missing = sqlite_file_missing(get_settings().database_url)
    if missing is not None:  # connecting would leave an empty database file behind
        _fail(f"no database at {missing}: {NO_DATABASE_HINT}", code=2)
    try:
        return asyncio.run(_in_transaction(work, write=write))
    except HubError as error:
        _fail(error.message)
    except (OSError, sa.exc.DBAPIError):
        _fail("database not reachable or not migrated (run `safeguarding-hub migrate`)", code=2)


async def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    db = Database(get_settings().database_url)
    try:
        async with db.transaction(write=write) as session:
            return await work(session)
    finally:
        await db.dispose()


def _fail(message: str, *, code: int = 1) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)
