"""A selection's fields run by code written for its shape: no plan walked, no call per scalar.

The executor (`hub.graphql.executor`) plans each selection (once, for every request made from
the same document by the same role: `HubExecutor._select`): for each response key, the field,
its plain scalar read if it has one (`PlainLeaf`), and whether it is plain (no arguments, no
directives). Completing a record then walked that plan field by field, a call to read and coerce
each scalar and a tuple to unpack each step, for every record of a page.

Here a plan's shape (its type, and each step's key, field and kind) becomes a function once per
process, its scalars read inline (`source.summary`, or the field's own method) and coerced in
place; anything out of the ordinary (null where not allowed, an error, a coercion refused) is
read again the careful way (`HubExecutor._leaf_value`), which locates and collects the error as
graphql-core does. A record, or a list of them, read by an attribute or a `context_only`
resolver is read in place too, and its own selection run from here (`_record_lines`). Other
object fields, and fields with arguments or directives, are handed to the executor exactly as
the plan's loop handed them.

The shape names fields, never a request's values: the function is the same for every request
with that selection, whoever makes it; the selection's own field nodes are passed in (`steps`).
Which fields a caller may have is decided before (`HubExecutor._plan` has no plan for a
selection the agreement refuses any of): this only runs what was allowed.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from graphql.pyutils import Path, Undefined

from hub.graphql.resolvers import ContextResolver, ObjectAttribute

if TYPE_CHECKING:
    from graphql import GraphQLField
    from graphql.execution.collect_fields import FieldDetailsList

    from hub.graphql.resolvers import PlainLeaf

Kind = Literal["leaf", "record", "records", "object", "general"]
# One step of a selection: response key, its nodes, its definition, its plain scalar read if
# any, and whether it is plain (no arguments and no directives).
PlanStep = tuple[str, "FieldDetailsList", "GraphQLField | None", "PlainLeaf | None", bool]
Shape = tuple[tuple[str, str, Kind], ...]
# A selection's function: (executor, object, its path, the request's `_Selection`) -> its fields.
Runner = Callable[[Any, Any, Path, Any], Any]

CAREFULLY = object()  # a scalar to read again the careful way
# A field's or an item's place: graphql-core's `Path` (a named tuple) made in C from its three
# values, not through the named tuple's `__new__`, a Python call for every record and field.
path_of: Callable[[tuple[Path | None, str | int, str | None]], Path] = functools.partial(
    tuple.__new__, Path
)


@functools.lru_cache(maxsize=4096)
def record_shape(
    return_type: GraphQLOutputType,
) -> tuple[GraphQLObjectType | None, GraphQLOutputType | None, GraphQLObjectType | None]:
    """A field's type as the executor completes it, worked out once per type: the object type
    of a (non-null) record; or the item type of a (non-null) list of records and its object
    type."""
    inner = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    if isinstance(inner, GraphQLObjectType):
        return inner, None, None
    if isinstance(inner, GraphQLList):
        item_type = inner.of_type
        item = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if isinstance(item, GraphQLObjectType):
            return None, item_type, item
    return None, None, None


def owns_by_value(object_type: GraphQLObjectType) -> bool:
    """Whether the type's `is_type_of` (if any) reads the value alone, as strawberry's own does
    (an isinstance check): a selection's function may then ask it without a resolve info."""
    is_type_of = object_type.is_type_of
    return is_type_of is None or (
        getattr(is_type_of, "__module__", None) == "strawberry.schema.schema_converter"
    )


def kind_of(step: PlanStep, *, inline: bool = True) -> Kind:
    """How a selection's function completes one of its fields: a plain scalar read in place;
    a record (or a list of records) read in place and its own selection run from there (its
    field read as an attribute, or by a `context_only` resolver, and its type one that knows
    its values by themselves); any other object field by the executor's plain way; anything
    with arguments or directives, graphql-core's."""
    _, _, field_def, leaf, plain = step
    if field_def is None:
        return "general"  # `__typename`, or a field the schema lacks: graphql-core's own way
    if leaf is not None:
        return "leaf"
    if not plain:
        return "general"
    if inline and type(field_def.resolve) in {ContextResolver, ObjectAttribute}:
        record, _, item = record_shape(field_def.type)
        if record is not None and owns_by_value(record):
            return "record"
        if item is not None and owns_by_value(item):
            return "records"
    return "object"


