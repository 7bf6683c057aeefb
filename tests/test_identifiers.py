"""Identifiers that must not leak (issue 12, items 4 to 6), over real HTTP.

An auditor sees children only by pseudonym, wherever a child's id would appear; a school reaches
a pupil through `_entities` only as a root field would (an Operation Encompass notice); a cursor
carries no record id and opens only for the list and the caller it was given to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from hub.access.models import Role
from hub.audit.service import pseudonym
from hub.cursors import Caller, CursorSeal
from hub.db import Database
from hub.graphql.connection import Connection, _end_sealed
from hub.pagination import Page
from tests.conftest import GraphQLClient, LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_COUNCIL,
    RECORD_MISSING,
    REPORT_INCIDENT,
    child,
    incident,
    missing_episode,
)
from tests.scenario import SCHOOL, World
from tests.test_subscriptions import CHANGES, WAIT, _latest_cursor, _next, _push, _ws_url

INVALID_AFTER = {"code": "INVALID_INPUT", "field": "after"}


def _client(http: httpx.AsyncClient, server: LiveServer, role: Role, org: str) -> GraphQLClient:
    return GraphQLClient(http, server, server.token(role, org))


async def _pushed(
    http: httpx.AsyncClient, server: LiveServer, mutation: str, payload: dict[str, Any]
) -> dict[str, Any]:
    police = _client(http, server, Role.POLICE_OFFICER, FORCE)
    body = await police(mutation, {"input": payload})
    assert "errors" not in body, body
    pushed: dict[str, Any] = next(iter(body["data"].values()))
    return pushed


# --- item 4: an auditor never sees a child's hub id ---------------------------------------------

CHILD_ACCESSES = """{ accessEvents(filter: {recordType: "Child"}, first: 100) {
  edges { cursor node { recordType recordId children fields } } } }"""


async def test_an_auditor_sees_a_childs_record_only_by_pseudonym(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    child_id = world.inside.child
    council = _client(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    read = await council("query($c: ID!) { child(id: $c) { id givenName } }", {"c": child_id})
    assert read["data"]["child"]["id"] == child_id
    auditor = _client(http, live_server, Role.AUDITOR, "OFSTED")
    body = await auditor(CHILD_ACCESSES)
    assert "errors" not in body, body
    nodes = [e["node"] for e in body["data"]["accessEvents"]["edges"]]
    key = live_server.settings.pseudonym_key.get_secret_value()
    alias = pseudonym(child_id, key=key)
    assert {"recordType": "Child", "recordId": alias} in [
        {"recordType": n["recordType"], "recordId": n["recordId"]} for n in nodes
    ]
    assert child_id not in json.dumps(body)


async def test_an_auditor_cannot_confirm_a_child_by_its_hub_id(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    child_id = world.inside.child
    auditor = _client(http, live_server, Role.AUDITOR, "OFSTED")
    asks = [
        'accessEvents(filter: {recordType: "Child", recordId: $id})',
        "accessEvents(filter: {recordId: $id})",
        'recordAccessHistory(recordType: "Child", recordId: $id)',
    ]
    for ask in asks:
        body = await auditor(
            f"query($id: ID!) {{ {ask} {{ edges {{ cursor }} }} }}", {"id": child_id}
        )
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        assert child_id not in json.dumps(body)
    incident_history = await auditor(
        'query($id: ID!) { recordAccessHistory(recordType: "Incident", recordId: $id) '
        "{ edges { cursor } } }",
        {"id": world.inside.incident},
    )
    assert "errors" not in incident_history, incident_history


async def test_a_dpo_still_sees_its_childs_record_by_id(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    council = _client(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    await council("query($c: ID!) { child(id: $c) { id } }", {"c": world.inside.child})
    dpo = _client(http, live_server, Role.DPO, COUNCIL)
    body = await dpo(
        'query($c: ID!) { recordAccessHistory(recordType: "Child", recordId: $c) '
        "{ edges { node { recordId } } } }",
        {"c": world.inside.child},
    )
    ids = {e["node"]["recordId"] for e in body["data"]["recordAccessHistory"]["edges"]}
    assert ids == {world.inside.child}


# --- item 5: `_entities` rows are the root fields' rows ------------------------------------------

PUPIL = "... on Child { id givenName familyName dateOfBirth }"


async def test_a_school_reaches_through_entities_only_pupils_in_a_domestic_abuse_notice(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    neglect = await _pushed(
        http,
        live_server,
        REPORT_INCIDENT,
        incident(
            unique("ID-NEG"),
            type="NEGLECT",
            children=[{"child": child(unique("ID-NP"), school=SCHOOL), "present": True}],
        ),
    )
    neglected = neglect["children"][0]["child"]["id"]
    episode = await _pushed(
        http,
        live_server,
        RECORD_MISSING,
        missing_episode(unique("ID-MISS"), child_input=child(unique("ID-MP"), school=SCHOOL)),
    )
    on_the_roll_only = episode["child"]["id"]
    school = _client(http, live_server, Role.SCHOOL_DSL, SCHOOL)
    wanted = [world.inside.child, neglected, on_the_roll_only]
    body = await school(
        f"query($r: [_Any!]!) {{ _entities(representations: $r) {{ {PUPIL} }} }}",
        {"r": [{"__typename": "Child", "id": i} for i in wanted]},
    )
    assert "errors" not in body, body
    notice, neglect_pupil, roll_pupil = body["data"]["_entities"]
    assert notice == {
        "id": world.inside.child,
        "givenName": "Alex",
        "familyName": "Example",
        "dateOfBirth": "2015-03-04",
    }
    assert neglect_pupil is None
    assert roll_pupil is None


# --- item 6: cursors are sealed, and bound to the list and the caller ----------------------------

PAGE = """query($first: Int, $after: String) { incidents(first: $first, after: $after) {
  edges { cursor node { id children { child { id } } } } pageInfo { endCursor } } }"""


def _unpadded(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def test_a_page_of_cursors_names_no_record(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    police = _client(http, live_server, Role.POLICE_OFFICER, FORCE)
    body = await police(PAGE, {"first": 100})
    edges = body["data"]["incidents"]["edges"]
    assert world.inside.incident in [e["node"]["id"] for e in edges]
    ids = {e["node"]["id"] for e in edges}
    ids |= {c["child"]["id"] for e in edges for c in e["node"]["children"]}
    for edge in edges:
        opened = _unpadded(edge["cursor"])
        assert not [i for i in ids if i.encode() in opened or i in edge["cursor"]]


@pytest.mark.usefixtures("world")
async def test_a_sealed_cursor_still_pages(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    police = _client(http, live_server, Role.POLICE_OFFICER, FORCE)
    whole = await police(PAGE, {"first": 4})
    first = await police(PAGE, {"first": 2})
    # The same organisation in the same role, another token and person: the cursor still opens.
    colleague = GraphQLClient(
        http, live_server, live_server.token(Role.POLICE_OFFICER, FORCE, user="another-officer")
    )
    after = first["data"]["incidents"]["pageInfo"]["endCursor"]
    rest = await colleague(PAGE, {"first": 2, "after": after})
    assert "errors" not in rest, rest
    paged = [e["node"]["id"] for e in first["data"]["incidents"]["edges"]]
    paged += [e["node"]["id"] for e in rest["data"]["incidents"]["edges"]]
    assert paged == [e["node"]["id"] for e in whole["data"]["incidents"]["edges"]]


class _CountedSeal(CursorSeal):
    def __init__(self) -> None:
        super().__init__(bytes(32))
        self.sealed: list[str] = []

    def seal(self, position: str, *, binding: bytes) -> str:
        self.sealed.append(position)
        return super().seal(position, binding=binding)


def test_a_page_seals_a_cursor_only_where_one_is_read() -> None:
    seal = _CountedSeal()
    cursors = seal.for_list("incidents", Caller("E08000025", "council_social_worker"))
    page = Page(items=["a", "b"], positions=["p1", "p2"], has_next_page=True)
    connection = Connection.of(page, str.upper, cursors)
    assert [edge.node for edge in connection.edges] == ["A", "B"]
    assert seal.sealed == []  # a page read for its nodes alone seals nothing
    end = _end_sealed(connection.page_info)
    assert seal.sealed == ["p2"]
    assert end is not None
    assert cursors.open(end) == "p2"
    empty = Connection.of(Page(items=[], positions=[], has_next_page=False), str, cursors)
    assert _end_sealed(empty.page_info) is None
    assert seal.sealed == ["p2"]


async def test_a_forged_tampered_foreign_or_misplaced_cursor_is_refused(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    police = _client(http, live_server, Role.POLICE_OFFICER, FORCE)
    council = _client(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    page = await police(PAGE, {"first": 100})
    (edge,) = [
        e for e in page["data"]["incidents"]["edges"] if e["node"]["id"] == world.inside.incident
    ]
    cursor = edge["cursor"]
    middle = len(cursor) // 2
    tampered = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    # What a cursor used to be: base64 of "c1:<id>", here of a record the police may see.
    forged = base64.urlsafe_b64encode(f"c1:{world.inside.incident}".encode()).decode()
    for bad in (tampered, forged.rstrip("="), "not a cursor", ""):
        refused = await police(PAGE, {"first": 1, "after": bad})
        assert refused["errors"][0]["extensions"] == INVALID_AFTER, (bad, refused)
    # The incident is the council's too (in its area): its cursor is still the police's own.
    assert world.inside.incident in [
        e["node"]["id"] for e in (await council(PAGE, {"first": 100}))["data"]["incidents"]["edges"]
    ]
    foreign = await council(PAGE, {"first": 1, "after": cursor})
    assert foreign["errors"][0]["extensions"] == INVALID_AFTER
    elsewhere = await police(
        "query($a: String) { missingEpisodes(after: $a) { edges { cursor } } }", {"a": cursor}
    )
    assert elsewhere["errors"][0]["extensions"] == INVALID_AFTER


async def test_access_event_cursors_are_sealed_and_bound_to_their_list(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    auditor = _client(http, live_server, Role.AUDITOR, "OFSTED")
    page = await auditor(
        "{ accessEvents(first: 2) { edges { cursor node { sequence } } pageInfo { endCursor } } }"
    )
    edges = page["data"]["accessEvents"]["edges"]
    for edge in edges:
        assert f"{edge['node']['sequence']}:".encode() not in _unpadded(edge["cursor"])
    after = page["data"]["accessEvents"]["pageInfo"]["endCursor"]
    nxt = await auditor(
        "query($a: String) { accessEvents(first: 1, after: $a) { edges { node { sequence } } } }",
        {"a": after},
    )
    (following,) = nxt["data"]["accessEvents"]["edges"]
    assert int(following["node"]["sequence"]) <= int(edges[-1]["node"]["sequence"])
    history = await auditor(
        'query($a: String, $r: ID!) { recordAccessHistory(recordType: "Incident", '
        "recordId: $r, after: $a) { edges { cursor } } }",
        {"a": after, "r": world.inside.incident},
    )
    assert history["errors"][0]["extensions"] == INVALID_AFTER


@asynccontextmanager
async def _subscribed(server: LiveServer, org: str, after: str) -> AsyncIterator[ClientConnection]:
    token = server.token(Role.COUNCIL_SOCIAL_WORKER, org, user=f"worker-{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": str(uuid.uuid4())}
    async with connect(
        _ws_url(server), subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def test_a_sealed_resume_cursor_misses_nothing_and_is_the_councils_alone(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    after = await _latest_cursor(db, live_server)
    first = await _push(http, live_server, incident(unique("ID-RES-1")))
    async with _subscribed(live_server, COUNCIL, after) as ws:
        one = (await _next(ws))["data"]["recordChanges"]
    assert one["record"]["id"] == first
    assert b"change" not in _unpadded(one["cursor"])
    second = await _push(http, live_server, incident(unique("ID-RES-2")))
    # A fresh token for another person at the same council resumes where the last one stopped.
    async with _subscribed(live_server, COUNCIL, one["cursor"]) as ws:
        two = (await _next(ws))["data"]["recordChanges"]
    assert two["record"]["id"] == second
    async with _subscribed(live_server, OTHER_COUNCIL, one["cursor"]) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == INVALID_AFTER
