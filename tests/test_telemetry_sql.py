"""SQL spans are built only while the tracer provider sends spans somewhere."""

from __future__ import annotations

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub import telemetry


def test_a_provider_exports_once_a_processor_is_added() -> None:
    provider = telemetry.HubTracerProvider()
    assert not provider.exporting
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert provider.exporting


def test_sql_spans_carry_the_statement_without_its_values(monkeypatch) -> None:
    provider = telemetry.HubTracerProvider()
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(telemetry, "_sql_tracer", provider.get_tracer("hub.sql"))
    engine = sa.create_engine("sqlite://")
    telemetry.trace_sql(engine)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT :secret"), {"secret": "Zebedee"})
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["db.statement"] == "SELECT ?"
    assert "Zebedee" not in str(dict(span.attributes))
