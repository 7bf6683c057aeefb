"""Stage facts are kept up to date on write: pushes, a child moving council, first sight,
acknowledgement and return home interviews each change them at commit, and the incremental
facts are exactly what deriving the whole table again gives (PostgreSQL: the SQL path's)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.access.scope import RowScope
from hub.children import service as children
from hub.children.service import ChildDetails
from hub.db import Database
from hub.incidents import service as incidents
from hub.incidents.models import IncidentType
from hub.incidents.service import IncidentReport, InvolvedChild
from hub.missing import service as missing
from hub.missing.models import MissingFrom, MissingStatus, RiskGrade
from hub.missing.service import MissingReport, MissingUpdate
from hub.timeliness import facts, service
from hub.timeliness.models import FirstSeen, note_first_seen
from tests.conftest import is_postgres, scratch_database
from tests.factories import COUNCIL, FORCE, HOST_COUNCIL, OTHER_COUNCIL

pytestmark = pytest.mark.skipif(not is_postgres(), reason="stage facts serve PostgreSQL's report")

HOURS = dt.timedelta(hours=1)


def _child(reference: str, council: str, host: str | None = None) -> ChildDetails:
    return ChildDetails(
        police_reference=reference,
        given_name="Sam",
        family_name="Example",
        date_of_birth=dt.date(2014, 3, 1),
        responsible_council=council,
        host_council=host,
    )


async def _facts(db: Database) -> list[dict[str, Any]]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            sa.text(
                f"SELECT {', '.join(facts.COLUMNS)} FROM stage_fact"  # noqa: S608 - fixed columns
                " ORDER BY record_type, record_id, council_code"
            )
        )
        return [dict(row) for row in rows.mappings()]


async def test_facts_follow_every_write_and_equal_a_rebuild(tmp_path: Path) -> None:
    async with scratch_database(tmp_path, "hub_facts") as url:
        db = Database(url)
        try:
            await _story(db)
        finally:
            await db.dispose()


async def _story(db: Database) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    event = now - 30 * HOURS
    async with db.transaction(write=True) as session:
        row, _ = await incidents.report(
            session,
            force_code=FORCE,
            client_id="test",
            incident=IncidentReport(
                police_reference="FACT-1",
                type=IncidentType.DOMESTIC_ABUSE,
                occurred_at=event,
                recorded_at=event + HOURS,
                location_council=COUNCIL,
                children=(InvolvedChild(child=_child("FACT-C1", COUNCIL)),),
            ),
        )
        episode, _ = await missing.record(
            session,
            force_code=FORCE,
            client_id="test",
            episode=MissingReport(
                police_reference="FACT-M1",
                child=_child("FACT-C2", OTHER_COUNCIL),
                reported_missing_at=event,
                recorded_at=event + HOURS,
                risk_grade=RiskGrade.MEDIUM,
                last_seen_council=OTHER_COUNCIL,
                missing_from=MissingFrom.HOME,
            ),
        )
    incident_id, episode_id = row.id, episode.id
    found = await _facts(db)
    assert [(f["record_type"], f["council_code"]) for f in found] == sorted(
        [("Incident", COUNCIL), ("MissingEpisode", OTHER_COUNCIL)]
    )
    by_type = {f["record_type"]: f for f in found}
    assert by_type["Incident"]["kind"] == "domestic_abuse"
    assert by_type["Incident"]["event_at"] == event
    assert by_type["Incident"]["recorded_at"] == event + HOURS
    assert by_type["Incident"]["first_seen_at"] is None

    # The incident's child moves to a host council: that council now receives the incident.
    async with db.transaction(write=True) as session:
        await children.record_from_push(
            session,
            force_code=FORCE,
            details=_child("FACT-C1", COUNCIL, host=HOST_COUNCIL),
            default_council=COUNCIL,
        )
    councils = {(f["record_type"], f["council_code"]) for f in await _facts(db)}
    assert ("Incident", HOST_COUNCIL) in councils

    # First sight (the audit's insert-or-ignore), then an acknowledgement.
    seen_at, acknowledged_at = now - 2 * HOURS, now - HOURS
    async with db.transaction(write=True) as session:
        await note_first_seen(session, FirstSeen.of(COUNCIL, [("Incident", incident_id)], seen_at))
    async with db.transaction(write=True) as session:
        await note_first_seen(session, FirstSeen.of(COUNCIL, [("Incident", incident_id)], now))
    async with db.transaction(write=True) as session:
        await service.acknowledge(
            session,
            scope=RowScope(everything=True),
            record_type="MissingEpisode",
            record_id=episode_id,
            organisation_code=OTHER_COUNCIL,
            user="sw-1",
            at=acknowledged_at,
        )
    # The child returns, and the council records the return home interview.
    returned_at = now - 20 * HOURS
    async with db.transaction(write=True) as session:
        await missing.update(
            session,
            force_code=FORCE,
            change=MissingUpdate(
                police_reference="FACT-M1", status=MissingStatus.RETURNED, at=returned_at
            ),
        )
    async with db.transaction(write=True) as session:
        await service.record_return_interview(
            session,
            scope=RowScope(everything=True),
            episode_id=episode_id,
            held_at=now - 3 * HOURS,
            council_code=OTHER_COUNCIL,
        )
    incremental = await _facts(db)
    keyed = {(f["record_type"], f["council_code"]): f for f in incremental}
    assert keyed["Incident", COUNCIL]["first_seen_at"] == seen_at  # the first sight is kept
    assert keyed["Incident", HOST_COUNCIL]["first_seen_at"] is None
    assert keyed["MissingEpisode", OTHER_COUNCIL]["first_seen_at"] == acknowledged_at
    assert keyed["MissingEpisode", OTHER_COUNCIL]["acknowledged_at"] == acknowledged_at
    assert keyed["MissingEpisode", OTHER_COUNCIL]["returned_at"] == returned_at
    assert keyed["MissingEpisode", OTHER_COUNCIL]["interview_at"] == now - 3 * HOURS

    # The child leaves the host council again: its row goes.
    async with db.transaction(write=True) as session:
        child = await children.record_from_push(
            session,
            force_code=FORCE,
            details=_child("FACT-C1", COUNCIL),
            default_council=COUNCIL,
        )
        child.host_council_code = None
    moved_back = await _facts(db)
    assert ("Incident", HOST_COUNCIL) not in {
        (f["record_type"], f["council_code"]) for f in moved_back
    }

    # Deriving everything again gives exactly what the writes kept.
    async with db.engine.begin() as connection:
        await connection.run_sync(facts.rebuild)
    assert await _facts(db) == moved_back


async def test_bulk_writes_lock_the_table_and_keep_the_facts(tmp_path: Path) -> None:
    """More records than `facts.FEW` in one transaction: the table lock, not one lock each."""
    count = facts.FEW + 6
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with scratch_database(tmp_path, "hub_facts_bulk") as url:
        db = Database(url)
        try:
            ids = []
            async with db.transaction(write=True) as session:
                for number in range(count):
                    row, _ = await incidents.report(
                        session,
                        force_code=FORCE,
                        client_id="test",
                        incident=IncidentReport(
                            police_reference=f"BULK-{number}",
                            type=IncidentType.NEGLECT,
                            occurred_at=now - 5 * HOURS,
                            recorded_at=now - 4 * HOURS,
                            location_council=COUNCIL,
                            children=(InvolvedChild(child=_child(f"BULK-C{number}", COUNCIL)),),
                        ),
                    )
                    ids.append(row.id)
            async with db.transaction(write=True) as session:
                await note_first_seen(
                    session, FirstSeen.of(COUNCIL, [("Incident", i) for i in ids], now - HOURS)
                )
            kept = await _facts(db)
            assert len(kept) == count
            assert {f["first_seen_at"] for f in kept} == {now - HOURS}
            async with db.engine.begin() as connection:
                await connection.run_sync(facts.rebuild)
            assert await _facts(db) == kept
        finally:
            await db.dispose()
