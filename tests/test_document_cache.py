"""Parsed and validated documents are kept per schema; what they decide per caller is not.

A kept document saves parsing and validation only: the agreement's field checks, the purpose and
the audit still run for each request and each role, and an invalid document is never kept.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

from hub.access.models import Role
from hub.graphql.documents import CachedDocuments, ValidDocuments
from tests.factories import COUNCIL, FORCE
from tests.scenario import World

NOTES = "query Notes($id: ID!) { incident(id: $id) { type operationalNotes } }"


async def test_a_kept_document_is_checked_against_each_callers_role(
    as_role: Any, world: World
) -> None:
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    police = as_role(Role.POLICE_OFFICER, FORCE)
    variables = {"id": world.inside.incident}
    for _ in range(2):  # the same text each time: parsed and validated once
        refused = await council(NOTES, variables)
        assert refused["data"]["incident"]["operationalNotes"] is None
        assert [(e["path"], e["extensions"]["code"]) for e in refused["errors"]] == [
            (["incident", "operationalNotes"], "FORBIDDEN_FIELD")
        ]
        shown = await police(NOTES, variables)
        assert "errors" not in shown
        assert shown["data"]["incident"]["type"] == "DOMESTIC_ABUSE"


async def test_an_invalid_document_is_refused_every_time(as_role: Any) -> None:
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    answers = [await council("{ incidents { edges { node { nope } } } }") for _ in range(2)]
    assert answers[0] == answers[1]
    assert answers[0]["data"] is None
    assert [e["extensions"]["code"] for e in answers[0]["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]


@strawberry.type
class _Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


class _Seen(SchemaExtension):
    """Records the document each execution ran, to tell a kept one from a fresh parse."""

    documents: list[DocumentNode | None]

    def on_execute(self) -> Any:
        self.documents.append(self.execution_context.graphql_document)
        yield


def _schema(documents: ValidDocuments, seen: list[DocumentNode | None]) -> strawberry.Schema:
    class Seen(_Seen):
        pass

    Seen.documents = seen
    return strawberry.Schema(query=_Query, extensions=[lambda: CachedDocuments(documents), Seen])


async def test_only_valid_documents_are_kept_and_reused() -> None:
    documents, seen = ValidDocuments(), []
    schema = _schema(documents, seen)
    for _ in range(2):
        assert (await schema.execute("{ hello }")).data == {"hello": "hello"}
        assert (await schema.execute("{ nope }")).errors
    assert len(documents) == 1
    assert len(seen) == 2  # the invalid document never executed
    assert seen[0] is seen[1]  # the second request ran the kept document, not a new parse


async def test_a_syntax_error_is_reported_not_kept() -> None:
    documents, seen = ValidDocuments(), []
    schema = _schema(documents, seen)
    for _ in range(2):
        result = await schema.execute("{ hello ")
        assert result.errors
        assert "Syntax Error" in result.errors[0].message
    assert len(documents) == 0


def test_the_least_recently_used_document_goes_first() -> None:
    documents = ValidDocuments(maxsize=2)
    first, second, third = (DocumentNode(definitions=()) for _ in range(3))
    documents.keep(("a", ()), first)
    documents.keep(("b", ()), second)
    assert documents.get(("a", ())) is first  # used: "b" is now the oldest
    documents.keep(("c", ()), third)
    assert len(documents) == 2
    assert documents.get(("b", ())) is None
    assert documents.get(("a", ())) is first
