"""Escalation: a stage not ended by its deadline is raised once, for both organisations.

Over real HTTP with real tokens, on a database of the module's own (its scans would otherwise
raise escalations for every other test's records). A missing child the council has not
acknowledged (MISSING-ACK, `escalate = true`) is the stage declared on main.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.access.keys import KeySet
from hub.access.models import Role
from hub.changes.models import RecordChange
from hub.db import Database, utcnow
from hub.escalation.models import Escalation
from hub.escalation.scan import EscalationTargetsInvalid, escalating, scan
from hub.limits.rate import RoleLimit
from hub.settings import Settings
from hub.timeliness.extract import all_targets_for
from hub.timeliness.targets import parse_targets
from tests.conftest import LiveServer, free_port, scratch_database, serve, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    RECORD_MISSING,
    child,
    missing_episode,
)

HORIZON = dt.timedelta(days=30)
ACKNOWLEDGE = """mutation($type: String!, $id: ID!) { acknowledge(recordType: $type, id: $id) {
  acknowledgedAt } }"""
ESCALATIONS = """{ escalations { edges { node { id targetId kind stage recordType recordId
  owedBy { id } waiting { id } stageStartedAt deadline raisedAt } } } }"""
FIGURES = """query($from: Date!, $to: Date!) { escalationFigures(from: $from, to: $to) {
  targetId kind stage owedByCode waitingCode raised } }"""


def _targets_file(directory: Path, hours: float) -> Path:
    """The shipped targets with MISSING-ACK shortened, so a live hub finds it overdue soon."""
    shipped = (Path(__file__).parents[1] / "auth" / "targets.toml").read_text()
    old = (
        'id = "MISSING-ACK"\nkind = "missing_episode"\nstage = "shared_to_acknowledged"\n'
        'unit = "hours"\nlimit = 4\n'
    )
    assert old in shipped
    path = directory / f"targets-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(shipped.replace(old, old.replace("limit = 4", f"limit = {hours}")))
    return path


def _server(url: str, data_dir: Path, *, targets: Path | None = None, every: float = 0) -> Any:
    from hub.app import create_app  # noqa: PLC0415

    port = free_port()
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        issuer="http://127.0.0.1:1",  # one issuer for every hub on this database
        targets_file=targets,
        escalation_scan_seconds=every,
        rate_limits={"default": RoleLimit(rate=1000, burst=1000, in_flight=100)},
    )
    app = create_app(settings)
    server, thread = serve(app, port, settings)
    live = LiveServer(
        settings=settings,
        url=f"http://127.0.0.1:{port}",
        app=app,
        keys=KeySet.for_settings(settings),
    )
    return live, server, thread


def _stop(server: Any, thread: Any) -> None:
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture(scope="module")
async def own_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("escalation")
    async with scratch_database(directory, "hub_escalation") as url:
        yield url, directory


@pytest.fixture(scope="module")
def hub(own_db: tuple[str, Path]) -> Iterator[LiveServer]:
    url, directory = own_db
    live, server, thread = _server(url, directory)
    yield live
    _stop(server, thread)


async def _call(
    http: httpx.AsyncClient,
    hub: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: Any = None,
) -> dict[str, Any]:
    token = hub.token(role, org)
    response = await http.post(
        hub.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": variables or {}},
    )
    body: dict[str, Any] = response.json()
    return body


async def _missing(
    http: httpx.AsyncClient, hub: LiveServer, *, host: str | None = None, force: str = FORCE
) -> str:
    reference = unique("ESC")
    kid = child(f"{reference}-C1", **({"hostCouncil": host} if host else {}))
    body = await _call(
        http, hub, Role.POLICE_OFFICER, force, RECORD_MISSING,
        {"input": missing_episode(reference, child_input=kid)},
    )  # fmt: skip
    assert body.get("errors") is None, body
    return str(body["data"]["recordMissingEpisode"]["id"])


async def _escalations(db: Database, record_id: str) -> list[Escalation]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(sa.select(Escalation).where(Escalation.record_id == record_id))
        return list(rows.scalars())


async def _published(db: Database, escalation_ids: list[str]) -> int:
    async with db.transaction(write=False) as session:
        query = sa.select(sa.func.count()).where(
            RecordChange.record_type == "Escalation", RecordChange.record_id.in_(escalation_ids)
        )
        return int((await session.execute(query)).scalar_one())


async def test_an_unacknowledged_missing_child_is_escalated_once_for_each_council(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    episode = await _missing(http, hub, host=HOST_COUNCIL)
    db = Database(hub.settings.database_url)
    targets = all_targets_for(hub.settings)
    try:
        # Three hours on: within MISSING-ACK's four, nothing is due.
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(hours=3))
        assert await _escalations(db, episode) == []
        later = utcnow() + dt.timedelta(hours=5)
        first = await scan(db, targets, horizon=HORIZON, now=later)
        raised = await _escalations(db, episode)
        # Owed by the responsible and the host council each; the force is waiting on both.
        assert sorted(e.owed_by_code for e in raised) == sorted([COUNCIL, HOST_COUNCIL])
        assert {e.waiting_code for e in raised} == {FORCE}
        assert {e.target_id for e in raised} == {"MISSING-ACK"}
        assert all(e.deadline == e.stage_started_at + dt.timedelta(hours=4) for e in raised)
        assert first.raised >= 2
        again = await scan(db, targets, horizon=HORIZON, now=later + dt.timedelta(hours=1))
        assert len(await _escalations(db, episode)) == 2
        assert again.raised == 0
        assert await _published(db, [e.id for e in raised]) == 2
    finally:
        await db.dispose()


async def test_an_acknowledged_missing_child_is_not_escalated(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    episode = await _missing(http, hub)
    body = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, ACKNOWLEDGE,
        {"type": "MissingEpisode", "id": episode},
    )  # fmt: skip
    assert body.get("errors") is None, body
    db = Database(hub.settings.database_url)
    try:
        later = utcnow() + dt.timedelta(hours=5)
        await scan(db, all_targets_for(hub.settings), horizon=HORIZON, now=later)
        assert await _escalations(db, episode) == []
    finally:
        await db.dispose()


async def test_each_organisation_reads_only_its_own_escalations_and_every_read_is_audited(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    episode = await _missing(http, hub)
    db = Database(hub.settings.database_url)
    try:
        later = utcnow() + dt.timedelta(hours=5)
        await scan(db, all_targets_for(hub.settings), horizon=HORIZON, now=later)
    finally:
        await db.dispose()

    def mine(body: dict[str, Any]) -> list[dict[str, Any]]:
        assert body.get("errors") is None, body
        edges = body["data"]["escalations"]["edges"]
        return [e["node"] for e in edges if e["node"]["recordId"] == episode]

    owed = mine(await _call(http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, ESCALATIONS))
    assert [(n["owedBy"]["id"], n["waiting"]["id"]) for n in owed] == [(COUNCIL, FORCE)]
    assert owed[0]["recordType"] == "MissingEpisode"
    assert owed[0]["targetId"] == "MISSING-ACK"
    waiting = mine(await _call(http, hub, Role.POLICE_OFFICER, FORCE, ESCALATIONS))
    assert [n["id"] for n in waiting] == [owed[0]["id"]]
    # Another council and another force: as if it did not exist.
    assert (
        mine(await _call(http, hub, Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL, ESCALATIONS)) == []
    )
    assert mine(await _call(http, hub, Role.POLICE_OFFICER, OTHER_FORCE, ESCALATIONS)) == []
    # An auditor reads figures, never the escalations themselves; a school neither.
    refused = await _call(http, hub, Role.AUDITOR, "OFSTED", ESCALATIONS)
    assert refused["data"] is None or refused["data"]["escalations"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
    today = utcnow().date()
    span = {
        "from": (today - dt.timedelta(days=1)).isoformat(),
        "to": (today + dt.timedelta(days=1)).isoformat(),
    }
    figures = await _call(http, hub, Role.AUDITOR, "OFSTED", FIGURES, span)
    assert figures.get("errors") is None, figures
    ours = [
        f for f in figures["data"]["escalationFigures"]
        if f["owedByCode"] == COUNCIL and f["waitingCode"] == FORCE
    ]  # fmt: skip
    assert ours
    assert ours[0]["raised"] >= 1
    assert ours[0]["targetId"] == "MISSING-ACK"
    # A council's figures are its own: asking for another's is refused.
    other = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL,
        FIGURES.replace("to: $to)", f'to: $to, council: "{OTHER_COUNCIL}")'), span,
    )  # fmt: skip
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The council's read of its escalation is an access event naming it.
    history = await _call(
        http, hub, Role.AUDITOR, "OFSTED",
        """query($id: ID!) { recordAccessHistory(recordType: "Escalation", recordId: $id) {
           edges { node { organisation { id } } } } }""",
        {"id": owed[0]["id"]},
    )  # fmt: skip
    assert history.get("errors") is None, history
    readers = {
        e["node"]["organisation"]["id"] for e in history["data"]["recordAccessHistory"]["edges"]
    }
    assert {COUNCIL, FORCE} <= readers


def test_a_target_escalating_a_stage_no_domain_declares_stops_the_start() -> None:
    shipped = (Path(__file__).parents[1] / "auth" / "targets.toml").read_text()
    old = 'id = "T5"\nkind = "missing_episode"\nstage = "returned_to_return_interview"\n'
    assert old in shipped
    targets = parse_targets(shipped.replace(old, old + "escalate = true\n"))
    with pytest.raises(EscalationTargetsInvalid, match="T5: no domain can escalate"):
        escalating(targets)


async def test_two_hubs_on_one_database_raise_it_once_and_a_restart_raises_nothing_again(
    http: httpx.AsyncClient, own_db: tuple[str, Path]
) -> None:
    url, directory = own_db
    targets = _targets_file(directory, hours=0.0005)  # 1.8 seconds
    first, second = (_server(url, directory, targets=targets, every=0.1) for _ in range(2))
    try:
        episode = await _missing(http, first[0])
        db = Database(url)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not await _escalations(db, episode):
                assert asyncio.get_running_loop().time() < deadline, "never escalated"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # both hubs scan many more times
            raised = await _escalations(db, episode)
            assert [e.owed_by_code for e in raised] == [COUNCIL]
            assert await _published(db, [raised[0].id]) == 1
        finally:
            await db.dispose()
    finally:
        for _live, server, thread in (first, second):
            _stop(server, thread)
    # Started again: the stored state says it was raised; nothing is raised twice.
    third = _server(url, directory, targets=targets, every=0.1)
    try:
        await asyncio.sleep(1.5)
    finally:
        _stop(third[1], third[2])
    db = Database(url)
    try:
        raised_after = await _escalations(db, episode)
        assert [e.id for e in raised_after] == [raised[0].id]
        assert await _published(db, [raised[0].id]) == 1
    finally:
        await db.dispose()


async def test_a_check_not_completed_within_t11_is_escalated_to_the_force(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    from tests.test_vetting import REQUEST, days_ago, vetting_request  # noqa: PLC0415

    asked = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, REQUEST,
        {"input": vetting_request(unique("ESC-V"), requested=days_ago(10))},
    )  # fmt: skip
    assert asked.get("errors") is None, asked
    check = asked["data"]["requestVettingCheck"]["id"]
    db = Database(hub.settings.database_url)
    targets = all_targets_for(hub.settings)
    try:
        await scan(db, targets, horizon=HORIZON)  # ten days: within T11's fourteen
        assert await _escalations(db, check) == []
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(days=5))
        (raised,) = await _escalations(db, check)
        assert (raised.target_id, raised.owed_by_code, raised.waiting_code) == (
            "T11",
            FORCE,
            COUNCIL,
        )
    finally:
        await db.dispose()


async def test_a_challenge_the_force_has_not_answered_is_escalated_to_the_force(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    from tests.test_closures import RESPOND, _challenge, _investigation, _recent, _status  # noqa: PLC0415

    reference, investigation = await _investigation(http, hub, opened=_recent(48), host=None)
    await _status(http, hub, reference, "CLOSED", _recent(24))
    challenged = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, RESPOND, _challenge(investigation)
    )
    assert challenged.get("errors") is None, challenged
    review = challenged["data"]["respondToInvestigationClosure"]["id"]
    db = Database(hub.settings.database_url)
    targets = all_targets_for(hub.settings)
    try:
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(days=2))
        assert await _escalations(db, review) == []  # within 5 working days
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(days=10))
        (raised,) = await _escalations(db, review)
        assert (raised.target_id, raised.owed_by_code, raised.waiting_code) == (
            "CHALLENGE-ANSWER",
            FORCE,
            COUNCIL,
        )
    finally:
        await db.dispose()


async def _child_of_council(http: httpx.AsyncClient, hub: LiveServer) -> str:
    """A child the council sees (pushed by the force with a missing episode), by hub id."""
    reference = unique("ESC-K")
    body = await _call(
        http, hub, Role.POLICE_OFFICER, FORCE, RECORD_MISSING,
        {"input": missing_episode(reference, child_input=child(f"{reference}-C1"))},
    )  # fmt: skip
    assert body.get("errors") is None, body
    episode = body["data"]["recordMissingEpisode"]["id"]
    found = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL,
        "query($id: ID!) { missingEpisode(id: $id) { child { id } } }", {"id": episode},
    )  # fmt: skip
    return str(found["data"]["missingEpisode"]["child"]["id"])


async def test_an_unanswered_invitation_and_joint_visit_request_are_escalated_to_the_force(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    from tests.factories import REQUEST_JOINT_VISIT, joint_visit  # noqa: PLC0415
    from tests.meeting_pushes import meeting, schedule  # noqa: PLC0415

    kid = await _child_of_council(http, hub)
    discussion = await schedule(http, hub, meeting(unique("ESC-M"), children=[{"childId": kid}]))
    asked = await _call(
        http, hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, REQUEST_JOINT_VISIT,
        {"input": joint_visit(unique("ESC-J"), kid)},
    )  # fmt: skip
    assert asked.get("errors") is None, asked
    request = asked["data"]["requestJointVisit"]["id"]
    db = Database(hub.settings.database_url)
    targets = all_targets_for(hub.settings)
    try:
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(hours=3))
        assert await _escalations(db, discussion["id"]) == []  # SD-ANSWER: 4 hours
        assert await _escalations(db, request) == []  # JV-ANSWER: 4 hours
        await scan(db, targets, horizon=HORIZON, now=utcnow() + dt.timedelta(hours=5))
        (invitation,) = await _escalations(db, discussion["id"])
        assert (invitation.target_id, invitation.owed_by_code, invitation.waiting_code) == (
            "SD-ANSWER",
            FORCE,
            COUNCIL,
        )
        (visit,) = await _escalations(db, request)
        assert (visit.target_id, visit.owed_by_code, visit.waiting_code) == (
            "JV-ANSWER",
            FORCE,
            COUNCIL,
        )
    finally:
        await db.dispose()


ESCALATION_CHANGES = """subscription { recordChanges { change
  escalation { id targetId recordType recordId owedBy { id } waiting { id } } } }"""


async def _subscribe(hub: LiveServer, role: Role, org: str) -> Any:
    import json  # noqa: PLC0415

    from websockets.asyncio.client import connect  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {hub.token(role, org)}"}
    ws = await connect(
        hub.graphql_url.replace("http://", "ws://"),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers=headers,
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": ESCALATION_CHANGES}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def _delivered(ws: Any, record_id: str, *, seconds: float) -> list[dict[str, Any]]:
    import json  # noqa: PLC0415

    found = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
        assert message["type"] == "next", message
        escalation = message["payload"]["data"]["recordChanges"]["escalation"]
        if escalation is not None and escalation["recordId"] == record_id:
            found.append(escalation)
            break
    return found


async def test_an_escalation_is_delivered_to_both_organisations_and_no_other(
    http: httpx.AsyncClient, hub: LiveServer
) -> None:
    council = await _subscribe(hub, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    force = await _subscribe(hub, Role.POLICE_OFFICER, FORCE)
    other = await _subscribe(hub, Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    try:
        await asyncio.sleep(0.5)  # the streams have started at the outbox's head
        episode = await _missing(http, hub)
        db = Database(hub.settings.database_url)
        try:
            await scan(
                db, all_targets_for(hub.settings), horizon=HORIZON,
                now=utcnow() + dt.timedelta(hours=5),
            )  # fmt: skip
        finally:
            await db.dispose()
        (to_council,) = await _delivered(council, episode, seconds=20)
        (to_force,) = await _delivered(force, episode, seconds=20)
        assert to_council["id"] == to_force["id"]
        assert (to_council["owedBy"]["id"], to_council["waiting"]["id"]) == (COUNCIL, FORCE)
        assert to_council["targetId"] == "MISSING-ACK"
        assert await _delivered(other, episode, seconds=2) == []
    finally:
        for ws in (council, force, other):
            await ws.close()
