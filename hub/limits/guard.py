"""The limits in front of `/graphql`: per client, by role, before the request is read.

A request over its client's rate or in-flight allowance is refused with 429 `RATE_LIMITED` and
`Retry-After`, and the refusal is an audit event (outcome `denied`, detail `RATE_LIMITED`),
written before the answer leaves. It runs after authentication (the token names the client and
its role) and before the GraphQL request is parsed, so a flood costs one limiter round trip per
request and one audit append per batch of refusals, never a transaction of its own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.access.identity import Principal
from hub.audit import service as audit
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.audit.service import AuditWriteFailed
from hub.errors import RateLimited
from hub.limits.rate import Decision, Limiter, RoleLimit
from hub.limits.refusals import RefusalLog
from hub.limits.unavailable import is_transient, retry_headers, send_error

log = logging.getLogger("hub.limits")
DEFAULT_ROLE = "default"


class Limited:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, RoleLimit],
        limiter: Limiter,
        refusals: RefusalLog,
        agreement_version: str,
    ) -> None:
        self.app = app
        self.limits = limits
        self.limiter = limiter
        self.refusals = refusals
        self.agreement_version = agreement_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal")
        if scope["type"] != "http" or principal is None:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(principal.role.value) or self.limits[DEFAULT_ROLE]
        decision = await self.limiter.admit(principal.client_id, limit)
        if not decision.admitted:
            await self._refuse(scope, send, principal, decision)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await self._release(principal.client_id)

    async def _release(self, client: str) -> None:
        try:
            await self.limiter.release(client)
        except Exception as error:
            if not is_transient(error):
                raise
            # The slot is freed when the client's lease runs out (see hub.limits.rate).
            log.warning("in-flight slot not released: %s", type(error).__name__)

    async def _refuse(
        self, scope: Scope, send: Send, principal: Principal, decision: Decision
    ) -> None:
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1") or str(uuid.uuid4())
        draft = audit.EventDraft(
            actor=audit.Actor(
                user=principal.user,
                organisation_code=principal.organisation_code,
                client_id=principal.client_id,
                role=principal.role.value,
                purpose=principal.purpose,
            ),
            operation=S62Operation.CONSULTATION,
            operation_kind=OperationKind.REQUEST,
            operation_name=None,
            outcome=Outcome.DENIED,
            records=[],
            request_id=request_id,
            trace_id=None,
            agreement_version=self.agreement_version,
            detail={"denied": ["RATE_LIMITED"], "limit": decision.reason},
        )
        try:
            await self.refusals.record(draft)
        except AuditWriteFailed as failed:
            await send_error(send, 503, failed, retry_headers())
            return
        refused = RateLimited(
            f"over this client's {decision.reason} limit: retry after Retry-After"
        )
        await send_error(send, 429, refused, retry_headers(decision.retry_after))
