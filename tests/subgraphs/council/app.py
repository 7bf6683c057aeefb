"""A council's case system as a subgraph: what it knows of a child the hub also knows.

It contributes to the hub's `Child` (by `@key(fields: "id")`) the allocated social worker and the
child protection plan (category, start date), and lists its own caseload. It is an agency's own
system, so it trusts nobody's word about the caller: the token the gateway forwards is verified
against the hub's JWKS (signature, issuer, audience, expiry), and a caller from another
organisation gets nothing of it. It audits nothing itself: the gateway reports every response to
the hub's audit (see hub/federation/audit.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import strawberry
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.schema.config import StrawberryConfig

JWKS_TTL_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class Case:
    social_worker: str
    plan_category: str
    plan_start: dt.date


@dataclasses.dataclass
class Council:
    """The case system's state: its organisation, its cases, and what it was last sent."""

    code: str
    cases: dict[str, Case]
    jwks_url: str
    issuer: str
    audience: str
    seen: list[dict[str, str | None]] = dataclasses.field(default_factory=list)
    _keys: KeySet | None = None
    _keys_at: float = 0.0

    @classmethod
    def from_file(cls, path: Path, *, jwks_url: str, issuer: str, audience: str) -> Council:
        data = json.loads(path.read_text())
        cases = {
            child_id: Case(
                social_worker=case["socialWorker"],
                plan_category=case["category"],
                plan_start=dt.date.fromisoformat(case["startDate"]),
            )
            for child_id, case in data["cases"].items()
        }
        return cls(
            code=data["council"], cases=cases, jwks_url=jwks_url, issuer=issuer, audience=audience
        )

    async def keys(self) -> KeySet:
        if self._keys is None or time.monotonic() - self._keys_at > JWKS_TTL_SECONDS:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(self.jwks_url)
                response.raise_for_status()
            self._keys, self._keys_at = KeySet.import_key_set(response.json()), time.monotonic()
        return self._keys

    async def verified_claims(self, authorization: str | None) -> dict[str, Any] | None:
        """The caller's claims if the forwarded token is the hub's and valid now; else None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            decoded = jwt.decode(token.strip(), await self.keys(), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)


@strawberry.type
class ChildProtectionPlan:
    category: str
    start_date: dt.date


@strawberry.federation.type(keys=["id"], authenticated=True)
class Child:
    id: strawberry.ID
    case: strawberry.Private[Case | None]

    @strawberry.field(description="The social worker the council allocated to the child.")
    def allocated_social_worker(self) -> str | None:
        return self.case.social_worker if self.case else None

    @strawberry.field(description="The child's current child protection plan, if any.")
    def child_protection_plan(self) -> ChildProtectionPlan | None:
        if self.case is None:
            return None
        case = self.case
        return ChildProtectionPlan(category=case.plan_category, start_date=case.plan_start)

    @classmethod
    def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID) -> Child:  # noqa: A002
        return cls(id=id, case=_visible_cases(info).get(str(id)))


def _visible_cases(info: strawberry.Info) -> dict[str, Case]:
    """The council's cases, for its own organisation's callers only."""
    council: Council = info.context["council"]
    claims = info.context["claims"]
    return council.cases if claims.get("org") == council.code else {}


@strawberry.type
class Query:
    @strawberry.field(description="The children this council has a child protection plan for.")
    def council_caseload(self, info: strawberry.Info) -> list[Child]:
        return [Child(id=strawberry.ID(i), case=c) for i, c in _visible_cases(info).items()]


schema = strawberry.federation.Schema(
    query=Query,
    types=[Child],
    federation_version="2.9",
    config=StrawberryConfig(auto_camel_case=True),
)


def export_sdl() -> str:
    return schema.as_str().rstrip() + "\n"


class CouncilGraphQL(GraphQL[dict[str, Any], None]):
    async def get_context(self, request: Any, response: Any = None) -> dict[str, Any]:  # noqa: ARG002 - strawberry's signature
        return {"council": request.app.state.council, "claims": request.state.claims}


class Verified:
    """The forwarded token verified against the hub's JWKS before any GraphQL runs."""

    def __init__(self, app: Any, council: Council) -> None:
        self.app = app
        self.council = council

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        headers = request.headers
        self.council.seen.append(
            {
                "authorization": "present" if headers.get("authorization") else None,
                "purpose": headers.get("hub-purpose"),
                "onBehalfOf": headers.get("hub-on-behalf-of"),
                "requestId": headers.get("x-request-id"),
                # The gateway's own token goes to the hub alone, never to another agency.
                "gatewayCredential": (
                    "present" if headers.get("hub-gateway-authorization") else None
                ),
            }
        )
        claims = await self.council.verified_claims(headers.get("authorization"))
        if claims is None:
            refusal = {
                "message": "a valid hub token is required",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
            response = JSONResponse({"errors": [refusal]}, status_code=401)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["claims"] = claims
        await self.app(scope, receive, send)


def create_app(council: Council) -> Starlette:
    async def seen(_: Request) -> Response:
        return JSONResponse(council.seen)

    app = Starlette(
        routes=[
            Route("/graphql", Verified(CouncilGraphQL(schema), council), methods=["POST"]),
            Route("/seen", seen, methods=["GET"]),
        ]
    )
    app.state.council = council
    return app
