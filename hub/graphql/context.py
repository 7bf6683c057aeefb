"""What every resolver can reach: the caller, their scope, the request's transaction, loaders."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from hub.access.agreement import Agreement, RolePolicy
from hub.access.identity import Principal
from hub.access.scope import RowScope
from hub.cursors import Caller, ListCursors
from hub.errors import Unauthenticated
from hub.graphql.audit_trail import LoadedChildren, Recipient, ServedRecords
from hub.graphql.loaders import Loaders
from hub.pagination import page_size

if TYPE_CHECKING:
    from hub.access.models import Role
    from hub.app import HubState
    from hub.changes.fanout import Group
    from hub.federation.audit import GatewayFetch
    from hub.webhooks.payload import WebhookAttempt


@dataclasses.dataclass
class HubContext:
    request: Request | WebSocket | None  # None for the hub's own jobs
    response: Response | None
    hub: HubState
    request_id: str
    identity: Principal | None
    # The hub's own jobs read without a client's row scope or field view (never a request).
    internal: bool = False
    _session: AsyncSession | None = None
    served: ServedRecords = dataclasses.field(default_factory=ServedRecords)
    # The open transaction of the subscription event being delivered, if any.
    event_session: AsyncSession | None = None
    # A graphql-transport-ws connection's `connection_init` payload (strawberry sets it).
    connection_params: dict[str, Any] | None = None
    # A fan-out group's own stream (`hub.changes.fanout`): the group, and who the event being
    # delivered goes to (its audit lists them).
    fanout_group: Group | None = None
    recipients: tuple[Recipient, ...] = ()
    # A subscriber is being sent what its group resolved and audited for it: nothing to audit.
    replaying: bool = False
    # A webhook delivery (`hub.webhooks`): the one change its `recordChanges` stream resolves.
    webhook: WebhookAttempt | None = None
    # The federated gateway's fetch, proven by its own token. For a response it will report
    # (`gateway_fetch.report`: gateway client, report id), a query's events are held for that
    # report (`hub.federation.deferred`) and appended with it, in one event for the whole
    # response; for a response the hub alone serves, they are written at once, marked.
    gateway_fetch: GatewayFetch | None = None
    # The response is JSON written by orjson (an HTTP request's): a page may then be read as
    # the JSON the database writes of it (`hub.graphql.compiled`), put in as it stands.
    written_pages: bool = False
    # The request's executor (weakly), for a list's resolver to ask what its items' selection
    # compiles to; set by the executor.
    executor: Callable[[], Any] | None = None

    def audit_channel(self) -> dict[str, Any] | None:
        """How what is audited here at once left, in its events' detail, if not as a plain read."""
        if self.webhook is not None:
            return self.webhook.audit_detail()
        if self.gateway_fetch is not None and self.gateway_fetch.report is None:
            return self.gateway_fetch.audit_detail()
        return None

    @property
    def principal(self) -> Principal:
        # Only GraphiQL's HTML page is served without a token, and it runs no operation.
        if self.identity is None:
            raise Unauthenticated("an access token is required")
        return self.identity

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            msg = "no transaction is open: the RequestTransaction extension opens one"
            raise RuntimeError(msg)
        return self._session

    def open(self, session: AsyncSession) -> None:
        self._session = session

    @asynccontextmanager
    async def event_transaction(self) -> AsyncIterator[AsyncSession]:
        """A subscription event's own transaction, loaders and record of what it served.

        Opened before the event's record is loaded and left open while its fields resolve;
        `RequestTransaction.on_stream_result` audits and commits it before the message
        leaves. Rolled back here if the event never gets that far.
        """
        async with self.hub.db.session(write=self.hub.db.audits_reads_in_place) as session:
            await session.begin()
            self._session = self.event_session = session
            self.served = ServedRecords()
            self.__dict__.pop("loaders", None)
            try:
                yield session
            finally:
                self._session = self.event_session = None
                if session.in_transaction():
                    await session.rollback()

    def page_size(self, first: int | None) -> int:
        """How many items a page holds: what the caller asked for, within the hub's limits."""
        settings = self.hub.settings
        return page_size(first, default=settings.default_page_size, maximum=settings.max_page_size)

    def cursors(self, kind: str) -> ListCursors:
        """The cursors of the list `kind` for this caller: useless on any other list or caller."""
        p = self.principal
        caller = Caller(organisation_code=p.organisation_code, role=p.role.value)
        return self.hub.cursors.for_list(kind, caller)

    def gate_basis(self) -> tuple[Agreement, Role] | None:
        """What the field gate's decisions for this request are made from, for the executor to
        keep them for another request made from the same (`HubExecutor`'s shared selections):
        the agreement in force and the caller's role. None where they are not to be kept: no
        caller (every field refused, with the request's own error), or the hub's own jobs."""
        if self.internal or self.identity is None:
            return None
        return self.hub.agreement, self.identity.role

    @cached_property
    def policy(self) -> RolePolicy:
        policy = self.hub.agreement.policy(self.principal.role)
        return dataclasses.replace(policy, internal=True) if self.internal else policy

    @cached_property
    def scope(self) -> RowScope:
        if self.internal:
            return RowScope.unrestricted()
        return RowScope.for_rows(self.policy.rows, self.principal.organisation_code)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.session, self.scope)

    def loaded_children(self) -> LoadedChildren:
        """Records' children the loaders fetched whole, for the audit (no second lookup)."""
        if "loaders" not in self.__dict__:  # no loader ran: nothing fetched
            return LoadedChildren()
        loaders = self.loaders
        investigations = loaders.investigation_children.cache_map.get
        if not self.scope.sees_every_incident_child:
            return LoadedChildren(investigations=investigations)
        return LoadedChildren(
            incidents=loaders.incident_children.cache_map.get, investigations=investigations
        )


Info = StrawberryInfo[HubContext, None]
