"""Which transport an operation may arrive on: subscriptions only over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from hub.errors import HubError


class SubscriptionNeedsWebSocket(HubError):
    code = "SUBSCRIPTION_NEEDS_WEBSOCKET"


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent over HTTP (a gateway's default) is refused with a code that says why.

    Its deliveries are each audited in their own transaction before they are sent, which the
    hub does on a graphql-transport-ws connection; over HTTP it used to fail as INTERNAL.
    """

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        request = getattr(execution.context, "request", None)
        over_http = request is not None and not isinstance(request, WebSocket)
        if execution.operation_type is OperationType.SUBSCRIPTION and over_http:
            refusal = SubscriptionNeedsWebSocket(
                "subscriptions are served over graphql-transport-ws (a WebSocket on /graphql), "
                "not over HTTP"
            )
            raise GraphQLError(refusal.message, extensions=refusal.extensions)
        yield
