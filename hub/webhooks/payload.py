"""What a delivery carries: the client's `recordChanges` event, resolved when it is sent.

A delivery is made exactly as a subscription event is: the change read from the outbox, the
record looked up through the client's row scope (out of its view: nothing is sent, nothing
logged), its fields resolved through the agreement's gate as the client's role, and a disclosure
written to the audit, committed before the message leaves. The body is the same JSON a
subscriber's `next` message carries: `{"data": {"recordChanges": {...}}}`.

The selection is every field the role's agreement lets it read, on each record type: the record,
its organisations, its children and their references (not the record's timeline, and not other
records, which a query reads). A field the record types type differently is sent under the
type's name (`missingEpisodeStatus`, `investigationStatus`), as GraphQL requires. It is made
again from the agreement in force whenever the agreement changes, so a field withdrawn from the
role is no longer sent.
"""

from __future__ import annotations

import dataclasses
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    is_leaf_type,
)

from hub.access.identity import Principal
from hub.access.models import Role
from hub.graphql.context import HubContext
from hub.webhooks import service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hub.access.agreement import RolePolicy
    from hub.app import HubState
    from hub.changes.models import RecordChange
    from hub.db import Database
    from hub.graphql.federation import HubSchema

RECORD_TYPES = ("Incident", "MissingEpisode", "Investigation", "PoliceProtection")
# The event's own fields; every other field of `RecordChange` is a record of another kind (a
# meeting, a council's record, a closure review...), selected as the role may read it.
EVENT_FIELDS = frozenset({"cursor", "change", "occurredAt", "record"})
# A record's clock (its own query), and records other than the one delivered.
NOT_SELECTED = frozenset({"Timeline", *RECORD_TYPES})
OPERATION_NAME = "WebhookDelivery"
MAX_DEPTH = 4


@dataclasses.dataclass
class WebhookAttempt:
    """The delivery a `recordChanges` stream is resolving, for `hub.changes.types`."""

    endpoint_id: str
    delivery_id: str
    change: RecordChange
    attempts: int  # made before this one
    hold_seconds: float
    out_of_scope: bool = False
    begun: bool = False

    @property
    def number(self) -> int:
        return self.attempts + 1

    async def begin(self, db: Database, session: AsyncSession) -> bool:
        """Count this attempt: in the event's transaction, committed with its audit; on SQLite,
        where that transaction only reads (the audit is written after it, as for any
        subscriber), in a write transaction of its own just before."""
        if db.audits_reads_in_place:
            self.begun = await self._begin(session)
        else:
            async with db.transaction(write=True) as own:
                self.begun = await self._begin(own)
        return self.begun

    async def _begin(self, session: AsyncSession) -> bool:
        return await service.begin_attempt(
            session, self.delivery_id, attempts=self.attempts, hold_seconds=self.hold_seconds
        )

    def audit_detail(self) -> dict[str, Any]:
        """How the delivery left, in its access event: the endpoint by id, never its address."""
        return {
            "channel": "webhook",
            "webhook": {
                "endpoint": self.endpoint_id,
                "delivery": self.delivery_id,
                "attempt": self.number,
            },
        }


def _clashing(schema: GraphQLSchema) -> frozenset[str]:
    """Leaf fields the record types give different types (`status`): GraphQL lets one selection
    ask for them only under different names."""
    typed: dict[str, set[str]] = {}
    for type_name in RECORD_TYPES:
        record_type = schema.get_type(type_name)
        if isinstance(record_type, GraphQLObjectType):
            for name, field in record_type.fields.items():
                if is_leaf_type(get_named_type(field.type)):
                    typed.setdefault(name, set()).add(str(field.type))
    return frozenset(name for name, types in typed.items() if len(types) > 1)


def _alias(type_name: str, field: str) -> str:
    """`missingEpisodeStatus: status`, `investigationStatus: status`."""
    return type_name[0].lower() + type_name[1:] + field[0].upper() + field[1:]


