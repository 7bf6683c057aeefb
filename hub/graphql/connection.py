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


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[Any], node: Callable[[Any], NodeT], cursors: ListCursors) -> Self:
        """The page's items as edges, each position sealed into a cursor for this caller."""
        sealed = [cursors.seal(position) for position in page.positions]
        edges = [Edge(cursor=c, node=node(r)) for r, c in zip(page.items, sealed, strict=True)]
        end = sealed[-1] if sealed else None
        return cls(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end)
        )
