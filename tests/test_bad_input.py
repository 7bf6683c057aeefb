"""Bad input: a clear error, a stable code, the right HTTP status, nothing half-written."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from hub.access.models import Role
from hub.db import Database
from hub.incidents.models import Incident
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    REPORT_INCIDENT,
    child,
    hours_ago,
    incident,
    iso,
)


def _headers(server: LiveServer, role: Role = Role.POLICE_OFFICER, org: str = FORCE) -> dict:
    return {"Authorization": f"Bearer {server.token(role, org)}"}


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def _push(http: httpx.AsyncClient, server: LiveServer, payload: dict) -> dict:
    response = await http.post(
        server.graphql_url,
        headers=_headers(server),
        json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
    )
    body: dict = response.json()
    return body


async def _stored(db: Database, reference: str) -> int:
    async with db.transaction(write=False) as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Incident)
            .where(Incident.police_reference == reference)
        )
    return int(count or 0)


async def test_malformed_json_is_400(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    response = await http.post(
        live_server.graphql_url,
        content=b'{"query": "{ viewer { role } "',
        headers={**_headers(live_server), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


async def test_malformed_graphql_has_parse_code(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    response = await http.post(
        live_server.graphql_url, headers=_headers(live_server), json={"query": "{ viewer { role "}
    )
    assert _codes(response.json()) == ["GRAPHQL_PARSE_FAILED"]


async def test_oversize_body_is_413_and_stores_nothing(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("BIG")
    payload = incident(reference, summary="x" * (live_server.settings.max_body_bytes + 10))
    body = await _push(http, live_server, payload)
    assert _codes(body) == ["PAYLOAD_TOO_LARGE"]
    assert await _stored(db, reference) == 0


async def test_oversize_streamed_body_is_413(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b" " * 10_000

    response = await http.post(
        live_server.graphql_url,
        content=chunks(),
        headers={**_headers(live_server), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert _codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


async def test_unknown_council_code_names_the_field(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("UNK")
    body = await _push(http, live_server, incident(reference, council="E99999999"))
    assert _codes(body) == ["INVALID_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "input.locationCouncil"
    assert "E99999999" not in body["errors"][0]["message"]
    assert await _stored(db, reference) == 0


async def test_unknown_child_council_names_the_nested_field(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    payload = incident(
        unique("UNK"),
        children=[
            {"child": child(unique("C"), council=COUNCIL, hostCouncil="W06999999"), "victim": True}
        ],
    )
    body = await _push(http, live_server, payload)
    assert body["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "input.children.0.child.hostCouncil",
    }


async def test_wrong_enum_value_is_rejected_before_execution(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("ENUM")
    body = await _push(http, live_server, incident(reference, type="BURGLARY"))
    assert _codes(body) == ["INVALID_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "input.type"
    assert body.get("data") is None
    assert await _stored(db, reference) == 0


async def test_missing_required_field(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    payload = incident(unique("REQ"))
    del payload["occurredAt"]
    body = await _push(http, live_server, payload)
    assert _codes(body) == ["INVALID_INPUT"]
    assert "occurredAt" in body["errors"][0]["message"]
    assert "Synthetic" not in body["errors"][0]["message"], "input values are not echoed"


async def test_bad_date_names_the_nested_field_without_the_value(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    payload = incident(
        unique("DOB"),
        children=[{"child": child(unique("C"), dateOfBirth="2015-13-45"), "present": True}],
    )
    error = (await _push(http, live_server, payload))["errors"][0]
    assert error["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "input.children.0.child.dateOfBirth",
    }
    assert "2015-13-45" not in error["message"]


async def test_naive_timestamp_is_rejected(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference = unique("NAIVE")
    body = await _push(http, live_server, incident(reference, occurredAt="2026-01-05T10:00:00"))
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "input.occurredAt"}
    assert "timezone" in body["errors"][0]["message"]
    assert await _stored(db, reference) == 0


async def test_future_event_time_is_rejected(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    body = await _push(http, live_server, incident(unique("FUT"), occurredAt=iso(hours_ago(-48))))
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "input.occurredAt"}


async def test_recorded_before_occurred_is_rejected(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    payload = incident(unique("ORD"), occurredAt=iso(hours_ago(2)), recordedAt=iso(hours_ago(3)))
    body = await _push(http, live_server, payload)
    assert body["errors"][0]["extensions"]["field"] == "input.recordedAt"


async def test_a_failed_mutation_rolls_back_the_whole_request(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    good, bad = unique("GOOD"), unique("BAD")
    query = """
      mutation Two($a: ReportIncidentInput!, $b: ReportIncidentInput!) {
        first: reportIncident(input: $a) { id }
        second: reportIncident(input: $b) { id }
      }"""
    variables = {"a": incident(good), "b": incident(bad, council="E99999999")}
    response = await http.post(
        live_server.graphql_url,
        headers=_headers(live_server),
        json={"query": query, "variables": variables},
    )
    assert sorted(_codes(response.json())) == ["INVALID_INPUT", "NOT_STORED"]
    assert await _stored(db, good) == 0, "the first push must not survive the second's failure"


async def test_council_may_not_push(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    response = await http.post(
        live_server.graphql_url,
        headers=_headers(live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL),
        json={"query": REPORT_INCIDENT, "variables": {"input": incident(unique("CP"))}},
    )
    assert _codes(response.json()) == ["FORBIDDEN"]


async def test_page_size_over_the_maximum(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    response = await http.post(
        live_server.graphql_url,
        headers=_headers(live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL),
        json={"query": "{ incidents(first: 100000) { edges { cursor } } }"},
    )
    body = response.json()
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "first"}


async def test_garbage_cursor(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    response = await http.post(
        live_server.graphql_url,
        headers=_headers(live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL),
        json={"query": '{ incidents(after: "not-a-cursor") { edges { cursor } } }'},
    )
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "after"}


async def test_unexpected_errors_are_masked(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    # Depth over the limit is an expected refusal, not masked.
    deep = (
        "{ incidents { edges { node { children { child { incidents { children { child {"
        " incidents { children { child { id } } } } } } } } } } } }"
    )
    response = await http.post(
        live_server.graphql_url,
        headers=_headers(live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL),
        json={"query": deep},
    )
    body = response.json()
    assert body["errors"], body
    assert "depth" in body["errors"][0]["message"]
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_a_documents_size_limits_refuse_it_and_the_next_valid_one_is_served(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    """Too many aliases (over 15) or tokens (over 2,000) are refused before anything runs, as
    too deep is above; each refusal is fresh however often it is sent, and a valid document
    after them is served (`DocumentLimits`, rules built once for the schema)."""
    headers = _headers(live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    aliased = "{ " + " ".join(f"a{n}: viewer {{ role }}" for n in range(16)) + " }"
    long = "{ viewer { " + " ".join(["role"] * 4_000) + " } }"
    for _ in range(2):
        body = (
            await http.post(live_server.graphql_url, headers=headers, json={"query": aliased})
        ).json()
        assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
        assert "aliases" in body["errors"][0]["message"]
        assert body.get("data") is None
        body = (
            await http.post(live_server.graphql_url, headers=headers, json={"query": long})
        ).json()
        # Reported as a parse failure where the 2,000th token stands, long before the end.
        assert _codes(body) == ["GRAPHQL_PARSE_FAILED"], body
        assert body["errors"][0]["locations"][0]["column"] < len(long) // 2
        assert body.get("data") is None
    fifteen = "{ " + " ".join(f"a{n}: viewer {{ role }}" for n in range(15)) + " }"
    body = (
        await http.post(live_server.graphql_url, headers=headers, json={"query": fifteen})
    ).json()
    assert "errors" not in body, body
    assert len(body["data"]) == 15
