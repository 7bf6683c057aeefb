"""A scoped list reads about its own records, not the country's: a council's page of incidents,
of missing episodes or of investigations is the newest of each condition its scope is the OR of,
each read on its own (`pagination.Listing`'s branches). As one OR, the plan walked the time
index back through every newer record of every other council and filtered each, its cost
growing with them; so did a branch through the children as `EXISTS` (10,000 to 40,000 rows read
here, where the council has 30).

The council's records are half in its area and half, through their child, elsewhere (and an
investigation's half through its child, half through its incident), so that each branch must
find its own. The plan is PostgreSQL's generic one (a prepared statement's, as the hub's are
after their fifth run), and the count is of rows read, not of time: the same on any machine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from hub.access.scope import RowScope
from hub.bench import FORCE
from hub.db import Database, _direct
from hub.incidents import service as incidents
from hub.investigations import service as investigations
from hub.joint_visits import service as joint_visits
from hub.missing import service as missing
from hub.pagination import Listing, Narrowing
from hub.protection import service as protection
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's generic plans")
COUNCIL = "E08000004"  # a council no other test's records name: the page holds only these
OTHERS = 20_000  # other councils' records, half older and half newer than the council's
OURS = 30  # the council's, a second apart
ANCHOR = 15  # a cursor at the council's 15th: 14 left after it
PAGE = 20
AWAY = "E06000001"  # where half the council's incidents happened: their child is the council's

# `count` rows numbered from 1, each with a council of those `:councils` names (a LIKE
# pattern) in turn, as a country's records spread.
_NUMBERED = (
    "FROM generate_series(1, :count) AS n "
    "JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS k, count(*) OVER () AS m "
    "FROM organisation WHERE kind = 'council' AND code LIKE :councils) AS c ON c.k = n % c.m"
)
# Each numbered row's time: a second apart from `:start`.
_AT = "CAST(:start AS TIMESTAMPTZ) + n * interval '1 second'"
_INCIDENTS = sa.text(
    "INSERT INTO incident (id, force_code, police_reference, idempotency_key, payload_hash, "
    "type, occurred_at, recorded_at, shared_at, location_council_code, dash_risk, summary, "
    "operational_notes, pushed_by_client) "
    f"SELECT :prefix || n, :force, :prefix || n, NULL, 'hash', 'domestic_abuse', {_AT}, "
    # even ones somewhere else if `:away` names a council: only their child makes them ours
    "now(), now(), CASE WHEN n % 2 = 0 THEN COALESCE(:away, c.code) ELSE c.code END, "
    f"'standard', 'synthetic', '', 'plan-client' {_NUMBERED}"
)
_INCIDENT_CHILDREN = sa.text(  # each incident's child is the child of its number
    "INSERT INTO incident_child (incident_id, child_id, present, household_member, victim) "
    f"SELECT :prefix || n, :prefix || 'c' || n, true, true, false {_NUMBERED}"
)
_CHILDREN = sa.text(  # the council's responsibility
    "INSERT INTO child (id, given_name, family_name, date_of_birth, responsible_council_code, "
    "looked_after, created_at, updated_at) "
    f"SELECT :prefix || 'c' || n, 'Synthetic', 'Child', DATE '2015-01-01', c.code, false, "
    f"now(), now() {_NUMBERED}"
)
_EPISODES = sa.text(  # of the children of `_CHILDREN`
    "INSERT INTO missing_episode (id, child_id, force_code, police_reference, payload_hash, "
    "reported_missing_at, recorded_at, shared_at, risk_grade, risk_framework, "
    "last_seen_council_code, missing_from, status, updated_at, pushed_by_client) "
    f"SELECT :prefix || n, :prefix || 'c' || n, :force, :prefix || n, 'hash', {_AT}, now(), "
    f"now(), 'medium', 'synthetic', c.code, 'home', 'missing', now(), 'plan-client' {_NUMBERED}"
)
_INVESTIGATIONS = sa.text(
    "INSERT INTO investigation (id, force_code, police_reference, status, status_changed_at, "
    f"shared_at, updated_at) SELECT :prefix || n, :force, :prefix || n, 'open', {_AT}, now(), "
    f"now() {_NUMBERED}"
)
# Even ones name a child of `_CHILDREN`, odd ones an incident of `_INCIDENTS` (in the council's
# area): each of the two conditions by which a council sees an investigation finds half of the
# council's.
_INVESTIGATION_CHILDREN = sa.text(
    "INSERT INTO investigation_child (investigation_id, child_id) "
    f"SELECT :prefix || n, :prefix || 'c' || n {_NUMBERED} WHERE n % 2 = 0"
)
_INVESTIGATION_INCIDENTS = sa.text(
    "INSERT INTO investigation_incident (investigation_id, incident_id) "
    f"SELECT :prefix || n, :prefix || n {_NUMBERED} WHERE n % 2 = 1"
)

# Even ones placed in (or asked for by) a council elsewhere if `:away` names one: only their
# child makes them ours.
_ELSEWHERE_IF_EVEN = "CASE WHEN n % 2 = 0 THEN COALESCE(:away, c.code) ELSE c.code END"
_PROTECTIONS = sa.text(  # of the children of `_CHILDREN`
    "INSERT INTO police_protection (id, force_code, police_reference, payload_hash, child_id, "
    "taken_at, recorded_at, shared_at, placed_in, placed_council_code, consulted_before, "
    "alternatives_considered, pushed_by_client) "
    f"SELECT :prefix || n, :force, :prefix || n, 'hash', :prefix || 'c' || n, {_AT}, now(), "
    f"now(), 'foster_care', {_ELSEWHERE_IF_EVEN}, false, '', 'plan-client' {_NUMBERED}"
)
_VISITS = sa.text(  # about the children of `_CHILDREN`
    "INSERT INTO joint_visit_request (id, council_code, council_reference, payload_hash, "
    "force_code, child_id, kind, urgency, needed_by, recorded_at, shared_at) "
    f"SELECT :prefix || n, {_ELSEWHERE_IF_EVEN}, :prefix || n, 'hash', :force, "
    f":prefix || 'c' || n, 'visit', 'planned', {_AT}, {_AT}, now() {_NUMBERED}"
)


@dataclasses.dataclass(frozen=True)
class Listed:
    """A kind of record a council lists: its table, what seeds it, and its list's statements."""

    table: str
    seeds: tuple[sa.TextClause, ...]
    listing: Callable[..., Listing]  # its `_listing`: (scope, shape, *, dialect)
    filters: int  # how many lists of values it filters by


