"""A list read by branches (PostgreSQL) pages exactly as the same list read as one statement:
the same records, in the same order, page after page through the cursor, for each of the five
scoped lists and for the scopes whose branches differ (a council whose area holds half its
records, the council where the other half are, a force whose branch is its code's).

`tests/test_listing_plans.py` holds the branches to the rows they read; this holds them to
their answers, whatever plan the database chooses."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.scope import RowScope
from hub.bench import FORCE
from hub.bench_listing import AWAY, COUNCIL, LISTED
from hub.bench_listing import seed as seeded
from hub.db import Database
from hub.pagination import Listing, Narrowing
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="branches are PostgreSQL's")
OTHERS = 300  # other councils' records: a force's list of every one is a few pages
PAGE = 3  # small: the scope with fewest records still spans pages
SCOPES = {
    "the council": RowScope(councils=frozenset({COUNCIL})),
    "where its children's records are": RowScope(councils=frozenset({AWAY})),
    "the force": RowScope(forces=frozenset({FORCE})),
}


async def _walked(connection: AsyncConnection, listing: Listing) -> list[str]:
    """Every record's id, page by page, each page after the last one's cursor position."""
    found: list[str] = []
    values: dict[str, Any] = {"limit": PAGE + 1}
    statement = listing.page
    while True:
        rows = (await connection.execute(statement, values)).all()
        page = rows[:PAGE]
        found += [getattr(row, listing.id_key) for row in page]
        if len(rows) <= PAGE:
            return found
        last = page[-1]
        values.update(anchor_time=getattr(last, listing.time_key))
        values.update(anchor_id=getattr(last, listing.id_key))
        statement = listing.later


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("kind", LISTED)
async def test_branches_page_as_one_statement_does(
    database_url: str, *, kind: str, scope: str
) -> None:
    listed = LISTED[kind]
    shape, _ = Narrowing.of(since=None, until=None, any_of=((),) * listed.filters)
    listing = listed.listing(SCOPES[scope], shape, dialect="postgresql")
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the records go with it
            await seeded(connection, listed, others=OTHERS)
            branched = await _walked(connection, listing)
            whole = await _walked(connection, listing.unbranched())
            await transaction.rollback()
    finally:
        await db.dispose()
    assert len(whole) > PAGE, "the list takes more than one page"
    assert branched == whole
    assert len(set(branched)) == len(branched)
