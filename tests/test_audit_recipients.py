"""The recipient index: a subscription delivery fanned out to several people is found by person.

A fanned-out delivery is one event listing its recipients in its hashed `detail.recipients`;
`audit_event_recipient` indexes them (the append on SQLite, the indexer on PostgreSQL) so that
`accessEvents(user:)` finds a person's deliveries made through a group exactly like their own
reads. `verify` checks the index against the events, and retention erases it with them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.models import Role
from hub.audit import chain, retention, service
from hub.audit.verify import Reason
from hub.db import Database
from tests.conftest import LiveServer, unique
from tests.factories import COUNCIL, FORCE, incident
from tests.test_audit_chain import ACTOR, NOW, check, clock, record, served, tamper
from tests.test_subscription_fanout import PURPOSE, _joined, _received, _subscriber
from tests.test_subscriptions import _latest_cursor, _push

__all__ = ["clock"]  # the fixture, for the retention test below

GROUP_ACTOR = service.Actor(
    user=None,  # several people: each is named among the recipients
    organisation_code=ACTOR.organisation_code,
    client_id="*",
    role=ACTOR.role,
    purpose=ACTOR.purpose,
)


def _recipients(*users: str) -> dict[str, Any]:
    """A fanned-out delivery's detail, as `audit_trail.events` writes it."""
    return {
        "recipients": [
            {
                "client_id": f"client-{user}",
                "purpose": ACTOR.purpose,
                "request_id": f"req-{user}",
                "user": user,
            }
            for user in users
        ]
    }


async def _group_delivery(
    session: AsyncSession, *users: str, indexed: bool = True, count: int = 1
) -> list[int]:
    return await record(
        session,
        served(count),
        actor=GROUP_ACTOR,
        detail=_recipients(*users),
        grouped=True,
        indexed=indexed,
    )


async def _seqs_of(session: AsyncSession, user: str, *, first: int = 50) -> list[int]:
    page = await service.list_events(session, filters=service.EventFilter(user=user), first=first)
    return [access.seq for access in page.items]


async def _index(session: AsyncSession, seq: int) -> list[tuple[Any, ...]]:
    table = chain.RECIPIENTS
    query = (
        sa.select(table.c.ordinal, table.c.user, table.c.client_id, table.c.request_id)
        .where(table.c.seq == seq)
        .order_by(table.c.ordinal)
    )
    return [tuple(row) for row in (await session.execute(query)).all()]


def _person(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "before-the-indexer"])
async def test_a_person_finds_their_delivery_through_a_group_and_others_do_not(
    session: AsyncSession, *, indexed: bool
) -> None:
    x, y, z = _person("sw-x"), _person("sw-y"), _person("sw-z")
    await chain.catch_up_all(session)
    alone = await record(session, served(1), actor=service.Actor(**{**ACTOR.__dict__, "user": x}))
    (group,) = await _group_delivery(session, x, y, indexed=indexed)
    assert (await service.list_events(session, filters=service.EventFilter(), first=1)).items

    assert await _seqs_of(session, x) == [group, *alone]
    assert await _seqs_of(session, y) == [group]
    assert await _seqs_of(session, z) == []  # not among the recipients: nothing found


async def test_the_index_holds_each_recipient_once_however_often_it_is_rebuilt(
    session: AsyncSession,
) -> None:
    """Fails if the indexer (or the append, on SQLite) ignores the recipients."""
    x, y = _person("sw-x"), _person("sw-y")
    (seq,) = await _group_delivery(session, x, y, indexed=False)
    await chain.catch_up_all(session)
    expected = [(0, x, f"client-{x}", f"req-{x}"), (1, y, f"client-{y}", f"req-{y}")]
    assert await _index(session, seq) == expected
    # Indexing again (the indexer poked twice, or run by another process) adds nothing.
    await chain.catch_up_all(session)
    assert await chain.catch_up(session) == 0
    assert await _index(session, seq) == expected
    assert (await check(session)).ok


async def test_a_person_twice_among_recipients_is_found_once(session: AsyncSession) -> None:
    x = _person("sw-x")
    (seq,) = await _group_delivery(session, x, x, count=2)
    page = await service.list_events(session, filters=service.EventFilter(user=x), first=10)
    assert [access.key for access in page.items] == [(seq, 1), (seq, 0)]
    assert not page.has_next_page


