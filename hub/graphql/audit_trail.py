"""What a response released, record by record, for the audit log: what left, not what was touched.

While a request resolves, the executor (`hub.graphql.executor`) notes each record object it
completes (Child, Incident, MissingEpisode, Investigation, ...) under the record's place in the
response, with the fields its selection asks for. Once the result is
final, each noted record still present in the data (not nulled by an error further down) is an
access to that record, with the fields the caller received: those in the data that were not
redacted by the agreement.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from graphql import GraphQLError, GraphQLResolveInfo
from graphql.pyutils import Path as Where
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.audit import service as audit
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.audit.service import Actor, ServedRecord
from hub.closures.models import ClosureReview
from hub.db import among, dialect_of, rows, utcnow
from hub.incidents.models import IncidentChild
from hub.investigations.models import InvestigationChild
from hub.meetings.models import MeetingChild
from hub.timeliness.models import RECEIVING_ROLES, FirstSeen

if TYPE_CHECKING:
    from hub.graphql.compiled import ChildPlace, Served

AUDITED_TYPES = frozenset(
    {
        "Child",
        "Incident",
        "MissingEpisode",
        "Investigation",
        "VettingCheck",
        "Escalation",
        "ClosureReview",
        "Meeting",
        "JointVisitRequest",
        "PoliceProtection",
    }
)
# Records about adults (an applicant for a vetting check) or about another record (an
# escalation): they concern no child, so they never enter the audit's child index, whatever a
# child's access history is asked for.
CHILDLESS_TYPES = frozenset({"VettingCheck", "Escalation"})
# Records about exactly one child, held in their `child_id`.
ONE_CHILD_TYPES = frozenset({"MissingEpisode", "JointVisitRequest", "PoliceProtection"})
# Records a council made: the council owns them (its DPO reads their accesses). A check: its
# applicant, its request; a review: the council's view of the force's closure; a meeting: the
# convening council's record.
COUNCIL_OWNED_TYPES = frozenset({"JointVisitRequest", "VettingCheck", "ClosureReview", "Meeting"})
Path = tuple[str | int, ...]


@dataclasses.dataclass
class _Noted:
    type_name: str
    row: Any
    fields: Mapping[str, str]  # response key -> field (shared by a selection's records)


# The column naming each type's owner where it is not the force's (a police record's).
_OWNER_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "Escalation": operator.attrgetter("owed_by_code"),  # the organisation that owes the answer
    **dict.fromkeys(COUNCIL_OWNED_TYPES, operator.attrgetter("council_code")),
}
_FORCE_CODE = operator.attrgetter("force_code")


def owner_of(type_name: str, row: Any) -> str | None:
    """The organisation whose record it is: whose DPO reads its accesses."""
    if type_name == "Child":
        owner: str | None = row.responsible_council_code
        return owner
    return str(_OWNER_COLUMNS.get(type_name, _FORCE_CODE)(row))


class ServedRecords:
    """The request's collector; one per request, on the context."""

    def __init__(self) -> None:
        self._noted: dict[Where, _Noted] = {}
        self._disclosed: dict[Path, dict[str, Any]] = {}
        self.changes: dict[tuple[str, str], S62Operation] = {}
        self._created_with: dict[tuple[str, str], tuple[str, ...]] = {}

    def disclosed(self, info: GraphQLResolveInfo[Any], detail: dict[str, Any]) -> None:
        """A field's value is itself a disclosure (a report, not a record): `detail` says what."""
        self._disclosed[tuple(info.path.as_list())] = detail

    def disclosures(self, data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """The noted disclosures that reached the final data (not nulled by an error)."""
        return [
            detail
            for place, detail in self._disclosed.items()
            if isinstance(_at(data, place), Mapping)
        ]

    def note(self, place: Where, type_name: str, row: Any, fields: Mapping[str, str]) -> None:
        """A record reached at `place`, and its selection (response key -> field).

        `place` is graphql-core's own path, kept as it is: a record's path as a list of keys
        is needed only when an error may have nulled or redacted part of the response
        (`released`), and building it for every record of every page was most of a note."""
        noted = self._noted.get(place)
        if noted is None:
            self._noted[place] = _Noted(type_name, row, fields)
        else:
            noted.fields = {**noted.fields, **fields}

    def written(
        self, record: Any, served: Served, place: Where, children: Sequence[ChildPlace]
    ) -> None:
        """An incident (the one kind written today) the database wrote as its JSON (`compiled`),
        noted at `place` by its caller already: its children are noted at theirs, with the
        fields their selection names, as the executor's way would note each; and, where they
        are all its children, handed to the audit as the record's children (no lookup)."""
        for children_key, child_key, fields in children:
            listed = Where(place, children_key, "Incident")
            for index, child in enumerate(served.children):
                self.note(
                    Where(Where(listed, index, None), child_key, "IncidentChild"),
                    "Child",
                    child,
                    fields,
                )
        if served.every_child:
            self._created_with[("Incident", record.row.id)] = tuple(
                sorted(child.id for child in served.children)
            )

    def changed(self, type_name: str, record_id: str, operation: S62Operation) -> None:
        """A mutation says what it did to a record: collected it, or altered it."""
        self.changes[(type_name, record_id)] = operation

    def created_with(self, type_name: str, record_id: str, child_ids: Iterable[str]) -> None:
        """A mutation created this record, with these children: every child it will ever
        concern (no mutation adds one later), so the audit need not look them up."""
        self._created_with[(type_name, record_id)] = tuple(sorted(child_ids))

    def released(
        self, data: Mapping[str, Any] | None, errors: Sequence[GraphQLError]
    ) -> list[tuple[str, Any, tuple[str, ...]]]:
        """(type, row, fields received) for each noted record present in the final data."""
        if not errors and isinstance(data, dict):
            # No error, so nothing was nulled or redacted: every noted record is in the data,
            # whole (a page's records, found without a walk from the root to each).
            return self._all_whole()
        redacted = {
            tuple(e.path)
            for e in errors
            if e.path and (e.extensions or {}).get("code") == "FORBIDDEN_FIELD"
        }
        released = []
        # A selection's fields, sorted once for all its records that came whole (a page's).
        whole: dict[int, tuple[str, ...]] = {}
        for where, noted in self._noted.items():
            place = tuple(where.as_list())
            value = _at(data, place)
            if value is _WRITTEN:
                # Written by the database whole (`compiled`): no error can be inside it.
                released.append(
                    (noted.type_name, noted.row, tuple(sorted(set(noted.fields.values()))))
                )
                continue
            if not isinstance(value, dict) and not isinstance(value, Mapping):
                continue  # nulled by an error below it: nothing of it left
            selected = noted.fields
            complete = not redacted and value.keys() >= selected.keys()
            fields = whole.get(id(selected)) if complete else None
            if fields is None:
                fields = tuple(
                    sorted(
                        {
                            field
                            for key, field in selected.items()
                            if key in value and not (redacted and (*place, key) in redacted)
                        }
                    )
                )
                if complete:
                    whole[id(selected)] = fields
            released.append((noted.type_name, noted.row, fields))
        return released

    def _all_whole(self) -> list[tuple[str, Any, tuple[str, ...]]]:
        # A selection's fields, sorted once for all its records (a page's share a few).
        whole: dict[int, tuple[str, ...]] = {}
        released = []
        for noted in self._noted.values():
            selected = noted.fields
            fields = whole.get(id(selected))
            if fields is None:
                fields = whole[id(selected)] = tuple(sorted(set(selected.values())))
            released.append((noted.type_name, noted.row, fields))
        return released

    async def served_records(
        self,
        session: AsyncSession,
        data: Mapping[str, Any] | None,
        errors: Sequence[GraphQLError],
        *,
        loaded: LoadedChildren | None = None,
    ) -> list[ServedRecord]:
        released = self.released(data, errors)
        children = await children_of(
            session, released, loaded or LoadedChildren(), created=self._created_with
        )
        merged: dict[tuple[str, str], ServedRecord] = {}
        for type_name, row, fields in released:
            record_id = str(row.id)
            key = (type_name, record_id)
            earlier = merged.get(key)
            every = fields if earlier is None else tuple(sorted({*earlier.fields, *fields}))
            # Positional: a page builds one per record (type, id, fields, children, owner).
            merged[key] = ServedRecord(
                type_name, record_id, every, children.get(key, ()), owner_of(type_name, row)
            )
        return list(merged.values())


# A place in, or at, a record the database wrote whole (an `orjson.Fragment` in the data).
_WRITTEN = object()


def _at(data: Mapping[str, Any] | None, place: Path) -> Any:
    value: Any = data
    for key in place:
        if type(value) is orjson.Fragment:
            return _WRITTEN
        # graphql-core's results are dicts and lists: checked first, as this runs for every
        # step to every record served (a Mapping check goes through the ABC machinery).
        if isinstance(value, dict):
            value = value.get(str(key))
        elif isinstance(value, list):
            value = value[key] if isinstance(key, int) and key < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(str(key))
        else:
            return None
    return _WRITTEN if type(value) is orjson.Fragment else value


@dataclasses.dataclass(frozen=True)
class LoadedChildren:
    """Every child of a record, where the request's loaders already fetched them whole.

    Each maps a record id to a finished load (a future), or has no entry. A load filtered by
    the caller's scope (a school sees only its pupils among an incident's children) must not
    be offered here: a record concerns all its children, seen or not.
    """

    incidents: Callable[[str], Any] = dataclasses.field(default=lambda _: None)
    investigations: Callable[[str], Any] = dataclasses.field(default=lambda _: None)

    def of(self, type_name: str, record_id: str) -> tuple[str, ...] | None:
        if type_name == "Incident":
            future = self.incidents(record_id)
            child_id = _LINKED_CHILD  # an incident's loader yields its links
        elif type_name == "Investigation":
            future = self.investigations(record_id)
            child_id = _CHILD  # an investigation's, its children
        else:
            return None
        if future is None or not future.done() or future.exception() is not None:
            return None
        return tuple(sorted([str(child_id(row)) for row in future.result()]))


_LINKED_CHILD = operator.attrgetter("child_id")
_CHILD = operator.attrgetter("id")


def _known(
    type_name: str,
    row: Any,
    created: Mapping[tuple[str, str], tuple[str, ...]],
    loaded: LoadedChildren,
) -> tuple[str, ...] | None:
    """A record's children where they are known without a lookup, else None."""
    if type_name == "Child":
        return (row.id,)
    if type_name in ONE_CHILD_TYPES:
        return (row.child_id,)
    if type_name in CHILDLESS_TYPES:
        return ()
    made = created.get((type_name, row.id))
    return made if made is not None else loaded.of(type_name, row.id)


# Where each record type's children are listed: (the record's column, the child's column).
_LINKS: dict[str, tuple[Any, Any]] = {
    "Incident": (col(IncidentChild.incident_id), col(IncidentChild.child_id)),
    "Investigation": (col(InvestigationChild.investigation_id), col(InvestigationChild.child_id)),
    # A closure review concerns its investigation's children.
    "ClosureReview": (col(ClosureReview.id), col(InvestigationChild.child_id)),
    # An unborn child has no record yet: the meeting concerns its born children.
    "Meeting": (col(MeetingChild.meeting_id), col(MeetingChild.child_id)),
}


@functools.lru_cache(maxsize=64)
def _children_of(type_name: str, dialect: str | None) -> sa.Select[Any, Any]:
    """The children of the records of one type whose ids are the list `ids`: built once per
    type and dialect, so it goes straight to the driver (`rows`, `among`). Built per request
    (an IN of so many ids) and run through the ORM's session, it was a tenth of the hub's work
    for a page that selects no children (`{ incidents { edges { node { id } } } }`)."""
    record_column, child_column = _LINKS[type_name]
    query: sa.Select[Any, Any] = sa.select(record_column, child_column).where(
        among(record_column, "ids", dialect=dialect), child_column.is_not(None)
    )
    if type_name == "ClosureReview":
        query = query.join_from(
            ClosureReview,
            InvestigationChild,
            col(InvestigationChild.investigation_id) == ClosureReview.investigation_id,
        )
    return query


async def children_of(
    session: AsyncSession,
    released: Iterable[tuple[str, Any, tuple[str, ...]]],
    loaded: LoadedChildren,
    *,
    created: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> dict[tuple[str, str], tuple[str, ...]]:
    """The children each record concerns: from the record itself, from the mutation that
    created it (`ServedRecords.created_with`), from what the request's loaders fetched already,
    and the rest in one statement per record type.
    """
    concerned: dict[tuple[str, str], tuple[str, ...]] = {}
    by_type: defaultdict[str, set[str]] = defaultdict(set)
    for type_name, row, _ in released:
        known = _known(type_name, row, created or {}, loaded)
        if known is None:
            by_type[type_name].add(row.id)
        else:
            concerned[(type_name, row.id)] = known
    dialect = dialect_of(session)
    for type_name, ids in by_type.items():
        grouped: defaultdict[str, list[str]] = defaultdict(list)
        for record_id, child_id in await rows(
            session, _children_of(type_name, dialect), {"ids": sorted(ids)}
        ):
            grouped[record_id].append(str(child_id))
        for record_id in ids:
            concerned[(type_name, record_id)] = tuple(sorted(grouped[record_id]))
    return concerned


# Refusals that are themselves events: an attempt the agreement or the hub turned down.
DENIAL_CODES = frozenset(
    {
        "FORBIDDEN",
        "FORBIDDEN_FIELD",
        "PURPOSE_REQUIRED",
        "PURPOSE_UNKNOWN",
        "PURPOSE_NOT_PERMITTED",
        "ON_BEHALF_OF_REQUIRED",
    }
)


def denials(errors: Sequence[GraphQLError]) -> list[str]:
    found = set()
    for error in errors:
        extensions = error.extensions or {}
        code = extensions.get("code")
        if code == "FORBIDDEN_FIELD":
            found.add(f"FORBIDDEN_FIELD {extensions.get('type')}.{extensions.get('field')}")
        elif code in DENIAL_CODES:
            found.add(str(code))
    return sorted(found)


@dataclasses.dataclass(frozen=True)
class Recipient:
    """One subscriber a fanned-out delivery went to: the person, the client, the request."""

    user: str | None
    client_id: str
    purpose: str | None
    request_id: str

    def listed(self) -> dict[str, str | None]:
        return {
            "user": self.user,
            "client_id": self.client_id,
            "purpose": self.purpose,
            "request_id": self.request_id,
        }


@dataclasses.dataclass(frozen=True)
class RequestFacts:
    """What the audit needs to know about the request, apart from the records."""

    actor: Actor
    kind: OperationKind
    default_operation: S62Operation  # what serving a record the request did not change is
    operation_name: str | None
    request_id: str | None  # None: a fanned-out delivery's recipients each name their own
    trace_id: str | None
    agreement_version: str
    # A fanned-out subscription delivery: everyone it went to (listed in each event's detail).
    recipients: Sequence[Recipient] = ()
    # How a delivery left, when not over the request's own connection (a webhook's endpoint).
    channel: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Released:
    """What a request released or did, as the audit logs it."""

    records: Sequence[ServedRecord] = ()  # each as the caller received it
    denied: Sequence[str] = ()  # refusals (codes, refused fields)
    combined: Sequence[tuple[ServedRecord, str]] = ()  # records combined, and how matched
    disclosures: Sequence[dict[str, Any]] = ()  # reports and other non-record disclosures
    altered: Sequence[ServedRecord] = ()  # records a push altered, with the fields it changed

    def __bool__(self) -> bool:
        return bool(
            self.records or self.denied or self.combined or self.disclosures or self.altered
        )


def _with_alterations(
    served: Sequence[ServedRecord], altered: Sequence[ServedRecord]
) -> list[ServedRecord]:
    """One alteration event's records: each once, with the fields served and those changed."""
    merged = {(r.record_type, r.record_id): r for r in served}
    for record in altered:
        key = (record.record_type, record.record_id)
        earlier = merged.get(key)
        merged[key] = (
            record
            if earlier is None
            else earlier._replace(fields=tuple(sorted({*earlier.fields, *record.fields})))
        )
    return list(merged.values())


def events(
    *,
    facts: RequestFacts,
    released: Released,
    changes: Mapping[tuple[str, str], S62Operation],
) -> tuple[list[audit.EventDraft], FirstSeen | None]:
    """What a request appends (`RequestTransaction._write`, in one `audit.record_many`): its
    events, one per kind of processing done to its records (a push collects one record and may
    consult others), one for records it combined with what others hold, and one for any
    refusal; and the receipts its consultations are."""
    grouped: defaultdict[S62Operation, list[ServedRecord]] = defaultdict(list)
    for served in released.records:
        operation = changes.get((served.record_type, served.record_id), facts.default_operation)
        grouped[operation].append(served)
    if released.altered:
        grouped[S62Operation.ALTERATION] = _with_alterations(
            grouped[S62Operation.ALTERATION], released.altered
        )

    def draft(
        operation: S62Operation,
        outcome: Outcome,
        served: Sequence[ServedRecord],
        detail: dict[str, Any] | None = None,
    ) -> audit.EventDraft:
        if facts.channel:
            detail = {**(detail or {}), **facts.channel}
        if facts.recipients:
            listed = sorted(
                (r.listed() for r in facts.recipients), key=lambda r: json.dumps(r, default=str)
            )
            detail = {**(detail or {}), "recipients": listed}
        return audit.EventDraft(
            actor=facts.actor,
            operation=operation,
            operation_kind=facts.kind,
            operation_name=facts.operation_name,
            outcome=outcome,
            records=served,
            request_id=facts.request_id,
            trace_id=facts.trace_id,
            agreement_version=facts.agreement_version,
            detail=detail,
        )

    drafts = [draft(operation, Outcome.SERVED, served) for operation, served in grouped.items()]
    if released.combined:
        matched_by = sorted({how for _, how in released.combined})
        drafts.append(
            draft(
                S62Operation.COMBINATION,
                Outcome.SERVED,
                [record for record, _ in released.combined],
                {"matched_by": matched_by},
            )
        )
    drafts.extend(
        draft(S62Operation.DISCLOSURE, Outcome.SERVED, [], detail)
        for detail in released.disclosures
    )
    if released.denied:
        drafts.append(
            draft(S62Operation.CONSULTATION, Outcome.DENIED, [], {"denied": list(released.denied)})
        )
    consulted = grouped.get(facts.default_operation)
    first_seen = None
    if consulted and facts.actor.role in RECEIVING_ROLES:
        # Sharing delays: a receiving organisation's first consultation (or delivery to its
        # subscription) is when it received the record.
        seen = [(served.record_type, served.record_id) for served in consulted]
        first_seen = FirstSeen.of(facts.actor.organisation_code, seen, utcnow())
    return drafts, first_seen
