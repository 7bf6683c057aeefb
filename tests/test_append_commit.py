"""The audit's append and the commit sent together (`chain.append_and_commit`).

The chain's head is held from the append until the commit; on PostgreSQL they now go to the
server in one message, so that the lock no longer waits for the hub to read a reply. What must
not change: a request's writes and its events commit together or not at all (fail-closed), the
outbox keeps its order, and concurrent pushes (one of them failing, some of them retries) each
get their own answer, after their own events are committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.access.models import Role
from hub.audit import chain, service, verify
from hub.audit.service import AuditWriteFailed
from hub.changes import service as changes
from hub.changes.models import ChangeKind, RecordChange
from hub.db import Database
from hub.incidents.models import Incident
from tests.conftest import LiveServer, audit_events_of, is_postgres, unique
from tests.factories import FORCE, REPORT_INCIDENT, incident
from tests.test_audit_trail import unwritable_audit
from tests.test_outbox_order import _draft


def _outbox(ids: list[str]) -> chain.Outbox:
    return chain.Outbox(
        occurred_at=dt.datetime.now(dt.UTC),
        rows=[("Incident", i, ChangeKind.COLLECTED.value) for i in ids],
        channel=changes.CHANNEL,
    )


async def _published(db: Database, ids: list[str]) -> list[str]:
    async with db.transaction(write=False) as session:
        query = (
            sa.select(RecordChange.record_id)
            .where(sa.column("record_id").in_(ids))
            .order_by(sa.column("seq"))
        )
        return list((await session.execute(query)).scalars())


async def test_the_events_and_the_changes_are_committed_together(db: Database) -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    async with db.session(write=True) as session:
        await session.begin()
        before = await chain.read_head(session)
        drafts = [_draft(), _draft()]
        assert await service.record_many(session, drafts, outbox=_outbox(ids), commit=True) == []
        assert not session.in_transaction()
    assert await _published(db, ids) == ids
    async with db.transaction(write=False) as session:
        after = await chain.read_head(session)
        report = await verify.verify(session)
    assert before is not None
    assert after is not None
    assert after.last_seq == before.last_seq + 2
    assert report.ok, report.problem


async def test_a_missing_head_commits_nothing(db: Database) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with unwritable_audit(db), db.session(write=True) as session:
        await session.begin()
        with pytest.raises(AuditWriteFailed):
            await service.record_many(session, [_draft()], outbox=_outbox(ids), commit=True)
        await session.rollback()
    assert await _published(db, ids) == []


@pytest.mark.skipif(not is_postgres(), reason="SQLite's writers wait at BEGIN, not at the head")
async def test_a_head_held_too_long_commits_nothing(db: Database) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with db.transaction(write=True) as holder:
        await chain.lock_head(holder)
        async with db.session(write=True) as session:
            await session.begin()
            with pytest.raises(AuditWriteFailed):
                await service.record_many(
                    session, [_draft()], outbox=_outbox(ids), lock_timeout=0.2, commit=True
                )
            await session.rollback()
    assert await _published(db, ids) == []


async def _push(http: httpx.AsyncClient, server: LiveServer, payload: dict[str, Any]) -> Any:
    request_id = str(uuid.uuid4())
    response = await http.post(
        server.graphql_url,
        json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
        headers={
            "Authorization": f"Bearer {server.token(Role.POLICE_OFFICER, FORCE)}",
            "X-Request-Id": request_id,
        },
    )
    return request_id, response.json()


async def test_concurrent_pushes_one_failing_and_retries_each_get_their_own_answer(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    good = [incident(unique("GRP")) for _ in range(5)]
    bad = incident(unique("GRP-BAD"), occurredAt="2999-01-01T00:00:00Z")  # in the future
    sent = [*good, bad, good[0], good[1]]  # two retries among them
    answers = await asyncio.gather(*(_push(http, live_server, p) for p in sent))

    *stored, (bad_request, refused), (_, retry0), (_, retry1) = answers
    assert refused["data"] == {"reportIncident": None}
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    for request_id, body in stored:
        assert body.get("errors") is None, body
        # Answered only once its event was committed: it is there as soon as the answer is.
        events = await audit_events_of(db, request_id)
        assert "collection" in [e.operation for e in events]
    assert retry0["data"]["reportIncident"]["id"] == stored[0][1]["data"]["reportIncident"]["id"]
    assert retry1["data"]["reportIncident"]["id"] == stored[1][1]["data"]["reportIncident"]["id"]
    async with db.transaction(write=False) as session:
        references = [p["policeReference"] for p in sent]
        query = sa.select(Incident.police_reference).where(
            sa.column("police_reference").in_(references)
        )
        kept = list((await session.execute(query)).scalars())
        report = await verify.verify(session)
    assert sorted(kept) == sorted(p["policeReference"] for p in good)  # once each, not the bad
    assert "collection" not in [e.operation for e in await audit_events_of(db, bad_request)]
    assert report.ok, report.problem


async def test_a_session_committed_with_its_append_can_be_used_again(db: Database) -> None:
    """After the one-message commit, the session is as after any commit."""
    async with db.session(write=True) as session:
        await session.begin()
        await service.record_many(session, [_draft()], commit=True)
        await _next_transaction(session)


async def _next_transaction(session: AsyncSession) -> None:
    async with session.begin():
        assert (await session.execute(sa.text("SELECT 1"))).scalar() == 1
