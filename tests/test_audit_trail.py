"""Every record in every response is in the audit, exactly as the caller received it.

Queries are generated at random (roots, field subsets, aliases, nesting, roles); each response is
walked and compared with the events written for its request id: nothing missing, nothing extra.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from graphql import (
    GraphQLError,
    GraphQLObjectType,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from graphql.pyutils import Path
from sqlmodel import col

from hub.access.models import Role
from hub.audit import chain
from hub.audit.models import AuditChainHead, AuditEvent
from hub.audit.service import Access, accesses_of
from hub.db import Database
from hub.graphql.audit_trail import ServedRecords
from hub.graphql.executor import HubExecutor
from hub.graphql.schema import build_schema, query_limits
from hub.incidents.models import IncidentChild
from hub.settings import Settings
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_FORCE,
    REPORT_INCIDENT,
    UPDATE_MISSING,
    child,
    hours_ago,
    incident,
    iso,
)
from tests.scenario import ORGANISATION_OF, SCHOOL, World

SCHEMA = build_schema(Settings())._schema
AUDITED = {
    "Child",
    "Incident",
    "MissingEpisode",
    "Investigation",
    "ClosureReview",
    "JointVisitRequest",
    "PoliceProtection",
}
ROOTS = {  # root field -> (type, arguments builder)
    "incidents": "Incident",
    "missingEpisodes": "MissingEpisode",
    "investigations": "Investigation",
    "jointVisitRequests": "JointVisitRequest",
    "policeProtections": "PoliceProtection",
}


_ALIASES = itertools.count()


def _object_fields(type_name: str) -> dict[str, str | None]:
    """Field -> the object type it leads to (None for a leaf)."""
    graphql_type = SCHEMA.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType)
    fields: dict[str, str | None] = {}
    for name, field in graphql_type.fields.items():
        named = get_named_type(field.type)
        fields[name] = named.name if isinstance(named, GraphQLObjectType) else None
    return fields


def _selection(rng: random.Random, type_name: str, depth: int) -> str:
    """A random selection: __typename always (for the test's walk), some fields, some aliased."""
    parts = ["__typename @@ID@@" if type_name in AUDITED else "__typename"]
    for name, target in _object_fields(type_name).items():
        if rng.random() < 0.45:
            continue
        # Unique across the query: the walk maps each alias back to its field by name alone.
        alias = f"a{next(_ALIASES)}: " if rng.random() < 0.08 else ""
        if target is None:
            parts.append(f"{alias}{name}")
        elif depth > 0:
            parts.append(f"{alias}{name} {{ {_selection(rng, target, depth - 1)} }}")
    return " ".join(parts)


def _query(rng: random.Random, world: World) -> str:
    roots = []
    for root, type_name in ROOTS.items():
        if rng.random() < 0.6:
            roots.append(
                f"{root}(first: 5) {{ edges {{ node {{ {_selection(rng, type_name, 2)} }} }} }}"
            )
    if rng.random() < 0.5:
        roots.append(f'child(id: "{world.inside.child}") {{ {_selection(rng, "Child", 2)} }}')
    if rng.random() < 0.4:
        roots.append(
            f'e: incident(id: "{world.inside.incident}") {{ {_selection(rng, "Incident", 2)} }}'
        )
    return "{ " + " ".join(roots or ["viewer { role }"]) + " }"


def _expected(
    data: Any, errors: list[dict[str, Any]], query_fields: Any = None, path: tuple[Any, ...] = ()
) -> dict[tuple[str, str], set[str]]:
    """Walk the response: each audited object -> the fields it carries, less the redacted ones."""
    redacted = {tuple(e["path"]) for e in errors if e["extensions"]["code"] == "FORBIDDEN_FIELD"}
    found: dict[tuple[str, str], set[str]] = {}

    def walk(value: Any, where: tuple[Any, ...], context: dict[str, Any]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*where, index), context)
        elif isinstance(value, dict):
            type_name = value.get("__typename")
            if type_name in AUDITED:
                record_id = context["ids"][where]
                fields = {
                    context["names"][(*where, key)]
                    for key in value
                    if key != "__typename" and (*where, key) not in redacted
                }
                found.setdefault((type_name, record_id), set()).update(fields)
            for key, item in value.items():
                walk(item, (*where, key), context)

    walk(data, path, query_fields)
    return found


