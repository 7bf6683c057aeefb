"""A newcomer's second hour, as they would try it: `demo --port 8123` in a fresh folder, then in
another shell in the same folder `token`, `audit verify`, `report`, and a server on that data.

The demo used to keep its data in `.hub/demo.db` while every other command looked at
`.hub/hub.db` (answering "run migrate" and leaving an empty database behind), and `token` minted
for port 8000 whatever port the demo served on (`wrong_issuer`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.settings import get_settings
from tests.conftest import free_port, serve

runner = CliRunner()
# What `demo` sets for itself; a second shell has none of them.
DEMO_ENVIRONMENT = (
    "HUB_DATABASE_URL",
    "HUB_DATA_DIR",
    "HUB_GRAPHIQL",
    "HUB_INTROSPECTION",
    "HUB_ISSUER",
    "HUB_ACCESS_TOKEN_TTL_SECONDS",
    "HUB_MODE",
)


def _new_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEMO_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def after_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder a newcomer ran `demo --port PORT --no-serve` in; the port in `demo_port`."""
    monkeypatch.chdir(tmp_path)
    _new_shell(monkeypatch)
    port = free_port()
    code, out, _ = _invoke("demo", "--port", str(port), "--no-serve")
    assert code == 0, out
    (tmp_path / "demo_port").write_text(str(port))
    _new_shell(monkeypatch)
    yield tmp_path
    get_settings.cache_clear()


def test_after_the_demo_audit_verify_and_report_find_its_data(after_demo: Path) -> None:
    code, out, err = _invoke("audit", "verify")
    assert code == 0, err
    assert out.startswith("OK ")
    code, out, err = _invoke("clients", "list")
    assert code == 0, err
    assert "West Midlands Police record system (demo)" in out
    code, out, err = _invoke("report", "--from", "2020-01-01", "--to", "2030-12-31")
    assert code == 0, err
    assert "WEST_MIDLANDS" in out or "West Midlands" in out
    assert sorted(path.name for path in (after_demo / ".hub").glob("*.db")) == ["hub.db"]


def test_a_cli_token_is_accepted_by_the_demo_on_another_port(after_demo: Path) -> None:
    from hub.app import create_app  # noqa: PLC0415

    port = int((after_demo / "demo_port").read_text())
    code, out, err = _invoke("token", "--org", "WEST_MIDLANDS", "--role", "police_officer")
    assert code == 0, err
    token = out.strip()
    # The server `demo` starts reads the same settings, in the same folder, on the same port.
    settings = get_settings()
    server, thread = serve(create_app(settings), port, settings)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ viewer { role } }"},
            headers={
                "Authorization": f"Bearer {token}",
                "Hub-On-Behalf-Of": "pc-1",
                "Hub-Purpose": "police_investigation",
            },
            timeout=30,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert response.status_code == httpx.codes.OK, response.text
    assert response.json()["data"]["viewer"]["role"] == "police_officer"


def test_a_read_only_command_never_creates_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _new_shell(monkeypatch)
    for command in (
        ["audit", "verify"],
        ["report", "--from", "2026-01-01", "--to", "2026-01-31"],
        ["clients", "list"],
    ):
        code, _, err = _invoke(*command)
        assert code == 2, command
        assert "no database at .hub/hub.db" in err
        assert "safeguarding-hub demo" in err
    assert not (tmp_path / ".hub" / "hub.db").exists()
