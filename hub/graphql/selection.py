"""Whether a field's selection reaches a field by a path of names, through fragments.

A list's resolver uses it to load at once, in the list's own resolver, what its items' fields
will ask for, so that those fields complete from finished loads. It answers from the document
alone: a field under `@skip` or `@include` counts as selected (loading it is only wasted), and
the agreement's gate still decides, field by field, what is served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types import Info


def selects(info: Info[Any, Any], *path: str) -> bool:
    """Some selection of the field being resolved reaches `path` (GraphQL field names)."""
    fragments = info._raw_info.fragments  # noqa: SLF001 - strawberry keeps graphql-core's info here
    nodes: list[FieldNode] = list(info._raw_info.field_nodes)  # noqa: SLF001 - as above
    for name in path:
        nodes = [
            field
            for node in nodes
            if node.selection_set is not None
            for field in _fields(node.selection_set, fragments, set())
            if field.name.value == name
        ]
        if not nodes:
            return False
    return True


def _fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: set[str],
) -> Iterable[FieldNode]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                yield from _fields(fragment.selection_set, fragments, seen)
