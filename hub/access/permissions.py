"""Named permission classes the schema applies; resolvers never test roles themselves."""

from __future__ import annotations

from typing import Any, ClassVar

from graphql import GraphQLErrorExtensions
from strawberry.permission import BasePermission

from hub.access.models import Role
from hub.access.policy import purpose_problem
from hub.graphql.context import Info


class _RolePermission(BasePermission):
    roles: ClassVar[frozenset[Role]]
    # An instance attribute on BasePermission, so declared the same way; it is only ever read.
    error_extensions: GraphQLErrorExtensions | None = {"code": "FORBIDDEN"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:  # noqa: ARG002 - strawberry's signature
        return Role(info.context.principal.role) in self.roles


class ReadsSharingFigures(_RolePermission):
    """Sharing-delay figures: an inspectorate's for all; a force's or council's for its own."""

    message = "this role may not read sharing figures"
    roles = frozenset({Role.AUDITOR, Role.POLICE_OFFICER, Role.COUNCIL_SOCIAL_WORKER})


class AgreementListsField(BasePermission):
    """The sharing agreement lists this field for the caller's role.

    For fields the agreement's field gate cannot reach: a subscription's root field resolves
    outside the schema's resolver middleware.
    """

    message = "this field is outside your role's view under the agreement"
    error_extensions: GraphQLErrorExtensions | None = {"code": "FORBIDDEN"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:  # noqa: ARG002 - strawberry's signature
        return info.context.policy.sees(str(info.path.typename), info.field_name)


class NamesPurposeAndPerson(BasePermission):
    """The caller names a permitted purpose and a person (`purpose_problem`, the one rule).

    For subscription fields: strawberry starts a subscription whatever the schema's
    `PurposeOfAccess` extension decides in `on_execute`, so the field itself refuses, before
    its stream starts. The refusal is raised as it is, so its own code reaches the client.
    """

    message = "name a permitted purpose and a person"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:  # noqa: ARG002 - strawberry's signature
        refused = purpose_problem(info.context)
        if refused is not None:
            raise refused
        return True
