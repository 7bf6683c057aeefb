"""The OAuth 2.0 token endpoint (client credentials), the JWKS and RFC 8414 metadata.

authlib has no Starlette integration; this is the thin one it needs. authlib's server is
synchronous and the database is not, so the async endpoint reads the form and loads the claimed
client first; authlib then runs in a worker thread with that client preloaded, where it
authenticates the client (Argon2, deliberately slow, so off the event loop), applies the grant
and mints the token through `HubTokenGenerator`, the same generator the CLI uses.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import parse_qsl

from authlib.common.security import is_secure_transport
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientCredentialsGrant
from authlib.oauth2.rfc6749.errors import (
    InsecureTransportError,
    InvalidRequestError,
    OAuth2Error,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.access import clients
from hub.access.models import Role
from hub.access.tokens import (
    GRANT_TYPE,
    SCOPES_SUPPORTED,
    HubTokenGenerator,
    TokenSubject,
    granted_scope,
)

if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.requests import Request

    from hub.access.keys import KeySet
    from hub.access.models import OAuthClient
    from hub.db import Database
    from hub.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a credential
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_FORM_TYPE = "application/x-www-form-urlencoded"
# A client credentials request is a handful of short fields; anything bigger is not one.
_MAX_FORM_BYTES = 4096
_MAX_FORM_FIELDS = 16
_MAX_CLIENT_ID_LENGTH = 64
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


class HubState(Protocol):
    """What `request.app.state.hub` holds (built by the app)."""

    settings: Settings
    db: Database
    keys: KeySet


def routes() -> list[Route]:
    return [
        Route(TOKEN_PATH, token_endpoint, methods=["POST"]),
        Route(JWKS_PATH, jwks_endpoint, methods=["GET"]),
        Route(METADATA_PATH, metadata_endpoint, methods=["GET"]),
    ]


async def jwks_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    return JSONResponse(hub.keys.public_jwks(), headers=_PUBLIC_CACHE)


async def metadata_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    return JSONResponse(authorization_server_metadata(hub.settings), headers=_PUBLIC_CACHE)


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 8414 s.2, for the members that apply to a client-credentials-only server."""
    return {
        "issuer": settings.issuer,
        "token_endpoint": _url(settings, TOKEN_PATH),
        "jwks_uri": _url(settings, JWKS_PATH),
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": list(SCOPES_SUPPORTED),
        # Required by RFC 8414, and empty: there is no authorization endpoint to respond from.
        "response_types_supported": [],
    }


async def token_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    try:
        form = await _read_form(request)
    except InvalidRequestError as error:
        return _error_response(error)
    token_uri = _url(hub.settings, TOKEN_PATH)
    if not is_secure_transport(token_uri):
        # authlib would refuse too, but from outside its error handling, as a crash.
        logger.error("token endpoint refused: HUB_ISSUER must be an https URL off loopback")
        return _error_response(InsecureTransportError())
    client = await _load_client(hub.db, _claimed_client_id(request, form))
    server = HubAuthorizationServer(settings=hub.settings, keys=hub.keys, client=client)
    token_request = _TokenRequest(uri=token_uri, headers=request.headers, form=form)
    return await run_in_threadpool(server.token_response, token_request)


async def _read_form(request: Request) -> dict[str, str]:
    """The form, refusing what RFC 6749 calls an invalid request (s.3.2, s.2.3, s.4.4.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise InvalidRequestError(f"the body must be {_FORM_TYPE}")
    fields = _parse_form(await _read_body(request))
    names = [name for name, _ in fields]
    if len(set(names)) != len(names):
        raise InvalidRequestError("a parameter is repeated")
    form = dict(fields)
    if not form.get("grant_type"):
        raise InvalidRequestError("grant_type is missing")
    if "client_secret" in form and "authorization" in request.headers:
        raise InvalidRequestError("use one client authentication method, not two")
    return form


async def _read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidRequestError("the request body is too large")
    return body


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise InvalidRequestError("the form is not valid") from None


def _claimed_client_id(request: Request, form: dict[str, str]) -> str | None:
    client_id, _ = extract_basic_authorization(request.headers)
    claimed = client_id or form.get("client_id")
    return claimed if isinstance(claimed, str) else None


async def _load_client(db: Database, client_id: str | None) -> _RegisteredClient | None:
    if not client_id or len(client_id) > _MAX_CLIENT_ID_LENGTH:
        return None
    async with db.transaction(write=False) as session:
        record = await clients.get_client(session, client_id=client_id)
    if record is None or record.revoked_at is not None:
        return None
    return _RegisteredClient.from_record(record)


def _url(settings: Settings, path: str) -> str:
    return settings.issuer.rstrip("/") + path


def _error_response(error: OAuth2Error) -> Response:
    status, body, headers = error()
    return JSONResponse(body, status_code=status, headers=dict(headers))


@dataclasses.dataclass(frozen=True)
class _TokenRequest:
    """What the async endpoint read, handed to authlib in its worker thread."""

    uri: str
    headers: Headers  # case-insensitive, as authlib's header lookups expect
    form: dict[str, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RegisteredClient(TokenSubject):
    """An active client from the database, speaking authlib's `ClientMixin` method names."""

    secret_hash: str

    @classmethod
    def from_record(cls, record: OAuthClient) -> _RegisteredClient:
        return cls(
            client_id=record.client_id,
            organisation_code=record.organisation_code,
            role=Role(record.role),
            secret_hash=record.secret_hash,
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.verify_secret(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str:
        return granted_scope(scope)


class _UnknownClient:
    """Stands in for an unknown or revoked client: fails the secret check, at the usual speed."""

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.verify_secret(None, client_secret)

    def check_endpoint_auth_method(self, _method: str, _endpoint: str) -> bool:
        return True


# authlib ships no type information, so its classes are Any to mypy.
class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # authlib's own version logs the whole token response at DEBUG; this one does not.
        token: dict[str, Any] = self.generate_token(
            scope=self.request.payload.scope, include_refresh_token=False
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, token_request: _TokenRequest) -> None:
        super().__init__("POST", token_request.uri, headers=token_request.headers)
        self._form = token_request.form
        self.payload = BasicOAuth2Payload(token_request.form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class HubAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One per token request, holding the client the endpoint loaded."""

    def __init__(
        self, *, settings: Settings, keys: KeySet, client: _RegisteredClient | None
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES_SUPPORTED))
        self._client = client
        self.register_grant(_ClientCredentialsGrant)
        self.register_token_generator("default", HubTokenGenerator(settings=settings, keys=keys))

    def token_response(self, token_request: _TokenRequest) -> Response:
        response: Response = self.create_token_response(token_request)
        return response

    def query_client(self, client_id: str) -> _RegisteredClient | _UnknownClient:
        if self._client is not None and self._client.client_id == client_id:
            return self._client
        return _UnknownClient()

    def save_token(self, _token: dict[str, Any], request: _FormRequest) -> None:
        # A JWT access token is self-contained: there is nothing to store, only to note.
        client: _RegisteredClient = request.client
        logger.info(
            "access token issued",
            extra={"client_id": client.client_id, "organisation": client.organisation_code},
        )

    def create_oauth2_request(self, request: _TokenRequest) -> _FormRequest:
        return _FormRequest(request)

    def create_json_request(self, request: object) -> None:
        raise NotImplementedError("the hub serves no JSON-bodied OAuth endpoints")

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Response:
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """authlib's hook for framework signals; the hub subscribes to none."""
