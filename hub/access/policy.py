"""Enforcing the sharing agreement on every request: purpose first, then every field resolved.

A field outside the caller's view resolves to null with a FORBIDDEN_FIELD error at its path; it
is never silently dropped and never reached another way (filters are checked the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLResolveInfo,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from hub.errors import HubError
from hub.graphql.audit_trail import AUDITED_TYPES
from hub.graphql.context import HubContext, Info
from hub.graphql.operation import root_fields

# Root fields a caller may ask for without giving a purpose: they disclose nothing about anyone.
PURPOSE_FREE_FIELDS = frozenset({"__typename", "__schema", "__type", "_service", "viewer"})


class FieldForbidden(HubError):
    code = "FORBIDDEN_FIELD"

    def __init__(self, type_name: str, field: str) -> None:
        super().__init__(f"{type_name}.{field} is outside your role's view under the agreement")
        self.type_name = type_name
        self.field_name = field

    @property
    def extensions(self) -> dict[str, str]:
        return {**super().extensions, "type": self.type_name, "field": self.field_name}


class PurposeRefused(HubError):
    """A read whose purpose is missing, unknown, or not one the role may give."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self._code = code

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self._code}


def purpose_problem(context: HubContext) -> PurposeRefused | None:
    principal = context.principal
    agreement = context.hub.agreement
    if principal.purpose is None:
        return PurposeRefused("PURPOSE_REQUIRED", "name the purpose of this access (Hub-Purpose)")
    if principal.purpose not in agreement.purposes:
        return PurposeRefused(
            "PURPOSE_UNKNOWN", "the purpose is not one the sharing agreement defines"
        )
    if principal.purpose not in context.policy.purposes:
        return PurposeRefused(
            "PURPOSE_NOT_PERMITTED",
            f"the agreement does not let {principal.role} give this purpose",
        )
    if principal.user is None:
        return PurposeRefused(
            "ON_BEHALF_OF_REQUIRED", "name the person this access is for (Hub-On-Behalf-Of)"
        )
    return None


class PurposeOfAccess(SchemaExtension):
    """Every read names a permitted purpose and a person, checked before any data is touched."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.operation_type is OperationType.QUERY and self._discloses():
            refused = purpose_problem(context.context)
            if refused is not None:
                error = GraphQLError(refused.message, extensions=refused.extensions)
                context.result = ExecutionResult(data=None, errors=[error])
        yield

    def _discloses(self) -> bool:
        names = root_fields(self.execution_context)
        return names is None or any(name not in PURPOSE_FREE_FIELDS for name in names)


class AgreementFields(SchemaExtension):
    """Each field resolves only if the caller's role sees it; otherwise null and FORBIDDEN_FIELD.

    The same gate notes what it lets through on records, for the audit of the response.
    """

    notes_served = True

    def resolve(
        self, _next: Any, root: Any, info: GraphQLResolveInfo[HubContext], *args: Any, **kwargs: Any
    ) -> Any:
        field = info.field_name
        parent = info.parent_type.name
        if self.notes_served and parent in AUDITED_TYPES:
            # Noted before the check: a refused field is taken out again as redacted, and the
            # record itself was reached (the caller learns it exists) even if nothing else is.
            info.context.served.note(info, root)
        if not field.startswith("__") and not info.context.policy.sees(parent, field):
            raise FieldForbidden(parent, field)
        return _next(root, info, *args, **kwargs)


class AgreementFieldsUnaudited(AgreementFields):
    """The gate without noting: only for the audit benchmark's side-by-side baseline."""

    notes_served = False


def require_visible(info: Info, type_name: str, fields: Iterable[str]) -> None:
    """Filtering on a field reveals it: a filter may only test fields the caller sees."""
    policy = info.context.policy
    for field in fields:
        if not policy.sees(type_name, field):
            raise FieldForbidden(type_name, field)