def shape_of(plan: Sequence[PlanStep], *, inline: bool = True) -> Shape:
    return tuple(
        (step[0], step[1][0].node.name.value, kind_of(step, inline=inline)) for step in plan
    )


def runner(parent_type: GraphQLObjectType, plan: Sequence[PlanStep], *, inline: bool) -> Runner:
    """The function completing `plan`'s fields of one object of `parent_type`; `inline`: its
    records' selections run from it (see `kind_of`)."""
    return _runner(parent_type, shape_of(plan, inline=inline))


@functools.lru_cache(maxsize=1024)
def _runner(parent_type: GraphQLObjectType, shape: Shape) -> Runner:
    names: dict[str, Any] = {
        "CAREFULLY": CAREFULLY,
        "PARENT": parent_type,
        "PATH": path_of,
        "Undefined": Undefined,
    }
    lines = [
        "def run(ex, source, path, selection):",
        "    steps = selection.plan",
        "    results = {}",
        "    pending = []",
        "    is_awaitable, never = ex.is_awaitable, ex.never_awaitable",
    ]
    if any(kind in {"record", "records"} for _, _, kind in shape):
        lines.append("    subs, context_info = selection.subs, ex.context_info")
    lines.append("    try:")
    for index, (key, field_name, kind) in enumerate(shape):
        if kind == "leaf":
            field_def = parent_type.fields[field_name]
            lines += _leaf_lines(index, key, field_def, names)
            continue
        if kind in {"record", "records"}:
            field_def = parent_type.fields[field_name]
            lines += _record_lines(
                index, key, parent_type.name, field_def, names, many=kind == "records"
            )
            continue
        where = f"PATH((path, {key!r}, {parent_type.name!r}))"
        nodes = f"steps[{index}][1]"
        if kind == "object":
            names[f"FIELD_{index}"] = parent_type.fields[field_name]
            call = f"ex._execute_plain_field(PARENT, source, {nodes}, FIELD_{index}, {where})"
        else:
            call = f"ex.general_field(PARENT, source, {nodes}, {where})"
        lines += [
            f"        value = {call}",
            "        if value is not Undefined:",  # graphql-core leaves such a field out
            "            if type(value) not in never and is_awaitable(value):",
            f"                pending.append({key!r})",
            f"            results[{key!r}] = value",
        ]
    lines += [
        "    except Exception:",
        "        if pending:  # settled, as graphql-core settles its siblings' work",
        "            ex.settle_in_background([results[key] for key in pending])",
        "        raise",
        "    if not pending:",
        "        return results",
        "    return ex._awaited(results, pending)",
    ]
    code = "\n".join(lines)
    scope: dict[str, Any] = {}
    exec(compile(code, f"<selection of {parent_type.name}>", "exec"), names, scope)  # noqa: S102 - our own text, from field names the schema validated
    run: Runner = scope["run"]
    return run


