"""OpenTelemetry: traces for GraphQL operations and SQL, exported where `OTEL_*` says, else nowhere.

Spans carry the operation's name and type and the caller's role and organisation, never the query
text, its variables or any value from a record: those can hold personal data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import Engine, event
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
        provider = HubTracerProvider(
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
        trace_sql(engine.sync_engine)


class HubTracerProvider(TracerProvider):
    """The SDK's provider, knowing whether anything receives its spans (`exporting`)."""

    exporting = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.exporting = True


def _exporting() -> bool:
    # Another provider (installed by whoever embeds the hub) is assumed to want every span.
    return getattr(trace.get_tracer_provider(), "exporting", True)


_sql_tracer = trace.get_tracer("hub.sql")


def trace_sql(engine: Engine) -> None:
    """A span per SQL statement, with its placeholders (bound values never reach a span).

    Only while spans go somewhere: on a push's path a span per statement, built and dropped
    unseen, cost a tenth of its time (OpenTelemetry's SQLAlchemy instrumentor builds them
    whatever happens to them).
    """
    system = engine.dialect.name

    def start(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not _exporting():
            return
        verb = statement.split(None, 1)[0] if statement.strip() else system
        context._hub_span = _sql_tracer.start_span(  # noqa: SLF001 - the statement's own context
            f"{verb} {engine.url.database or system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement},
        )

    def end(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        span = getattr(context, "_hub_span", None)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_hub_span", None)
        if span is not None:
            # The type only: a driver's message can carry parameters.
            span.set_status(
                Status(StatusCode.ERROR, type(exception_context.original_exception).__name__)
            )
            span.end()

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", end)
    event.listen(engine, "handle_error", failed)


class OperationTracing(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        if not _exporting():
            yield  # nothing receives it: the request's span (`TraceContext`) carries the trace
            return
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


_ids = RandomIdGenerator()


def _unrecorded(context: Context) -> trace.Span:
    """A span that records nothing, in the caller's trace if it sent one, else a new trace."""
    caller = trace.get_current_span(context).get_span_context()
    return trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=caller.trace_id if caller.is_valid else _ids.generate_trace_id(),
            span_id=_ids.generate_span_id(),
            is_remote=False,
            trace_flags=caller.trace_flags,
            trace_state=caller.trace_state,
        )
    )


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
        if not _exporting():
            # Nothing receives spans: the request still runs in a trace (the caller's, joined,
            # or a new one) whose id its audit events record, without a span built and dropped.
            with trace.use_span(_unrecorded(propagate.extract(carrier))):
                await self.app(scope, receive, send)
            return
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