LISTED = {
    "incidents": Listed(
        "incident",
        (_CHILDREN, _INCIDENTS, _INCIDENT_CHILDREN),
        functools.partial(incidents._listing, involved=True),
        filters=2,
    ),
    "missing episodes": Listed("missing_episode", (_CHILDREN, _EPISODES), missing._listing, 2),
    "investigations": Listed(
        "investigation",
        (_CHILDREN, _INCIDENTS, _INVESTIGATIONS, _INVESTIGATION_CHILDREN, _INVESTIGATION_INCIDENTS),
        investigations._listing,
        filters=1,
    ),
    "police protections": Listed(
        "police_protection", (_CHILDREN, _PROTECTIONS), protection._listing, filters=1
    ),
    "joint visit requests": Listed(
        "joint_visit_request", (_CHILDREN, _VISITS), joint_visits._listing, filters=4
    ),
}


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _rows_read(plan: dict[str, Any], table: str, indexes: set[str]) -> int:
    """Rows and index entries of `table` every node of the plan read, over all its loops: a
    scan's rows and those it filtered out, a bitmap's index entries. (The tables that link
    records to children are left out: at a few thousand rows the planner rightly reads them
    whole, where at a country's it reads their indexes.)"""
    read = 0
    if plan.get("Relation Name") == table or plan.get("Index Name") in indexes:
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    for child in plan.get("Plans", []):
        read += _rows_read(child, table, indexes)
    return read


@pytest.mark.parametrize("after", [False, True], ids=["page", "after a cursor"])
@pytest.mark.parametrize("kind", LISTED)
async def test_a_councils_page_reads_its_records_not_the_countrys(
    database_url: str, *, kind: str, after: bool
) -> None:
    listed = LISTED[kind]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    shape, params = Narrowing.of(
        since=None, until=now + dt.timedelta(days=1), any_of=((),) * listed.filters
    )
    listing = listed.listing(RowScope(councils=frozenset({COUNCIL})), shape, dialect="postgresql")
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
            transaction = await connection.begin()  # rolled back: the records go with it
            for prefix, councils, away, start, count in (
                ("plan-ours-", COUNCIL, AWAY, ours_from, OURS),
                # every other council's, a second apart, from before the council's to after
                (
                    "plan-elsewhere-",
                    "E06%",
                    None,
                    ours_from - dt.timedelta(seconds=OTHERS // 2),
                    OTHERS,
                ),
            ):
                for seed in listed.seeds:
                    await connection.execute(
                        seed,
                        {
                            "prefix": prefix,
                            "force": FORCE,
                            "councils": councils,
                            "away": away,
                            "start": start,
                            "count": count,
                        },
                    )
                    # each time: the next seed's foreign keys are checked by plans made now
                    await connection.execute(sa.text("ANALYZE"))
            await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
            await connection.exec_driver_sql(f"PREPARE listed AS {direct.sql}")
            explained = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listed({arguments})"
            )
            [(found,)] = explained.all()
            named = await connection.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :table"),
                {"table": listed.table},
            )
            indexes = {name for (name,) in named}
            await connection.exec_driver_sql("DEALLOCATE listed")
            await transaction.rollback()
    finally:
        await db.dispose()
    plan = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
    assert plan["Actual Rows"] == (ANCHOR - 1 if after else PAGE + 1)
    read = _rows_read(plan, listed.table, indexes)
    assert read < 10 * OURS, (read, _show(plan))


def _show(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan's nodes, one a line, for a failure's message."""
    node = " ".join(str(plan.get(key, "")) for key in ("Node Type", "Relation Name", "Index Name"))
    counts = f"rows={plan.get('Actual Rows')} removed={plan.get('Rows Removed by Filter', 0)}"
    lines = ["  " * depth + f"{node} {counts}"]
    lines += [_show(child, depth + 1) for child in plan.get("Plans", [])]
    return "\n".join(lines)
