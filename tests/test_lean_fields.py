"""Plain fields completed by the executor at once behave as graphql-core's whole way would."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLObjectType

from hub.graphql.executor import HubExecutor
from hub.graphql.resolvers import PlainLeaf, lean_resolvers


@strawberry.type
class Record:
    id: strawberry.ID
    name: str | None

    @strawberry.field
    def summary(self) -> str | None:
        if self.name == "broken":
            msg = "unreadable"
            raise ValueError(msg)
        return self.name


@strawberry.type
class Query:
    @strawberry.field
    def records(self) -> list[Record | None]:
        return [
            Record(id=strawberry.ID("a"), name="kept"),
            Record(id=None, name="no id"),  # type: ignore[arg-type] - a non-null field read as None
            Record(id=strawberry.ID("c"), name=None),
            Record(id=strawberry.ID("d"), name="broken"),
        ]


def _schema() -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query,
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(schema._schema)
    return schema


def test_attributes_and_plain_methods_are_read_directly() -> None:
    record = _schema()._schema.type_map["Record"]
    assert isinstance(record, GraphQLObjectType)
    kinds: dict[str, Any] = {name: type(f.resolve) for name, f in record.fields.items()}
    assert kinds == {"id": PlainLeaf, "name": PlainLeaf, "summary": PlainLeaf}


def test_a_missing_non_null_value_and_a_raising_field_fail_as_graphql_core_fails_them() -> None:
    result = _schema().execute_sync("{ records { id name summary } }")
    assert result.data == {
        "records": [
            {"id": "a", "name": "kept", "summary": "kept"},
            None,  # its non-null id was null: the record is nulled, as graphql-core does
            {"id": "c", "name": None, "summary": None},
            {"id": "d", "name": "broken", "summary": None},
        ]
    }
    errors = {tuple(e.path or ()): e.message for e in result.errors or ()}
    assert errors == {
        ("records", 1, "id"): "Cannot return null for non-nullable field Record.id.",
        ("records", 3, "summary"): "unreadable",
    }