def _selection(
    graphql_type: GraphQLObjectType | GraphQLInterfaceType,
    policy: RolePolicy,
    depth: int,
    path: frozenset[str],
    clashing: frozenset[str] = frozenset(),
) -> str:
    parts = []
    for name, field in graphql_type.fields.items():
        if name.startswith("_") or not policy.sees(graphql_type.name, name):
            continue
        if any(
            isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            for arg in field.args.values()
        ):
            continue
        named = get_named_type(field.type)
        if is_leaf_type(named):
            parts.append(f"{_alias(graphql_type.name, name)}: {name}" if name in clashing else name)
            continue
        if named.name in NOT_SELECTED or named.name in path or depth >= MAX_DEPTH:
            continue
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            inner = _selection(named, policy, depth + 1, path | {named.name})
            if inner:
                parts.append(f"{name} {{ {inner} }}")
    return " ".join(parts)


def _document(schema: GraphQLSchema, policy: RolePolicy) -> str:
    fragments = []
    clashing = _clashing(schema)
    for type_name in RECORD_TYPES:
        record_type = schema.get_type(type_name)
        if not isinstance(record_type, GraphQLObjectType):
            continue
        fields = _selection(record_type, policy, 1, frozenset({type_name}), clashing)
        if fields:
            fragments.append(f"... on {type_name} {{ {fields} }}")
    record = f"record {{ __typename {' '.join(fragments)} }}" if fragments else ""
    others = " ".join(_other_records(schema, policy))
    return (
        f"subscription {OPERATION_NAME} {{ recordChanges {{ cursor change occurredAt {record}"
        f" {others} }} }}"
    )


def _other_records(schema: GraphQLSchema, policy: RolePolicy) -> list[str]:
    """The event's other record fields, each with what the role may read of each possible type:
    a webhook carries what a subscription selecting everything would be sent."""
    event = schema.get_type("RecordChange")
    assert isinstance(event, GraphQLObjectType)  # noqa: S101 - the schema defines it
    found = []
    for name, field in event.fields.items():
        if name in EVENT_FIELDS:
            continue
        named = get_named_type(field.type)
        possible: list[Any] = (
            list(schema.get_possible_types(named))
            if isinstance(named, GraphQLInterfaceType)
            else [named]
        )
        fragments = []
        for record_type in possible:
            if not isinstance(record_type, GraphQLObjectType):
                continue
            fields = _selection(record_type, policy, 1, frozenset({record_type.name}))
            if fields:
                fragments.append(f"... on {record_type.name} {{ {fields} }}")
        if fragments:
            found.append(f"{name} {{ __typename {' '.join(fragments)} }}")
    return found


# Per (schema, role policy) object: an agreement loaded again brings new policies.
_documents: dict[tuple[int, int], str] = {}


def document_for(schema: HubSchema, policy: RolePolicy) -> str:
    """The subscription a delivery runs for a role, under the agreement in force."""
    graphql_schema = schema._schema  # noqa: SLF001 - the GraphQL schema the agreement names
    key = (id(graphql_schema), id(policy))
    found = _documents.get(key)
    if found is None:
        found = _documents[key] = _document(graphql_schema, policy)
    return found


def principal_of(lease: service.Lease) -> Principal:
    """The client, as the agreement knows it, for the purpose and person it registered."""
    return Principal(
        client_id=lease.client_id,
        organisation_code=lease.organisation_code,
        role=Role(lease.role),
        user=lease.on_behalf_of,
        purpose=lease.purpose,
        token_id=f"webhook:{lease.endpoint_id}",
    )


async def render(
    hub: HubState, schema: HubSchema, lease: service.Lease, attempt: WebhookAttempt
) -> Any | None:
    """The delivery's result, audited and its attempt counted; None when there is nothing to
    send (out of the client's view, or another process made this attempt)."""
    principal = principal_of(lease)
    context = HubContext(
        request=None,
        response=None,
        hub=hub,
        request_id=f"{attempt.delivery_id}:{attempt.number}",
        identity=principal,
        webhook=attempt,
    )
    document = document_for(schema, hub.agreement.policy(principal.role))
    results = await schema.subscribe(document, context_value=context, operation_name=OPERATION_NAME)
    async with aclosing(results):
        async for result in results:
            return result
    return None


def body_of(result: Any) -> dict[str, Any]:
    """The JSON a subscriber's `next` message carries for the same result."""
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return body
