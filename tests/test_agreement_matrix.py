"""Generated from auth/agreement.toml: every role x type x field, in and out of jurisdiction.

Each case goes through real HTTP with a real token. In jurisdiction, a role receives exactly the
fields the agreement lists (others null with FORBIDDEN_FIELD at their path); out of jurisdiction,
or where the role's rows exclude the record, the entity does not exist for it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType, get_named_type

from hub.access.agreement import Agreement, RowKind, default_path
from hub.access.models import Role
from hub.graphql.schema import build_schema
from hub.settings import Settings
from tests.conftest import LiveServer
from tests.scenario import ORGANISATION_OF, World

SCHEMA = build_schema(Settings())._schema
AGREEMENT = Agreement.load(default_path(), SCHEMA)
ENTITIES = (
    "Child",
    "Incident",
    "MissingEpisode",
    "Investigation",
    "Meeting",
    "JointVisitRequest",
    "PoliceProtection",
)
# What each kind of rows makes visible of the "inside" world (tests/scenario.py): a force's own
# records and the meeting it is invited to; a council's children's records and its meeting.
VISIBLE: dict[RowKind, set[str]] = {
    RowKind.OWN_FORCE: set(ENTITIES),
    RowKind.COUNCIL_CHILDREN: set(ENTITIES),
    RowKind.SCHOOL_PUPILS: {"Incident", "Child"},
    RowKind.NONE: set(),
}
# Nested types and the field of an entity that reaches them.
NESTED = {
    "IncidentChild": ("Incident", "children"),
    "StatusChangeRecord": ("Investigation", "history"),
    "ChildReference": ("Child", "references"),
    "MeetingChild": ("Meeting", "children"),
    "MeetingInvitation": ("Meeting", "invitations"),
}


def _selection(type_name: str) -> tuple[str, list[str]]:
    graphql_type = SCHEMA.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType)
    parts, names = [], []
    for name, field in graphql_type.fields.items():
        named = get_named_type(field.type)
        composite = isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
        parts.append(f"{name} {{ __typename }}" if composite else name)
        names.append(name)
    return " ".join(parts), names


async def _entities(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    type_name: str,
    record_id: str,
    inner: str,
) -> dict[str, Any]:
    token = server.token(role, ORGANISATION_OF[role])
    query = (
        f"query($r: [_Any!]!) {{ _entities(representations: $r) "
        f"{{ ... on {type_name} {{ {inner} }} }} }}"
    )
    response = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": {"r": [{"__typename": type_name, "id": record_id}]}},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _forbidden_paths(body: dict[str, Any]) -> set[tuple[Any, ...]]:
    paths = set()
    for error in body.get("errors", []):
        assert error["extensions"]["code"] == "FORBIDDEN_FIELD", error
        paths.add(tuple(error["path"]))
    return paths


def _cases() -> list[tuple[Role, str]]:
    return [(role, t) for role in Role for t in (*ENTITIES, *NESTED)]


@pytest.mark.parametrize(("role", "type_name"), _cases(), ids=str)
async def test_in_jurisdiction_exactly_the_allowed_fields(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, role: Role, type_name: str
) -> None:
    policy = AGREEMENT.policy(role)
    allowed = policy.fields.get(type_name, frozenset())
    inner, names = _selection(type_name)
    if type_name in NESTED:
        parent, via = NESTED[type_name]
        if parent not in VISIBLE[policy.rows] or via not in policy.fields.get(parent, ()):
            # Unreachable for this role: the agreement should not grant it either.
            assert type_name not in policy.fields, f"{role} is granted {type_name} it cannot reach"
            return
        body = await _entities(
            http, live_server, role, parent, world.inside.id_of(parent), f"{via} {{ {inner} }}"
        )
        items = body["data"]["_entities"][0][via]
        assert items, f"{role} should reach some {type_name}"
        base: tuple[Any, ...] = ("_entities", 0, via, 0)
        record = items[0]
    else:
        body = await _entities(
            http, live_server, role, type_name, world.inside.id_of(type_name), inner
        )
        record = body["data"]["_entities"][0]
        if type_name not in VISIBLE[policy.rows]:
            assert record is None, f"{role} must not see the {type_name} at all"
            assert "errors" not in body
            return
        assert record is not None, f"{role} should see the {type_name}"
        base = ("_entities", 0)
    forbidden = {
        path[len(base)]
        for path in _forbidden_paths(body)
        if path[: len(base)] == base and len(path) == len(base) + 1
    }
    assert forbidden == set(names) - allowed
    for name in set(names) - allowed:
        assert record[name] is None, f"{type_name}.{name} leaked to {role}"


@pytest.mark.parametrize(("role", "type_name"), [(r, t) for r in Role for t in ENTITIES], ids=str)
async def test_out_of_jurisdiction_does_not_exist(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, role: Role, type_name: str
) -> None:
    body = await _entities(http, live_server, role, type_name, world.outside.id_of(type_name), "id")
    assert body["data"]["_entities"] == [None]
    assert "errors" not in body


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_root_fields_follow_the_agreement(
    http: httpx.AsyncClient, live_server: LiveServer, world: World, role: Role
) -> None:
    allowed = AGREEMENT.policy(role).fields.get("Query", frozenset())
    query_type = SCHEMA.query_type
    assert query_type is not None
    arguments = {
        "child": f'id: "{world.inside.child}"',
        "incident": f'id: "{world.inside.incident}"',
        "missingEpisode": f'id: "{world.inside.missing_episode}"',
        "investigation": f'id: "{world.inside.investigation}"',
        "meeting": f'id: "{world.inside.meeting}"',
        "jointVisitRequest": f'id: "{world.inside.joint_visit_request}"',
        "policeProtection": f'id: "{world.inside.police_protection}"',
        "childAccessHistory": f'childId: "{world.inside.child}"',
        "recordAccessHistory": f'recordType: "Incident", recordId: "{world.inside.incident}"',
        "sharingReport": 'from: "2026-01-01", to: "2026-01-31"',
    }
    token = live_server.token(role, ORGANISATION_OF[role])
    for name in query_type.fields:
        if name.startswith("_"):
            continue
        call = f"{name}({arguments[name]})" if name in arguments else name
        response = await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": f"{{ {call} {{ __typename }} }}"},
        )
        body = response.json()
        refused = {
            tuple(e["path"])
            for e in body.get("errors", [])
            if e["extensions"]["code"] == "FORBIDDEN_FIELD"
        }
        assert (refused == {(name,)}) == (name not in allowed), (role, name, body)
