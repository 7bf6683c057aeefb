"""The hub's federation schema: `_entities` representations checked, strawberry's error log off.

strawberry hands a representation's keys to `resolve_reference` as keyword arguments and looks
its `__typename` up unguarded, so an odd representation was a TypeError or KeyError (INTERNAL).
Here each is checked first: a known entity type and exactly the keys it is resolved by.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.federation.schema import FederationAny
from strawberry.types import ExecutionContext, Info
from strawberry.utils.inspect import get_func_args

from hub.errors import InvalidInput
from hub.graphql.hooks import OnceWrappedRunner

_NOT_KEYS = {"info", "cls", "self"}


class HubSchema(strawberry.federation.Schema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return OnceWrappedRunner(execution_context=execution_context, extensions=extensions)

    # strawberry reads this signature to build `_entities`: its types must stay strawberry's.
    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        for index, representation in enumerate(representations):
            self._check_representation(index, representation)
        return super().entities_resolver(info, representations)

    def _check_representation(self, index: int, representation: Any) -> None:
        field = f"representations.{index}"
        refused = InvalidInput(
            f"{field} is not a representation of a hub entity: its __typename must name one and "
            "its other keys be exactly the entity's key fields",
            field=field,
        )
        if not isinstance(representation, dict):
            raise refused
        type_ = self.schema_converter.type_map.get(str(representation.get("__typename")))
        origin = getattr(getattr(type_, "definition", None), "origin", None)
        resolve = getattr(origin, "resolve_reference", None)
        if resolve is None:
            raise refused
        keys = set(get_func_args(resolve)) - _NOT_KEYS
        given = set(representation) - {"__typename"}
        if given != keys or not all(isinstance(representation[k], str | int) for k in keys):
            raise refused

    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        """Not here: strawberry logs each message and traceback, which can quote the input.
        `ErrorCodes` logs each error once, by code and type."""
