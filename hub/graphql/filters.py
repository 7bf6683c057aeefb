"""Filters reveal what they test: a caller may only filter on fields its role sees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, TypeVar

from hub.access.policy import require_visible
from hub.graphql.context import Info

WhereT_co = TypeVar("WhereT_co", covariant=True)


class GuardedFilter(Protocol[WhereT_co]):
    target: ClassVar[str]
    # Each filter argument (Python name) and the field of `target` it tests (GraphQL name).
    tests: ClassVar[Mapping[str, str]]

    def where(self) -> WhereT_co: ...


def checked(info: Info, given: GuardedFilter[WhereT_co]) -> WhereT_co:
    used = [field for name, field in given.tests.items() if getattr(given, name) not in (None, [])]
    require_visible(info, given.target, used)
    return given.where()
