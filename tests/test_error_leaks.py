"""What errors and logs give away: no value the caller sent, no INTERNAL for bad bytes, and no
mutation reported as saved when its request was rolled back (issue 12, items 7 to 9).

Bodies go out as ASCII JSON (`\\ud800` escaped) so that a lone surrogate reaches the hub as the
client sent it; httpx's own encoder would refuse it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.db import Database
from hub.incidents.models import Incident
from tests.conftest import LiveServer, unique
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, child, incident
from tests.server_log import Captured, capturing

MARK = "ECHOMARK-Jane-Doe"


@pytest.fixture
def server_log() -> Iterator[Captured]:
    with capturing() as captured:
        yield captured


async def send(
    http: httpx.AsyncClient,
    server: LiveServer,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    role: Role = Role.POLICE_OFFICER,
    org: str = FORCE,
) -> dict[str, Any]:
    response = await http.post(
        server.graphql_url,
        content=json.dumps({"query": query, "variables": variables or {}}),
        headers={
            "Authorization": f"Bearer {server.token(role, org)}",
            "Content-Type": "application/json",
        },
    )
    body: dict[str, Any] = response.json()
    return body


def errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("errors") or [])


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in errors(body)]


async def stored(db: Database, reference: str) -> int:
    async with db.transaction(write=False) as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Incident)
            .where(Incident.police_reference == reference)
        )
    return int(count or 0)


def _with_child(**extra: Any) -> dict[str, Any]:
    reference = unique("LEAK")
    return incident(reference, children=[{"child": child(f"{reference}-C", **extra)}])


# Item 7: a value of the wrong type, by variable: the message names the field and the type only.
VARIABLE_CASES = {
    "Date": (_with_child(dateOfBirth=MARK), "input.children.0.child.dateOfBirth"),
    "DateTime": (incident(unique("LEAK"), occurredAt=MARK), "input.occurredAt"),
    "Boolean": (_with_child(lookedAfter=MARK), "input.children.0.child.lookedAfter"),
    "enum": (incident(unique("LEAK"), type=MARK), "input.type"),
    "String": (incident(unique("LEAK"), summary={"text": MARK}), "input.summary"),
    "input object": (incident(unique("LEAK"), children=[MARK]), "input.children.0"),
    "list of objects": (incident(unique("LEAK"), children=MARK), "input.children"),
}


@pytest.mark.parametrize("case", VARIABLE_CASES, ids=list(VARIABLE_CASES))
async def test_a_bad_variable_is_named_not_echoed(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured, case: str
) -> None:
    payload, field = VARIABLE_CASES[case]
    body = await send(http, live_server, REPORT_INCIDENT, {"input": payload})
    [error] = errors(body)
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}
    assert MARK not in json.dumps(body)
    assert server_log.leaking(MARK) == []


async def test_a_bad_scalar_argument_is_named_not_echoed(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured
) -> None:
    queries = {
        "first": (
            "query($first: Int) { incidents(first: $first) { edges { cursor } } }",
            {"first": MARK},
        ),
        "id": ("query($id: ID!) { incident(id: $id) { id } }", {"id": [MARK]}),
    }
    for variable, (query, variables) in queries.items():
        body = await send(
            http, live_server, query, variables, role=Role.COUNCIL_SOCIAL_WORKER, org=COUNCIL
        )
        assert [e["extensions"] for e in errors(body)] == [
            {"code": "INVALID_INPUT", "field": variable}
        ]
        assert MARK not in json.dumps(body)
    assert server_log.leaking(MARK) == []


LITERAL = (
    'mutation {{ reportIncident(input: {{policeReference: "LIT-1", type: {type},'
    ' occurredAt: {occurred}, recordedAt: "2026-01-01T00:00:00Z", locationCouncil: "{council}",'
    ' children: [{{child: {{policeReference: "LIT-C", givenName: "A", familyName: "B",'
    " dateOfBirth: {born}, lookedAfter: {looked}}}}}]}}) {{ id }} }}"
)
GOOD = {
    "type": "DOMESTIC_ABUSE",
    "occurred": '"2026-01-01T00:00:00Z"',
    "born": '"2015-01-01"',
    "looked": "true",
}
LITERAL_CASES = {
    "Date": ({"born": f'"{MARK}"'}, "input.children.0.child.dateOfBirth"),
    "DateTime": ({"occurred": f'"{MARK}"'}, "input.occurredAt"),
    "Boolean as a name": ({"looked": "ECHOMARK_Jane_Doe"}, "input.children.0.child.lookedAfter"),
    "Boolean as a string": ({"looked": f'"{MARK}"'}, "input.children.0.child.lookedAfter"),
    "enum": ({"type": "ECHOMARK_Jane_Doe"}, "input.type"),
}


@pytest.mark.parametrize("case", LITERAL_CASES, ids=list(LITERAL_CASES))
async def test_a_bad_literal_is_named_not_echoed(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured, case: str
) -> None:
    changed, field = LITERAL_CASES[case]
    query = LITERAL.format(council=COUNCIL, **{**GOOD, **changed})
    body = await send(http, live_server, query)
    [error] = errors(body)
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": field}
    assert "ECHOMARK" not in json.dumps(body)
    assert server_log.leaking("ECHOMARK") == []


async def test_a_syntax_error_does_not_echo_the_query(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured
) -> None:
    body = await send(http, live_server, f'{{ incident(id: "1" "{MARK}") {{ id }} }}')
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert errors(body)[0]["locations"]
    assert MARK not in json.dumps(body)
    assert server_log.leaking(MARK) == []


async def test_a_query_sent_by_get_is_not_logged(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured
) -> None:
    query = "query($id: ID!) { incident(id: $id) { id } }"
    params = {"query": query, "variables": json.dumps({"id": MARK})}
    response = await http.get(
        f"{live_server.graphql_url}?{urllib.parse.urlencode(params)}",
        headers={
            "Authorization": f"Bearer {live_server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)}"
        },
    )
    assert response.status_code == 200
    assert server_log.leaking(MARK) == []


async def test_database_errors_do_not_carry_parameters(db: Database) -> None:
    with pytest.raises(sa.exc.DBAPIError) as raised:
        async with db.transaction(write=False) as session:
            await session.execute(sa.text("SELECT * FROM no_such_table WHERE x = :x"), {"x": MARK})
    assert MARK not in str(raised.value)


# Item 8: bytes a database cannot keep, and dates outside any record's life, are INVALID_INPUT.
BAD_TEXT = {"NUL": "A\x00B", "control": "A\x1bB", "lone surrogate": "A\ud800B"}
TEXT_FIELDS = {
    "input.policeReference": lambda p, v: {**p, "policeReference": v},
    "input.summary": lambda p, v: {**p, "summary": v},
    "input.operationalNotes": lambda p, v: {**p, "operationalNotes": v},
    "input.idempotencyKey": lambda p, v: {**p, "idempotencyKey": v},
    "input.children.0.child.givenName": lambda p, v: {
        **p,
        "children": [{"child": {**p["children"][0]["child"], "givenName": v}}],
    },
}


@pytest.mark.parametrize("bad", BAD_TEXT, ids=list(BAD_TEXT))
async def test_bad_characters_in_any_text_field_are_invalid_input(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, bad: str
) -> None:
    for field, put in TEXT_FIELDS.items():
        reference = unique("BYTES")
        payload = put(incident(reference), BAD_TEXT[bad])
        body = await send(http, live_server, REPORT_INCIDENT, {"input": payload})
        assert [e["extensions"] for e in errors(body)] == [
            {"code": "INVALID_INPUT", "field": field}
        ], field
        assert await stored(db, reference) == 0


async def test_bad_characters_in_a_literal_or_a_filter_are_invalid_input(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    literal = LITERAL.format(council="E08\\u0000025", **GOOD)
    body = await send(http, live_server, literal)
    assert [e["extensions"] for e in errors(body)] == [
        {"code": "INVALID_INPUT", "field": "input.locationCouncil"}
    ]
    query = "query($f: IncidentFilterInput) { incidents(filter: $f) { edges { cursor } } }"
    body = await send(
        http,
        live_server,
        query,
        {"f": {"childId": "\ud800"}},
        role=Role.COUNCIL_SOCIAL_WORKER,
        org=COUNCIL,
    )
    assert [e["extensions"] for e in errors(body)] == [
        {"code": "INVALID_INPUT", "field": "f.childId"}
    ]


EXTREME = {
    "input.occurredAt": {"occurredAt": "0001-01-01T00:00:00+00:00"},
    "input.recordedAt": {"recordedAt": "9999-12-31T23:59:59-12:00"},
}


@pytest.mark.parametrize("field", EXTREME, ids=list(EXTREME))
async def test_extreme_event_times_are_invalid_input(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database, field: str
) -> None:
    reference = unique("EXT")
    body = await send(
        http, live_server, REPORT_INCIDENT, {"input": incident(reference, **EXTREME[field])}
    )
    assert [e["extensions"] for e in errors(body)] == [{"code": "INVALID_INPUT", "field": field}]
    assert await stored(db, reference) == 0


async def test_an_implausible_date_of_birth_is_invalid_input(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("DOB")
    payload = incident(
        reference, children=[{"child": child(f"{reference}-C", dateOfBirth="0001-01-01")}]
    )
    body = await send(http, live_server, REPORT_INCIDENT, {"input": payload})
    assert [e["extensions"] for e in errors(body)] == [
        {"code": "INVALID_INPUT", "field": "input.children.0.child.dateOfBirth"}
    ]
    assert await stored(db, reference) == 0


ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Incident { id } } }"
REPRESENTATIONS = {
    "extra key": {"__typename": "Incident", "id": "1", "name": MARK},
    "missing key": {"__typename": "Incident"},
    "unknown type": {"__typename": MARK, "id": "1"},
    "no type": {"id": "1"},
}


@pytest.mark.parametrize("case", REPRESENTATIONS, ids=list(REPRESENTATIONS))
async def test_a_bad_entity_representation_is_invalid_input(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured, case: str
) -> None:
    body = await send(
        http,
        live_server,
        ENTITIES,
        {"r": [REPRESENTATIONS[case]]},
        role=Role.COUNCIL_SOCIAL_WORKER,
        org=COUNCIL,
    )
    assert [e["extensions"] for e in errors(body)] == [
        {"code": "INVALID_INPUT", "field": "representations.0"}
    ]
    assert MARK not in json.dumps(body)
    assert server_log.leaking(MARK) == []


# Item 9: a request is one transaction, so a rolled-back mutation returns nothing as saved.
async def test_a_rolled_back_mutation_returns_no_data(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    good, bad = unique("GOOD"), unique("BAD")
    query = """
      mutation Two($a: ReportIncidentInput!, $b: ReportIncidentInput!) {
        first: reportIncident(input: $a) { id policeReference }
        second: reportIncident(input: $b) { id policeReference }
      }"""
    body = await send(
        http, live_server, query, {"a": incident(good), "b": incident(bad, council="E99999999")}
    )
    assert body["data"] == {"first": None, "second": None}
    by_path = {tuple(e["path"]): e["extensions"]["code"] for e in errors(body)}
    assert by_path == {("first",): "NOT_STORED", ("second",): "INVALID_INPUT"}
    assert good not in json.dumps(body)
    assert await stored(db, good) == 0


async def test_an_unknown_operation_name_is_coded_not_echoed(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured
) -> None:
    response = await http.post(
        live_server.graphql_url,
        json={"query": "query Known { viewer { role } }", "operationName": MARK},
        headers={"Authorization": f"Bearer {live_server.token(Role.POLICE_OFFICER, FORCE)}"},
    )
    assert MARK not in response.text
    body = response.json()
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert body["data"] is None
    assert server_log.leaking(MARK) == []


PAGE = "{ edges { node { id } } }"
UNDEFINED = {
    "unknown field": f'{{ incidents(filter: {{{MARK.replace("-", "")}: "{MARK}"}}) {PAGE} }}',
    "object for a scalar": f'{{ incidents(filter: {{occurredFrom: {{at: "{MARK}"}}}}) {PAGE} }}',
}


@pytest.mark.parametrize("literal", list(UNDEFINED.values()), ids=list(UNDEFINED))
async def test_a_literal_object_the_type_does_not_define_is_not_echoed(
    http: httpx.AsyncClient, live_server: LiveServer, server_log: Captured, literal: str
) -> None:
    body = await send(http, live_server, literal)
    assert codes(body) == ["INVALID_INPUT"]
    assert errors(body)[0]["extensions"]["field"].startswith("filter")
    assert MARK not in json.dumps(body)
    assert server_log.leaking(MARK) == []
