"""A scoped list reads about its own records, not the country's: a council's page of each of the
five scoped lists (`hub.bench_listing.LISTED`) is the newest of each condition its scope is the
OR of, each read on its own (`pagination.Listing`'s branches). As one OR, the plan walked the time
index back through every newer record of every other council and filtered each, its cost
growing with them; so did a branch through the children as `EXISTS` (10,000 to 40,000 rows read
here, where the council has 30).

The rows read are counted of the listed table, of the tables that link records to their
children and incidents, and of what each council reaches through them (`council_reach`): a
branch through a child reads the council's newest there by index (`RowScope.reached`). Before
it, such a branch read the links by the council's children: as `IN` the planner read the whole
link table (100,030 rows at `bench-listing`'s size; here 20,051 to 20,062 of `incident_child`,
10,015 of `investigation_child`), and by index it read every record of the council's children,
however many (`test_a_councils_page_reads_its_newest_not_its_whole_history`).

The council's records are half in its area and half, through their child, elsewhere (and an
investigation's half through its child, half through its incident), so that each branch must
find its own. The plan is PostgreSQL's generic one (a prepared statement's, as the hub's are
after their fifth run), and the count is of rows read, not of time: the same on any machine.
`safeguarding-hub bench-listing` times the same pages, at any size.

Each page is planned at PostgreSQL's default costs and again at costs that favour reading the
time index (`random_page_cost = 10`: its entries lie in the table's order, a code's do not): the
planner's choice there is the one it made at the default costs among 100,000 others
(`bench-listing`), where a branch held to its code by `=` walked the time index to the
country's end for a council of fewer records than a page (`pagination.ByCode`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from hub.bench import FORCE
from hub.bench_listing import (
    AWAY,
    COUNCIL,
    LINKS,
    LISTED,
    OURS,
    PAGE,
    Listed,
    explained,
    indexes_of,
    ours_from,
    prepared,
    rows_read,
    show,
)
from hub.bench_listing import seed as seeded
from hub.db import Database
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's generic plans")
OTHERS = 20_000  # other councils' records, half older and half newer than the council's
RANDOM_PAGE_COSTS = (4, 10)  # PostgreSQL's default, and one that favours the time index


async def _page_plans(
    database_url: str, listed: Listed, *, after: bool, ours: int = OURS
) -> tuple[dict[int, dict[str, Any]], dict[str, set[str]]]:
    """The council's page planned at each of `RANDOM_PAGE_COSTS`, among `OTHERS` of other
    councils' records and `ours` of its own, and the indexes of each table it may read."""
    listing, values = listed.statements(after=after)  # a cursor: after the council's 15th
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the records go with it
            await seeded(connection, listed, others=OTHERS, ours=ours)
            statement = listing.later if after else listing.page
            plans = {}
            for cost in RANDOM_PAGE_COSTS:
                await connection.execute(sa.text(f"SET LOCAL random_page_cost = {cost}"))
                async with prepared(connection, statement, values, f"listed_{cost}") as execute:
                    plans[cost] = await explained(connection, execute)
            indexes = {
                table: await indexes_of(connection, table) for table in (listed.table, *LINKS)
            }
            await transaction.rollback()
        await _vacuumed(db, listed)
    finally:
        await db.dispose()
    return plans, indexes


async def _vacuumed(db: Database, listed: Listed) -> None:
    """The seeded tables vacuumed: a rolled-back seed leaves its rows dead, and where nothing
    vacuums them (CI's server runs without autovacuum) every later test's seed and plan wades
    through them; the last tests of this file took 10 s each, not 2."""
    tables = sorted({"child", "incident", listed.table, *LINKS})
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql(f"VACUUM {', '.join(tables)}")


def _assert_reads_a_page(
    plans: dict[int, dict[str, Any]], indexes: dict[str, set[str]], *, rows: int
) -> None:
    for cost, plan in plans.items():
        assert plan["Actual Rows"] == rows, cost
        for table, its_indexes in indexes.items():
            read = rows_read(plan, table, its_indexes)
            assert read < 10 * OURS, (cost, table, read, show(plan))


@pytest.mark.parametrize("after", [False, True], ids=["page", "after a cursor"])
@pytest.mark.parametrize("kind", LISTED)
async def test_a_councils_page_reads_its_records_not_the_countrys(
    database_url: str, *, kind: str, after: bool
) -> None:
    plans, indexes = await _page_plans(database_url, LISTED[kind], after=after)
    _assert_reads_a_page(plans, indexes, rows=14 if after else PAGE + 1)


HISTORY = 4_000  # a council's own records, half reached only through a child


@pytest.mark.parametrize("kind", LISTED)
async def test_a_councils_page_reads_its_newest_not_its_whole_history(
    database_url: str, *, kind: str
) -> None:
    """Through its children, a council's page read every record of every child of the council
    to find the newest: at 16,000 of its own records, 16,053 rows read and 50 ms for a page of
    incidents (`bench-listing --ours 16000`), and the hub slowed threefold in five minutes of
    `bench-soak`. What a council reaches through a child is read from `council_reach`, by
    council and time (`RowScope.reached`)."""
    plans, indexes = await _page_plans(database_url, LISTED[kind], after=False, ours=HISTORY)
    _assert_reads_a_page(plans, indexes, rows=PAGE + 1)


MANY = 700  # a council's records, half through a child elsewhere: small tables, read whole


def _array_tests(plan: dict[str, Any]) -> list[str]:
    """The plan's filters that test a row against an array the statement computed (an
    InitPlan's `$n`): a search from the array's start for every row tested."""
    found = [
        f"{plan.get('Node Type')} {plan.get('Relation Name', '')}: {plan[key]}"
        for key in ("Filter", "Join Filter")
        if re.search(r"= ANY \(\(\$\d+\)", plan.get(key, ""))
    ]
    return found + [test for child in plan.get("Plans", []) for test in _array_tests(child)]


@pytest.mark.parametrize("kind", LISTED)
async def test_a_councils_page_tests_no_row_against_an_array_of_its_children(
    database_url: str, *, kind: str
) -> None:
    """Where its tables are small enough to read whole (a young hub, or a council's first
    months), the planner read the link table and the time index and tested each row against
    the array of the council's children or of their records, `= ANY($n)`, which PostgreSQL
    searches from its start: a page cost the council's children times the rows read (5.2 ms
    at 680 children and 340 incidents). Unnested and joined, each is a hash or index join."""
    listed = LISTED[kind]
    listing, values = listed.statements(after=False)
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the records go with it
            for statement in listed.seeds:
                await connection.execute(
                    statement,
                    {
                        "prefix": "plan-many-",
                        "force": FORCE,
                        "councils": COUNCIL,
                        "away": AWAY,
                        "start": ours_from(dt.datetime.now(dt.UTC)),
                        "count": MANY,
                    },
                )
            await connection.execute(sa.text("ANALYZE"))
            async with prepared(connection, listing.page, values, "listed_many") as execute:
                plan = await explained(connection, execute)
            await transaction.rollback()
        await _vacuumed(db, listed)
    finally:
        await db.dispose()
    assert plan["Actual Rows"] == PAGE + 1
    assert _array_tests(plan) == [], show(plan)
