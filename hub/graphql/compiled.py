"""A page's records written by the database as the response's JSON, where the hub knows how.

The executor completes each record of a page field by field, a Python object for every record,
organisation and child, each field read and coerced (`hub.graphql.selections`): most of a
council page's cost. Where a page's whole `node` selection is plain reads of columns the page's
statement has at hand, the statement writes each record as the response would hold it
(PostgreSQL's `json_build_object`, SQLite's `json_object`), and the executor puts that text in
the response as it stands (`orjson.Fragment`).

Nothing else changes:

- Which fields a caller may have: a selection is written only if the agreement's gate refuses
  none of it, at every level (the executor's own `_refused`); anything it refuses, and anything
  not listed here (a field with logic of its own, arguments, directives, a deferred part), and
  the page goes the executor's way, field by field, as before.
- Which rows: the page's statement is the same, its scope the same; the children are those the
  executor's way would carry (`incidents.service.involved`, under the same scope).
- The audit: each record is noted at its own place with the fields its selection names, as the
  executor's way notes it, and each incident's children are handed to the audit from the same
  statement (`Served`).

What a selection compiles to is a `Spec`: its response keys in order, each a leaf (how the
database writes it: the text `isoformat` writes for a time, an enum's GraphQL name...), the
type's name, or a nested record and its own `Spec`. The list's resolver and the executor work
it out from the same collected fields, and a record is written only where the two are equal
(by identity, as specs made alike are one object, else by value): a record read for one
selection is never written for another.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from graphql import (
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    get_named_type,
)

from hub.graphql.audit_trail import AUDITED_TYPES
from hub.graphql.documents import Recent
from hub.json_records import SERVED, SERVED_CHILDREN, Leaf, LeafKind, Nested, Spec, TypeName

if TYPE_CHECKING:
    from graphql.execution.collect_fields import GroupedFieldSet

# Each type's fields that are plain reads of a column, by GraphQL field name. A field whose
# resolver does more than read its column (and coerce it by its type) must not be listed.
COLUMNS: dict[str, dict[str, str]] = {
    "Incident": {
        "id": "id",
        "policeReference": "police_reference",
        "type": "type",
        "occurredAt": "occurred_at",
        "recordedAt": "recorded_at",
        "sharedAt": "shared_at",
        "dashRisk": "dash_risk",
        "summary": "summary",
        "operationalNotes": "operational_notes",
    },
    "Organisation": {
        "id": "code",
        "name": "name",
        "kind": "kind",
        "nation": "nation",
        "onsCode": "ons_code",
    },
    "IncidentChild": {
        "present": "present",
        "householdMember": "household_member",
        "victim": "victim",
    },
    "Child": {
        "id": "id",
        "givenName": "given_name",
        "familyName": "family_name",
        "dateOfBirth": "date_of_birth",
        "nhsNumber": "nhs_number",
        "lookedAfter": "looked_after",
    },
}
# The columns that are never null (the keys): the only ones a non-null field may read.
NOT_NULL = frozenset({("Incident", "id"), ("Organisation", "code"), ("Child", "id")})
# Records within records, by (type, field): how the page's statement carries them.
NESTED: dict[tuple[str, str], str] = {
    ("Incident", "force"): "force__",  # the page's organisation columns, by prefix
    ("Incident", "locationCouncil"): "council__",
    ("Incident", "children"): "children",  # the page's involved children, aggregated
    ("IncidentChild", "child"): "child",  # the involved child's own row
}
_SCALARS: dict[str, LeafKind] = {
    "String": "text",
    "ID": "text",
    "Boolean": "bool",
    "Date": "date",
    "DateTime": "datetime",
}
# Specs made alike are one object (`spec_of`), so that a record's is found its selection's by
# identity; bounded, as a caller chooses its selections (one evicted between the resolver's
# and the executor's working out is found equal instead: `HubExecutor._written`).
_INTERNED: Recent[Spec, Spec] = Recent(maxsize=4096)


def spec_of(
    executor: Any,
    object_type: GraphQLObjectType,
    grouped_field_set: GroupedFieldSet,
    new_defer_usages: Any = (),
) -> Spec | None:
    """The selection as the database would write it, or None if it cannot (see the module)."""
    # Middleware must see every field (`HubExecutor._plan`): such an executor completes each.
    if (
        new_defer_usages
        or executor._middleware  # noqa: SLF001 - the executor's own
        or executor._refused(object_type, grouped_field_set)  # noqa: SLF001 - its own gate
    ):
        return None
    columns = COLUMNS.get(object_type.name)
    if columns is None:
        return None
    items: list[tuple[str, Leaf | TypeName | Nested]] = []
    for key, details in grouped_field_set.items():
        if any(d.node.directives or d.node.arguments for d in details):
            return None
        name = details[0].node.name.value
        item: Leaf | TypeName | Nested | None
        if name == "__typename":
            item = ("typename", object_type.name)
        elif name in columns:
            item = _leaf(object_type, name, columns[name])
        elif (object_type.name, name) in NESTED:
            item = _nested(executor, object_type, name, details)
        else:
            return None
        if item is None:
            return None
        items.append((key, item))
    return _interned(tuple(items))


def _interned(spec: Spec) -> Spec:
    kept = _INTERNED.get(spec)
    if kept is None:
        _INTERNED.keep(spec, spec)
        kept = spec
    return kept


def _leaf(object_type: GraphQLObjectType, name: str, column: str) -> Leaf | None:
    field_type = object_type.fields[name].type
    if isinstance(field_type, GraphQLNonNull):
        if (object_type.name, column) not in NOT_NULL:
            return None
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLEnumType):
        names: list[tuple[str, str]] = []
        for graphql_name, value in field_type.values.items():
            stored = value.value.value if isinstance(value.value, enum.Enum) else value.value
            if not isinstance(stored, str):
                return None
            names.append((stored, graphql_name))
        return ("leaf", "enum", column, tuple(names))
    kind = _SCALARS.get(getattr(field_type, "name", ""))
    if kind is None:
        return None
    return ("leaf", kind, column, ())


def _nested(
    executor: Any, object_type: GraphQLObjectType, name: str, details: Any
) -> Nested | None:
    field_type = object_type.fields[name].type
    how = NESTED[(object_type.name, name)]
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if how == "children":
        if not isinstance(inner, GraphQLList):
            return None
        inner = inner.of_type
        inner = inner.of_type if isinstance(inner, GraphQLNonNull) else inner
    elif isinstance(field_type, GraphQLNonNull):
        return None  # carried by a left join: may be null
    if not isinstance(inner, GraphQLObjectType):
        return None
    grouped, new_defer_usages, _ = executor.collect_subfields(inner, details)
    spec = spec_of(executor, inner, grouped, new_defer_usages)
    if spec is None:
        return None
    noted = (
        tuple(
            (key, d[0].node.name.value)
            for key, d in grouped.items()
            if not d[0].node.name.value.startswith("__")
        )
        if inner.name in AUDITED_TYPES
        else None
    )
    return ("nested", how, spec, noted)


# The record types whose pages are read written (`Query.incidents`).
COMPILED_ROOTS = frozenset({"Incident"})
# Where a written incident's audited children stand: (its children's key, the child's key,
# the child's noted fields: response key -> field).
ChildPlace = tuple[str, str, Mapping[str, str]]


@functools.lru_cache(maxsize=1024)
def written_children(spec: Spec) -> list[ChildPlace]:
    """The places of a written record's audited children, each with the fields they are
    noted with (as the executor's way notes a `Child`)."""
    places: list[ChildPlace] = []
    for key, item in spec:
        if item[0] == "nested" and item[1] == "children":
            for child_key, child in item[2]:
                if child[0] == "nested" and child[1] == "child" and child[3] is not None:
                    places.append((key, child_key, dict(child[3])))
    return places


class ChildRow(NamedTuple):
    """What the audit reads of a written child: its id and its record's owner."""

    id: str
    responsible_council_code: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Served:
    """A record read written for a selection: the selection's spec, the record's JSON, its
    children's (id, responsible council) in the order they are written, and whether those
    are all its children (a school's scope lets only its pupils through)."""

    spec: Spec
    json: str
    children: list[ChildRow]
    every_child: bool

    @classmethod
    def of(cls, row: Any, spec: Spec, *, every_child: bool) -> Served:
        pairs = orjson.loads(getattr(row, SERVED_CHILDREN) or "[]")
        return cls(spec, getattr(row, SERVED), [ChildRow(*pair) for pair in pairs], every_child)


def written_spec(info: Any) -> Spec | None:
    """What a page's `edges { node { ... } }` selection compiles to, for a list's resolver
    (`Query.incidents`): None where the response is not written by orjson (`written_pages`)."""
    context = info.context
    executor = context.executor() if context.written_pages and context.executor else None
    if executor is None:
        return None
    raw = info._raw_info  # noqa: SLF001 - strawberry keeps graphql-core's info here
    written: Spec | None = executor.written_spec(get_named_type(raw.return_type), raw.field_nodes)
    return written


def items_spec(executor: Any, list_type: GraphQLObjectType, details: Any) -> Spec | None:
    """What the `node`s of a connection's `edges` compile to; None where there is more than
    one `edges` or `node`, or they cannot be written (`spec_of`)."""
    if not directive_free(executor, details):
        return None
    object_type: Any = list_type
    for name in ("edges", "node"):
        grouped, new_defer_usages, _ = executor.collect_subfields(object_type, details)
        named = [d for d in grouped.values() if d[0].node.name.value == name]
        if new_defer_usages or len(named) != 1:
            return None
        details = named[0]
        object_type = get_named_type(object_type.fields[name].type)
    if not isinstance(object_type, GraphQLObjectType) or object_type.name not in COMPILED_ROOTS:
        return None
    grouped, new_defer_usages, _ = executor.collect_subfields(object_type, details)
    return spec_of(executor, object_type, grouped, new_defer_usages)


def directive_free(executor: Any, details: Any, *, deep: bool = True) -> bool:
    """No directive anywhere below these fields: not on a field, an inline fragment, a
    fragment spread or a fragment (nor a fragment's own arguments). What a selection compiles
    to then depends on its nodes alone, never on a request's variables. Not `deep`: only
    where collecting this one selection's fields looks (not its fields' own selections)."""
    pending = [d.node.selection_set for d in details]
    seen: set[str] = set()
    while pending:
        selection_set = pending.pop()
        if selection_set is None:
            continue
        for node in selection_set.selections:
            if node.directives:
                return False
            if isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = executor.fragments.get(name)
                if (
                    fragment is None
                    or fragment.variable_signatures
                    or fragment.definition.directives
                ):
                    return False
                if name not in seen:
                    seen.add(name)
                    pending.append(fragment.definition.selection_set)
            elif deep or isinstance(node, InlineFragmentNode):
                pending.append(node.selection_set)  # an inline fragment's, or a field's own
    return True
