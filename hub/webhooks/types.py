"""GraphQL: a client registers, reads and removes the webhook its changes are POSTed to.

Who may is the agreement's `Mutation` and `Query` lists (council and police systems). A
registration is for the calling client: its organisation and role, and the purpose and person
the request names, which every delivery is then made and audited for.
"""

from __future__ import annotations

import datetime as dt

import strawberry

from hub.access.policy import effective_purpose
from hub.errors import InvalidInput
from hub.graphql.context import Info
from hub.webhooks import service
from hub.webhooks.models import DeliveryState, WebhookEndpoint


@strawberry.type(description="Where the calling client's changes are POSTed, signed.")
class Webhook:
    id: strawberry.ID
    url: str | None = strawberry.field(description="The client's HTTPS endpoint.")
    created_at: dt.datetime | None
    purpose: str | None = strawberry.field(description="What every delivery is made for.")
    on_behalf_of: str | None = strawberry.field(description="Who every delivery is made for.")
    pending: int | None = strawberry.field(description="Deliveries waiting for an attempt.")
    delivered: int | None
    dead_letters: int | None = strawberry.field(
        description="Deliveries parked after their last attempt failed (an operator replays)."
    )

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, counts: dict[str, int]) -> Webhook:
        return cls(
            id=strawberry.ID(endpoint.id),
            url=endpoint.url,
            created_at=endpoint.created_at,
            purpose=endpoint.purpose,
            on_behalf_of=endpoint.on_behalf_of,
            pending=counts[DeliveryState.PENDING.value],
            delivered=counts[DeliveryState.DELIVERED.value],
            dead_letters=counts[DeliveryState.DEAD.value],
        )


@strawberry.type(description="A new webhook and its signing secret, which is never shown again.")
class WebhookRegistration:
    webhook: Webhook | None
    secret: str | None = strawberry.field(
        description=(
            "whsec_ + base64 key: verify each delivery's webhook-signature with it "
            "(Standard Webhooks)."
        )
    )


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The calling client's webhook, if it has registered one.")
    async def webhooks(self, info: Info) -> list[Webhook] | None:
        session = info.context.session
        endpoint = await service.of_client(session, info.context.principal.client_id)
        if endpoint is None:
            return []
        return [Webhook.of(endpoint, await service.counts(session, endpoint.id))]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description=(
            "POST this client's changes (what recordChanges would send it) to an HTTPS "
            "endpoint, for the purpose and person this request names. One per client."
        ),
    )
    async def register_webhook(self, info: Info, url: str) -> WebhookRegistration | None:
        context = info.context
        purpose = effective_purpose(context, mutation=True)
        if purpose is None:  # the purpose check refuses first; kept for the type checker
            raise InvalidInput("name the purpose of the deliveries", field="purpose")
        endpoint, secret = await service.register(
            context.session,
            principal=context.principal,
            purpose=purpose,
            url=url,
            settings=context.hub.settings,
        )
        counts = dict.fromkeys((s.value for s in DeliveryState), 0)
        return WebhookRegistration(webhook=Webhook.of(endpoint, counts), secret=secret)

    @strawberry.mutation(
        description=(
            "Stop POSTing this client's changes and forget every delivery to it; returns the "
            "webhook as it was."
        ),
    )
    async def remove_webhook(self, info: Info) -> Webhook | None:
        session = info.context.session
        client_id = info.context.principal.client_id
        endpoint = await service.of_client(session, client_id)
        counts = await service.counts(session, endpoint.id) if endpoint is not None else {}
        removed = await service.remove(session, client_id=client_id)
        return Webhook.of(removed, counts)
