"""Keyset pagination, newest first, on (time, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import among
from hub.db import rows as db_rows
from hub.errors import InvalidInput

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page, and each item's position: what its cursor seals (`hub.cursors`)."""

    items: list[T]
    positions: list[str]
    has_next_page: bool


_NOT_A_CURSOR = "after is not a cursor this API gave out"


def page_size(first: int | None, *, default: int, maximum: int) -> int:
    if first is None:
        return default
    if not 1 <= first <= maximum:
        raise InvalidInput(f"first must be between 1 and {maximum}", field="first")
    return first


@dataclasses.dataclass(frozen=True)
class ByCode:
    """A condition of a scope's OR that a record's `column` is one of `codes` (a force's, a
    council's), for `Listing.scoped`: a branch for each code, which holds `column` to it as a
    range (`code <= column <= code`) and reads it ordered by (column, time, id).

    As `column = code`, the branch's order is the time's alone (the code is a constant to the
    planner), which the time index gives as well as the code's own; and a generic plan,
    which takes every code for an average one, may reckon on meeting the code's newest early
    in the time index and walk it, to the country's end where the code has fewer records than
    the page (`bench-listing` at 100,000: 100,015 rows read for a council's 15). Held as a
    range, the code leads the order, and only the (code, time, id) index gives that order
    without sorting the code's every record: the plan reads a page's worth whatever the
    planner thinks of the code."""

    column: Any
    codes: frozenset[str]
    # Where the code is another table's, whose rows name the list's records, each with its
    # time (`hub.access.models.CouncilReach`): that table's record and time columns, and which
    # of its rows are the list's. The branch reads that table's (code, time, id) index.
    naming: Naming | None = None


@dataclasses.dataclass(frozen=True)
class Naming:
    """A table whose rows name a list's records, by code and time (`ByCode.naming`)."""

    record: Any  # its column of the record's id
    time: Any  # its column of the record's time, equal to the record's own
    rows: sa.ColumnElement[bool]  # which of its rows name the list's records


@dataclasses.dataclass(frozen=True)
class _Branch:
    """One branch's ids; the code it is held to (`ByCode`), if any; and the time and id
    columns its order is read by, if not the list's own (`ByCode.naming`)."""

    query: sa.Select[Any]
    column: Any = None
    code: str | None = None
    time: Any = None
    id: Any = None


# A page's statement, its rows chosen, made into the one that reads them with what they carry.
Finish = Callable[[sa.CTE], sa.Select[Any]]


