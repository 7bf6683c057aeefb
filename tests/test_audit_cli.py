"""`safeguarding-hub audit`: verify, export and erase, in-process against a private database.

Tampering and erasure commit here, so these tests use a database of their own, never the
session's shared one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.audit import bench, chain, service
from hub.audit.cli import audit_app, parse_when
from hub.audit.models import Outcome
from hub.db import Database
from hub.settings import get_settings
from tests.conftest import POSTGRES_URL, cli_settings, is_postgres, scratch_database
from tests.test_audit_chain import record, served

runner = CliRunner()

# The commands run their own event loop (asyncio.run), so these tests are synchronous and reach
# the database through asyncio.run too.


@pytest.fixture
async def private_url(tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(tmp_path, "hub_audit_cli") as url:
        yield url


@pytest.fixture
def cli_env(private_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with cli_settings(monkeypatch, private_url, tmp_path):
        yield private_url


async def _seed(url: str, responses: int = 3) -> None:
    db = Database(url)
    try:
        for _ in range(responses):
            async with db.transaction(write=True) as session:
                await record(session, served(2))
        async with db.transaction(write=True) as session:
            await record(session, [], outcome=Outcome.DENIED)
    finally:
        await db.dispose()


async def _execute(url: str, statement: str) -> None:
    db = Database(url)
    try:
        async with db.transaction(write=True) as session:
            if is_postgres():
                await session.execute(sa.text("SET LOCAL session_replication_role = replica"))
            await session.execute(sa.text(statement))
    finally:
        await db.dispose()


async def _events(url: str) -> list[dict[str, object]]:
    db = Database(url)
    try:
        async with db.transaction(write=False) as session:
            rows = await session.execute(sa.select(chain.EVENTS).order_by(chain.EVENTS.c.seq))
            return [dict(row._mapping) for row in rows]
    finally:
        await db.dispose()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(audit_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_prints_ok_with_figures(cli_env: str) -> None:
    asyncio.run(_seed(cli_env))
    code, out, _ = _invoke("verify")
    assert code == 0, out
    assert out.startswith("OK 7 events (seq 1..7)")
    assert "events/s" in out
    assert "head hash " in out


def test_verify_names_the_first_problem_and_fails(cli_env: str) -> None:
    asyncio.run(_seed(cli_env))
    asyncio.run(_execute(cli_env, "UPDATE audit_event SET purpose = 'fishing' WHERE seq = 3"))
    asyncio.run(_execute(cli_env, "DELETE FROM audit_event WHERE seq = 5"))
    code, out, _ = _invoke("verify")
    assert code == 1
    assert out.startswith("FAILED at seq 3: altered")
    assert "fishing" not in out


def test_export_writes_a_file_and_is_itself_logged(cli_env: str, tmp_path: Path) -> None:
    asyncio.run(_seed(cli_env))
    before = asyncio.run(_events(cli_env))
    output = tmp_path / "audit.jsonl"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    code, out, err = _invoke(
        "export", "--from", today, "--to", today, "--output", str(output), "--user", "dpo-1"
    )
    assert code == 0, err
    assert out == ""  # nothing on stdout when writing a file: no progress bar off a terminal
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    disclosure = asyncio.run(_events(cli_env))[-1]
    assert [line["seq"] for line in lines] == [event["seq"] for event in before] + [
        disclosure["seq"]
    ]
    assert (disclosure["operation"], disclosure["operation_kind"]) == ("disclosure", "export")
    assert disclosure["user"] == "dpo-1"
    detail = json.loads(str(disclosure["detail"]))
    assert (detail["events"], detail["format"], detail["child_ids"]) == (7, "jsonl", "pseudonyms")
    key = get_settings().pseudonym_key.get_secret_value()
    child = json.loads(str(before[0]["child_ids"]))[0]
    assert lines[0]["child_ids"][0] == service.pseudonym(child, key=key)
    assert child not in output.read_text()


async def _seed_child_read(url: str, child_id: str) -> None:
    db = Database(url)
    try:
        async with db.transaction(write=True) as session:
            child = service.ServedRecord("Child", child_id, ("id",), (child_id,), "E08000025")
            await record(session, [child])
    finally:
        await db.dispose()


def test_a_pseudonymised_export_names_a_childs_record_by_pseudonym(
    cli_env: str, tmp_path: Path
) -> None:
    child = str(uuid.uuid4())
    asyncio.run(_seed_child_read(cli_env, child))
    output = tmp_path / "audit.jsonl"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    code, _, err = _invoke("export", "--from", today, "--to", today, "--output", str(output))
    assert code == 0, err
    key = get_settings().pseudonym_key.get_secret_value()
    (line, _disclosure) = [json.loads(line) for line in output.read_text().splitlines()]
    assert line["records"][0]["id"] == service.pseudonym(child, key=key)
    assert child not in output.read_text()


def test_export_streams_csv_to_stdout_with_real_ids_on_request(cli_env: str) -> None:
    asyncio.run(_seed(cli_env, responses=1))
    events = asyncio.run(_events(cli_env))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    code, out, _ = _invoke(
        "export", "--from", today, "--to", today, "--format", "csv", "--real-child-ids"
    )
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split(",")[:3] == ["seq", "id", "occurred_at"]
    assert len(rows) == len(events) + 1  # and the disclosure event of this very export
    assert json.loads(str(events[0]["child_ids"]))[0] in out


def test_export_refuses_a_time_without_a_zone(cli_env: str) -> None:
    code, _, err = _invoke("export", "--from", "2026-01-01T09:00", "--to", "2026-01-02")
    assert code == 2
    assert "timezone" in err


def test_dates_are_whole_utc_days() -> None:
    assert parse_when("2026-03-01") == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert parse_when("2026-03-01", end_of_day=True) == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    assert parse_when("2026-03-01T10:00:00+01:00") == dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)


def test_erase_asks_for_yes_then_erases_and_verify_still_passes(cli_env: str) -> None:
    asyncio.run(_seed(cli_env))
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    code, out, _ = _invoke("erase", "--before", tomorrow)
    assert code == 1
    assert out.startswith("7 events occurred before")
    assert len(asyncio.run(_events(cli_env))) == 7

    code, out, _ = _invoke("erase", "--before", tomorrow, "--yes", "--user", "operator-1")
    assert code == 0, out
    assert out.startswith("erased 7 events (seq 1..7); logged as seq 8")
    remaining = asyncio.run(_events(cli_env))
    assert [(event["seq"], event["operation"]) for event in remaining] == [(8, "erasure")]

    code, out, _ = _invoke("verify")
    assert code == 0, out
    assert "starts after a lawful erasure through seq 7" in out


def test_erase_defaults_to_the_retention_period(cli_env: str) -> None:
    asyncio.run(_seed(cli_env, responses=1))
    code, out, _ = _invoke("erase", "--yes")
    assert code == 0
    assert out.startswith("nothing to erase before")


def test_erase_refuses_a_log_that_does_not_verify(cli_env: str) -> None:
    asyncio.run(_seed(cli_env))
    asyncio.run(_execute(cli_env, "UPDATE audit_event SET purpose = 'x' WHERE seq = 2"))
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    code, _, err = _invoke("erase", "--before", tomorrow, "--yes")
    assert code == 1
    assert "seq 2" in err
    assert len(asyncio.run(_events(cli_env))) == 7


@pytest.mark.skipif(not is_postgres(), reason="the bench loads with PostgreSQL's COPY")
async def test_the_bench_loads_measures_and_verifies_a_small_log() -> None:
    report = await bench.run(
        database_url=POSTGRES_URL, events=3_000, children=50, samples=20, appends=5
    )
    assert report.verify.ok, report.verify.problem
    # One chained event per response: the loaded ones and the 5 appended.
    assert 3_000 / max(bench.RESPONSE_SIZES) < report.chained < 3_000
    assert report.verify.checked == report.chained + 5
    assert len(report.history_seconds) == 20
    assert report.children_with_history == 20
    # The indexer caught up with the 5 appended responses (20 records, each with its child).
    assert report.indexed.events == 5
    assert report.indexed.rows == 5 * (bench.APPEND_RECORDS + bench.APPEND_RECORDS)
    assert report.indexed.seconds > 0
    assert len(report.lines()) == 5
    assert "5 responses: 200 record and child index rows" in report.lines()[3]
