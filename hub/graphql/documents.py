"""Parsed and validated documents, kept per schema: a client sends the same few operations.

Parsing and validating the council's page took about a tenth of its time, for a document that
is the same text every time. Only documents that passed validation are kept: an invalid one is
parsed and validated again on every request, so its errors are always fresh objects (the error
extension rewrites errors in place) and a flood of distinct bad documents evicts nothing useful.
The key is the text and the parse options (the token limit), for one schema and its fixed rules
(depth, aliases, introspection); the cache is bounded and least-recently-used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any, Generic, TypeVar

from graphql import ASTValidationRule, DocumentNode
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

Key = tuple[str, tuple[tuple[str, Any], ...]]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most `maxsize` values, the least recently used evicted first."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._values: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def keep(self, key: K, value: V) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self.maxsize:
            self._values.popitem(last=False)

    def __len__(self) -> int:
        return len(self._values)


class ValidDocuments(Recent[Key, DocumentNode]):
    """One schema's documents that passed its validation, least recently used evicted first."""


class CachedDocuments(SchemaExtension):
    """Skips parsing and validation for a document this schema already found valid."""

    def __init__(self, documents: ValidDocuments) -> None:
        self.documents = documents

    def _key(self) -> Key | None:
        execution = self.execution_context
        if not execution.query:
            return None
        return (execution.query, tuple(sorted(execution.parse_options.items())))

    def on_parse(self) -> Iterator[None]:
        key = self._key()
        if key is not None:
            # Set before strawberry parses: it parses only when no document is set.
            self.execution_context.graphql_document = self.documents.get(key)
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        key = self._key()
        document = execution.graphql_document
        known = key is not None and document is not None and self.documents.get(key) is document
        if known:
            execution.pre_execution_errors = []  # strawberry validates only when this is None
        yield
        document = execution.graphql_document
        valid = execution.pre_execution_errors == [] and document is not None
        if key is not None and document is not None and not known and valid:
            self.documents.keep(key, document)


class DocumentLimits(SchemaExtension):
    """A document's size limits: its tokens when parsed, its depth and aliases when validated.

    strawberry's `MaxTokensLimiter`, `QueryDepthLimiter` and `MaxAliasesLimiter`, with their
    rules built once for the schema: as three extensions each request made three objects and
    twelve hooks, and the two validators each built their rule's class again, for documents
    that are validated once (`CachedDocuments`).
    """

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int) -> None:
        self.rules = rules
        self.max_tokens = max_tokens

    @staticmethod
    def rules_for(*, max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
        return (depth_rule(max_depth, None, None), aliases_rule(max_aliases))

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.max_tokens
        execution.validation_rules = (*execution.validation_rules, *self.rules)
        yield
