"""OpenTelemetry: traces for GraphQL operations and SQL, exported where `OTEL_*` says, else nowhere.

Spans carry the operation's name and type and the caller's role and organisation, never the query
text, its variables or any value from a record: those can hold personal data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

_tracer = trace.get_tracer("hub.graphql")
_http_tracer = trace.get_tracer("hub.http")
_configured = False
_metrics_configured = False


def _metric_exporter(name: str) -> MetricExporter | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter,
        )

        return OTLPMetricExporter()
    if name == "console":
        return ConsoleMetricExporter()
    return None


def configure_metrics() -> None:
    """Install a meter provider from `OTEL_METRICS_EXPORTER` (none by default: no provider)."""
    global _metrics_configured  # noqa: PLW0603 - the global meter provider can be set once
    if _metrics_configured:
        return
    exporters = [
        exporter
        for name in os.getenv("OTEL_METRICS_EXPORTER", "none").split(",")
        if (exporter := _metric_exporter(name.strip())) is not None
    ]
    if exporters:
        resource = Resource.create(
            {"service.name": os.getenv("OTEL_SERVICE_NAME", "safeguarding-hub")}
        )
        readers = [PeriodicExportingMetricReader(exporter) for exporter in exporters]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    _metrics_configured = True


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    return None


def configure(engine: AsyncEngine | None = None, *, provider: TracerProvider | None = None) -> None:
    """Install a tracer provider from `OTEL_TRACES_EXPORTER` (none by default) and trace SQL."""
    global _configured  # noqa: PLW0603 - the global tracer provider can be set once per process
    if provider is None and not _configured:
        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": os.getenv("OTEL_SERVICE_NAME", "safeguarding-hub")}
            )
        )
        for name in os.getenv("OTEL_TRACES_EXPORTER", "none").split(","):
            exporter = _exporter(name.strip())
            if exporter is not None:
                processor = SimpleSpanProcessor if name.strip() == "console" else BatchSpanProcessor
                provider.add_span_processor(processor(exporter))
        trace.set_tracer_provider(provider)
        _configured = True
        configure_metrics()
    if engine is not None:
        from opentelemetry.instrumentation.sqlalchemy import (  # noqa: PLC0415
            SQLAlchemyInstrumentor,
        )

        # Statements are traced with their placeholders; bound values never reach a span.
        # The instrumentor declares support up to SQLAlchemy 2.0; it works on 2.1 (the test of
        # spans proves it), so its dependency check is skipped rather than pinning SQLAlchemy.
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, enable_commenter=False, skip_dep_check=True
        )


class OperationTracing(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        with _tracer.start_as_current_span("graphql.operation", kind=SpanKind.SERVER) as span:
            principal = getattr(context, "principal", None)
            if principal is not None:
                span.set_attribute("hub.role", str(principal.role))
                span.set_attribute("hub.organisation", principal.organisation_code)
            span.set_attribute("hub.request_id", getattr(context, "request_id", ""))
            yield
            name = self.execution_context.operation_name
            if name:
                span.update_name(f"graphql {name}")
                span.set_attribute("graphql.operation.name", name)
            # An unparsable document has no operation type.
            with contextlib.suppress(Exception):
                span.set_attribute(
                    "graphql.operation.type", self.execution_context.operation_type.value
                )
            result = self.execution_context.result
            errors = getattr(result, "errors", None) or []
            span.set_attribute("graphql.errors", len(errors))
            if errors:
                span.set_status(Status(StatusCode.ERROR))


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), to tie an audit event to its trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class TraceContext:
    """The HTTP server span of each request, joined to the caller's trace (W3C `traceparent`).

    A gateway in front starts the trace; without this the hub's spans began a trace of their own
    and the two could not be joined. The span is named by method and path only: a GET's query
    string carries the query text, which never reaches a span.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope.get("method", "GET")
        with _http_tracer.start_as_current_span(
            f"{method} {scope['path']}", context=propagate.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope["path"])

            async def send_noting_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, send_noting_status)
