"""A client's webhook endpoint, and each delivery to it with its retry state.

Everything the dispatcher does is derived from these rows (no timer held in memory): a restart
resumes where the stored state says, and several hub processes share the work without any
attempt being made twice (`hub.webhooks.service`).
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (the first, or a retry)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # parked after the last attempt failed: an operator may replay it
    REFUSED = "refused"  # the agreement no longer lets the client have it: never sent


class WebhookEndpoint(SQLModel, table=True):
    """Where a client's changes are POSTed, and who they are delivered for (one per client)."""

    __tablename__ = "webhook_endpoint"

    id: str = id_field()
    client_id: str = Field(max_length=64, unique=True)
    organisation_code: str = org_field()
    role: str = enum_field()
    # The purpose and person every delivery is made for, as a subscriber names them.
    purpose: str = Field(max_length=128)
    on_behalf_of: str = Field(max_length=128)
    url: str = Field(max_length=2000)
    # The signing secret (`whsec_...`), shown once and never logged; kept so that the hub can
    # sign, sealed (`service.seal_secret`): a copy of the database alone signs nothing.
    secret: str = Field(max_length=200)
    created_at: dt.datetime = utc_field(now=True)
    # The newest change in the outbox already turned into deliveries (or found to be none).
    seen: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    # Which process is delivering to this endpoint, until when: one at a time per endpoint.
    lease_token: str | None = Field(default=None, max_length=36)
    lease_until: dt.datetime | None = utc_field(nullable=True)


class WebhookDelivery(SQLModel, table=True):
    """One change for one endpoint; its id is the `webhook-id` the receiver deduplicates on."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "change_seq"),
        sa.Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    endpoint_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    change_seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    state: str = enum_field()
    attempts: int = 0
    next_attempt_at: dt.datetime | None = utc_field(nullable=True)
    last_status_code: int | None = None
    # What went wrong last, as a fixed word (timeout, connect, tls, status, audit): no text.
    last_error: str | None = Field(default=None, max_length=32)
    created_at: dt.datetime = utc_field(now=True)
    updated_at: dt.datetime = utc_field(now=True)
