"""The operator's CLI, run in-process against the test database with its own settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.access.keys import KeySet
from hub.access.tokens import verify_access_token
from hub.cli import app
from hub.graphql.schema import export_sdl
from hub.settings import Settings, get_settings
from tests.conftest import cli_settings

runner = CliRunner()


@pytest.fixture
def cli_env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    with cli_settings(monkeypatch, database_url, tmp_path) as settings:
        yield settings


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_token_prints_only_a_verifiable_token(cli_env: Settings) -> None:
    code, out, _ = _invoke(
        "token", "--org", "WEST_MIDLANDS", "--role", "police_officer", "--user", "pc-1"
    )
    assert code == 0
    token = out.strip()
    assert "\n" not in token
    claims = verify_access_token(settings=cli_env, keys=KeySet.for_settings(cli_env), token=token)
    assert (claims["org"], claims["role"], claims["hub_user"]) == (
        "WEST_MIDLANDS",
        "police_officer",
        "pc-1",
    )


def test_token_refuses_a_role_the_organisation_cannot_hold(cli_env: Settings) -> None:
    code, out, _ = _invoke("token", "--org", "WEST_MIDLANDS", "--role", "council_social_worker")
    assert code != 0
    assert out == ""


def test_token_is_refused_in_production(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "prod-keys.json"
    KeySet.generate(development=False).save(keys)  # valid production keys: only the mode refuses
    monkeypatch.setenv("HUB_MODE", "production")
    monkeypatch.setenv("HUB_PSEUDONYM_KEY", "a-production-secret-for-this-test")
    monkeypatch.setenv("HUB_SIGNING_KEYS_FILE", str(keys))
    get_settings.cache_clear()
    code, out, err = _invoke("token", "--org", "WEST_MIDLANDS", "--role", "police_officer")
    assert code == 2
    assert out == ""
    assert "production" in err
    assert "." not in out  # no token at all, not even on a refused path


def test_clients_add_prints_the_secret_once_and_stores_a_hash(cli_env: Settings) -> None:
    code, out, err = _invoke(
        "clients",
        "add",
        "--org",
        "E08000025",
        "--role",
        "council_social_worker",
        "--name",
        "Synthetic case system",
    )
    assert code == 0, err
    client_id = out.split("client id:")[1].split()[0]
    secret = out.split("secret:")[1].split()[0]
    assert "not shown again" in err
    code, listing, _ = _invoke("clients", "list", "--org", "E08000025")
    assert client_id in listing
    assert secret not in listing


def test_clients_add_rejects_an_unknown_organisation(cli_env: Settings) -> None:
    code, out, _ = _invoke(
        "clients", "add", "--org", "E99999999", "--role", "council_social_worker"
    )
    assert code != 0
    assert "secret" not in out


def test_keys_rotate_keeps_old_tokens_valid(cli_env: Settings) -> None:
    old = _invoke("token", "--org", "E08000025", "--role", "council_social_worker")[1].strip()
    assert _invoke("keys", "rotate")[0] == 0
    rotated = KeySet.for_settings(cli_env)
    assert len(rotated.kids) == 2
    assert verify_access_token(settings=cli_env, keys=rotated, token=old)["org"] == "E08000025"
    new = _invoke("token", "--org", "E08000025", "--role", "council_social_worker")[1].strip()
    header_kid = rotated.kids[0]
    assert header_kid in _kid_of(new)


def _kid_of(token: str) -> str:
    import base64  # noqa: PLC0415
    import json  # noqa: PLC0415

    header = token.split(".", maxsplit=1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_migrate_is_repeatable(cli_env: Settings) -> None:
    code, out, _ = _invoke("migrate")
    assert code == 0
    assert "organisations added 0" in out


def test_schema_export_writes_the_contract(cli_env: Settings, tmp_path: Path) -> None:
    target = tmp_path / "hub.graphql"
    assert _invoke("schema", "export", "--output", str(target))[0] == 0
    assert target.read_text() == export_sdl()


def test_python_dash_m_hub_is_the_same_cli() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    completed = subprocess.run(
        [sys.executable, "-m", "hub", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0
    for command in ("demo", "serve", "migrate", "clients", "token", "keys", "schema", "bench"):
        assert command in completed.stdout


def test_the_embedded_database_follows_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only HUB_DATA_DIR, as a newcomer moving the hub's files would set it: the database goes
    # there too, instead of into a `.hub` directory nothing created.
    data_dir = tmp_path / "elsewhere"
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.delenv("HUB_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        code, out, _ = _invoke("migrate")
    finally:
        get_settings.cache_clear()

    assert code == 0, out
    assert (data_dir / "hub.db").is_file()
    assert not (tmp_path / ".hub").exists()


def test_a_named_database_stays_where_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = f"sqlite+aiosqlite:///{tmp_path / 'named.db'}"
    monkeypatch.setenv("HUB_DATABASE_URL", named)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))

    assert Settings().database_url == named
    assert Settings(database_url="postgresql+asyncpg://h/db", data_dir=tmp_path).database_url == (
        "postgresql+asyncpg://h/db"
    )
    monkeypatch.delenv("HUB_DATABASE_URL")
    assert Settings(data_dir=tmp_path / "d").database_url == (
        f"sqlite+aiosqlite:///{tmp_path / 'd' / 'hub.db'}"
    )


def test_the_demo_database_goes_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "demo-data"
    # What `demo` sets for itself is put back after the test, whatever it was.
    for name in (
        "HUB_DATABASE_URL",
        "HUB_GRAPHIQL",
        "HUB_INTROSPECTION",
        "HUB_ISSUER",
        "HUB_ACCESS_TOKEN_TTL_SECONDS",
        "HUB_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        code, out, _ = _invoke("demo", "--no-serve")
    finally:
        get_settings.cache_clear()

    assert code == 0, out
    assert "synthetic records loaded" in out
    assert (data_dir / "hub.db").is_file()  # the hub's own database: every command sees it
    assert not (tmp_path / ".hub").exists()


def test_reach_verify_on_sqlite_says_there_is_nothing_to_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's lists never read `council_reach` and no trigger keeps it there: the command says
    so and succeeds (`tests/test_council_reach` verifies it on PostgreSQL)."""
    with cli_settings(monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", tmp_path):
        result = runner.invoke(app, ["reach", "verify"])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL only: nothing to verify" in result.output
