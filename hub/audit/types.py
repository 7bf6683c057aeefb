"""The audit log in GraphQL: who saw what, when and why, for inspectorates and DPOs.

Which events a role reads, and whether it sees children's ids or only pseudonyms, is the
agreement's (`audit` and `child_identities`): an inspectorate reads every event with children
pseudonymised; a data protection officer reads the accesses to its own organisation's records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Self

import strawberry

from hub.access.agreement import AuditRows, ChildIdentities
from hub.audit import checkpoint
from hub.audit import service as audit
from hub.audit.models import AuditEvent, OperationKind, Outcome, S62Operation
from hub.audit.service import Access, EventFilter
from hub.errors import Forbidden
from hub.graphql.connection import Connection
from hub.graphql.context import Info
from hub.reference.types import Organisation, load_organisation
from hub.validation import optional_utc

S62Type = strawberry.enum(
    S62Operation, name="AccessOperation", description="The DPA 2018 s.62 kind of processing."
)
OutcomeType = strawberry.enum(Outcome, name="AccessOutcome")
KindType = strawberry.enum(OperationKind, name="AccessKind")


@strawberry.type(
    description="One subscriber a subscription delivery was fanned out to, as its event lists them."
)
class AccessRecipient:
    user: str | None = strawberry.field(description="The person the client system acted for.")
    client_id: str | None
    purpose: str | None
    request_id: str | None

    @classmethod
    def listed_in(cls, event: AuditEvent) -> list[Self]:
        """The recipients an event's (hashed) detail lists, in its order."""
        listed = (event.detail_data or {}).get("recipients")
        if not isinstance(listed, list):
            return []
        return [
            cls(
                user=_text(entry.get("user")),
                client_id=_text(entry.get("client_id")),
                purpose=_text(entry.get("purpose")),
                request_id=_text(entry.get("request_id")),
            )
            for entry in listed
            if isinstance(entry, dict)
        ]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@strawberry.type(description="One access to one record (or one refusal), from the audit log.")
class AccessEvent:
    access: strawberry.Private[Access]
    pseudonym_key: strawberry.Private[str | None]

    @classmethod
    def of(cls, access: Access, pseudonym_key: str | None) -> Self:
        return cls(access=access, pseudonym_key=pseudonym_key)

    @property
    def row(self) -> AuditEvent:
        """The event (one response's worth of one kind of processing) the access is part of."""
        return self.access.event

    @strawberry.field(description="Place in the hash chain.")
    def sequence(self) -> str | None:
        return str(self.row.seq)

    @strawberry.field
    def occurred_at(self) -> dt.datetime | None:
        return self.row.occurred_at

    @strawberry.field
    def operation(self) -> S62Type | None:  # type: ignore[valid-type]
        return S62Operation(self.row.operation)

    @strawberry.field
    def outcome(self) -> OutcomeType | None:  # type: ignore[valid-type]
        return Outcome(self.row.outcome)

    @strawberry.field(
        description="The person the client system acted for (null for a delivery fanned out to "
        "several people: see recipients)."
    )
    def user(self) -> str | None:
        return self.row.user

    @strawberry.field(
        description="Everyone a subscription delivery fanned out to several subscribers at once "
        "went to, with the client, purpose and request each received it through; `user`, "
        "`clientId` and `requestId` are set only where they all share one. Empty for an access "
        "by one caller, named in those fields."
    )
    def recipients(self) -> list[AccessRecipient] | None:
        return AccessRecipient.listed_in(self.row)

    @strawberry.field
    async def organisation(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.row.organisation_code)

    @strawberry.field
    def client_id(self) -> str | None:
        return self.row.client_id

    @strawberry.field
    def role(self) -> str | None:
        return self.row.role

    @strawberry.field
    def purpose(self) -> str | None:
        return self.row.purpose

    @strawberry.field
    def operation_name(self) -> str | None:
        return self.row.operation_name

    @strawberry.field
    def operation_kind(self) -> KindType | None:  # type: ignore[valid-type]
        return OperationKind(self.row.operation_kind)

    @strawberry.field
    def record_type(self) -> str | None:
        return self.access.record_type

    @strawberry.field(description="The record's id (a child's record by pseudonym for some roles).")
    def record_id(self) -> str | None:
        record_id = self.access.record_id
        if record_id is None or self.pseudonym_key is None:
            return record_id
        return audit.pseudonymised_record_id(
            self.access.record_type, record_id, key=self.pseudonym_key
        )

    @strawberry.field(description="The organisation whose record it is.")
    async def record_owner(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.access.record_owner)

    @strawberry.field(description="The fields the caller actually received.")
    def fields(self) -> list[str] | None:
        return list(self.access.fields)

    @strawberry.field(description="The children the record concerns (pseudonyms for some roles).")
    def children(self) -> list[str] | None:
        ids = list(self.access.child_ids)
        if self.pseudonym_key is None:
            return ids
        return [audit.pseudonym(i, key=self.pseudonym_key) for i in ids]

    @strawberry.field
    def request_id(self) -> str | None:
        return self.row.request_id

    @strawberry.field
    def trace_id(self) -> str | None:
        return self.row.trace_id

    @strawberry.field(description="The sharing agreement the access was served under.")
    def agreement_version(self) -> str | None:
        return self.row.agreement_version


