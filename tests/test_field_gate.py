"""The field gate decides per request, from the caller's own policy: no decision outlives it.

The executor decides once per selection which fields a role may not have, and keeps the
selection for the next request made from the same document by the same role under the same
agreement; the parsed document is cached across requests. Neither another role sending the same
document nor a hub serving a changed agreement may meet a decision made for someone else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx

from hub.access.agreement import Agreement, default_path
from hub.access.keys import KeySet
from hub.access.models import Role
from hub.graphql.schema import build_schema
from hub.settings import Settings
from tests.conftest import GraphQLClient, LiveServer, free_port, serve
from tests.scenario import ORGANISATION_OF, World

SCHEMA = build_schema(Settings())._schema
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


LIST = "{ incidents(first: 5) { edges { node { id summary children { victim } } } } }"


async def test_a_hub_whose_agreement_changes_keeps_no_decision_made_under_the_last(
    as_role: Any, live_server: LiveServer, world: World, tmp_path: Path
) -> None:
    """The executor keeps a document's selections for the schema, with the gate's decisions
    in them, per agreement and role: the same hub, its agreement swapped in place, decides
    the same documents afresh, and again when the shipped one is back."""
    council: GraphQLClient = as_role(
        Role.COUNCIL_SOCIAL_WORKER, ORGANISATION_OF[Role.COUNCIL_SOCIAL_WORKER]
    )
    variables = {"id": world.inside.incident}
    hub = live_server.app.app.state.hub  # inside the body limit
    shipped = hub.agreement
    edited = Agreement.load(_without_summary(tmp_path), SCHEMA)

    async def summaries() -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        one = await council(PAGE, variables)
        listed = await council(LIST)
        assert listed["data"]["incidents"]["edges"], "the council sees some incidents"
        return _forbidden(one), {path[-1:] for path in _forbidden(listed)}

    notes = ("incident", "operationalNotes")  # never the council's
    try:
        for _ in range(2):  # the second time, from the selections kept the first
            assert await summaries() == ({notes}, set())
        hub.agreement = edited
        for _ in range(2):
            assert await summaries() == ({notes, ("incident", "summary")}, {("summary",)})
        hub.agreement = shipped
        assert await summaries() == ({notes}, set())
    finally:
        hub.agreement = shipped
