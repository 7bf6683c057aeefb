"""The Dockerfile's essentials, checked as text.

The image is not built in CI: no Docker engine runs on these machines. These checks catch the
mistakes that matter most and are easiest to make in an edit nobody can build locally: running
as root, losing the health check, serving before migrating, leaving the migrations out of the
image, or a COPY whose source the .dockerignore allowlist keeps out of the build context.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def _command_text(arguments: str) -> str:
    """A CMD/ENTRYPOINT/HEALTHCHECK CMD as one string, whether in exec (JSON) or shell form."""
    if arguments.startswith("["):
        parts = json.loads(arguments)
        assert isinstance(parts, list), arguments
        return " ".join(shlex.quote(str(part)) for part in parts)
    return arguments


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def test_multi_stage_build_on_python_311_slim(instructions: list[tuple[str, str]]) -> None:
    froms = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage keep build tools out of the image"
    for arguments in froms:
        assert arguments.split()[0] == "python:3.11-slim", arguments
    runtime = _stages(instructions)[-1]
    assert any(k == "COPY" and "--from=" in a and "/opt/venv" in a for k, a in runtime), (
        "the runtime stage takes the built venv from the builder"
    )


def test_runs_as_a_non_root_user(instructions: list[tuple[str, str]]) -> None:
    runtime = _stages(instructions)[-1]
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users, "the runtime stage must switch away from root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user == "10001", users[-1]


def test_health_check_hits_healthz(instructions: list[tuple[str, str]]) -> None:
    checks = [arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK"]
    assert checks, "HEALTHCHECK lets the engine and orchestrators see a hung hub"
    assert "/healthz" in checks[-1]
    # The slim image has no curl or wget; a check calling one would mark every container unhealthy.
    assert not re.search(r"\b(curl|wget)\b", checks[-1]), checks[-1]


def test_migrates_before_serving(instructions: list[tuple[str, str]]) -> None:
    commands = [
        _command_text(arguments)
        for keyword, arguments in instructions
        if keyword in {"CMD", "ENTRYPOINT"}
    ]
    assert commands, "the image needs a CMD or ENTRYPOINT"
    text = " ".join(commands)
    assert "safeguarding-hub migrate" in text
    assert "safeguarding-hub serve" in text
    assert text.index("safeguarding-hub migrate") < text.index("safeguarding-hub serve")
    assert "--host 0.0.0.0" in text, "listening on 127.0.0.1 in a container reaches nobody"


def test_migrations_are_in_the_image(instructions: list[tuple[str, str]]) -> None:
    runtime = _stages(instructions)[-1]
    copies = [arguments for keyword, arguments in runtime if keyword == "COPY"]
    assert any(a.split()[0] == "migrations" for a in copies), copies
    assert any(a.split()[0] == "alembic.ini" for a in copies), copies
    env = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    assert "HUB_MIGRATIONS_DIR=/app/migrations" in env, "the installed package looks beside itself"


def test_production_mode_and_data_volume(instructions: list[tuple[str, str]]) -> None:
    runtime = _stages(instructions)[-1]
    env = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    assert "HUB_MODE=production" in env, "the image must refuse development keys"
    assert "HUB_DATA_DIR=/data" in env
    assert any(keyword == "VOLUME" and "/data" in a for keyword, a in runtime)
    assert any(keyword == "EXPOSE" and a.split()[0] == "8000" for keyword, a in runtime)


def test_dockerignore_lets_every_copy_source_through(instructions: list[tuple[str, str]]) -> None:
    """The .dockerignore is an allowlist: a COPY of anything it does not re-include would fail."""
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "expected an allowlist .dockerignore"
    allowed = {line[1:].strip("/") for line in lines if line.startswith("!")}
    for keyword, arguments in instructions:
        if keyword != "COPY" or "--from=" in arguments:
            continue
        sources = [part for part in arguments.split() if not part.startswith("--")][:-1]
        for source in sources:
            assert source.strip("/").split("/")[0] in allowed, (
                f"COPY {source}: not re-included by .dockerignore"
            )
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    for secret in (".env", ".hub", ".venv", "node_modules", ".git"):
        assert secret not in allowed, f"{secret} must stay out of the build context"
