"""Signed checkpoints: a tail cut together with the head is caught; a forged checkpoint is not
taken; auditors fetch checkpoints over GraphQL and verify them with the published JWKS.

Tampering commits here, so the CLI tests use a database of their own (as test_audit_cli does).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwk, jws
from typer.testing import CliRunner

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.audit.checkpoint import CHECKPOINT_TYPE
from hub.audit.cli import audit_app
from hub.settings import get_settings
from tests.conftest import GraphQLClient, LiveServer, cli_settings, scratch_database
from tests.test_audit_cli import _execute, _seed

runner = CliRunner()


CHECKPOINT = "{ auditCheckpoint { sequence headHash issuedAt jws } }"


@pytest.fixture
async def private_url(tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(tmp_path, "hub_checkpoint") as url:
        yield url


@pytest.fixture
def cli_env(private_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with cli_settings(monkeypatch, private_url, tmp_path):
        yield private_url


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(audit_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _cut_tail(url: str, *, keep: int) -> None:
    """What an operator with the database could do: drop the newest events and move the head
    back to the last one kept. The chain that is left is whole."""
    for table in ("audit_event_record", "audit_event_child", "audit_event"):
        asyncio.run(_execute(url, f"DELETE FROM {table} WHERE seq > {keep}"))  # noqa: S608 - constant
    asyncio.run(
        _execute(
            url,
            f"UPDATE audit_chain_head SET last_seq = {keep}, "  # noqa: S608 - constant
            f"last_hash = (SELECT hash FROM audit_event WHERE seq = {keep})",
        )
    )
    progress = f"UPDATE audit_index_progress SET indexed_seq = {keep}"  # noqa: S608 - constant
    asyncio.run(_execute(url, progress))


def test_a_checkpoint_catches_a_tail_cut_with_the_head(cli_env: str, tmp_path: Path) -> None:
    asyncio.run(_seed(cli_env))
    kept = tmp_path / "elsewhere" / "checkpoints.jws"
    kept.parent.mkdir()
    code, out, err = _invoke("checkpoint", "--output", str(kept))
    assert code == 0, err
    assert out == ""
    assert "checkpoint at seq 7" in err
    asyncio.run(_seed(cli_env, responses=1))  # the log grows past the checkpoint: it still extends
    code, _, err = _invoke("checkpoint", "--output", str(kept))
    assert code == 0, err
    assert len(kept.read_text().splitlines()) == 2  # appended, one a line

    code, out, _ = _invoke("verify", "--checkpoint", str(kept))
    assert code == 0, out
    assert "extends 2 checkpoint(s), the last at seq 10" in out

    _cut_tail(cli_env, keep=9)
    code, out, _ = _invoke("verify")
    assert code == 0, out  # the chain alone cannot tell
    assert out.startswith("OK 9 events (seq 1..9)")
    code, out, _ = _invoke("verify", "--checkpoint", str(kept))
    assert code == 1
    assert "FAILED checkpoint seq 10" in out
    assert "the log ends at seq 9" in out


def test_a_checkpoint_with_a_bad_signature_is_refused(cli_env: str, tmp_path: Path) -> None:
    asyncio.run(_seed(cli_env, responses=1))
    code, out, _ = _invoke("checkpoint")
    assert code == 0
    header, payload, signature = out.strip().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["seq"] = 1  # a shorter log, as a forger would like it to read
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = tmp_path / "forged.jws"
    forged.write_text(f"{header}.{forged_payload}.{signature}\n")
    code, _, err = _invoke("verify", "--checkpoint", str(forged))
    assert code == 1
    assert "line 1: the checkpoint's signature is not valid" in err


def test_read_only_audit_commands_leave_no_database_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "hub.db"
    with cli_settings(monkeypatch, f"sqlite+aiosqlite:///{missing}", tmp_path):
        for command in (["verify"], ["checkpoint"]):
            code, _, err = _invoke(*command)
            assert code == 2
            assert f"no database at {missing}" in err
            assert "safeguarding-hub demo" in err
    assert not missing.exists()
    assert not missing.parent.exists()


async def test_auditors_fetch_checkpoints_that_verify_with_the_jwks(
    live_server: LiveServer,
    as_role: object,
    http: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auditor: GraphQLClient = as_role(Role.AUDITOR, "OFSTED")  # type: ignore[operator]
    body = await auditor(CHECKPOINT)
    assert "errors" not in body, body
    point = body["data"]["auditCheckpoint"]
    published = (await http.get(f"{live_server.url}/.well-known/jwks.json")).json()
    signed = jws.deserialize_compact(point["jws"], jwk.KeySet.import_key_set(published))
    assert signed.headers()["typ"] == CHECKPOINT_TYPE
    claims = json.loads(signed.payload)
    assert (str(claims["seq"]), claims["head_hash"]) == (point["sequence"], point["headHash"])
    assert claims["iss"] == live_server.settings.issuer

    kept = tmp_path / "from-graphql.jws"
    kept.write_text(point["jws"] + "\n")
    with cli_settings(
        monkeypatch, live_server.settings.database_url, live_server.settings.data_dir
    ):
        assert KeySet.for_settings(get_settings()).kids == live_server.keys.kids
        code, out, _ = await asyncio.to_thread(_invoke, "verify", "--checkpoint", str(kept))
    assert code == 0, out
    assert f"the last at seq {point['sequence']}" in out


async def test_dpos_fetch_checkpoints_and_case_roles_are_refused(as_role: object) -> None:
    dpo: GraphQLClient = as_role(Role.DPO, "E08000025")  # type: ignore[operator]
    body = await dpo(CHECKPOINT)
    assert "errors" not in body, body
    assert len(body["data"]["auditCheckpoint"]["headHash"]) == 64
    social_worker: GraphQLClient = as_role(Role.COUNCIL_SOCIAL_WORKER, "E08000025")  # type: ignore[operator]
    body = await social_worker(CHECKPOINT)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
    assert body["data"] is None or body["data"].get("auditCheckpoint") is None
