"""The loaders' statements built once are keyed by the caller's row scope, never shared across."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from hub.access.agreement import RowKind
from hub.access.scope import RowScope
from hub.graphql import loaders


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", None])
@pytest.mark.parametrize("cached", [loaders._incident_children, loaders._involved])
def test_a_scoped_statement_is_reused_for_an_equal_scope_only(
    cached: Callable[..., Any], dialect: str | None
) -> None:
    council = RowScope.for_rows(RowKind.COUNCIL_CHILDREN, "E09000001")
    same_council = RowScope.for_rows(RowKind.COUNCIL_CHILDREN, "E09000001")
    school = RowScope.for_rows(RowKind.SCHOOL_PUPILS, "SCH0001")
    other_school = RowScope.for_rows(RowKind.SCHOOL_PUPILS, "SCH0002")
    built = functools.partial(cached, dialect=dialect)  # the cache under test
    assert built(council) is built(same_council)
    assert built(school) is not built(council)
    assert built(school) is not built(other_school)
    # A school sees only its own pupils among an incident's children; a council sees them all.
    school_sql = str(built(school).compile())
    council_sql = str(built(council).compile())
    assert "scope_child.school_code" in school_sql
    assert "scope_child.school_code" not in council_sql