class Listing:
    """A list's statements, built once for the shape of a request (which filters it uses,
    whether it starts after a cursor), their values bound at each execution: the page's
    records after `:anchor_time`/`:anchor_id`, newest first, `:limit` of them; and the
    anchor's sort key, looked up inside the same scope and filters. Each statement is built
    when first needed.

    `branches` (PostgreSQL): the ids the caller's scope reaches, one SELECT for each condition
    the scope is the OR of (with the same filters). Each branch's newest `:limit` are read
    first, from an index of its own, and the page is the newest of those, still inside the
    whole query's scope and filters. A scope as one OR cannot use any one index in time order:
    a council's page walked the time index back through every newer record in the country and
    filtered each, its cost growing with the other councils' records (`tests/test_listing_plans`
    counts the rows read; `safeguarding-hub bench-listing` times both ways side by side). A
    condition on a code (`ByCode`) is a branch for each code, ordered so that only its
    (code, time, id) index serves it."""

    def __init__(
        self,
        query: sa.Select[Any],
        *,
        time_column: Any,
        id_column: Any,
        branches: Sequence[_Branch] = (),
        unfiltered: sa.Select[Any] | None = None,
        finish: Finish | None = None,
    ) -> None:
        """`unfiltered`: with `branches`, `query` without the request's filters (the page's
        columns in its scope); the branches apply them, and here they would lead the plan to
        an index on a filtered column, read from end to end, instead of the key. `finish`:
        what the page's statement becomes once its rows are chosen (`Listing._finished`; the
        incidents' children added to them, `incidents.service._with_involved`)."""
        self._finish = finish
        self._query = query
        self._time = time_column
        self._id = id_column
        self._branches = tuple(branches)
        self._unfiltered = query if unfiltered is None else unfiltered
        self.id_key: str = id_column.key
        self.time_key: str = time_column.key

    @classmethod
    def scoped(
        cls,
        query: sa.Select[Any],
        scope: sa.ColumnElement[bool],
        branches: Sequence[sa.ColumnElement[bool] | ByCode],
        *,
        shape: Narrowing,
        time_column: Any,
        id_column: Any,
        any_of: Sequence[Any] = (),
        also: Mapping[str, sa.ColumnElement[bool]] | None = None,
        dialect: str | None,
        finish: Finish | None = None,
    ) -> Listing:
        """`query` (the page's columns) in `scope`, narrowed by the request's filters: those of
        `shape`, and of `also` (the list's own, by the name of the value each binds at each
        execution) those `shape` says the request gives. On PostgreSQL each of `branches` (the
        conditions `scope` is the OR of, as `RowScope` gives them) is a branch of its own, a
        `ByCode` one for each of its codes; with none (a scope that is no OR, the hub's own
        jobs'), the list is one statement."""
        conditions = [(also or {})[name] for name in shape.given]

        def narrowed(selecting: sa.Select[Any], time: Any = time_column) -> sa.Select[Any]:
            return shape.applied(
                selecting.where(*conditions), time_column=time, any_of=any_of, dialect=dialect
            )

        def branched(term: sa.ColumnElement[bool] | ByCode) -> list[_Branch]:
            if not isinstance(term, ByCode):
                return [_Branch(narrowed(sa.select(id_column).where(term)))]
            naming = term.naming
            selecting = sa.select(id_column)
            if naming is not None:  # the time filters on the naming table's, which it is read by
                selecting = selecting.where(naming.record == id_column, naming.rows)
            time = time_column if naming is None else naming.time
            order = {} if naming is None else {"time": naming.time, "id": naming.record}
            return [
                _Branch(
                    narrowed(selecting.where(term.column >= code, term.column <= code), time),
                    term.column,
                    code,
                    **order,
                )
                for code in sorted(term.codes)
            ]

        in_scope = query.where(scope)
        return cls(
            narrowed(in_scope),
            time_column=time_column,
            id_column=id_column,
            branches=[branch for term in branches for branch in branched(term)]
            if dialect == "postgresql"
            else [],
            unfiltered=in_scope,
            finish=finish,
        )

    def unbranched(self) -> Listing:
        """The same list as one statement, as SQLite reads it: what `bench-listing` measures
        the branches against."""
        return Listing(self._query, time_column=self._time, id_column=self._id, finish=self._finish)

    def _newest(
        self, query: sa.Select[Any], *, after: bool, held: _Branch | None = None
    ) -> sa.Select[Any]:
        """`query`'s newest `:limit`, after the anchor if `after`; a branch `held` to a code
        (`ByCode`) ordered by (code, time, id), its anchor a position in that order too, which
        the (code, time, id) index starts its reading at."""
        time = self._time if held is None or held.time is None else held.time
        ids = self._id if held is None or held.id is None else held.id
        keys = [time, ids]
        anchor = [
            sa.bindparam("anchor_time", type_=self._time.type),
            sa.bindparam("anchor_id", type_=self._id.type),
        ]
        if held is not None and held.column is not None:
            keys.insert(0, held.column)
            anchor.insert(0, sa.literal(held.code, type_=held.column.type))
        ordered = query.order_by(*(key.desc() for key in keys))
        if after:
            ordered = ordered.where(sa.tuple_(*keys) < sa.tuple_(*anchor))
        return ordered.limit(sa.bindparam("limit", type_=sa.Integer))

    def _statement(self, *, after: bool) -> sa.Select[Any]:
        if not self._branches:  # the scope is no OR (SQLite reads every list this way)
            return self._newest(self._query, after=after)
        # Each branch reads the table on its own: never correlated with the page's own FROM.
        newest = sa.union(
            *(
                self._newest(branch.query.correlate(None), after=after, held=branch)
                for branch in self._branches
            )
        )
        # `= ANY(ARRAY(...))`: the candidates are one value to the planner, read by the
        # primary key; as `IN (...)` a prepared statement's plan guessed a tenth of the table
        # and scanned all of it.
        chosen = self._unfiltered.where(
            self._id == sa.any_(sa.func.array(newest.scalar_subquery()))
        )
        return self._newest(chosen, after=False)  # the branches placed the cursor already

    @functools.cached_property
    def page(self) -> sa.Select[Any]:
        return self._finished(self._statement(after=False))

    @functools.cached_property
    def later(self) -> sa.Select[Any]:
        return self._finished(self._statement(after=True))

    def _finished(self, statement: sa.Select[Any]) -> sa.Select[Any]:
        if self._finish is None:
            return statement
        # The page's rows chosen (and limited) first, then what each carries added to them.
        page = statement.cte("page").prefix_with("MATERIALIZED")
        finished = self._finish(page)
        return finished.order_by(page.c[self.time_key].desc(), page.c[self.id_key].desc())

    @functools.cached_property
    def anchor(self) -> sa.Select[Any]:
        return self._query.with_only_columns(self._time).where(
            self._id == sa.bindparam("anchor_id", type_=self._id.type)
        )

    async def read(
        self,
        session: AsyncSession,
        params: Mapping[str, Any],
        *,
        first: int,
        after: str | None,
        rows: bool = False,
    ) -> Page[Any]:
        """The page after the record whose id is `after` (an opened cursor).

        The sort key is looked up again, inside the caller's scope and filters, so a position
        naming a record the caller cannot see is refused like a forged cursor. With `rows`,
        the statements select a table's columns and the page holds its rows
        (`hub.db.rows`), not one entity per row."""
        bound = {**params, "limit": first + 1}
        statement = self.page
        if after is not None:
            anchor = await session.scalar(self.anchor, {**params, "anchor_id": after})
            if anchor is None:
                raise InvalidInput(_NOT_A_CURSOR, field="after")
            bound.update(anchor_time=anchor, anchor_id=after)
            statement = self.later
        if rows:
            found: list[Any] = await db_rows(session, statement, bound)
        else:
            found = list((await session.execute(statement, bound)).scalars())
        items = found[:first]
        positions = [getattr(r, self.id_key) for r in items]
        return Page(items=items, positions=positions, has_next_page=len(found) > first)


