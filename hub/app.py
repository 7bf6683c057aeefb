"""The ASGI application: GraphQL, OAuth token endpoint, JWKS, health, and the guards in front."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub import telemetry
from hub.access.agreement import Agreement, default_path
from hub.access.connection_params import as_headers
from hub.access.identity import Principal
from hub.access.keys import KeySet
from hub.access.oauth import routes as oauth_routes
from hub.access.revocation import ClientStatus, authenticate_live
from hub.audit.indexer import AuditIndexer
from hub.changes.fanout import Fanout, OutletHandler
from hub.changes.notifier import ChangeNotifier
from hub.cursors import CursorSeal
from hub.db import Database
from hub.errors import HubError, Unauthenticated
from hub.escalation.scan import escalating
from hub.escalation.scanner import EscalationScanner
from hub.federation import audit as federation_audit
from hub.federation.deferred import HeldFetches
from hub.graphiql import views as graphiql
from hub.graphql.context import HubContext
from hub.graphql.media import GRAPHQL_RESPONSE_JSON, prefers_graphql_response_json
from hub.graphql.schema import build_schema
from hub.limits.guard import Limited
from hub.limits.rate import Limiter, MemoryLimiter, PostgresLimiter
from hub.limits.refusals import RefusalLog
from hub.limits.unavailable import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_CODES,
    Unavailable,
    retry_headers,
)
from hub.settings import Settings, get_settings
from hub.timeliness import dashboard
from hub.timeliness.extract import all_targets_for
from hub.timeliness.models import NotedReceipts
from hub.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("hub.app")
WS_UNAUTHORISED = 4401  # graphql-transport-ws: close codes 4400-4499 are the client's fault


@dataclasses.dataclass
class HubState:
    settings: Settings
    db: Database
    keys: KeySet
    agreement: Agreement
    notifier: ChangeNotifier = dataclasses.field(init=False)
    fanout: Fanout = dataclasses.field(init=False)
    indexer: AuditIndexer = dataclasses.field(init=False)
    cursors: CursorSeal = dataclasses.field(init=False)
    client_status: ClientStatus = dataclasses.field(init=False)
    escalations: EscalationScanner = dataclasses.field(init=False)
    held_fetches: HeldFetches = dataclasses.field(init=False)
    # Receipts this process saw committed: a read's audit leaves them out (`NotedReceipts`).
    receipts: NotedReceipts = dataclasses.field(default_factory=NotedReceipts)
    # The gateway's own tokens this process verified (token -> the gateway, until when): sent
    # with every fetch it makes, so verified once; revocation is still checked on every use.
    gateway_credentials: dict[str, tuple[Principal, float]] = dataclasses.field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self.cursors = CursorSeal.from_secret(self.settings.pseudonym_key.get_secret_value())
        self.client_status = ClientStatus(
            self.db, ttl_seconds=self.settings.client_status_ttl_seconds
        )
        self.notifier = ChangeNotifier(
            self.settings.database_url, poll_seconds=self.settings.change_poll_seconds
        )
        self.indexer = AuditIndexer(self.db, delay=self.settings.audit_index_delay_seconds)
        self.fanout = Fanout(self)
        targets = all_targets_for(self.settings)
        escalating(targets)  # a target escalating a stage no domain declares stops the start
        self.escalations = EscalationScanner(
            self.db,
            targets,
            every=self.settings.escalation_scan_seconds,
            horizon=dt.timedelta(days=self.settings.escalation_horizon_days),
        )
        self.held_fetches = HeldFetches(
            self.db,
            wait_seconds=self.settings.federation_report_wait_seconds,
            capacity=self.settings.federation_held_fetches,
            lock_timeout=self.settings.audit_lock_timeout_seconds,
        )


def _error_body(error: HubError) -> bytes:
    return json.dumps(
        {"errors": [{"message": error.message, "extensions": error.extensions}]}
    ).encode()


async def _send_error(send: Send, status: int, error: HubError, headers: dict[str, str]) -> None:
    body = _error_body(error)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class PayloadTooLarge(HubError):
    code = "PAYLOAD_TOO_LARGE"


class BodyLimit:
    """Refuse request bodies over the limit, whether declared up front or sent chunked.

    A declared length is checked before anything is read (the server holds the client to it);
    a chunked body is read up to the limit first, so the app never sees a partial request.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"request body over {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await _send_error(send, 413, too_large, {})
                return
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _send_error(send, 413, too_large, {})
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class ResponseMedia:
    """Applies what `HubGraphQL.process_result` decided: media type and status of the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_media(message: Message) -> None:
            state = scope.get("state", {})
            if message["type"] == "http.response.start" and "graphql_media_type" in state:
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-type"]
                media = f"{state['graphql_media_type']}; charset=utf-8".encode()
                message = {
                    **message,
                    "status": state.get("graphql_status", message["status"]),
                    "headers": [*headers, (b"content-type", media)],
                }
            if message["type"] == "http.response.start" and "retry_after" in state:
                # Retryable whatever the media type: 503 and when to come back.
                message = {
                    **message,
                    "status": HTTPStatus.SERVICE_UNAVAILABLE,
                    "headers": [*message["headers"], *retry_headers(state["retry_after"])],
                }
            await send(message)

        await self.app(scope, receive, send_with_media)


class Authenticated:
    """No anonymous data access: /graphql needs a valid hub token (GraphiQL's page excepted)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http" or self._is_graphiql_page(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        hub: HubState = request.app.state.hub
        try:
            principal = await authenticate_live(
                request.headers, settings=hub.settings, keys=hub.keys, clients=hub.client_status
            )
        except Unauthenticated as error:
            challenge = (
                'Bearer error="invalid_token"' if "authorization" in request.headers else "Bearer"
            )
            await _send_error(send, 401, error, {"WWW-Authenticate": challenge})
            return
        except HubError as error:
            await _send_error(send, 400, error, {})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A subscription's connection: the same token and context headers, on the upgrade
        request (clients are case systems, which can set headers). Refused before it opens.
        """
        websocket = WebSocket(scope, receive, send)
        hub: HubState = websocket.app.state.hub
        if "authorization" not in websocket.headers:
            # A browser or stock graphql-ws client: the token comes in `connection_init`, where
            # `HubGraphQL.on_ws_connect` verifies it before any operation is accepted.
            await self.app(scope, receive, send)
            return
        try:
            principal = await authenticate_live(
                websocket.headers, settings=hub.settings, keys=hub.keys, clients=hub.client_status
            )
        except HubError as error:
            log.info("websocket refused: %s", error.code)
            await websocket.close(code=WS_UNAUTHORISED, reason=error.code)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    @staticmethod
    def _is_graphiql_page(scope: Scope) -> bool:
        headers = dict(scope["headers"])
        accept = headers.get(b"accept", b"").decode("latin-1")
        return scope["method"] == "GET" and not scope.get("query_string") and "text/html" in accept


# strawberry answers an operationName the document lacks with a plain-text 400 quoting it.
UNKNOWN_OPERATION = "operationName names no operation in the query."


class HubGraphQL(GraphQL[HubContext, None]):
    # Sends a fanned-out subscriber what its group resolved and audited (`hub.changes.fanout`).
    graphql_transport_ws_handler_class = OutletHandler

    def encode_json(self, data: object) -> str:
        """A WebSocket message's JSON, by orjson (text: a text frame, as graphql-ws sends): one
        message for each subscriber an event reaches, where `json.dumps` cost twice as much."""
        return orjson.dumps(data).decode()

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """One operation; an operationName the document lacks is a coded error, not echoed."""
        try:
            result: ExecutionResult = await super().execute_single(*args, **kwargs)
        except HTTPException as error:
            if not isinstance(error.__cause__, CannotGetOperationTypeError):
                raise
            refused = GraphQLError(
                UNKNOWN_OPERATION, extensions={"code": "GRAPHQL_VALIDATION_FAILED"}
            )
            return ExecutionResult(data=None, errors=[refused])
        return result

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The HTTP response as strawberry makes it, its JSON encoded by orjson: the standard
        library's encoder took 2% of a council page's CPU. (Websocket messages keep
        strawberry's encoding, which `hub.changes.fanout` matches byte for byte.)"""
        response = Response(
            orjson.dumps(response_data),
            status_code=sub_response.status_code or HTTPStatus.OK,
            media_type="application/json",
            background=sub_response.background,
        )
        response.headers.raw.extend(sub_response.headers.raw)
        return response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        body = await super().process_result(request, result)
        if any((e.extensions or {}).get("code") in UNAVAILABLE_CODES for e in result.errors or ()):
            request.state.retry_after = RETRY_AFTER_SECONDS
        if prefers_graphql_response_json(request.headers.get("accept", "")):
            request.state.graphql_media_type = GRAPHQL_RESPONSE_JSON
            # Errors without a path are request errors: nothing ran, so no `data` and a 400.
            if result.data is None and result.errors and all(e.path is None for e in result.errors):
                body.pop("data", None)
                request.state.graphql_status = HTTPStatus.BAD_REQUEST
        return body

    async def on_ws_connect(self, context: HubContext) -> UnsetType | dict[str, object] | None:
        """No token on the upgrade: the token, purpose and person from `connectionParams`."""
        if context.identity is None:
            try:
                hub = context.hub
                context.identity = await authenticate_live(
                    as_headers(context.connection_params or {}),
                    settings=hub.settings,
                    keys=hub.keys,
                    clients=hub.client_status,
                )
            except HubError as error:
                log.info("websocket refused at connection_init: %s", error.code)
                raise ConnectionRejectionError({"code": error.code}) from None
        acknowledged: UnsetType = UNSET  # strawberry's plain connection_ack
        return acknowledged

    async def render_graphql_ide(self, request: Request) -> Response:  # noqa: ARG002 - strawberry's signature
        return graphiql.page_response()  # its assets from the hub, not a CDN

    async def get_context(self, request: Any, response: Any = None) -> HubContext:
        hub: HubState = request.app.state.hub
        return HubContext(
            request=request,
            response=response,
            hub=hub,
            identity=getattr(request.state, "principal", None),
            request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
            gateway_fetch=await federation_audit.gateway_fetch(request, hub)
            if isinstance(request, Request)
            else None,
            written_pages=hub.settings.compiled_reads and isinstance(request, Request),
        )


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    try:
        await hub.db.ping()
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        log.warning("readiness check: database unreachable")
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "reachable"})


