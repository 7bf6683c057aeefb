"""The field gate decides per request, from the caller's own policy: no decision outlives it.

The executor decides once per selection which fields a role may not have; the parsed document
is cached across requests. Neither another role sending the same document nor a hub serving a
changed agreement may meet a decision made for someone else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx

from hub.access.agreement import default_path
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.settings import Settings
from tests.conftest import GraphQLClient, LiveServer, free_port, serve
from tests.scenario import ORGANISATION_OF, World

PAGE = "query($id: ID!) { incident(id: $id) { id summary operationalNotes } }"


def _forbidden(body: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        tuple(error["path"])
        for error in body.get("errors", [])
        if error["extensions"]["code"] == "FORBIDDEN_FIELD"
    }


async def test_the_same_document_is_decided_for_each_role(as_role: Any, world: World) -> None:
    police: GraphQLClient = as_role(Role.POLICE_OFFICER, ORGANISATION_OF[Role.POLICE_OFFICER])
    council: GraphQLClient = as_role(
        Role.COUNCIL_SOCIAL_WORKER, ORGANISATION_OF[Role.COUNCIL_SOCIAL_WORKER]
    )
    variables = {"id": world.inside.incident}
    for _ in range(2):  # and again, with the document cached and the other role in between
        seen = await police(PAGE, variables)
        assert "errors" not in seen
        assert seen["data"]["incident"]["operationalNotes"] is not None
        refused = await council(PAGE, variables)
        assert refused["data"]["incident"]["operationalNotes"] is None
        assert refused["data"]["incident"]["summary"] is not None
        assert _forbidden(refused) == {("incident", "operationalNotes")}


def _without_summary(tmp_path: Path) -> Path:
    """The shipped agreement, except that a council social worker no longer sees a summary."""
    text = default_path().read_text()
    council = tomllib.loads(text)["roles"]["council_social_worker"]["fields"]["Incident"]
    assert "summary" in council
    line = "Incident = [" + ", ".join(f'"{f}"' for f in council) + "]"
    assert line in text, "the test edits the council's Incident line as written"
    kept = ", ".join(f'"{f}"' for f in council if f != "summary")
    changed = tmp_path / "agreement.toml"
    changed.write_text(text.replace(line, f"Incident = [{kept}]"))
    return changed


async def test_a_changed_agreement_is_enforced_as_changed(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, tmp_path: Path
) -> None:
    from hub.app import create_app  # noqa: PLC0415 - as the live server fixture does

    port = free_port()
    settings = Settings(
        database_url=live_server.settings.database_url,
        data_dir=live_server.settings.data_dir,
        issuer=f"http://127.0.0.1:{port}",
        rate_limits=live_server.settings.rate_limits,
        webhook_dispatch=False,
        agreement_file=_without_summary(tmp_path),
    )
    changed = LiveServer(
        settings=settings,
        url=f"http://127.0.0.1:{port}",
        app=create_app(settings),
        keys=KeySet.for_settings(settings),
    )
    server, thread = serve(changed.app, port, settings)
    try:
        org = ORGANISATION_OF[Role.COUNCIL_SOCIAL_WORKER]
        variables = {"id": world.inside.incident}
        shipped = GraphQLClient(
            http, live_server, live_server.token(Role.COUNCIL_SOCIAL_WORKER, org)
        )
        edited = GraphQLClient(http, changed, changed.token(Role.COUNCIL_SOCIAL_WORKER, org))
        for _ in range(2):
            before = await shipped(PAGE, variables)
            assert before["data"]["incident"]["summary"] is not None
            assert ("incident", "summary") not in _forbidden(before)
            after = await edited(PAGE, variables)
            assert after["data"]["incident"]["summary"] is None
            assert ("incident", "summary") in _forbidden(after)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
