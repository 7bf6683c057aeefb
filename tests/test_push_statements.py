"""A single push's statements: what it wrote or read already is not read again, and a push
that loses a race on the fewer statements still answers with the winner's record."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.models import Role
from hub.audit.models import AuditEvent
from hub.audit.service import accesses_of
from hub.children.models import Child, ChildReference
from hub.db import Database
from hub.incidents import batch
from hub.incidents.models import Incident, IncidentChild
from hub.timeliness import facts
from tests.conftest import LiveServer, is_postgres, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    REPORT_INCIDENT,
    child,
    incident,
)

# The benchmark's push: the response names no organisation the checks did not read.
PUSH_ID = "mutation Push($input: ReportIncidentInput!) { reportIncident(input: $input) { id } }"


async def _push(
    http: httpx.AsyncClient,
    server: LiveServer,
    payload: dict[str, Any],
    *,
    query: str = REPORT_INCIDENT,
) -> tuple[dict[str, Any], str]:
    request_id = str(uuid.uuid4())
    response = await http.post(
        server.graphql_url,
        json={"query": query, "variables": {"input": payload}},
        headers={
            "Authorization": f"Bearer {server.token(Role.POLICE_OFFICER, FORCE)}",
            "X-Request-Id": request_id,
        },
    )
    body: dict[str, Any] = response.json()
    assert body.get("errors") is None, body
    return body, request_id


def _two_children(reference: str, *, held: str) -> dict[str, Any]:
    """An incident naming a child the force pushed before (`held`) and a new one."""
    return incident(
        reference,
        children=[
            {"child": child(held), "present": True},
            {"child": child(f"{reference}-NEW"), "victim": True},
        ],
    )


async def _count(db: Database, model: type, *where: sa.ColumnElement[bool]) -> int:
    async with db.transaction(write=False) as session:
        return int(
            await session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0
        )


async def _incident_children(db: Database, request_id: str, incident_id: str) -> list[str]:
    """The children the request's audit says the incident concerns."""
    async with db.transaction(write=False) as session:
        events = (
            await session.execute(sa.select(AuditEvent).where(AuditEvent.request_id == request_id))
        ).scalars()
        (children,) = [
            access.child_ids
            for event in events
            for access in accesses_of(event)
            if (access.record_type, access.record_id) == ("Incident", incident_id)
        ]
    return sorted(children)


