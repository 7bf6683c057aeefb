"""A page the database writes as its JSON (`hub.graphql.compiled`) is the page the executor's
way gives: the same response, key by key and in order, and the same audit, for every role.

Two hubs serve the same database: the suite's own (pages written where they can be) and one
with `compiled_reads` off (every page the executor's way). Each document is asked of both by
each role; their answers must be equal (less the cursors, sealed by each process's own key
material), and so must what each wrote to the audit for it.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

from hub.access.models import Role
from hub.db import Database
from hub.graphql import compiled
from hub.graphql.documents import Recent
from hub.graphql.schema import build_schema
from hub.settings import Settings
from tests.conftest import LiveServer, audit_events_of, free_port, serve, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, child, incident
from tests.scenario import ORGANISATION_OF, World
from tests.scenario import _push as push

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAGE = """query Page($first: Int!) {
  incidents(first: $first) { edges { node {
    id policeReference type occurredAt recordedAt sharedAt dashRisk summary
    force { name } locationCouncil { name }
    children { present victim child { id givenName familyName dateOfBirth } } } } } }"""
# Aliases, a fragment, the type's name, a nested field asked twice, children with and without
# their child, and a police-only field (refused to others: their page goes the executor's way).
SHAPES = """query Shapes($first: Int!) {
  incidents(first: $first) { pageInfo { hasNextPage } edges { cursor node {
    __typename key: id ...Told force { id name } force { onsCode kind nation }
    children { present }
    kids: children { householdMember child { __typename id nhsNumber lookedAfter } }
  } } } }
