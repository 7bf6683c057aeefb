"""`council_reach` (`hub.access.models.CouncilReach`), what each council reaches of a list's
records through a child or, for an investigation, a linked incident's area, is kept by
PostgreSQL's triggers (migration 0023) as the links, the children's councils and the records'
times change, and stays right when two transactions change a record's reach at once.

A council's page reads it (`RowScope.reached`): a row missing there is a record missing from the
council's page, and a row left there takes a place in the council's page that no record fills.
The records are written here with SQL, as a push writes its rows, so that every path a row can
change by is taken, whatever the services do today."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from typer.testing import CliRunner

from hub.access import reach
from hub.bench import FORCE
from hub.cli import app
from hub.db import Database
from hub.migrate import upgrade
from tests.conftest import cli_settings, is_postgres, scratch_database

pytestmark = pytest.mark.skipif(not is_postgres(), reason="kept by PostgreSQL's triggers")

A, B, C, D, L, M = (f"E0600000{n}" for n in range(1, 7))  # councils of the reference data
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

_CHILD = sa.text(
    "INSERT INTO child (id, given_name, family_name, date_of_birth, responsible_council_code, "
    "host_council_code, looked_after, created_at, updated_at) VALUES (:id, 'Synthetic', "
    "'Child', DATE '2015-01-01', :council, :host, false, now(), now())"
)
_INCIDENT = sa.text(
    "INSERT INTO incident (id, force_code, police_reference, payload_hash, type, occurred_at, "
    "recorded_at, shared_at, location_council_code, summary, operational_notes, "
    "pushed_by_client) VALUES (:id, :force, :id, 'hash', 'neglect', :at, now(), now(), :area, "
    "'synthetic', '', 'reach-client')"
)
_EPISODE = sa.text(
    "INSERT INTO missing_episode (id, child_id, force_code, police_reference, payload_hash, "
    "reported_missing_at, recorded_at, shared_at, risk_grade, risk_framework, "
    "last_seen_council_code, missing_from, status, updated_at, pushed_by_client) VALUES "
    "(:id, :child, :force, :id, 'hash', :at, now(), now(), 'medium', 'synthetic', :area, "
    "'home', 'missing', now(), 'reach-client')"
)
_PROTECTION = sa.text(
    "INSERT INTO police_protection (id, force_code, police_reference, payload_hash, child_id, "
    "taken_at, recorded_at, shared_at, placed_in, placed_council_code, consulted_before, "
    "alternatives_considered, pushed_by_client) VALUES (:id, :force, :id, 'hash', :child, :at, "
    "now(), now(), 'foster_care', :area, false, '', 'reach-client')"
)
_VISIT = sa.text(
    "INSERT INTO joint_visit_request (id, council_code, council_reference, payload_hash, "
    "force_code, child_id, kind, urgency, needed_by, recorded_at, shared_at) VALUES (:id, :area, "
    ":id, 'hash', :force, :child, 'visit', 'planned', :at, :at, now())"
)
_INVESTIGATION = sa.text(
    "INSERT INTO investigation (id, force_code, police_reference, status, status_changed_at, "
    "shared_at, updated_at) VALUES (:id, :force, :id, 'open', :at, now(), now())"
)


async def _run(connection: AsyncConnection, sql: str | sa.TextClause, **values: Any) -> None:
    await connection.execute(sa.text(sql) if isinstance(sql, str) else sql, values)


async def _reach(connection: AsyncConnection, kind: str, record: str) -> dict[str, dt.datetime]:
    """The councils that reach the record, each with the time their row holds."""
    found = await connection.execute(
        sa.text(
            "SELECT council_code, at FROM council_reach WHERE kind = :kind AND record_id = :id"
        ),
        {"kind": kind, "id": record},
    )
    return dict(found.all())


async def _councils(connection: AsyncConnection, kind: str, record: str) -> set[str]:
    return set(await _reach(connection, kind, record))


async def test_each_change_of_who_reaches_a_record_is_kept(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()  # rolled back: the records go with it
            await _run(connection, _CHILD, id="reach-a", council=A, host=None)
            await _run(connection, _CHILD, id="reach-b", council=B, host=C)
            await _run(connection, _INCIDENT, id="reach-i", force=FORCE, at=T0, area=L)
            assert await _councils(connection, "incident", "reach-i") == set()  # its area's own

            link = "INSERT INTO incident_child (incident_id, child_id, present, "
            link += "household_member, victim) VALUES ('reach-i', :child, true, true, false)"
            await _run(connection, link, child="reach-a")
            assert await _reach(connection, "incident", "reach-i") == {A: T0}
            await _run(connection, link, child="reach-b")
            assert await _councils(connection, "incident", "reach-i") == {A, B, C}

            child = "UPDATE child SET {} = :council WHERE id = :id"
            await _run(connection, child.format("host_council_code"), council=None, id="reach-b")
            assert await _councils(connection, "incident", "reach-i") == {A, B}
            await _run(
                connection, child.format("responsible_council_code"), council=D, id="reach-a"
            )
            assert await _councils(connection, "incident", "reach-i") == {D, B}
            await _run(
                connection,
                "DELETE FROM incident_child WHERE incident_id = 'reach-i' AND child_id = 'reach-b'",
            )
            assert await _councils(connection, "incident", "reach-i") == {D}
            later = T0 + dt.timedelta(hours=1)
            await _run(
                connection, "UPDATE incident SET occurred_at = :at WHERE id = 'reach-i'", at=later
            )
            assert await _reach(connection, "incident", "reach-i") == {D: later}

            for kind, statement in (
                ("missing_episode", _EPISODE),
                ("police_protection", _PROTECTION),
                ("joint_visit_request", _VISIT),
            ):
                record = f"reach-{kind}"
                values = {"id": record, "force": FORCE, "at": T0, "area": L}
                await _run(connection, statement, child="reach-a", **values)
                assert await _reach(connection, kind, record) == {D: T0}, kind
                await _run(
                    connection,
                    f"UPDATE {kind} SET child_id = 'reach-b' WHERE id = :id",  # noqa: S608 - our tables
                    id=record,
                )
                assert await _councils(connection, kind, record) == {B}, kind
                await _run(connection, child.format("host_council_code"), council=C, id="reach-b")
                assert await _councils(connection, kind, record) == {B, C}, kind
                await _run(
                    connection, child.format("host_council_code"), council=None, id="reach-b"
                )
                await _run(connection, f"DELETE FROM {kind} WHERE id = :id", id=record)  # noqa: S608
                assert await _councils(connection, kind, record) == set(), kind

            await _run(connection, _INVESTIGATION, id="reach-n", force=FORCE, at=T0)
            await _run(
                connection,
                "INSERT INTO investigation_child (investigation_id, child_id) "
                "VALUES ('reach-n', 'reach-a')",
            )
            await _run(
                connection,
                "INSERT INTO investigation_incident (investigation_id, incident_id) "
                "VALUES ('reach-n', 'reach-i')",
            )
            assert await _reach(connection, "investigation", "reach-n") == {D: T0, L: T0}
            await _run(
                connection,
                "UPDATE incident SET location_council_code = :area WHERE id = 'reach-i'",
                area=M,
            )
            assert await _councils(connection, "investigation", "reach-n") == {D, M}
            await _run(
                connection,
                "UPDATE investigation SET status = 'closed', status_changed_at = :at "
                "WHERE id = 'reach-n'",
                at=later,
            )
            assert await _reach(connection, "investigation", "reach-n") == {D: later, M: later}
            # the child's council and the incident's area the same: one row for the council
            await _run(
                connection, child.format("responsible_council_code"), council=M, id="reach-a"
            )
            assert await _reach(connection, "investigation", "reach-n") == {M: later}
            await _run(
                connection, "DELETE FROM investigation_incident WHERE investigation_id = 'reach-n'"
            )
            await _run(
                connection, "DELETE FROM investigation_child WHERE investigation_id = 'reach-n'"
            )
            assert await _councils(connection, "investigation", "reach-n") == set()
            await transaction.rollback()
    finally:
        await db.dispose()


async def test_the_migration_builds_the_rows_of_the_records_already_held(tmp_path: Path) -> None:
    """A hub upgraded to 0023 with records already held: their rows are built by the migration,
    not left for a change to build (a council would miss its older records until then)."""
    async with scratch_database(tmp_path, "hub_reach_upgrade", migrate=False) as url:
        await upgrade(url, "0022")
        db = Database(url)
        try:
            async with db.engine.connect() as connection, connection.begin():
                await _run(connection, _CHILD, id="held-a", council=A, host=B)
                await _run(connection, _INCIDENT, id="held-i", force=FORCE, at=T0, area=L)
                await _run(
                    connection,
                    "INSERT INTO incident_child (incident_id, child_id, present, "
                    "household_member, victim) VALUES ('held-i', 'held-a', true, true, false)",
                )
                values = {"force": FORCE, "at": T0, "area": L, "child": "held-a"}
                await _run(connection, _EPISODE, id="held-e", **values)
                await _run(connection, _INVESTIGATION, id="held-n", force=FORCE, at=T0)
                await _run(
                    connection,
                    "INSERT INTO investigation_incident (investigation_id, incident_id) "
                    "VALUES ('held-n', 'held-i')",
                )
            await upgrade(url)
            async with db.engine.connect() as connection:
                assert await _reach(connection, "incident", "held-i") == {A: T0, B: T0}
                assert await _reach(connection, "missing_episode", "held-e") == {A: T0, B: T0}
                assert await _reach(connection, "investigation", "held-n") == {L: T0}
                count = await connection.scalar(sa.text("SELECT count(*) FROM council_reach"))
                assert count == 5
        finally:
            await db.dispose()


async def test_a_link_made_while_its_childs_council_changes_reaches_the_new_council(
    tmp_path: Path,
) -> None:
    """A push links an incident to a child while, in another transaction, the child's council
    changes. Each transaction alone sees the other's change only once it commits: unless one
    waits for the other, the link's row names the old council, and the new council never finds
    the incident on its page. The link's trigger locks the child (`FOR SHARE`), so the change
    of council waits for the push and then recomputes the incident with its link."""
    async with scratch_database(tmp_path, "hub_reach") as url:
        db = Database(url)
        try:
            async with db.engine.connect() as setup, setup.begin():
                await _run(setup, _CHILD, id="race-child", council=A, host=None)
                await _run(setup, _INCIDENT, id="race-i", force=FORCE, at=T0, area=L)
            async with db.engine.connect() as push, db.engine.connect() as council:
                linking = await push.begin()
                await _run(
                    push,
                    "INSERT INTO incident_child (incident_id, child_id, present, "
                    "household_member, victim) VALUES ('race-i', 'race-child', true, true, false)",
                )
                moving = await council.begin()
                moved = asyncio.ensure_future(
                    _run(
                        council,
                        "UPDATE child SET responsible_council_code = :council "
                        "WHERE id = 'race-child'",
                        council=B,
                    )
                )
                try:
                    await _waiting_on_a_lock(db, moved)
                    await linking.commit()
                    await moved
                    await moving.commit()
                finally:
                    if not moved.done():
                        # Something above failed with the change of council still waiting on
                        # the link's lock: end the link, so that the change ends and its
                        # connection can close (else the close fails, "another operation is in
                        # progress", and hides what failed).
                        await linking.rollback()
                        await asyncio.gather(moved, return_exceptions=True)
            async with db.engine.connect() as reading:
                assert await _councils(reading, "incident", "race-i") == {B}
        finally:
            await db.dispose()


async def _waiting_on_a_lock(db: Database, statement: asyncio.Future[None]) -> None:
    """Until the change of council waits on a lock, unless it has finished first: a minute at
    most."""
    deadline = asyncio.get_running_loop().time() + 60
    async with db.engine.connect() as watching:
        while asyncio.get_running_loop().time() < deadline:
            assert not statement.done(), "the change of council did not wait for the link"
            # Each look in a transaction of its own: PostgreSQL keeps what a transaction first
            # reads of pg_stat_activity until the transaction ends. A first look taken before
            # the change began to wait was read again at every look, and the test failed on a
            # busy machine (CI runs of 76f2186 and c80a79d).
            async with watching.begin():
                waiting = await watching.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND query LIKE 'UPDATE child%'"
                    )
                )
            if waiting:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("no session waited on a lock")


async def test_the_triggers_read_by_index_while_the_tables_are_small(tmp_path: Path) -> None:
    """PL/pgSQL keeps a statement's plan for its session. Planned while the tables were small (a
    young hub, or before a bulk load's first rows), a plan that read a link table whole was kept
    as it grew, and a statement inserting 32,000 links took 60 s, not 4: each row's trigger read
    every link inserted before it. Every plan the triggers run, on tables just analysed at a few
    rows, reads by index (`auto_explain` sends each nested statement's plan to the client)."""
    async with scratch_database(tmp_path, "hub_reach_small") as url:
        db = Database(url)
        try:
            async with db.engine.connect() as connection:
                driver = (await connection.get_raw_connection()).driver_connection
                notices: list[str] = []
                driver.add_log_listener(lambda _, message: notices.append(message.message))
                transaction = await connection.begin()
                children = "INSERT INTO child (id, given_name, family_name, date_of_birth, "
                children += "responsible_council_code, looked_after, created_at, updated_at) "
                children += "SELECT 'small-' || n, 'Synthetic', 'Child', DATE '2015-01-01', :a, "
                children += "false, now(), now() FROM generate_series(1, 8) AS n"
                await _run(connection, children, a=A)
                await _run(connection, _INCIDENT, id="small-i", force=FORCE, at=T0, area=L)
                await _run(connection, "ANALYZE")
                for setting in (
                    "LOAD 'auto_explain'",
                    "SET LOCAL auto_explain.log_min_duration = 0",
                    "SET LOCAL auto_explain.log_nested_statements = on",
                    "SET LOCAL auto_explain.log_level = notice",
                ):
                    await _run(connection, setting)
                await _run(
                    connection,
                    "INSERT INTO incident_child (incident_id, child_id, present, household_member, "
                    "victim) SELECT 'small-i', 'small-' || n, true, true, false "
                    "FROM generate_series(1, 8) AS n",
                )
                await _run(connection, "UPDATE child SET responsible_council_code = :b", b=B)
                assert await _councils(connection, "incident", "small-i") == {B}
                await transaction.rollback()
        finally:
            await db.dispose()
    # The statements run here and the foreign keys' own checks (`FROM ONLY`) are not the
    # triggers'.
    ours = [
        notice
        for notice in notices
        if "FROM ONLY" not in notice
        and not re.search(r"Query Text: (INSERT|UPDATE|SELECT council_code)", notice)
    ]
    assert len(ours) > 16, notices  # each link's and each child's statements
    scans = [notice for notice in ours if "Seq Scan" in notice]
    assert scans == [], scans[0]


async def _corrupted(url: str) -> None:
    """Two incidents and an episode of a child of A, and four kinds of wrong row: one missing,
    one at the wrong time, one for a council that reaches nothing, one for no record."""
    db = Database(url)
    try:
        async with db.engine.connect() as connection, connection.begin():
            await _run(connection, _CHILD, id="wrong-a", council=A, host=None)
            for incident in ("wrong-i1", "wrong-i2", "wrong-i3"):
                await _run(connection, _INCIDENT, id=incident, force=FORCE, at=T0, area=L)
                await _run(
                    connection,
                    "INSERT INTO incident_child (incident_id, child_id, present, "
                    "household_member, victim) VALUES (:id, 'wrong-a', true, true, false)",
                    id=incident,
                )
            values = {"force": FORCE, "at": T0, "area": L, "child": "wrong-a"}
            await _run(connection, _EPISODE, id="wrong-e", **values)
            await _run(connection, "DELETE FROM council_reach WHERE record_id = 'wrong-i1'")
            await _run(
                connection,
                "UPDATE council_reach SET at = :at WHERE record_id = 'wrong-i2'",
                at=T0 + dt.timedelta(days=1),
            )
            stale = "INSERT INTO council_reach (kind, record_id, council_code, at) VALUES "
            await _run(connection, stale + "('missing_episode', 'wrong-e', :c, :at)", c=C, at=T0)
            await _run(connection, stale + "('incident', 'wrong-gone', :a, :at)", a=A, at=T0)
    finally:
        await db.dispose()


async def _rows(url: str) -> set[tuple[Any, ...]]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return {tuple(row) for row in await connection.execute(sa.text(_ALL_ROWS))}
    finally:
        await db.dispose()


_ALL_ROWS = "SELECT kind, record_id, council_code, at FROM council_reach"


async def test_verify_finds_each_wrong_row_and_repair_puts_it_right(tmp_path: Path) -> None:
    """`safeguarding-hub reach verify`'s check: the records whose rows are wrong, counted in
    slices smaller than the list (so that a slice's end is crossed), nothing changed by a check,
    everything put right by a repair."""
    async with scratch_database(tmp_path, "hub_reach_verify") as url:
        await _corrupted(url)
        wrong = await _rows(url)
        db = Database(url)
        try:
            found = await reach.check(db, repair=False, slice_size=2)
            assert found.checked == {
                **dict.fromkeys(reach.LISTS, 0),
                "incident": 3,
                "missing_episode": 1,
            }
            assert found.wrong == {
                **dict.fromkeys(reach.LISTS, 0),
                "incident": 3,
                "missing_episode": 1,
            }
            assert await _rows(url) == wrong  # a check changes nothing
            repaired = await reach.check(db, repair=True, slice_size=2)
            assert repaired.wrong == found.wrong
            assert (await reach.check(db, repair=False)).total_wrong == 0
        finally:
            await db.dispose()
        right = await _rows(url)
        at = T0
        incidents = {("incident", f"wrong-i{n}", A, at) for n in (1, 2, 3)}
        assert right == {*incidents, ("missing_episode", "wrong-e", A, at)}


@pytest.fixture
async def corrupted_url(tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(tmp_path, "hub_reach_cli") as url:
        await _corrupted(url)
        yield url


def test_the_command_says_what_is_wrong_and_repairs_it(
    corrupted_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`safeguarding-hub reach verify` as an operator runs it (its own event loop)."""
    with cli_settings(monkeypatch, corrupted_url, tmp_path):
        checked = CliRunner().invoke(app, ["reach", "verify"])
        assert checked.exit_code == 1, checked.output
        assert re.search(r"incident +3 records checked +3 wrong", checked.output), checked.output
        assert "4 records' rows are wrong" in checked.output
        repaired = CliRunner().invoke(app, ["reach", "verify", "--repair"])
        assert repaired.exit_code == 0, repaired.output
        assert re.search(r"missing_episode +1 records checked +1 repaired", repaired.output)
        again = CliRunner().invoke(app, ["reach", "verify"])
        assert again.exit_code == 0, again.output
        assert " 0 wrong" in again.output