def _record_lines(
    index: int,
    key: str,
    parent_name: str,
    field_def: GraphQLField,
    names: dict[str, Any],
    *,
    many: bool,
) -> list[str]:
    """A record (or a list of records) read in place, and its own selection run from here:
    noted for the audit and run by its own function (`_Selection.run`), or a list of them by
    `HubExecutor._records`, as `collect_and_execute_subfields` would, without the resolve
    info, the `Info`, and the five calls per record of the executor's plain way. A selection
    that cannot run so (the gate refuses some of it, it defers) is completed by
    `collect_and_execute_subfields` itself; a value that is not plainly a record (null where
    not allowed, an error, an awaitable, a value its type disowns) by the plain way's own
    completion (`HubExecutor._resolved`), which locates and collects its errors as
    graphql-core does. A resolver's error, or one raised completing the record, is located at
    the field, nulling it (or, non-null, raised to its parent) as there."""
    resolve = field_def.resolve
    record, item_type, item = record_shape(field_def.type)
    object_type = item if many else record
    assert object_type is not None  # noqa: S101 - `kind_of` said so
    names[f"FIELD_{index}"] = field_def
    names[f"TYPE_{index}"] = field_def.type
    names[f"OBJECT_{index}"] = object_type
    names[f"ITEM_{index}"] = item_type
    names[f"IS_TYPE_OF_{index}"] = object_type.is_type_of
    if isinstance(resolve, ObjectAttribute) and _readable(resolve.attribute):
        read = f"source.{resolve.attribute}"
    elif isinstance(resolve, ObjectAttribute):
        names[f"READ_{index}"] = resolve.function
        read = f"READ_{index}(source)"
    else:
        names[f"READ_{index}"] = cast("ContextResolver", resolve).function
        read = f"READ_{index}(source, context_info)"
    nodes = f"steps[{index}][1]"
    sub = f"subs[{index}] or ex._sub(selection, {index}, OBJECT_{index})"
    if many:
        owned = f"type(raw) is list and ex.owns_all(OBJECT_{index}, raw, None)"
        completed = [
            f"sub = {sub}",
            f"value = ex._records(ITEM_{index}, OBJECT_{index}, {nodes}, where, raw, sub)",
        ]
    else:
        owned = "not (isinstance(raw, Exception) or type(raw) not in never and is_awaitable(raw))"
        if object_type.is_type_of is not None:
            owned += f" and IS_TYPE_OF_{index}(raw, None) is True"
        completed = [
            f"sub = {sub}",
            "if sub.direct:",
            "    if sub.noted is not None:",
            "        note = ex.context_value.served.note",
            f"        note(where, {object_type.name!r}, raw.row, sub.noted)",
            "    value = sub.run(ex, raw, where, sub)",
            "else:",
            (
                f"    value = ex.collect_and_execute_subfields(OBJECT_{index}, {nodes}, where, "
                "raw, None)"
            ),
        ]
    completed += [
        "if type(value) not in never and is_awaitable(value):",
        f"    value = ex._completed_later(value, TYPE_{index}, {nodes}, where)",
    ]
    null = "CAREFULLY" if isinstance(field_def.type, GraphQLNonNull) else "None"
    return [
        f"        where = PATH((path, {key!r}, {parent_name!r}))",
        "        try:",
        f"            raw = {read}",
        "            if raw is None:",
        f"                value = {null}",
        f"            elif {owned}:",
        *("                " + line for line in completed),
        "            else:",
        "                value = CAREFULLY",
        "        except Exception as error:",
        f"            ex.handle_field_error(error, TYPE_{index}, {nodes}, where)",
        "            value = None",
        "        if value is CAREFULLY:",
        f"            value = ex._resolved(PARENT, {nodes}, FIELD_{index}, where, raw)",
        "        if type(value) not in never and is_awaitable(value):",
        f"            pending.append({key!r})",
        f"        results[{key!r}] = value",
    ]


def _readable(attribute: str | None) -> bool:
    """Whether `source.<attribute>` reads it (a name, not a keyword)."""
    return attribute is not None and attribute.isidentifier() and not keyword.iskeyword(attribute)


def _leaf_lines(index: int, key: str, field_def: GraphQLField, names: dict[str, Any]) -> list[str]:
    """A plain scalar read and coerced in place; anything not handed back as it is (null where
    not allowed, an error, a coercion refused) read again by `_leaf_value`, which locates and
    collects its error as graphql-core does (a plain read has no side effects)."""
    leaf: PlainLeaf = field_def.resolve  # type: ignore[assignment]  # the plan's leaf
    names[f"LEAF_{index}"] = leaf
    names[f"FIELD_{index}"] = field_def
    names[f"READ_{index}"] = leaf.function
    names[f"COERCE_{index}"] = leaf.coerce
    read = f"source.{leaf.attribute}" if _readable(leaf.attribute) else f"READ_{index}(source)"
    lines = ["        try:", f"            value = {read}"]
    otherwise = [
        "if value is None:",
        "    value = CAREFULLY" if leaf.non_null else "    pass",
        "elif isinstance(value, Exception):",
        "    value = CAREFULLY",
        "else:",
        f"    value = COERCE_{index}(value)",
        "    if value is None or value is Undefined:",
        "        value = CAREFULLY",
    ]
    if leaf.as_is is not None:
        names[f"AS_IS_{index}"] = leaf.as_is
        lines.append(f"            if type(value) is not AS_IS_{index}:")
        lines += ["                " + line for line in otherwise]
    else:
        lines += ["            " + line for line in otherwise]
    lines += [
        "        except Exception:",
        "            value = CAREFULLY",
        "        if value is CAREFULLY:",
        (
            f"            value = ex._leaf_value(PARENT, source, steps[{index}][1], "
            f"FIELD_{index}, LEAF_{index}, PATH((path, {key!r}, PARENT.name)))"
        ),
        f"        results[{key!r}] = value",
    ]
    return lines
