"""The agreement file is checked at start: every problem listed, nothing half-applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.access.agreement import Agreement, AgreementInvalid, default_path
from hub.app import create_app
from hub.cli import app
from hub.graphql.schema import build_schema
from hub.settings import Settings

SCHEMA = build_schema(Settings())._schema
SHIPPED = default_path().read_text()


def _broken(tmp_path: Path) -> Path:
    text = SHIPPED.replace('rows = "school_pupils"', 'rows = "whole_country"')
    text = text.replace('purposes = ["inspection"]', 'purposes = ["inspection", "curiosity"]')
    text = text.replace(
        'Incident = ["id", "type", "occurredAt", "children"]',
        'Incident = ["id", "type", "occurredAt", "children", "shoeSize"]\nTeacher = "*"',
    )
    text = text.replace("[roles.hub_admin]", "[roles.janitor]\n[roles.hub_admin]")
    text = text.replace(
        'Child = ["id", "givenName", "familyName", "dateOfBirth"]', 'Child = ["givenName"]'
    )
    path = tmp_path / "agreement.toml"
    path.write_text(text)
    return path


def test_the_shipped_agreement_is_valid_and_versioned() -> None:
    agreement = Agreement.load(default_path(), SCHEMA)
    assert agreement.version.startswith("sha256:")
    assert agreement.version == Agreement.load(default_path(), SCHEMA).version


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    with pytest.raises(AgreementInvalid) as caught:
        Agreement.load(_broken(tmp_path), SCHEMA)
    problems = caught.value.problems
    assert "role school_dsl: unknown rows 'whole_country'" in " ".join(problems)
    assert "role auditor: unknown purpose 'curiosity'" in problems
    assert "role school_dsl: Incident has no field 'shoeSize'" in problems
    assert "role school_dsl: unknown or ungoverned type 'Teacher'" in problems
    assert "unknown role 'janitor'" in problems
    assert "role school_dsl: Child is listed without its id" in problems
    assert len(problems) == 6


def test_a_changed_agreement_has_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "agreement.toml"
    path.write_text(SHIPPED.replace("SYNTHETIC-ISA-2026-01", "SYNTHETIC-ISA-2026-02"))
    assert Agreement.load(path, SCHEMA).version != Agreement.load(default_path(), SCHEMA).version


def test_the_hub_refuses_to_start_with_a_broken_agreement(tmp_path: Path) -> None:
    settings = Settings(
        agreement_file=_broken(tmp_path),
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
    )
    with pytest.raises(AgreementInvalid, match="6 problem"):
        create_app(settings)


def test_policy_check_and_explain() -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["policy", "check"])
    assert checked.exit_code == 0
    assert "6 roles" in checked.stdout
    explained = runner.invoke(app, ["policy", "explain", "--role", "school_dsl"])
    assert explained.exit_code == 0
    line = next(li for li in explained.stdout.splitlines() if li.strip().startswith("Incident "))
    assert line.split(None, 1)[1] == "children, id, occurredAt, type"
    assert "operation_encompass" in explained.stdout


def test_policy_check_fails_on_a_broken_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "check", "--file", str(_broken(tmp_path))])
    assert result.exit_code == 1
    assert "unknown role 'janitor'" in result.stderr