fragment Told on Incident { type dashRisk recordedAt gist: summary }"""
POLICE_ONLY = """query Police($first: Int!) {
  incidents(first: $first) { edges { node { id operationalNotes summary } } } }"""
# A field the database does not write (a child's council, a record of its own): the
# executor's way, whole.
NOT_WRITTEN = """query Councils($first: Int!) {
  incidents(first: $first) { edges { node { id summary force { kind name }
    children { child { id responsibleCouncil { name } } } } } } }"""
# Beside a root field refused to most roles: the response has errors, so the audit finds what
# reached the data by walking it, into the written records too (`ServedRecords.released`).
BESIDE_REFUSED = """query Beside($first: Int!) {
  incidents(first: $first) { edges { node { id summary children { child { id } } } } }
  accessEvents(first: 1) { edges { node { operation } } } }"""
# What a school sees of incidents (auth/agreement.toml), all of it written by the database.
SCHOOL_PAGE = """query Pupils($first: Int!) { incidents(first: $first) { edges { node {
  id type occurredAt children { present child { id givenName familyName dateOfBirth } } } } } }"""
DOCUMENTS = {
    "page": PAGE,
    "school_page": SCHOOL_PAGE,
    "shapes": SHAPES,
    "police_only": POLICE_ONLY,
    "not_written": NOT_WRITTEN,
    "beside_refused": BESIDE_REFUSED,
}
# Those the database writes for a council: every field listed in `compiled.COLUMNS` (an
# organisation's kind and nation too), none the agreement refuses it.
COUNCIL_WRITTEN = frozenset({"page", "school_page", "shapes", "beside_refused"})
ROLES = (Role.COUNCIL_SOCIAL_WORKER, Role.SCHOOL_DSL, Role.POLICE_OFFICER, Role.AUDITOR)
WRITTEN = "served__"  # the column a written page's statement carries


def _beside(live_server: LiveServer, settings: Settings, app: Any) -> Iterator[LiveServer]:
    """`app` served beside the suite's hub, on its database; it accepts the suite's tokens
    (same keys, same issuer)."""
    port = free_port()
    server, thread = serve(app, port, settings)
    yield LiveServer(
        settings=settings, url=f"http://127.0.0.1:{port}", app=app, keys=live_server.keys
    )
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def plain_server(live_server: LiveServer) -> Iterator[LiveServer]:
    """A second hub, its pages never written by the database."""
    from hub.app import create_app  # noqa: PLC0415

    settings = live_server.settings.model_copy(update={"compiled_reads": False})
    assert isinstance(settings, Settings)
    yield from _beside(live_server, settings, create_app(settings))


class Watching(SchemaExtension):
    """graphql middleware (an extension's `resolve`): it sees every field completed, so the
    executor must complete each field by field, and no page may be written for it."""

    seen: ClassVar[collections.Counter[tuple[str, str]]] = collections.Counter()

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        Watching.seen[info.parent_type.name, info.field_name] += 1
        return _next(root, info, *args, **kwargs)


@pytest.fixture(scope="module")
def watched_server(live_server: LiveServer) -> Iterator[LiveServer]:
    """A second hub, writing pages where it can, whose schema has graphql middleware."""
    from hub import app as hub_app  # noqa: PLC0415

    def watched(settings: Settings) -> Any:
        schema = build_schema(settings)
        schema.extensions = [*schema.extensions, Watching]
        return schema

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub_app, "build_schema", watched)
        app = hub_app.create_app(live_server.settings)
    yield from _beside(live_server, live_server.settings, app)


@pytest.fixture(scope="module")
async def pushed(live_server: LiveServer, world: World) -> list[str]:
    """Incidents beside the world's: times on the whole second (isoformat leaves out the
    fraction) and no risk recorded; three children; their ids."""
    async with httpx.AsyncClient(timeout=30) as http:
        whole = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)
        payloads = [
            incident(
                unique("CMP-WHOLE"),
                occurredAt=(whole - dt.timedelta(hours=2)).isoformat(),
                recordedAt=(whole - dt.timedelta(hours=1)).isoformat(),
                dashRisk=None,
            ),
            incident(
                unique("CMP-THREE"),
                children=[
                    {"child": child(unique("CMP-C"), council=COUNCIL), "victim": True},
                    {"child": child(unique("CMP-C"), council=COUNCIL, nhsNumber=None)},
                    {"child": child(unique("CMP-C"), council=COUNCIL), "present": True},
                ],
            ),
        ]
        return [
            (await push(http, live_server, FORCE, REPORT_INCIDENT, payload))["id"]
            for payload in payloads
        ]


async def _ask(
    http: httpx.AsyncClient, server: LiveServer, role: Role, document: str
) -> tuple[Any, str]:
    request_id = str(uuid.uuid4())
    response = await http.post(
        server.graphql_url,
        headers={
            "Authorization": f"Bearer {server.token(role, ORGANISATION_OF[role])}",
            "X-Request-Id": request_id,
        },
        json={"query": document, "variables": {"first": 50}},
    )
    assert response.status_code == 200, response.text
    # Pairs, not dicts: the order of keys is compared too.
    return json.loads(response.text, object_pairs_hook=_without_cursors), request_id


def _without_cursors(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in pairs if key != "cursor"]


def _objects(answer: Any) -> Any:
    """An answer `_ask` read as pairs, as dicts and lists again (its pairs are tuples)."""
    if isinstance(answer, list):
        if answer and all(isinstance(item, tuple) for item in answer):
            return {key: _objects(value) for key, value in answer}
        return [_objects(item) for item in answer]
    return answer


async def _audited(db: Database, request_id: str) -> list[tuple[Any, ...]]:
    return [
        (e.operation, e.outcome, e.record_type, e.record_id, e.records, e.child_ids, e.fields)
        for e in await audit_events_of(db, request_id)
    ]


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
@pytest.mark.parametrize("name", DOCUMENTS)
async def test_a_written_page_is_the_page_the_executor_gives(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    plain_server: LiveServer,
    db: Database,
    pushed: list[str],
    name: str,
    role: Role,
) -> None:
    document = DOCUMENTS[name]
    live_server.statements.clear()
    written, written_id = await _ask(http, live_server, role, document)
    was_written = any(WRITTEN in statement for statement in live_server.statements)
    plain, plain_id = await _ask(http, plain_server, role, document)
    assert written == plain
    if role is Role.COUNCIL_SOCIAL_WORKER:  # sees every field but the police's own
        assert was_written == (name in COUNCIL_WRITTEN), (name, was_written)
    assert await _audited(db, written_id) == await _audited(db, plain_id)
    assert await _audited(db, written_id), "a page's read is audited"


async def test_the_council_page_is_written_by_the_database_and_lists_every_record(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    plain_server: LiveServer,
    db: Database,
    pushed: list[str],
) -> None:
    """The page the issue measures goes the written way (its statement carries the JSON), and
    its event names each incident and each child it shows, with their fields."""
    live_server.statements.clear()
    body, request_id = await _ask(http, live_server, Role.COUNCIL_SOCIAL_WORKER, PAGE)
    assert any(WRITTEN in statement for statement in live_server.statements)
    nodes = [
        dict(dict(edge)["node"]) for edge in dict(dict(dict(body)["data"])["incidents"])["edges"]
    ]
    assert set(pushed) <= {node["id"] for node in nodes}
    three = next(node for node in nodes if node["id"] == pushed[1])
    assert [dict(dict(link)["child"])["id"] for link in three["children"]] == sorted(
        dict(dict(link)["child"])["id"] for link in three["children"]
    )
    whole = next(node for node in nodes if node["id"] == pushed[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", whole["occurredAt"])
    assert whole["dashRisk"] is None
    [event] = [e for e in await audit_events_of(db, request_id) if e.outcome == "served"]
    records = json.loads(event.records)
    served = {(r["type"], r["id"]): r for r in records}
    for node in nodes:
        incident_record = served[("Incident", node["id"])]
        kids = [dict(dict(link)["child"])["id"] for link in node["children"]]
        assert incident_record["children"] == sorted(kids)
        for kid in kids:
            assert served[("Child", kid)]["fields"] == [
                "dateOfBirth",
                "familyName",
                "givenName",
                "id",
            ]


async def test_a_school_is_written_only_its_pupils_and_audited_for_every_child(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    """A school's page, written, shows its pupils among an incident's children, not the
    rest; the incident's event still names all its children (looked up: the page's are not
    all). (The issue's page names fields a school does not see: it goes field by field.)"""
    live_server.statements.clear()
    body, request_id = await _ask(http, live_server, Role.SCHOOL_DSL, SCHOOL_PAGE)
    assert any(WRITTEN in statement for statement in live_server.statements)
    nodes = [
        dict(dict(edge)["node"]) for edge in dict(dict(dict(body)["data"])["incidents"])["edges"]
    ]
    mine = next(node for node in nodes if node["id"] == world.inside.incident)
    assert [dict(dict(link)["child"])["id"] for link in mine["children"]] == [world.inside.child]
    [event] = [e for e in await audit_events_of(db, request_id) if e.outcome == "served"]
    records = {(r["type"], r["id"]): r for r in json.loads(event.records)}
    assert records[("Incident", mine["id"])]["children"] == sorted(
        [world.inside.child, world.inside.sibling]
    )
    assert ("Child", world.inside.sibling) not in records


async def test_a_selection_a_variable_decides_is_never_written_from_another_requests(
    http: httpx.AsyncClient, live_server: LiveServer, plain_server: LiveServer, pushed: list[str]
) -> None:
    """The same text with `@include` answered one way, then the other: each answer is the
    executor's own (what depends on variables is never written, so never kept)."""
    document = """query Maybe($first: Int!, $with: Boolean!) { incidents(first: $first) {
      edges { node { id
        ... on Incident @include(if: $with) { summary children { child { id } } } } } } }"""
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    for including in (True, False, True):
        answers = []
        for server in (live_server, plain_server):
            response = await http.post(
                server.graphql_url,
                headers={"Authorization": f"Bearer {token}"},
                json={"query": document, "variables": {"first": 50, "with": including}},
            )
            answers.append(json.loads(response.text, object_pairs_hook=_without_cursors))
        assert answers[0] == answers[1]
        node = dict(dict(dict(dict(answers[0])["data"])["incidents"])["edges"][0])["node"]
        assert ("summary" in dict(node)) is including


# Random selections over what the database writes, and a little it does not (a child's
# `responsibleCouncil`): aliases, inline fragments and nested fields at every level.
_FIELDS: dict[str, list[str]] = {
    "Incident": [
        "id",
        "policeReference",
        "type",
        "occurredAt",
        "recordedAt",
        "sharedAt",
        "dashRisk",
        "summary",
        "operationalNotes",
        "__typename",
        "force",
        "locationCouncil",
        "children",
    ],
    "Organisation": ["id", "name", "onsCode", "__typename", "kind", "nation"],
    "IncidentChild": ["present", "householdMember", "victim", "__typename", "child"],
    "Child": [
        "id",
        "givenName",
        "familyName",
        "dateOfBirth",
        "nhsNumber",
        "lookedAfter",
        "__typename",
        "responsibleCouncil",
    ],
}
_INNER = {
    "force": "Organisation",
    "locationCouncil": "Organisation",
    "responsibleCouncil": "Organisation",
    "children": "IncidentChild",
    "child": "Child",
}


def _selection(chance: random.Random, type_name: str, depth: int) -> str:
    picked = chance.sample(_FIELDS[type_name], chance.randint(1, 4))
    parts = []
    for index, field in enumerate(picked):
        text = field
        if field in _INNER:
            if depth > 2:
                continue
            text = f"{field} {{ {_selection(chance, _INNER[field], depth + 1)} }}"
        if chance.random() < 0.3:
            text = f"k{depth}_{index}: {text}"
        if chance.random() < 0.2:
            text = f"... on {type_name} {{ {text} }}"
        parts.append(text)
    return " ".join(parts) or "__typename"


def _random_documents(count: int) -> list[str]:
    chance = random.Random(16)  # the number: the same documents every run
    return [
        "query Random($first: Int!) { incidents(first: $first) { edges { node { "
        + _selection(chance, "Incident", 0)
        + " } } } }"
        for _ in range(count)
    ]


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
async def test_random_selections_are_the_pages_the_executor_gives(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    plain_server: LiveServer,
    db: Database,
    pushed: list[str],
    role: Role,
) -> None:
    written_any = False
    for document in _random_documents(16):
        live_server.statements.clear()
        written, written_id = await _ask(http, live_server, role, document)
        written_any = written_any or any(WRITTEN in s for s in live_server.statements)
        plain, plain_id = await _ask(http, plain_server, role, document)
        assert written == plain, document
        assert await _audited(db, written_id) == await _audited(db, plain_id), document
    if role is not Role.AUDITOR:  # an inspectorate's view refuses most fields: never written
        assert written_any, "no random selection was written: the test compares nothing"


async def test_a_spec_made_again_is_found_equal_when_the_first_was_forgotten(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    plain_server: LiveServer,
    pushed: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing interned (every spec its own object), the resolver's and the executor's
    specs for the same selection are equal, not the same: the page is still written, with no
    statement of the executor's way (its children's loads)."""
    monkeypatch.setattr(compiled, "_INTERNED", Recent(maxsize=0))
    # A text no earlier request made: nothing of it is kept yet.
    document = PAGE.replace("summary", f"summary {unique('a').replace('-', '_').lower()}: id")
    live_server.statements.clear()
    written, _ = await _ask(http, live_server, Role.COUNCIL_SOCIAL_WORKER, document)
    plain, _ = await _ask(http, plain_server, Role.COUNCIL_SOCIAL_WORKER, document)
    assert written == plain
    reads = [s for s in live_server.statements if "incident_child" in s]
    assert reads, live_server.statements
    assert all(WRITTEN in s for s in reads), reads


async def test_a_record_written_for_another_selection_is_an_error_not_a_page(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    pushed: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A written row carries its JSON, its id and its force's code, nothing to complete it
    by field by field: met by a selection it was not written for (never so, unless the two
    sides' working out parts), the executor refuses it with an internal error. No record's
    data leaves, and none is audited as served."""
    made = compiled.Served.of

    def other(row: Any, spec: Any, *, every_child: bool) -> compiled.Served:
        served = made(row, spec, every_child=every_child)
        return dataclasses.replace(served, spec=(*spec, ("other", ("typename", "Incident"))))

    monkeypatch.setattr(compiled.Served, "of", other)
    live_server.statements.clear()
    body, request_id = await _ask(http, live_server, Role.COUNCIL_SOCIAL_WORKER, PAGE)
    assert any(WRITTEN in statement for statement in live_server.statements)
    found = dict(body)
    assert found["data"] == [("incidents", None)], found
    [error] = [dict(e) for e in found["errors"]]
    assert dict(error["extensions"])["code"] == "INTERNAL", error
    assert "Traceback" not in json.dumps(body)
    assert "written" not in error["message"]
    served = [e for e in await audit_events_of(db, request_id) if e.outcome == "served"]
    assert served == [], served


async def test_a_hub_with_graphql_middleware_completes_every_field_for_it(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    watched_server: LiveServer,
    db: Database,
    pushed: list[str],
) -> None:
    """Middleware must see each field: a hub with some never writes a page (`compiled.spec_of`)
    nor reads a plain field past it (`HubExecutor._plan`). Its answer and audit are the page
    the suite's hub writes."""
    live_server.statements.clear()
    written, written_id = await _ask(http, live_server, Role.COUNCIL_SOCIAL_WORKER, PAGE)
    assert any(WRITTEN in statement for statement in live_server.statements)
    Watching.seen.clear()
    watched, watched_id = await _ask(http, watched_server, Role.COUNCIL_SOCIAL_WORKER, PAGE)
    assert watched == written
    nodes = [edge["node"] for edge in _objects(watched)["data"]["incidents"]["edges"]]
    assert set(pushed) <= {node["id"] for node in nodes}, "the pushed incidents were not served"
    children = sum(len(node["children"]) for node in nodes)
    seen = Watching.seen
    assert seen["Incident", "summary"] == seen["Incident", "occurredAt"] == len(nodes), seen
    assert seen["Organisation", "name"] == 2 * len(nodes), seen
    assert seen["IncidentChild", "victim"] == children > 0, seen
    assert seen["Child", "givenName"] == seen["Child", "dateOfBirth"] == children, seen
    assert await _audited(db, watched_id) == await _audited(db, written_id)


async def test_a_written_page_after_a_cursor_is_the_executor_page_after_it(
    http: httpx.AsyncClient, live_server: LiveServer, plain_server: LiveServer, pushed: list[str]
) -> None:
    """Paging on: the page after the first, written, is the plain hub's page after its own."""
    document = """query Next($first: Int!, $after: String) {
      incidents(first: $first, after: $after) { pageInfo { hasNextPage endCursor }
        edges { node { id occurredAt children { victim child { id } } } } } }"""
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    pages = []
    live_server.statements.clear()
    for server in (live_server, plain_server):
        after, seen, more = None, [], True
        while more:
            response = await http.post(
                server.graphql_url,
                headers={"Authorization": f"Bearer {token}"},
                json={"query": document, "variables": {"first": 2, "after": after}},
            )
            body = response.json()
            assert "errors" not in body, body
            found = body["data"]["incidents"]
            seen.append([edge["node"] for edge in found["edges"]])
            after, more = found["pageInfo"]["endCursor"], found["pageInfo"]["hasNextPage"]
            assert len(seen) < 50, "paging never ended"
        pages.append(seen)
    assert pages[0] == pages[1]
    # Every page of the writing hub, the first and those after a cursor, was written.
    assert sum(WRITTEN in statement for statement in live_server.statements) == len(pages[0])
    ids = [node["id"] for page in pages[0] for node in page]
    assert len(pages[0]) >= 2, "the page after the first was never asked for"
    assert len(set(ids)) == len(ids)
    assert set(pushed) <= set(ids)
