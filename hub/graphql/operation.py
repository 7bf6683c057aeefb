"""What an operation asks for at its root, read from the parsed document."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, get_operation_ast


def root_fields(execution: Any) -> list[str | None] | None:
    """The root field names (None for a fragment spread), or None if there is no operation."""
    document = execution.graphql_document
    if document is None:
        return None
    operation = get_operation_ast(document, execution.operation_name)
    if operation is None:
        return None
    return [
        selection.name.value if isinstance(selection, FieldNode) else None
        for selection in operation.selection_set.selections
    ]