def _flat(access: Access) -> SimpleNamespace:
    """One access as a flat row: the event's columns with the record's in place of its own."""
    event = access.event
    columns = {name: getattr(event, name) for name in chain.EVENT_COLUMNS}
    return SimpleNamespace(
        **{
            **columns,
            "record_type": access.record_type,
            "record_id": access.record_id,
            "record_owner": access.record_owner,
            "fields": json.dumps(list(access.fields)),
            "child_ids": json.dumps(list(access.child_ids)),
        }
    )


async def _events(db: Database, request_id: str) -> list[SimpleNamespace]:
    """The request's accesses, one per record received (one for an event about none)."""
    async with db.transaction(write=False) as session:
        events = (
            await session.execute(
                sa.select(AuditEvent)
                .where(AuditEvent.request_id == request_id)
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        return [_flat(access) for event in events for access in reversed(accesses_of(event))]


async def _ask(
    http: httpx.AsyncClient, server: LiveServer, role: Role, query: str, org: str | None = None
) -> tuple[dict[str, Any], str]:
    request_id = str(uuid.uuid4())
    token = server.token(role, org or ORGANISATION_OF[role])
    response = await http.post(
        server.graphql_url,
        json={"query": query},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    body: dict[str, Any] = response.json()
    return body, request_id


def _with_ids(query: str) -> str:
    """The same query with `id` added to every audited selection, under a reserved alias.

    The walk needs each record's id; asking for it would make it a field the caller received,
    so each generated query runs twice: as generated (what is compared with the audit) and with
    ids (the map from places in the response to records).
    """
    return query.replace("@@ID@@", "id")


def _places(data: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    ids: dict[tuple[Any, ...], str] = {}
    if isinstance(data, list):
        for index, item in enumerate(data):
            ids.update(_places(item, (*path, index)))
    elif isinstance(data, dict):
        if data.get("__typename") in AUDITED and data.get("id"):
            ids[path] = data["id"]
        for key, item in data.items():
            ids.update(_places(item, (*path, key)))
    return ids


@pytest.mark.parametrize("seed", range(12))
async def test_every_record_in_every_response_is_audited_as_received(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World, seed: int
) -> None:
    rng = random.Random(seed)
    role = rng.choice([Role.POLICE_OFFICER, Role.COUNCIL_SOCIAL_WORKER, Role.SCHOOL_DSL])
    query = _query(rng, world)
    located, _ = await _ask(http, live_server, role, _with_ids(query))
    query = query.replace("@@ID@@", "")
    body, request_id = await _ask(http, live_server, role, query)
    ids = _places(located.get("data"))
    names = _response_names(query)
    expected = _expected(body.get("data"), body.get("errors", []), {"ids": ids, "names": names})
    events = await _events(db, request_id)
    served = {
        (e.record_type, e.record_id): set(json.loads(e.fields))
        for e in events
        if e.outcome == "served"
    }
    assert served == expected, query
    assert all(e.operation == "consultation" for e in events)
    assert len({(e.record_type, e.record_id) for e in events if e.outcome == "served"}) == len(
        [e for e in events if e.outcome == "served"]
    ), "one event per record"


class _Names(dict[tuple[Any, ...], str]):
    """Response key -> field name, for any place: aliases are `aN: field`."""

    def __init__(self, aliases: dict[str, str]) -> None:
        super().__init__()
        self.aliases = aliases

    def __missing__(self, place: tuple[Any, ...]) -> str:
        key = str(place[-1])
        return self.aliases.get(key, key)


def _response_names(query: str) -> _Names:
    tokens = query.replace("{", " ").replace("}", " ").split()
    aliases = {
        tokens[i][:-1]: tokens[i + 1]
        for i in range(len(tokens) - 1)
        if tokens[i].endswith(":") and tokens[i][:-1].startswith("a")
    }
    return _Names(aliases)


async def test_a_record_is_audited_with_only_the_fields_received(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    body, request_id = await _ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        f'{{ incident(id: "{world.inside.incident}") {{ type operationalNotes }} }}',
    )
    assert body["data"]["incident"] == {"type": "DOMESTIC_ABUSE", "operationalNotes": None}
    events = await _events(db, request_id)
    served = [e for e in events if e.outcome == "served"]
    assert [(e.record_type, e.record_id, json.loads(e.fields)) for e in served] == [
        ("Incident", world.inside.incident, ["type"])
    ]
    assert sorted(json.loads(served[0].child_ids)) == sorted(
        [world.inside.child, world.inside.sibling]
    )
    assert served[0].record_owner == FORCE
    assert (served[0].user, served[0].purpose, served[0].role) == (
        "test-user",
        "section_47_enquiry",
        "council_social_worker",
    )
    denied = [e for e in events if e.outcome == "denied"]
    assert [json.loads(e.detail or "{}") for e in denied] == [
        {"denied": ["FORBIDDEN_FIELD Incident.operationalNotes"]}
    ]


async def test_a_pages_children_are_looked_up_for_its_audit_in_one_statement_of_any_length(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    """A page that selects no children still lists each record's children in its event: read
    in one statement whatever the page's length (one text, built once: `children_of`). (A page
    the database writes reads them with itself: tests/test_compiled_pages.py. This one names a
    field it does not write, `timeline { kind }`.)"""
    police = {"Authorization": f"Bearer {live_server.token(Role.POLICE_OFFICER, FORCE)}"}
    for _ in range(2):  # the council's area has two incidents at least, with their children
        pushed = await http.post(
            live_server.graphql_url,
            headers=police,
            json={"query": REPORT_INCIDENT, "variables": {"input": incident(unique("AUD-KIDS"))}},
        )
        assert "errors" not in pushed.json(), pushed.json()
    lookups: list[list[str]] = []
    for first in (1, 2):
        live_server.statements.clear()
        body, request_id = await _ask(
            http,
            live_server,
            Role.COUNCIL_SOCIAL_WORKER,
            f"{{ incidents(first: {first}) {{ edges {{ node {{ id timeline {{ kind }} }} }} }} }}",
        )
        edges = body["data"]["incidents"]["edges"]
        assert len(edges) == first, body
        lookups.append([s for s in live_server.statements if "child_id IS NOT NULL" in s])
        served = [e for e in await _events(db, request_id) if e.outcome == "served"]
        assert sorted(e.record_id for e in served) == sorted(e["node"]["id"] for e in edges)
        links = await _children_linked(db, [e.record_id for e in served])
        for access in served:  # each incident's children, as the link table has them
            assert json.loads(access.child_ids) == links.get(access.record_id, []), access
    assert [len(found) for found in lookups] == [1, 1], lookups
    assert lookups[0] == lookups[1], "the lookup's text changed with the page's length"


async def _children_linked(db: Database, incident_ids: list[str]) -> dict[str, list[str]]:
    """Each incident's children by id, sorted, read from the link table itself."""
    async with db.transaction(write=False) as session:
        found = await session.execute(
            sa.select(IncidentChild.incident_id, IncidentChild.child_id).where(
                col(IncidentChild.incident_id).in_(incident_ids)
            )
        )
        links: dict[str, list[str]] = {}
        for incident_id, child_id in found.all():
            links.setdefault(incident_id, []).append(child_id)
    return {incident_id: sorted(children) for incident_id, children in links.items()}


async def test_a_refused_purpose_is_an_event(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    token = live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL, purpose="curiosity")
    request_id = str(uuid.uuid4())
    await http.post(
        live_server.graphql_url,
        json={"query": "{ incidents { edges { cursor } } }"},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    events = await _events(db, request_id)
    assert [(e.outcome, e.record_id, json.loads(e.detail or "{}")) for e in events] == [
        ("denied", None, {"denied": ["PURPOSE_UNKNOWN"]})
    ]


async def test_entities_lookups_are_audited_as_such(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    representation = f'{{__typename: "Child", id: "{world.inside.child}"}}'
    query = (
        f"{{ _entities(representations: [{representation}]) {{ ... on Child {{ givenName }} }} }}"
    )
    body, request_id = await _ask(http, live_server, Role.SCHOOL_DSL, query, SCHOOL)
    assert body["data"]["_entities"] == [{"givenName": "Alex"}]
    events = await _events(db, request_id)
    assert [(e.operation_kind, e.record_type, json.loads(e.fields)) for e in events] == [
        ("entities", "Child", ["givenName"])
    ]


async def test_pushes_are_collection_and_changes_alteration(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    token = live_server.token(Role.POLICE_OFFICER, FORCE)

    async def push(query: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        request_id = str(uuid.uuid4())
        response = await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
            json={"query": query, "variables": {"input": payload}},
        )
        return response.json(), request_id

    payload = incident(unique("AUD"))
    first, created = await push(REPORT_INCIDENT, payload)
    _, replayed = await push(REPORT_INCIDENT, payload)
    incident_id = first["data"]["reportIncident"]["id"]
    operations = {e.record_id: e.operation for e in await _events(db, created)}
    assert operations[incident_id] == "collection"
    assert {e.record_type for e in await _events(db, created)} == {"Incident", "Child"}
    replay = {e.record_id: e.operation for e in await _events(db, replayed)}
    assert replay[incident_id] == "consultation", "a replay changes nothing"
    _, found = await push(
        UPDATE_MISSING, {"policeReference": "nope", "status": "FOUND", "at": iso(hours_ago(1))}
    )
    assert await _events(db, found) == [], "a failed push stored nothing and served nothing"


async def test_a_child_matched_by_nhs_number_is_a_combination(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    nhs = f"9{uuid.uuid4().int % 10**9:09d}"  # synthetic: no check digit is claimed

    async def push(force: str, reference: str) -> tuple[dict[str, Any], str]:
        request_id = str(uuid.uuid4())
        kid = {**child(f"{reference}-C1"), "nhsNumber": nhs}
        payload = incident(reference, children=[{"child": kid, "present": True}])
        response = await http.post(
            live_server.graphql_url,
            headers={
                "Authorization": f"Bearer {live_server.token(Role.POLICE_OFFICER, force)}",
                "X-Request-Id": request_id,
            },
            json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
        )
        body = response.json()
        assert "errors" not in body, body
        return body, request_id

    _, first = await push(FORCE, unique("CMB"))
    assert not [e for e in await _events(db, first) if e.operation == "combination"]
    _, second = await push(OTHER_FORCE, unique("CMB"))
    combined = [e for e in await _events(db, second) if e.operation == "combination"]
    assert [(e.record_type, e.outcome, json.loads(e.fields)) for e in combined] == [
        ("Child", "served", [])
    ]
    assert json.loads(combined[0].detail) == {"matched_by": ["nhs_number"]}
    assert json.loads(combined[0].child_ids) == [combined[0].record_id]


async def _bypass_guards(session: Any) -> None:
    """The test breaks the log on purpose: on PostgreSQL its append-only triggers would refuse."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SET LOCAL session_replication_role = replica"))


@asynccontextmanager
async def unwritable_audit(db: Database) -> AsyncIterator[None]:
    """The audit log cannot be written while inside: its chain head is gone (then restored)."""
    async with db.transaction(write=True) as session:
        await _bypass_guards(session)
        head = await session.get(AuditChainHead, 1)
        assert head is not None
        saved = (head.last_seq, head.last_hash)
        await session.delete(head)
    try:
        yield
    finally:
        async with db.transaction(write=True) as session:
            await _bypass_guards(session)
            session.add(AuditChainHead(id=1, last_seq=saved[0], last_hash=saved[1]))


async def test_nothing_is_served_unaudited(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, world: World
) -> None:
    """Fail-closed: with the audit log unwritable, a read returns no data, a push stores nothing."""
    async with unwritable_audit(db):
        body, _ = await _ask(
            http,
            live_server,
            Role.COUNCIL_SOCIAL_WORKER,
            f'{{ incident(id: "{world.inside.incident}") {{ type }} }}',
        )
        assert body == {
            "data": None,
            "errors": [
                {
                    "message": "the audit log could not be written: nothing was served",
                    "extensions": {"code": "AUDIT_UNAVAILABLE"},
                }
            ],
        }
        reference = unique("FAILCLOSED")
        token = live_server.token(Role.POLICE_OFFICER, FORCE)
        pushed = (
            await http.post(
                live_server.graphql_url,
                headers={"Authorization": f"Bearer {token}"},
                json={"query": REPORT_INCIDENT, "variables": {"input": incident(reference)}},
            )
        ).json()
        assert pushed["data"] is None
        assert pushed["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    again = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": REPORT_INCIDENT, "variables": {"input": incident(reference)}},
        )
    ).json()
    assert "errors" not in again, "the failed push left nothing behind to conflict with"


READ_EVENTS = """query($r: ID!) { recordAccessHistory(recordType: "Incident", recordId: $r) {
  edges { node { recordId recordOwner { id } organisation { id } user purpose fields children
                 operation outcome agreementVersion } } } }"""


async def test_auditors_read_every_access_with_children_pseudonymised(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    await _ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        f'{{ incident(id: "{world.inside.incident}") {{ type }} }}',
    )
    token = live_server.token(Role.AUDITOR, "OFSTED")
    body = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": READ_EVENTS, "variables": {"r": world.inside.incident}},
        )
    ).json()
    events = [e["node"] for e in body["data"]["recordAccessHistory"]["edges"]]
    council_reads = [e for e in events if e["organisation"]["id"] == COUNCIL]
    assert council_reads, events
    assert council_reads[0]["fields"] == ["type"]
    children = council_reads[0]["children"]
    assert children
    assert all(c.startswith("C-") for c in children)
    assert world.inside.child not in json.dumps(body), "no child id reaches an auditor"
    history = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": '{ childAccessHistory(childId: "x") { edges { cursor } } }'},
        )
    ).json()
    assert history["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"


async def test_a_dpo_reads_accesses_to_its_own_organisations_records(
    http: httpx.AsyncClient, live_server: LiveServer, world: World
) -> None:
    await _ask(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        f'{{ child(id: "{world.inside.child}") {{ givenName }} }}',
    )
    council_dpo = live_server.token(Role.DPO, COUNCIL)
    body = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {council_dpo}"},
            json={
                "query": """query($c: ID!) { childAccessHistory(childId: $c) {
                                edges { node { recordType recordOwner { id } children } } } }""",
                "variables": {"c": world.inside.child},
            },
        )
    ).json()
    events = [e["node"] for e in body["data"]["childAccessHistory"]["edges"]]
    assert events, body
    assert {e["recordOwner"]["id"] for e in events} == {COUNCIL}
    assert all(world.inside.child in e["children"] for e in events)
    # The force's DPO reads accesses to the force's records, not to the council's.
    force_dpo = live_server.token(Role.DPO, FORCE)
    theirs = (
        await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {force_dpo}"},
            json={"query": READ_EVENTS, "variables": {"r": world.inside.incident}},
        )
    ).json()
    owners = {
        e["node"]["recordOwner"]["id"] for e in theirs["data"]["recordAccessHistory"]["edges"]
    }
    assert owners == {FORCE}


def _where(*keys: str | int) -> Path:
    """A place in the response as graphql-core's executor passes it."""
    where = Path(None, keys[0], None)
    for key in keys[1:]:
        where = where.add_key(key)
    return where


def test_a_response_without_errors_releases_every_noted_record_whole() -> None:
    """With no error nothing was nulled: every noted record is released with its selection's
    fields, as the walk through the data finds them; an error that nulled one releases the
    rest only."""
    served = ServedRecords()
    incident = {"summary": "s", "ref": "r", "force": {"name": "f"}}
    child = {"givenName": "g"}
    data = {"incidents": {"edges": [{"node": {**incident, "children": [{"child": child}]}}]}}
    selection = {"summary": "summary", "ref": "policeReference", "force": "force"}
    at_incident = _where("incidents", "edges", 0, "node")
    served.note(at_incident, "Incident", SimpleNamespace(id="i"), selection)
    place = _where("incidents", "edges", 0, "node", "children", 0, "child")
    served.note(place, "Child", SimpleNamespace(id="c"), {"givenName": "givenName"})
    fast = served.released(data, [])
    walked = served.released(data, [GraphQLError("elsewhere, nulling nothing")])
    assert fast == walked
    assert [(kind, fields) for kind, _, fields in fast] == [
        ("Incident", ("force", "policeReference", "summary")),
        ("Child", ("givenName",)),
    ]
    nulled = {"incidents": {"edges": [{"node": {**incident, "children": None}}]}}
    kept = served.released(nulled, [GraphQLError("nulled the children")])
    assert [kind for kind, _, _ in kept] == ["Incident"]


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    """A response as compared across requests: each error's request id is the request's own,
    and errors come in no set order (fields loaded apart fail as their loads return)."""
    errors = [
        {
            **error,
            "extensions": {
                k: v for k, v in error.get("extensions", {}).items() if k != "requestId"
            },
        }
        for error in body.get("errors", [])
    ]
    return {**body, "errors": sorted(errors, key=lambda error: json.dumps(error, sort_keys=True))}


def _accesses(events: list[SimpleNamespace]) -> list[tuple[Any, ...]]:
    """A request's accesses as compared across requests: what was served to whom, and how (in
    no order: records loaded apart are noted in the order their loads return)."""
    return sorted(
        (e.outcome, e.operation, e.record_type, e.record_id, e.record_owner, e.fields, e.child_ids)
        for e in events
    )


@pytest.mark.parametrize("seed", range(12))
async def test_records_read_in_place_serve_and_audit_exactly_what_the_plain_way_does(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    world: World,
    seed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record's selection run from its parent's function (`selections.kind_of`'s "record"
    and "records") against the same request completed the plain way, field by field: for every
    role, the same response, errors at the same paths, and the same accesses in the audit.
    (A record's first reading by a council is a receipt its timeline shows: both come after it.)"""
    rng = random.Random(1000 + seed)
    query = _valid_query(rng, world)
    served = 0
    for role in Role:
        await _ask(http, live_server, role, query)  # its first receipts: the next two alike
        inline, inline_id = await _ask(http, live_server, role, query)
        monkeypatch.setattr(HubExecutor, "inline_records", False)
        plain, plain_id = await _ask(http, live_server, role, query)
        monkeypatch.undo()
        assert _without_request_ids(inline) == _without_request_ids(plain), (role, query)
        accesses = _accesses(await _events(db, inline_id))
        assert accesses == _accesses(await _events(db, plain_id)), (role, query)
        served += sum(access[0] == "served" for access in accesses)
    assert served, query  # some role was served some record


def _valid_query(rng: random.Random, world: World) -> str:
    """A generated query within the hub's limits (aliases, depth), ids asked for or not."""
    for _ in range(50):
        query = _query(rng, world).replace("@@ID@@", "id" if rng.random() < 0.5 else "")
        document = parse(query)
        if not validate(SCHEMA, document, [*specified_rules, *query_limits(Settings())]):
            return query
    pytest.fail("no generated query within the hub's limits")
