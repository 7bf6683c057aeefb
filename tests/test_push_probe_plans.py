"""A push's probe of what its force pushed before reads the unique indexes, whatever the force
holds: the organisations' statement is prepared once, and PostgreSQL's generic plan for one
EXISTS over `reference = ANY(...) OR key = ANY(...)` scanned every incident of the force for
a push naming none of them (the usual push), a cost growing with the force's history."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from hub.bench import COUNCIL, FORCE
from hub.db import Database
from hub.incidents.batch import _probes
from hub.validation import _asking
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's generic plans")
HISTORY = 3000  # a force's earlier incidents: enough that a scan of them costs more than the index

_EARLIER = sa.text(
    "INSERT INTO incident (id, force_code, police_reference, idempotency_key, payload_hash, "
    "type, occurred_at, recorded_at, shared_at, location_council_code, dash_risk, summary, "
    "operational_notes, pushed_by_client) "
    "SELECT 'probe-' || n, :force, 'PROBE-' || n, 'probe-key-' || n, 'hash', 'domestic_abuse', "
    "now(), now(), now(), :council, 'standard', 'synthetic', '', 'probe-client' "
    "FROM generate_series(1, :count) AS n"
)


async def _probe_plan(database_url: str, seed: sa.TextClause, *analysed: str) -> str:
    """The probe's generic plan for a push naming nothing the force pushed or holds (the
    usual push), after `seed` (its rows rolled back after) and `analysed` tables' ANALYZE."""
    statement = _asking(_probes("postgresql"), "postgresql")
    sql = str(statement.compile(dialect=postgresql.asyncpg.dialect()))  # type: ignore[no-untyped-call]
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the seed goes with it
            await connection.execute(seed, {"force": FORCE, "council": COUNCIL, "count": HISTORY})
            for table in analysed:
                await connection.execute(sa.text(f"ANALYZE {table}"))
            await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
            await connection.exec_driver_sql(f"PREPARE probed AS {sql}")
            # EXECUTE takes no bound values: the push's, as literals.
            plan = await connection.exec_driver_sql(
                f"EXPLAIN EXECUTE probed('{FORCE}', '{{PROBE-NEW}}', '{{probe-key-new}}', "
                f"'police_person', '{{P-NEW}}', '{{{COUNCIL}}}')"
            )
            lines = [row[0] for row in plan]
            await connection.exec_driver_sql("DEALLOCATE probed")
            await transaction.rollback()
    finally:
        await db.dispose()
    return "\n".join(lines)


async def test_the_pushed_before_probe_reads_the_indexes_not_the_forces_incidents(
    database_url: str,
) -> None:
    text = await _probe_plan(database_url, _EARLIER, "incident")
    assert "Seq Scan on incident" not in text, text
    assert "uq_incident_force_code_police_reference" in text, text
    assert "uq_incident_force_code_idempotency_key" in text, text


_HELD = sa.text(
    "WITH made AS (INSERT INTO child (id, given_name, family_name, date_of_birth, "
    "responsible_council_code, looked_after, created_at, updated_at) "
    "SELECT 'held-' || n, 'Synthetic', 'Child', date '2015-01-01', :council, false, now(), now() "
    "FROM generate_series(1, :count) AS n RETURNING id) "
    "INSERT INTO child_reference (id, child_id, organisation_code, kind, value) "
    "SELECT 'ref-' || id, id, :force, 'police_person', 'P-' || id FROM made"
)


async def test_the_children_held_probe_reads_the_reference_index_alone(database_url: str) -> None:
    """Every reference's child exists (a foreign key), so the probe need not join `child`:
    joined, the generic plan for a force of 700 children (`bench-read`'s database after a few
    hundred pushes) scanned them all for a push naming none of them (the usual push). At the
    force's `HISTORY` the reference index is the cheaper either way: what fails is the join."""
    text = await _probe_plan(database_url, _HELD, "child", "child_reference")
    assert not re.search(r" on child\b", text), text  # `child_reference` is read, not `child`
    assert "uq_child_reference_organisation_code_kind_value" in text, text