async def test_pages_of_a_persons_accesses_merge_single_and_group_events(
    session: AsyncSession,
) -> None:
    x, y = _person("sw-x"), _person("sw-y")
    mine = service.Actor(**{**ACTOR.__dict__, "user": x})
    expected: list[int] = []
    for _ in range(3):
        expected += await record(session, served(1), actor=mine)
        expected += await _group_delivery(session, x, y)
    # All x's recipients shared: the event names x itself and lists x too (found once).
    expected += await _group_delivery(session, x)
    expected.reverse()
    seen: list[int] = []
    after = None
    while True:
        page = await service.list_events(
            session, filters=service.EventFilter(user=x), first=2, after=after
        )
        seen += [access.seq for access in page.items]
        if not page.has_next_page:
            break
        after = page.positions[-1]
    assert seen == expected


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_event_recipient WHERE seq = :seq AND ordinal = 1",
        (
            'INSERT INTO audit_event_recipient (seq, ordinal, "user", client_id, request_id) '
            "VALUES (:seq, 5, 'sw-forged', 'c', 'r')"
        ),
    ],
    ids=["deleted", "inserted"],
)
async def test_a_recipient_index_that_disagrees_is_named(
    session: AsyncSession, statement: str
) -> None:
    seqs = await record(session, served(1))
    seqs += await _group_delivery(session, _person("sw-x"), _person("sw-y"))
    seqs += await record(session, served(1))
    assert (await check(session)).ok
    await tamper(session, statement, seq=seqs[1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.RECIPIENT_INDEX)


async def test_retention_erases_the_recipient_rows_with_their_events(
    session: AsyncSession, clock: Any
) -> None:
    x = _person("sw-x")
    clock(NOW - dt.timedelta(days=40))
    # Everything older than now goes first (other tests' events included, rolled back after).
    await retention.erase_before(session, cutoff=NOW + dt.timedelta(days=1), actor=ACTOR)
    clock(NOW - dt.timedelta(days=30))
    (old,) = await _group_delivery(session, x, _person("sw-y"))
    clock(NOW - dt.timedelta(days=1))
    (recent,) = await _group_delivery(session, x)
    assert len(await _index(session, old)) == 2

    await retention.erase_before(session, cutoff=NOW - dt.timedelta(days=10), actor=ACTOR)

    assert await _index(session, old) == []
    assert len(await _index(session, recent)) == 1
    assert await _seqs_of(session, x) == [recent]
    assert (await check(session)).ok


# --- through GraphQL, with fan-out on (the default) ----------------------------------------------

PERSON_EVENTS = """query($u: String!) {
  accessEvents(filter: {user: $u}, first: 20) {
    edges { node { operation operationKind recordId user
                   recipients { user clientId purpose requestId } } }
  }
}"""


async def _accesses_of(
    http: httpx.AsyncClient, server: LiveServer, user: str
) -> list[dict[str, Any]]:
    """What a force's DPO reads of `user`'s accesses (to the force's records)."""
    token = server.token(Role.DPO, FORCE)
    body = (
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": PERSON_EVENTS, "variables": {"u": user}},
        )
    ).json()
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["accessEvents"]["edges"]]


async def test_a_dpo_finds_a_persons_delivery_made_through_a_group(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    assert live_server.settings.subscription_fanout, "fan-out is on by default"
    users = [_person("sw-g"), _person("sw-g")]
    after = await _latest_cursor(db, live_server, organisation=COUNCIL)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(_subscriber(live_server, user, COUNCIL, PURPOSE, after))
            for user in users
        ]
        await _joined(live_server, len(users))
        incident_id = await _push(http, live_server, incident(unique("RCPT")))
        for ws, _ in sockets:
            (message,) = await _received(ws, 1)
            assert message["data"]["recordChanges"]["record"]["id"] == incident_id
    request_ids = sorted(request_id for _, request_id in sockets)

    for user in users:
        found = await _found_eventually(http, live_server, user, incident_id)
        assert found["operation"] == "DISCLOSURE"
        assert found["operationKind"] == "SUBSCRIPTION"
        assert found["user"] is None  # two people: each named among the recipients
        assert sorted(r["user"] for r in found["recipients"]) == sorted(users)
        assert sorted(r["requestId"] for r in found["recipients"]) == request_ids
        assert {r["purpose"] for r in found["recipients"]} == {PURPOSE}
    stranger = await _accesses_of(http, live_server, _person("sw-g"))
    assert stranger == []


async def _found_eventually(
    http: httpx.AsyncClient, server: LiveServer, user: str, record_id: str
) -> dict[str, Any]:
    """The delivery of `record_id` among `user`'s accesses. The group's event is committed
    before the message is sent; a short wait covers only the response reaching the test."""
    for _ in range(100):
        found = [e for e in await _accesses_of(http, server, user) if e["recordId"] == record_id]
        if found:
            (event,) = found
            return event
        await asyncio.sleep(0.05)
    raise AssertionError(json.dumps({"missing": "delivery", "record": record_id}))
