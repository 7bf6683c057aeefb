"""Backup and restore on PostgreSQL, as the README tells an operator to do it: `pg_dump -Fc`,
`pg_restore` into a fresh database, then `audit verify` passes and a checkpoint taken before the
backup is still extended. The audit tables' append-only triggers refuse UPDATE, DELETE and
TRUNCATE, not the inserts a restore makes.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from hub import demo
from hub.audit.cli import audit_app
from hub.settings import Settings
from tests.conftest import (
    POSTGRES_URL,
    _create_pg_database,
    _drop_pg_database,
    cli_settings,
    is_postgres,
    scratch_database,
)
from tests.test_audit_cli import _seed

pytestmark = pytest.mark.skipif(not is_postgres(), reason="pg_dump and pg_restore: PostgreSQL")
runner = CliRunner()


def _libpq(url: str) -> str:
    """The URL as pg_dump and pg_restore take it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def original(tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(tmp_path, "hub_backup") as url:
        await demo.load(Settings(database_url=url, data_dir=tmp_path), base_url="http://x")
        await _seed(url)
        yield url


@pytest.fixture
async def fresh() -> AsyncIterator[str]:
    name = f"hub_restored_{uuid.uuid4().hex[:12]}"
    url = await _create_pg_database(POSTGRES_URL, name)
    yield url
    await _drop_pg_database(POSTGRES_URL, name)


def _audit(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path, *args: str) -> str:
    with cli_settings(monkeypatch, url, data_dir):
        result = runner.invoke(audit_app, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


async def test_a_restored_backup_verifies_and_extends_earlier_checkpoints(
    original: str, fresh: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "checkpoints.jws"
    await asyncio.to_thread(_audit, monkeypatch, original, tmp_path, "checkpoint", "-o", str(kept))
    before = await asyncio.to_thread(_audit, monkeypatch, original, tmp_path, "verify")
    dump = tmp_path / "hub.dump"
    subprocess.run(  # noqa: S603 - the PostgreSQL client tools, fixed arguments
        ["pg_dump", "--format=custom", f"--file={dump}", _libpq(original)],  # noqa: S607
        check=True,
    )
    subprocess.run(  # noqa: S603 - the PostgreSQL client tools, fixed arguments
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq(fresh)}", str(dump)],  # noqa: S607
        check=True,
    )
    after = await asyncio.to_thread(
        _audit, monkeypatch, fresh, tmp_path, "verify", "--checkpoint", str(kept)
    )
    assert after.startswith(before.split(" in ")[0])  # "OK n events (seq a..b)", the same
    assert before.splitlines()[1] in after.splitlines()  # the same head hash
    assert "extends 1 checkpoint(s)" in after
