"""Cursor connections over keyset pages: `edges { cursor node }` and `pageInfo`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

import strawberry

from hub.cursors import ListCursors
from hub.pagination import Page

NodeT = TypeVar("NodeT")


def _end_sealed(root: PageInfo) -> str | None:
    return None if root.end is None else root.cursors.seal(root.end)


@strawberry.type
class PageInfo:
    has_next_page: bool
    # Sealed only when asked for, as an edge's cursor is: a seal is an authenticated
    # encryption, and a page read for its nodes alone (the council's page) never shows it.
    end_cursor: str | None = strawberry.field(resolver=_end_sealed)
    end: strawberry.Private[str | None]
    cursors: strawberry.Private[ListCursors]


def _sealed(root: Edge[Any]) -> str:
    return root.cursors.seal(root.position)


@strawberry.type
class Edge(Generic[NodeT]):
    # Sealed only when asked for.
    cursor: str = strawberry.field(resolver=_sealed)
    node: NodeT
    position: strawberry.Private[str]
    cursors: strawberry.Private[ListCursors]


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[Any], node: Callable[[Any], NodeT], cursors: ListCursors) -> Self:
        """The page's items as edges, each position sealed into a cursor for this caller."""
        edges = [
            Edge(node=node(r), position=p, cursors=cursors)
            for r, p in zip(page.items, page.positions, strict=True)
        ]
        end = page.positions[-1] if page.positions else None
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end=end, cursors=cursors),
        )
