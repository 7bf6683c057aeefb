"""A selection's fields run by code written for its shape: no plan walked, no call per scalar.

The executor (`hub.graphql.executor`) plans each selection once per request: for each response
key, the field, its plain scalar read if it has one (`PlainLeaf`), and whether it is plain (no
arguments, no directives). Completing a record then walked that plan field by field, a call
to read and coerce each scalar and a tuple to unpack each step, for every record of a page.

Here a plan's shape (its type, and each step's key, field and kind) becomes a function once per
process, its scalars read inline (`source.summary`, or the field's own method) and coerced in
place; anything out of the ordinary (null where not allowed, an error, a coercion refused) is
read again the careful way (`HubExecutor._leaf_value`), which locates and collects the error as
graphql-core does. Object fields and fields with arguments or directives are handed to the
executor exactly as the plan's loop handed them.

The shape names fields, never a request's values: the function is the same for every request
with that selection, whoever makes it; the request's own field nodes are passed in (`steps`).
Which fields a caller may have is decided before (`HubExecutor._plan` has no plan for a
selection the agreement refuses any of): this only runs what was allowed.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from graphql import GraphQLObjectType
from graphql.pyutils import Path, Undefined

if TYPE_CHECKING:
    from graphql import GraphQLField
    from graphql.execution.collect_fields import FieldDetailsList

    from hub.graphql.resolvers import PlainLeaf

Kind = Literal["leaf", "object", "general"]
# One step of a selection: response key, its nodes, its definition, its plain scalar read if
# any, and whether it is plain (no arguments and no directives).
PlanStep = tuple[str, "FieldDetailsList", "GraphQLField | None", "PlainLeaf | None", bool]
Shape = tuple[tuple[str, str, Kind], ...]
Runner = Callable[[Any, Any, Path, Sequence[PlanStep]], Any]

CAREFULLY = object()  # a scalar to read again the careful way
# A field's or an item's place: graphql-core's `Path` (a named tuple) made in C from its three
# values, not through the named tuple's `__new__`, a Python call for every record and field.
path_of: Callable[[tuple[Path | None, str | int, str | None]], Path] = functools.partial(
    tuple.__new__, Path
)


def kind_of(step: PlanStep) -> Kind:
    _, _, field_def, leaf, plain = step
    if field_def is None:
        return "general"  # `__typename`, or a field the schema lacks: graphql-core's own way
    if leaf is not None:
        return "leaf"
    return "object" if plain else "general"


def shape_of(plan: Sequence[PlanStep]) -> Shape:
    return tuple((step[0], step[1][0].node.name.value, kind_of(step)) for step in plan)


def runner(parent_type: GraphQLObjectType, plan: Sequence[PlanStep]) -> Runner:
    """The function completing `plan`'s fields of one object of `parent_type`."""
    return _runner(parent_type, shape_of(plan))


@functools.lru_cache(maxsize=1024)
def _runner(parent_type: GraphQLObjectType, shape: Shape) -> Runner:
    names: dict[str, Any] = {
        "CAREFULLY": CAREFULLY,
        "PARENT": parent_type,
        "PATH": path_of,
        "Undefined": Undefined,
    }
    lines = [
        "def run(ex, source, path, steps):",
        "    results = {}",
        "    pending = []",
        "    is_awaitable, never = ex.is_awaitable, ex.never_awaitable",
        "    try:",
    ]
    for index, (key, field_name, kind) in enumerate(shape):
        if kind == "leaf":
            field_def = parent_type.fields[field_name]
            lines += _leaf_lines(index, key, field_def, names)
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


def _leaf_lines(index: int, key: str, field_def: GraphQLField, names: dict[str, Any]) -> list[str]:
    """A plain scalar read and coerced in place; anything not handed back as it is (null where
    not allowed, an error, a coercion refused) read again by `_leaf_value`, which locates and
    collects its error as graphql-core does (a plain read has no side effects)."""
    leaf: PlainLeaf = field_def.resolve  # type: ignore[assignment]  # the plan's leaf
    names[f"LEAF_{index}"] = leaf
    names[f"FIELD_{index}"] = field_def
    names[f"READ_{index}"] = leaf.function
    names[f"COERCE_{index}"] = leaf.coerce
    attribute = leaf.attribute
    read = (
        f"source.{attribute}"
        if attribute is not None and attribute.isidentifier() and not keyword.iskeyword(attribute)
        else f"READ_{index}(source)"
    )
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
