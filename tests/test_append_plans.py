"""The audit's append is planned once per connection, not once per request: its plan for one
request's lists must not look cheaper than the general one (PostgreSQL's plan cache keeps
re-planning a prepared statement while a custom plan costs less than the generic plan)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from hub.audit import chain, service
from hub.db import Database
from tests.conftest import is_postgres
from tests.test_audit_chain import consulted, index_committed, served

pytestmark = pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's plan cache")
APPENDS = 12  # the plan cache tries five custom plans before it weighs the generic one


def _draft(n: int) -> service.EventDraft:
    return consulted("Planned", f"req-planned-{n}", served(1 + n % 3))


@pytest.mark.parametrize("publishing", [False, True])
async def test_the_append_is_not_planned_again_for_each_request(
    database_url: str, *, publishing: bool
) -> None:
    db = Database(database_url, pool_size=1)  # one connection: its prepared statements
    try:
        for n in range(APPENDS):
            async with db.transaction(write=True) as session:
                outbox = (
                    chain.Outbox(
                        dt.datetime.now(dt.UTC),
                        [("Incident", str(uuid.uuid4()), "collected")] * (1 + n % 2),
                        "hub_test_plans",
                    )
                    if publishing
                    else None
                )
                await service.record_many(session, [_draft(n)], lock_timeout=5, outbox=outbox)
        async with db.transaction(write=False) as session:
            found = await session.execute(
                sa.text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE 'WITH RECURSIVE setting%' "
                    "AND (statement LIKE '%record_change%') = :publishing"
                ),
                {"publishing": publishing},
            )
            [(generic, custom)] = found.all()
        await index_committed(db)
    finally:
        await db.dispose()
    assert custom <= 5, (generic, custom)
    assert generic >= APPENDS - 5, (generic, custom)