# The collector's tail (issue 16): a full collection walked every object start-up made (the
# schema, SQLAlchemy's mappers, the modules) and held a request for 100 ms and more, so the p99
# of a council query at 1 in flight was 150 ms against a 20 ms median. Start-up's objects are
# frozen out of its reach once, and the youngest generation collected ten times less often (a
# request allocates thousands of short-lived objects; most die young between collections anyway).
YOUNG_THRESHOLD = 7000


SQLITE_SWITCH_INTERVAL = 0.0005  # `Settings.switch_interval_seconds`'s default on SQLite


def _settle_the_interpreter(settings: Settings, db: Database) -> None:
    """The GIL's turns (`Settings.switch_interval_seconds`), for every thread of the process."""
    interval = settings.switch_interval_seconds
    if interval is None and db.is_sqlite:
        interval = SQLITE_SWITCH_INTERVAL
    if interval is not None:
        sys.setswitchinterval(interval)


def _settle_the_collector() -> None:
    if gc.get_freeze_count():
        return  # once per process: an app started again (tests) leaves its objects collectable
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def _limiter(db: Database) -> Limiter:
    # SQLite is served by one process; PostgreSQL's hub processes share one allowance a client.
    # As many connections as requests have: a request holds one only while it is admitted or
    # released, but with fewer than requests in flight the pool's overflow connections were
    # closed as they came back and opened again for the next (a third of a request's CPU at
    # 8 in flight on a request that returns nothing).
    return MemoryLimiter() if db.is_sqlite else PostgresLimiter(db.url, pool_size=db.pool_size)


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    schema = build_schema(settings)
    agreement = Agreement.load(settings.agreement_file or default_path(), schema._schema)  # noqa: SLF001 - the GraphQL schema the agreement names
    db = Database(settings.database_url)
    state = HubState(
        settings=settings, db=db, keys=KeySet.for_settings(settings), agreement=agreement
    )
    telemetry.configure(db.engine)
    graphql = HubGraphQL(
        schema,
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=True,
    )

    limiter = _limiter(db)
    limited = Limited(
        ResponseMedia(graphql),
        limits=settings.limits,
        limiter=limiter,
        refusals=RefusalLog(db),
        agreement_version=agreement.version,
    )

    webhooks = WebhookDispatcher(state, schema)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state.indexer.poke()  # whatever an earlier process appended and did not index
        state.escalations.start()
        _settle_the_collector()
        _settle_the_interpreter(settings, state.db)
        if settings.webhook_dispatch:
            webhooks.start()  # in the background: never on a request's path
        yield
        await state.escalations.close()
        await webhooks.close()
        await state.held_fetches.close()
        await state.fanout.close()
        await state.indexer.close()
        await state.notifier.close()
        await limiter.close()
        await db.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", Authenticated(limited), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", Authenticated(graphql)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *oauth_routes(),
            *federation_audit.routes(),
            *dashboard.routes(),
            *(graphiql.routes() if settings.graphiql else []),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Unavailable), Middleware(telemetry.TraceContext)],
    )
    app.state.hub = state
    app.state.webhooks = webhooks
    return BodyLimit(app, max_bytes=settings.max_body_bytes)
