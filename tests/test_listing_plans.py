"""A scoped list reads about its own records, not the country's: a council's page of incidents
is the newest of each condition its scope is the OR of, each from an index of its own. As one
OR, the plan walked the time index back through every newer incident of every other council and
filtered each, its cost growing with them (23.6 ms a page at 100,000 of them, 0.7 ms at none).

The plan is PostgreSQL's generic one (a prepared statement's, as the hub's are after their fifth
run), and the count is of rows read, not of time: the same on any machine."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa

from hub.access.scope import RowScope
from hub.bench import FORCE
from hub.db import Database, _direct
from hub.incidents.service import _listing
from hub.pagination import Narrowing
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's generic plans")
COUNCIL = "E08000004"  # a council no other test's records name: the page holds only these
OTHERS = 3000  # other councils' incidents, half older and half newer than the council's
OURS = 30  # the council's, a second apart
ANCHOR = 15  # a cursor at the council's 15th: 14 left after it
PAGE = 20

_INCIDENTS = sa.text(
    "INSERT INTO incident (id, force_code, police_reference, idempotency_key, payload_hash, "
    "type, occurred_at, recorded_at, shared_at, location_council_code, dash_risk, summary, "
    "operational_notes, pushed_by_client) "
    "SELECT :prefix || n, :force, :prefix || n, NULL, 'hash', 'domestic_abuse', "
    "CAST(:start AS TIMESTAMPTZ) + n * interval '1 second', now(), now(), c.code, 'standard', "
    "'synthetic', '', 'plan-client' FROM generate_series(1, :count) AS n "
    # round the councils `:councils` names (a LIKE pattern), as a country's incidents spread
    "JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS k, count(*) OVER () AS m "
    "FROM organisation WHERE kind = 'council' AND code LIKE :councils) AS c ON c.k = n % c.m"
)


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _rows_read(plan: dict[str, Any], indexes: set[str]) -> int:
    """Rows and index entries of `incident` every node of the plan read, over all its loops:
    a scan's rows and those it filtered out, a bitmap's index entries."""
    read = 0
    if plan.get("Relation Name") == "incident" or plan.get("Index Name") in indexes:
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    for child in plan.get("Plans", []):
        read += _rows_read(child, indexes)
    return read


@pytest.mark.parametrize("after", [False, True])
async def test_a_councils_page_reads_its_incidents_not_the_countrys(
    database_url: str, *, after: bool
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    shape, params = Narrowing.of(since=None, until=now + dt.timedelta(days=1), any_of=((), ()))
    listing = _listing(
        RowScope(councils=frozenset({COUNCIL})),
        shape,
        child=False,
        dialect="postgresql",
        involved=True,
    )
    statement = listing.later if after else listing.page
    values = {**params, "limit": PAGE + 1}
    ours_from = now - dt.timedelta(days=1)
    if after:  # from the middle of the council's: the cursor's statement, read the same way
        values.update(
            anchor_time=ours_from + dt.timedelta(seconds=ANCHOR), anchor_id=f"plan-ours-{ANCHOR}"
        )
    db = Database(database_url)
    direct = _direct(statement, db.engine.dialect)  # the text and values the hub sends
    assert direct is not None
    arguments = ", ".join(_literal(value) for value in direct.arguments(values))
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the incidents go with it
            for prefix, councils, start, count in (
                ("plan-ours-", COUNCIL, ours_from, OURS),
                # every other council's, a second apart, from before the council's to after
                ("plan-elsewhere-", "E06%", ours_from - dt.timedelta(seconds=OTHERS // 2), OTHERS),
            ):
                await connection.execute(
                    _INCIDENTS,
                    {
                        "prefix": prefix,
                        "force": FORCE,
                        "councils": councils,
                        "start": start,
                        "count": count,
                    },
                )
            await connection.execute(sa.text("ANALYZE incident"))
            await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
            await connection.exec_driver_sql(f"PREPARE listed AS {direct.sql}")
            explained = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listed({arguments})"
            )
            [(found,)] = explained.all()
            named = await connection.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'incident'")
            )
            indexes = {name for (name,) in named}
            await connection.exec_driver_sql("DEALLOCATE listed")
            await transaction.rollback()
    finally:
        await db.dispose()
    plan = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
    assert plan["Actual Rows"] == (ANCHOR - 1 if after else PAGE + 1)
    read = _rows_read(plan, indexes)
    assert read < OTHERS // 10, (read, _show(plan))


def _show(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan's nodes, one a line, for a failure's message."""
    node = " ".join(str(plan.get(key, "")) for key in ("Node Type", "Relation Name", "Index Name"))
    counts = f"rows={plan.get('Actual Rows')} removed={plan.get('Rows Removed by Filter', 0)}"
    lines = ["  " * depth + f"{node} {counts}"]
    lines += [_show(child, depth + 1) for child in plan.get("Plans", [])]
    return "\n".join(lines)
