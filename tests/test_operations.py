"""Health and readiness, and traces that never carry query text, variables or record values."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.access.models import Role
from hub.app import create_app
from hub.settings import Mode, Settings
from tests.conftest import LiveServer, unique
from tests.factories import FORCE, REPORT_INCIDENT, child, incident


async def test_health_and_readiness(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    health = await http.get(f"{live_server.url}/healthz")
    ready = await http.get(f"{live_server.url}/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()["database"]) == (200, "reachable")


async def test_readiness_fails_when_the_database_is_unreachable(tmp_path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none", data_dir=tmp_path
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def test_anonymous_requests_are_refused(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    response = await http.post(live_server.graphql_url, json={"query": "{ viewer { role } }"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED",
        "reason": "missing_token",
    }


async def test_graphiql_page_needs_no_token_but_data_does(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    page = await http.get(live_server.graphql_url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    data = await http.get(
        live_server.graphql_url,
        params={"query": "{ viewer { role } }"},
        headers={"Accept": "text/html"},
    )
    assert data.status_code == 401


def test_production_refuses_development_defaults(tmp_path) -> None:
    with pytest.raises(ValueError, match="HUB_PSEUDONYM_KEY") as refused:
        Settings(mode=Mode.PRODUCTION, data_dir=tmp_path)
    assert "HUB_SIGNING_KEYS_FILE" in str(refused.value)


async def test_spans_carry_no_query_text_or_values(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "the hub installs an SDK tracer provider"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    secret_name, reference = "Zebedee-Unlikely-Name", unique("OTEL")
    payload = incident(
        reference, children=[{"child": child(unique("C"), givenName=secret_name), "present": True}]
    )
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    response = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": REPORT_INCIDENT, "variables": {"input": payload}, "operationName": "Report"},
    )
    assert "errors" not in response.json()
    provider.force_flush()
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert "graphql Report" in names
    sql = [
        s
        for s in spans
        if s.attributes and ("db.statement" in s.attributes or "db.query.text" in s.attributes)
    ]
    assert sql, f"SQL is traced too: {names}"
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = str(value)
            assert secret_name not in text, key
            assert reference not in text, key
            assert "reportIncident" not in text, f"query text on span attribute {key}"