@strawberry.input
class AccessEventFilterInput:
    user: str | None = None
    organisation: str | None = None
    record_type: str | None = None
    record_id: strawberry.ID | None = None
    purpose: str | None = None
    occurred_from: dt.datetime | None = None
    occurred_to: dt.datetime | None = None


def _scoped(info: Info, given: EventFilter) -> EventFilter:
    """The caller's events only: every one, or those about its organisation's records."""
    policy = info.context.policy
    if policy.audit_rows is AuditRows.ALL:
        return given
    if policy.audit_rows is AuditRows.OWN_RECORDS:
        owner = info.context.principal.organisation_code
        return dataclasses.replace(given, record_owner=owner)
    raise Forbidden("this role reads no access events")


def _no_child_by_id(info: Info, filters: EventFilter) -> EventFilter:
    """A role given pseudonyms never names a child by the hub's id, so a filter by id cannot
    confirm one: its record id must come with a record type that is not a child's.

    Refused rather than matched against pseudonyms: a pseudonym is one-way, and finding the
    child behind it would mean hashing every child's id on each request.
    """
    if filters.record_id is None or _pseudonym_key(info) is None:
        return filters
    if filters.record_type is None or filters.record_type in audit.CHILD_RECORD_TYPES:
        msg = "this role sees children only as pseudonyms: name a record type other than Child"
        raise Forbidden(msg)
    return filters


def _pseudonym_key(info: Info) -> str | None:
    if info.context.policy.child_identities is ChildIdentities.PSEUDONYMISED:
        return info.context.hub.settings.pseudonym_key.get_secret_value()
    return None


async def _page(
    info: Info, filters: EventFilter, first: int | None, after: str | None
) -> Connection[AccessEvent]:
    """One page of the accesses `filters` asks for, within the caller's view."""
    cursors = info.context.cursors(info.field_name)
    page = await audit.list_events(
        info.context.session,
        filters=_scoped(info, _no_child_by_id(info, filters)),
        first=info.context.page_size(first),
        after=cursors.open(after),
    )
    key = _pseudonym_key(info)
    return Connection[AccessEvent].of(page, lambda access: AccessEvent.of(access, key), cursors)


@strawberry.type(
    description="The audit chain's head, signed with the hub's key (a compact JWS, `typ` "
    "hub-audit-checkpoint+jws, verifiable with /.well-known/jwks.json). Keep it: "
    "`safeguarding-hub audit verify --checkpoint FILE` proves the log still extends it."
)
class AuditCheckpoint:
    point: strawberry.Private[checkpoint.Checkpoint]
    jws: str = strawberry.field(description="The signed checkpoint: what to keep.")

    @strawberry.field(description="The head's place in the chain (0 for an empty log).")
    def sequence(self) -> str:
        return str(self.point.seq)

    @strawberry.field
    def head_hash(self) -> str:
        return self.point.head_hash

    @strawberry.field
    def issued_at(self) -> dt.datetime:
        return self.point.issued_at


@strawberry.type
class AuditQuery:
    @strawberry.field(description="A signed checkpoint of the audit log, for auditors to keep.")
    async def audit_checkpoint(self, info: Info) -> AuditCheckpoint | None:
        hub = info.context.hub
        point = await checkpoint.current(info.context.session, issuer=hub.settings.issuer)
        return AuditCheckpoint(point=point, jws=point.signed(hub.keys))

    @strawberry.field(description="Access events, newest first, within the caller's view.")
    async def access_events(
        self,
        info: Info,
        filter: AccessEventFilterInput | None = None,  # noqa: A002
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessEvent] | None:
        given = filter or AccessEventFilterInput()
        filters = EventFilter(
            user=given.user,
            organisation_code=given.organisation,
            record_type=given.record_type,
            record_id=str(given.record_id) if given.record_id else None,
            purpose=given.purpose,
            occurred_from=optional_utc(given.occurred_from, field="filter.occurredFrom"),
            occurred_to=optional_utc(given.occurred_to, field="filter.occurredTo"),
        )
        return await _page(info, filters, first, after)

    @strawberry.field(description="Every access to one record, newest first.")
    async def record_access_history(
        self,
        info: Info,
        record_type: str,
        record_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessEvent] | None:
        filters = EventFilter(record_type=record_type, record_id=str(record_id))
        return await _page(info, filters, first, after)

    @strawberry.field(description="Who has seen this child's records, newest first.")
    async def child_access_history(
        self,
        info: Info,
        child_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessEvent] | None:
        if _pseudonym_key(info) is not None:
            raise Forbidden("this role sees children only as pseudonyms")
        return await _page(info, EventFilter(child_id=str(child_id)), first, after)
