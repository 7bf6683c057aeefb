"""Enforcing the sharing agreement on every request: purpose first, then every field resolved.

The field gate itself runs in the schema's executor (`hub.graphql.executor.HubExecutor`), which
decides per selection which fields a role may not have and refuses exactly those.

Every operation that reads or changes case data, a query, a push, an acknowledgement or a
subscription, names a permitted purpose and a person (`purpose_problem`), before any data is
touched. A field outside the caller's view resolves to null with a FORBIDDEN_FIELD error at its
path; it is never silently dropped and never reached another way (filters are checked the same
way).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from hub.errors import Forbidden, HubError
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


class ChangeForbidden(Forbidden):
    """A mutation the agreement does not list for the caller's role: one place, the agreement's
    `Mutation` fields, says who may write what, as its other fields say who may read what.
    """

    def __init__(self, field: str) -> None:
        super().__init__(f"the agreement does not let this role call {field}")


class PurposeRefused(HubError):
    """An operation whose purpose is missing, unknown, or not one the role may give."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self._code = code

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self._code}


def effective_purpose(context: HubContext, *, mutation: bool) -> str | None:
    """What the operation is for, as checked and audited: named, or a push's default."""
    return context.policy.purpose_given(context.principal.purpose, mutation=mutation)


def purpose_problem(context: HubContext, *, mutation: bool = False) -> PurposeRefused | None:
    """The one rule: why this operation may not go ahead for want of a purpose or a person."""
    principal = context.principal
    agreement = context.hub.agreement
    purpose = effective_purpose(context, mutation=mutation)
    if purpose is None:
        return PurposeRefused("PURPOSE_REQUIRED", "name the purpose of this access (Hub-Purpose)")
    if purpose not in agreement.purposes:
        return PurposeRefused(
            "PURPOSE_UNKNOWN", "the purpose is not one the sharing agreement defines"
        )
    if purpose not in context.policy.purposes:
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
    """Every query and mutation names a permitted purpose and a person, before any data is
    touched. Subscriptions are checked by `NamesPurposeAndPerson` on their fields instead:
    strawberry starts a subscription whatever `on_execute` sets as the result.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        operation = context.operation_type
        if operation is not OperationType.SUBSCRIPTION and self._discloses():
            mutation = operation is OperationType.MUTATION
            refused = purpose_problem(context.context, mutation=mutation)
            if refused is not None:
                error = GraphQLError(refused.message, extensions=refused.extensions)
                context.result = ExecutionResult(data=None, errors=[error])
        yield

    def _discloses(self) -> bool:
        names = root_fields(self.execution_context)
        return names is None or any(name not in PURPOSE_FREE_FIELDS for name in names)


class ContractForbidden(Forbidden):
    """Production only: `_service { sdl }` is for the role the agreement names for the gateway.

    The SDL lists every type and field, including those a caller's role never sees; only the
    gateway needs it, to compose the supergraph. Checked at the field (by the executor's gate),
    so that no alias or fragment reaches it another way.
    """

    def __init__(self) -> None:
        super().__init__("the contract (SDL) is served only to the federation gateway's client")


def require_visible(info: Info, type_name: str, fields: Iterable[str]) -> None:
    """Filtering on a field reveals it: a filter may only test fields the caller sees."""
    policy = info.context.policy
    for field in fields:
        if not policy.sees(type_name, field):
            raise FieldForbidden(type_name, field)