async def paginate(
    session: AsyncSession,
    query: sa.Select[T],
    *,
    time_column: Any,
    id_column: Any,
    first: int,
    after: str | None,
    rows: bool = False,
) -> Page[T]:
    """A page of `query`, built for this request alone (`Listing.read`)."""
    listing = Listing(query, time_column=time_column, id_column=id_column)
    return await listing.read(session, {}, first=first, after=after, rows=rows)


@dataclasses.dataclass(frozen=True)
class Narrowing:
    """Which of the filters every record list shares a request uses (a half-open time range,
    and any of some values for each of some columns): the shape its statements are built
    and cached by. The values go in `params`, bound at each execution."""

    since: bool
    until: bool
    any_of: tuple[bool, ...]
    given: tuple[str, ...] = ()  # a list's own filters the request uses, by their value's name

    @classmethod
    def of(
        cls,
        *,
        since: dt.datetime | None,
        until: dt.datetime | None,
        any_of: Sequence[Sequence[Any]],
        given: Mapping[str, Any] | None = None,
    ) -> tuple[Narrowing, dict[str, Any]]:
        """The shape and the values of a request's filters; `given`, a list's own filters'
        values by name, each used unless None (`Listing.scoped`'s `also`)."""
        params: dict[str, Any] = {"since": since, "until": until}
        params.update({f"any_{i}": list(values) for i, values in enumerate(any_of)})
        named = {name: value for name, value in (given or {}).items() if value is not None}
        shape = cls(
            since is not None, until is not None, tuple(bool(v) for v in any_of), tuple(named)
        )
        return shape, {**{name: value for name, value in params.items() if value}, **named}

    def applied(
        self,
        query: sa.Select[T],
        *,
        time_column: Any,
        any_of: Sequence[Any],
        dialect: str | None,
    ) -> sa.Select[T]:
        """`query` narrowed by the filters this shape uses, each a parameter (`among`)."""
        if self.since:
            query = query.where(time_column >= sa.bindparam("since", type_=time_column.type))
        if self.until:
            query = query.where(time_column < sa.bindparam("until", type_=time_column.type))
        for i, (column, used) in enumerate(zip(any_of, self.any_of, strict=True)):
            if used:
                query = query.where(among(column, f"any_{i}", dialect=dialect))
        return query


def narrowed(
    query: sa.Select[T],
    *,
    time_column: Any,
    since: dt.datetime | None,
    until: dt.datetime | None,
    any_of: Mapping[Any, Sequence[Any]],
) -> sa.Select[T]:
    """`query` narrowed by the shared filters, their values bound in it, for one request."""
    shape, params = Narrowing.of(since=since, until=until, any_of=list(any_of.values()))
    applied = shape.applied(query, time_column=time_column, any_of=list(any_of), dialect=None)
    return applied.params(params)
