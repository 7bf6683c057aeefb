"""Cursor connections over keyset pages: `edges { cursor node }` and `pageInfo`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

import strawberry

from hub.cursors import ListCursors
from hub.pagination import Page

NodeT = TypeVar("NodeT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def _sealed(root: Edge[Any]) -> str:
    return root.cursors.seal(root.position)


@strawberry.type
class Edge(Generic[NodeT]):
    # Sealed only when asked for: a page that selects no cursors seals one, for `endCursor`.
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
        end = cursors.seal(page.positions[-1]) if page.positions else None
        return cls(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end)
        )
