"""Concurrent pushes, one of them failing and some of them retries: each gets its own answer.

A push is answered only once its record and its audit event are committed, a failing push
stores nothing and takes nothing from the others, and a push and its retry store one record
whichever of them comes first (issue 16: what any grouping of pushes must keep).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from hub.access.models import Role
from hub.audit import chain, verify
from hub.db import Database
from hub.incidents.models import Incident
from tests.conftest import LiveServer, audit_events_of, unique
from tests.factories import FORCE, REPORT_INCIDENT, incident


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

    (bad_request, refused) = answers[len(good)]
    assert refused["data"] == {"reportIncident": None}
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    by_reference: dict[str, list[tuple[str, Any]]] = {}
    for payload, answer in zip(sent, answers, strict=True):
        if payload is not bad:
            by_reference.setdefault(payload["policeReference"], []).append(answer)
    for same in by_reference.values():
        assert [body.get("errors") for _, body in same] == [None] * len(same)
        assert len({body["data"]["reportIncident"]["id"] for _, body in same}) == 1
        # Each answered only once its events were committed: they are there as soon as it is;
        # whichever of a push and its retry came first collected the record, the other found it.
        operations = [[e.operation for e in await audit_events_of(db, r)] for r, _ in same]
        assert all(operations)
        assert sum("collection" in each for each in operations) == 1
    async with db.transaction(write=False) as session:
        # One snapshot for the walk: the live hub's indexer may commit while it reads.
        await chain.begin_snapshot(session)
        references = [p["policeReference"] for p in sent]
        query = sa.select(Incident.police_reference).where(
            sa.column("police_reference").in_(references)
        )
        kept = list((await session.execute(query)).scalars())
        report = await verify.verify(session)
    assert sorted(kept) == sorted(p["policeReference"] for p in good)  # once each, not the bad
    assert "collection" not in [e.operation for e in await audit_events_of(db, bad_request)]
    assert report.ok, report.problem