async def test_a_new_incident_is_audited_with_the_children_it_was_created_with(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    held = unique("HELD-P")
    await _push(http, live_server, incident(unique("FIRST"), children=[{"child": child(held)}]))
    payload = _two_children(unique("TWO"), held=held)
    created, created_id = await _push(http, live_server, payload)
    # The retry finds the stored incident: its audit looks its children up.
    replayed, replayed_id = await _push(http, live_server, payload)
    incident_id = created["data"]["reportIncident"]["id"]
    assert replayed["data"]["reportIncident"]["id"] == incident_id
    children = sorted(c["child"]["id"] for c in created["data"]["reportIncident"]["children"])
    assert len(children) == 2  # the held child and the new one
    assert await _incident_children(db, created_id, incident_id) == children
    assert await _incident_children(db, replayed_id, incident_id) == children


async def test_a_new_push_reads_nothing_it_wrote_or_read_already(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    held = unique("HELD-P")
    await _push(http, live_server, incident(unique("FIRST"), children=[{"child": child(held)}]))
    live_server.statements.clear()
    await _push(http, live_server, _two_children(unique("FEW"), held=held), query=PUSH_ID)
    sent = [" ".join(s.split()) for s in live_server.statements]

    def count(fragment: str) -> int:
        return sum(fragment in s for s in sent)

    assert count("FROM organisation") == 1, "the checks' read serves the metrics' loader"
    assert count("FROM incident_child") == 0, "the audit knows the new incident's children"
    # Nothing was pushed under its reference: asked in the checks' statement, not looked up.
    # (The held child is looked up: the probe found it.)
    assert count("FROM incident WHERE") == 1
    if is_postgres():
        # The new incident's stage facts are filled, with nothing to lock, delete or look up.
        assert count("INSERT INTO stage_fact") == 1
        assert count("pg_advisory_xact_lock") == 0
        assert count("DELETE FROM stage_fact") == 0
        assert count("FROM investigation_incident") == 0
        # A child the force held may be updated: the write keeps its savepoint.
        assert count("SAVEPOINT") == 2  # taken and released
        # Its rows of every table go in one statement.
        tables = ("child", "child_reference", "incident", "incident_child")
        writing = [s for s in sent if any(f"INSERT INTO {t} (" in s for t in tables)]
        assert len(writing) == 1
        assert all(f"INSERT INTO {t} (" in writing[0] for t in tables)


async def test_a_new_push_naming_no_child_held_takes_no_savepoint(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    live_server.statements.clear()
    await _push(http, live_server, incident(unique("NEW")), query=PUSH_ID)
    sent = [" ".join(s.split()) for s in live_server.statements]
    savepoints = sum("SAVEPOINT" in s for s in sent)
    # PostgreSQL: one statement that skips duplicates; SQLite: a savepoint, rolled back on one.
    assert savepoints == (0 if is_postgres() else 2)


def _as_if_before_the_winner(monkeypatch: pytest.MonkeyPatch, missed: str) -> None:
    """The push reads as if the winner had not committed yet: its lookups find nothing
    ("lookups"), or the probe its checks' statement asks says there is nothing to look up
    ("probe"), so that it takes the path a new push takes."""
    if missed == "lookups":

        async def nothing_found(*_: Any, **__: Any) -> dict[Any, Any]:
            return {}

        monkeypatch.setattr(batch, "_pushed_before", nothing_found)
        monkeypatch.setattr(batch, "_children_held", nothing_found)
        return
    stored_once = batch._stored_once

    async def unseen(*args: Any, **kwargs: Any) -> Any:
        kwargs["seen"] = batch._Seen(incidents=False, children=False)
        return await stored_once(*args, **kwargs)

    monkeypatch.setattr(batch, "_stored_once", unseen)


MISSED = pytest.mark.parametrize("missed", ["lookups", "probe"])


@MISSED
async def test_a_push_that_loses_the_race_returns_the_winners_record(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    missed: str,
) -> None:
    """The winner commits between the loser's lookup and its insert: the loser's one statement
    fails on the incident's key, and its push answers with the winner's record."""
    payload = _two_children(unique("RACE"), held=unique("RACE-P"))
    won, _ = await _push(http, live_server, payload)
    _as_if_before_the_winner(monkeypatch, missed)
    lost, _ = await _push(http, live_server, payload)
    assert lost["data"]["reportIncident"] == won["data"]["reportIncident"]
    reference = payload["policeReference"]
    assert await _count(db, Incident, Incident.police_reference == reference) == 1
    for involved in payload["children"]:
        person = involved["child"]["policeReference"]
        assert await _count(db, ChildReference, ChildReference.value == person) == 1


@MISSED
async def test_a_push_that_loses_the_race_for_a_new_child_links_the_winners_child(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    missed: str,
) -> None:
    """Another incident recorded the same new child first: the loser's one statement fails on
    the child's reference, and its incident is stored linked to that child, not to a second."""
    person = unique("RACE-C")
    winner, _ = await _push(
        http, live_server, incident(unique("W"), children=[{"child": child(person)}])
    )

    _as_if_before_the_winner(monkeypatch, missed)
    loser, _ = await _push(
        http, live_server, incident(unique("L"), children=[{"child": child(person)}])
    )
    (won_child,) = winner["data"]["reportIncident"]["children"]
    (lost_child,) = loser["data"]["reportIncident"]["children"]
    assert lost_child["child"]["id"] == won_child["child"]["id"]
    assert await _count(db, ChildReference, ChildReference.value == person) == 1
    async with db.transaction(write=False) as session:
        children = await session.scalar(
            sa.select(sa.func.count(sa.distinct(IncidentChild.child_id)))
            .select_from(IncidentChild)
            .join(Child, Child.id == IncidentChild.child_id)
            .join(ChildReference, ChildReference.child_id == Child.id)
            .where(ChildReference.value == person)
        )
    assert children == 1


@MISSED
async def test_a_push_that_loses_the_race_for_one_of_its_new_children_stores_the_other_once(
    http: httpx.AsyncClient,
    live_server: LiveServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    missed: str,
) -> None:
    """Of two new children, another push recorded one first: the loser's incident links that
    child and the other, each stored once (without a savepoint, the other's rows are those
    the one statement stored, which the single push's path finds)."""
    taken, free = unique("TAKEN-P"), unique("FREE-P")
    winner, _ = await _push(
        http, live_server, incident(unique("W"), children=[{"child": child(taken)}])
    )
    _as_if_before_the_winner(monkeypatch, missed)
    started = dt.datetime.now(dt.UTC)
    both = [{"child": child(taken), "present": True}, {"child": child(free), "victim": True}]
    loser, _ = await _push(http, live_server, incident(unique("L"), children=both))
    (won,) = winner["data"]["reportIncident"]["children"]
    linked = {c["child"]["id"] for c in loser["data"]["reportIncident"]["children"]}
    assert won["child"]["id"] in linked
    assert len(linked) == 2
    for person in (taken, free):
        assert await _count(db, ChildReference, ChildReference.value == person) == 1
    async with db.transaction(write=False) as session:
        orphans = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Child)
            .where(
                Child.created_at >= started,
                ~sa.exists().where(ChildReference.child_id == Child.id),
            )
        )
    assert orphans == 0, "every child the push stored has its reference"


async def _councils_of(db: Database, record_id: str) -> set[str]:
    async with db.transaction(write=False) as session:
        return await _councils_of_in(session, record_id)


@pytest.mark.skipif(not is_postgres(), reason="stage facts serve PostgreSQL's report")
async def test_a_push_moving_a_held_child_moves_the_facts_of_its_earlier_records(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """The new incident's facts are filled straight to the driver; the child it moved to another
    council moves its earlier incident's facts too (`facts.refresh_before_append`)."""
    held = unique("MOVED-P")
    first, _ = await _push(
        http, live_server, incident(unique("BEFORE"), children=[{"child": child(held)}])
    )
    earlier = first["data"]["reportIncident"]["id"]
    assert await _councils_of(db, earlier) == {COUNCIL}
    moved = {"child": child(held, council=OTHER_COUNCIL)}
    second, _ = await _push(http, live_server, incident(unique("AFTER"), children=[moved]))
    assert await _councils_of(db, earlier) == {COUNCIL, OTHER_COUNCIL}  # its place, the child's
    assert await _councils_of(db, second["data"]["reportIncident"]["id"]) == {
        COUNCIL,
        OTHER_COUNCIL,
    }


@pytest.mark.skipif(not is_postgres(), reason="stage facts serve PostgreSQL's report")
async def test_a_record_marked_that_was_there_before_has_its_stale_facts_dropped(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """Only records this transaction created skip the refresh's deletes and locks."""
    pushed, _ = await _push(http, live_server, incident(unique("STALE")))
    record_id = pushed["data"]["reportIncident"]["id"]
    async with db.transaction(write=True) as session:
        columns = ", ".join(facts.COLUMNS)
        copied = columns.replace("council_code", "CAST(:stale AS TEXT)")
        await session.execute(
            sa.text(
                f"INSERT INTO stage_fact ({columns}) SELECT {copied}"  # noqa: S608 - fixed columns
                " FROM stage_fact WHERE record_id = :id"
            ),
            {"id": record_id, "stale": HOST_COUNCIL},
        )
    assert await _councils_of(db, record_id) == {COUNCIL, HOST_COUNCIL}
    async with db.transaction(write=True) as session:
        facts.mark(session.sync_session, [("Incident", record_id)])  # not created here
        await facts.refresh_before_append(session)
        assert await _councils_of_in(session, record_id) == {COUNCIL}
    assert await _councils_of(db, record_id) == {COUNCIL}


async def _councils_of_in(session: Any, record_id: str) -> set[str]:
    found = await session.scalars(
        sa.text("SELECT council_code FROM stage_fact WHERE record_id = :id"), {"id": record_id}
    )
    return set(found)
