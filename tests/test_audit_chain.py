"""The hash chain: appends verify, and every kind of tampering is named at the right seq.

Each test runs in one transaction rolled back at the end, so tampering never reaches the shared
database. On PostgreSQL the append-only triggers are bypassed for the tampering itself with
`SET LOCAL session_replication_role = replica` (a superuser's escape hatch, which is the point:
the chain catches what the triggers cannot stop).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain, retention, service, verify
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.audit.verify import Reason
from hub.db import Database
from hub.errors import InvalidInput
from tests.conftest import is_postgres

ACTOR = service.Actor(
    user="sw-0001",
    organisation_code="E08000025",
    client_id="test-council",
    role="council_social_worker",
    purpose="section_47_enquiry",
)


def served(count: int, *, children: int = 1) -> list[service.ServedRecord]:
    return [
        service.ServedRecord(
            record_type="Incident",
            record_id=str(uuid.uuid4()),
            fields=("type", "id", "occurredAt", "id"),
            child_ids=tuple(str(uuid.uuid4()) for _ in range(children)),
            owner="WEST_MIDLANDS",
        )
        for _ in range(count)
    ]


def consulted(
    operation_name: str, request_id: str, records: Sequence[service.ServedRecord]
) -> service.EventDraft:
    """An event draft of a query's consultation of `records`, as a council page's would be."""
    return service.EventDraft(
        actor=ACTOR,
        operation=S62Operation.CONSULTATION,
        operation_kind=OperationKind.QUERY,
        operation_name=operation_name,
        outcome=Outcome.SERVED,
        records=records,
        request_id=request_id,
        trace_id=None,
        agreement_version="test",
    )


async def index_committed(db: Database) -> None:
    """Index every event committed so far, as the hub's indexer would: a test that commits
    events outside a request leaves the chain as verifiable as a request does."""
    async with db.transaction(write=True) as session:
        await chain.catch_up_all(session)


async def record(
    session: AsyncSession,
    records: Sequence[service.ServedRecord],
    *,
    actor: service.Actor = ACTOR,
    outcome: Outcome = Outcome.SERVED,
    detail: dict[str, Any] | None = None,
    request_id: str = "req-test",
    grouped: bool = False,
    indexed: bool = True,
) -> list[int]:
    """Record responses of one record each (or all `records` in one, `grouped`), and index
    them as the indexer would after the commit (unless not `indexed`: as they are until the
    indexer runs); return the seqs their events took.
    """
    responses = [records] if grouped or not records else [[r] for r in records]
    seqs = [
        await service.record(
            session,
            actor=actor,
            operation=S62Operation.CONSULTATION,
            operation_kind=OperationKind.QUERY,
            operation_name="CouncilIncidents",
            outcome=outcome,
            records=response,
            request_id=request_id,
            trace_id="0af7651916cd43dd8448eb211c80319c",
            agreement_version="sha256:test",
            detail=detail,
        )
        for response in responses
    ]
    if indexed:
        await chain.catch_up_all(session)
    return seqs


async def tamper(session: AsyncSession, statement: str, **params: Any) -> None:
    """Change the log behind the hub's back, as someone with database access could."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    await session.execute(sa.text(statement), params)


async def event_row(session: AsyncSession, seq: int) -> dict[str, Any]:
    row = (await session.execute(sa.select(chain.EVENTS).where(chain.EVENTS.c.seq == seq))).one()
    return dict(row._mapping)


async def renumber_after(session: AsyncSession, seq: int, *, by: int) -> None:
    """Move every event after `seq` (and its child rows) `by` places, as a forger would."""
    for table in ("audit_event", "audit_event_child"):
        # Two steps: seq is a primary key, and a shift in place would collide with itself.
        await tamper(session, f"UPDATE {table} SET seq = -seq WHERE seq > :seq", seq=seq)  # noqa: S608 - our table names
        await tamper(session, f"UPDATE {table} SET seq = -seq + :by WHERE seq < 0", by=by)  # noqa: S608 - our table names


async def insert_event(session: AsyncSession, row: dict[str, Any]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    await session.execute(sa.insert(chain.EVENTS), [row])


def forged(after: dict[str, Any], *, seq: int) -> dict[str, Any]:
    """A well-formed event chained after `after`: right prev_hash, right hash, false content."""
    row = {
        **after,
        "seq": seq,
        "id": str(uuid.uuid4()),
        "purpose": "forged",
        "prev_hash": after["hash"],
    }
    row["hash"] = chain.event_hash(row["prev_hash"], [row[name] for name in chain.CONTENT_COLUMNS])
    return row


async def check(session: AsyncSession) -> verify.VerifyReport:
    return await verify.verify(session)


async def test_appended_events_verify(session: AsyncSession) -> None:
    seqs = await record(session, served(3, children=2))
    seqs += await record(session, [], outcome=Outcome.DENIED)
    report = await check(session)
    head = await chain.read_head(session)
    assert report.ok, report.problem
    assert head is not None
    assert (report.last_seq, report.last_hash) == (head.last_seq, head.last_hash)
    assert report.last_seq == seqs[-1]
    assert report.checked >= 4
    assert report.rechecked == 0


async def test_each_event_links_to_the_one_before(session: AsyncSession) -> None:
    seqs = await record(session, served(3))
    rows = [await event_row(session, seq) for seq in seqs]
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    for row in rows:
        content = [row[name] for name in chain.CONTENT_COLUMNS]
        assert chain.event_hash(row["prev_hash"], content) == row["hash"]


def test_the_hashed_bytes_are_fixed() -> None:
    """A change to the canonical form breaks every existing chain: this pins it."""
    content: list[Any] = [None] * len(chain.CONTENT_COLUMNS)
    content[chain.CONTENT_COLUMNS.index("occurred_at")] = dt.datetime(2026, 1, 31, 9, tzinfo=dt.UTC)
    content[chain.CONTENT_COLUMNS.index("user")] = 'Siân "sw" \\ \n'
    assert (
        chain.canonical(content)
        == (
            '[1,null,"2026-01-31T09:00:00.000000+00:00",null,null,"Siân \\"sw\\" \\\\ \\n",'
            + ",".join(["null"] * 15)
            + "]"
        ).encode()
    )
    digest = chain.event_hash("0" * 64, content)
    assert digest == "1900a13a13d521445cdf4aac696ff5fc6e0179bb27ee1e99cc9d81177ef37ff4"


async def test_awkward_values_verify_without_a_second_look(session: AsyncSession) -> None:
    """Quotes, backslashes, control characters and non-ASCII survive the database's formatting
    (COPY's escapes on PostgreSQL); a value equal to COPY's NULL marker is re-checked, not failed.
    """
    awkward = service.Actor(
        user="Siân Ó Briain",
        organisation_code="W06000015",
        client_id="client\\with\\backslashes",
        role="council_social_worker",
        purpose='tab\tnewline\nquote"',
    )
    await record(session, served(2), actor=awkward, detail={"note": '\x01 \\ " \u2028 é'})
    marker = service.Actor(**{**ACTOR.__dict__, "purpose": "\x1f"})
    await record(session, served(1), actor=marker)
    report = await check(session)
    assert report.ok, report.problem
    assert report.rechecked == (1 if is_postgres() else 0)


async def test_an_altered_event_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(4))
    await tamper(
        session, "UPDATE audit_event SET purpose = 'fishing' WHERE seq = :seq", seq=seqs[2]
    )
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[2], Reason.ALTERED)


async def test_an_altered_last_event_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(2))
    await tamper(session, "UPDATE audit_event SET role = 'auditor' WHERE seq = :seq", seq=seqs[-1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[-1], Reason.ALTERED)


async def test_a_deleted_event_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(4))
    await tamper(session, "DELETE FROM audit_event_child WHERE seq = :seq", seq=seqs[1])
    await tamper(session, "DELETE FROM audit_event WHERE seq = :seq", seq=seqs[1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.DELETED)


async def test_a_deletion_hidden_by_renumbering_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(4))
    await tamper(session, "DELETE FROM audit_event_child WHERE seq = :seq", seq=seqs[1])
    await tamper(session, "DELETE FROM audit_event WHERE seq = :seq", seq=seqs[1])
    await renumber_after(session, seqs[1], by=-1)
    await tamper(session, "UPDATE audit_chain_head SET last_seq = last_seq - 1")
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.DELETED)


async def test_a_cut_tail_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(3))
    await tamper(session, "DELETE FROM audit_event_child WHERE seq >= :seq", seq=seqs[1])
    await tamper(session, "DELETE FROM audit_event WHERE seq >= :seq", seq=seqs[1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.DELETED)


async def test_a_forged_event_slipped_in_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(4))
    await renumber_after(session, seqs[1], by=1)
    await insert_event(session, forged(await event_row(session, seqs[1]), seq=seqs[2]))
    await tamper(session, "UPDATE audit_chain_head SET last_seq = last_seq + 1")
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[2], Reason.INSERTED)


async def test_a_forged_event_with_a_wrong_hash_is_named_inserted(session: AsyncSession) -> None:
    seqs = await record(session, served(3))
    await renumber_after(session, seqs[0], by=1)
    fake = {**forged(await event_row(session, seqs[0]), seq=seqs[1]), "hash": "f" * 64}
    await insert_event(session, fake)
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.INSERTED)


async def test_an_event_appended_behind_the_heads_back_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(2))
    await insert_event(session, forged(await event_row(session, seqs[-1]), seq=seqs[-1] + 1))
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[-1] + 1, Reason.INSERTED)


async def test_reordered_events_are_named(session: AsyncSession) -> None:
    seqs = await record(session, served(4))
    first, second = seqs[1], seqs[2]
    for table in ("audit_event", "audit_event_child"):
        swap = f"UPDATE {table} SET seq = :to WHERE seq = :seq"  # noqa: S608 - our table names
        await tamper(session, swap, seq=first, to=-1)
        await tamper(session, swap, seq=second, to=first)
        await tamper(session, swap, seq=-1, to=second)
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (first, Reason.REORDERED)


async def test_a_missing_child_index_row_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(3))
    await tamper(session, "DELETE FROM audit_event_child WHERE seq = :seq", seq=seqs[1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.CHILD_INDEX)


async def test_one_response_is_one_event_listing_its_records(session: AsyncSession) -> None:
    records = served(3, children=2)
    (seq,) = await record(session, records, grouped=True)
    event = await event_row(session, seq)
    listed = json.loads(event["records"])
    assert [(e["type"], e["id"], e["owner"]) for e in listed] == [
        (r.record_type, r.record_id, r.owner) for r in records
    ]
    assert listed[0]["fields"] == ["id", "occurredAt", "type"]  # sorted, once each
    assert json.loads(event["child_ids"]) == sorted(c for r in records for c in r.child_ids)
    indexed = await session.execute(
        sa.select(chain.RECORDS.c.ordinal, chain.RECORDS.c.record_id)
        .where(chain.RECORDS.c.seq == seq)
        .order_by(chain.RECORDS.c.ordinal)
    )
    assert indexed.all() == [(i, r.record_id) for i, r in enumerate(records)]
    assert (await check(session)).ok


async def test_index_rows_hold_the_events_values_exactly(session: AsyncSession) -> None:
    """Each record, child and recipient an event lists is one index row with its very values:
    awkward text (quotes, backslashes, a newline, non-ASCII), a record without an owner, a
    recipient without a person; and an event of hundreds of records."""
    odd = 'id "quoted" \\ back\nline é'
    records = [
        service.ServedRecord("Incident", odd, ("id",), (odd, "child-2"), None),
        service.ServedRecord("Child", "child-2", ("id",), ("child-2",), 'own"er\\'),
    ]
    many = 300
    records += [
        service.ServedRecord("Child", f"child-{n:03}", ("id",), (f"child-{n:03}",), "E08000025")
        for n in range(3, many + 1)
    ]
    people = [
        {"user": None, "client_id": "client-a", "request_id": None},
        {"user": 'Siân "x"', "client_id": "client\\b", "request_id": "req\n2"},
    ]
    (seq,) = await record(
        session, records, grouped=True, detail={"recipients": people}, indexed=False
    )
    await chain.catch_up_all(session)  # the rows come from the indexer

    async def index(table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
        found = await session.execute(
            sa.select(*(table.c[name] for name in columns))
            .where(table.c.seq == seq)
            .order_by(*(table.c[name] for name in columns))
        )
        return [tuple(row) for row in found]

    assert await index(chain.RECORDS, "ordinal", "record_type", "record_id", "record_owner") == [
        (ordinal, r.record_type, r.record_id, r.owner) for ordinal, r in enumerate(records)
    ]
    assert len(records) == many
    children = sorted({(child,) for r in records for child in r.child_ids})
    assert await index(chain.CHILDREN, "child_id") == children
    assert await index(chain.RECIPIENTS, "ordinal", "user", "client_id", "request_id") == [
        (0, None, "client-a", None),
        (1, 'Siân "x"', "client\\b", "req\n2"),
    ]
    assert (await check(session)).ok


@pytest.mark.parametrize(
    "listed",
    [
        "not a list",
        {"client_id": "an object, not a list"},
        [1, "text", None, {"client_id": "client-c", "user": "u-3"}, ["nested"]],
        [],
    ],
)
async def test_the_indexed_recipients_are_those_verify_reads(
    session: AsyncSession, listed: Any
) -> None:
    """Whatever `detail.recipients` holds, the catch-up (SQL, on each database) indexes the
    recipients `chain.recipients_in` reads from it, at the same places, and `verify` agrees."""
    (seq,) = await record(
        session, served(1), grouped=True, detail={"recipients": listed}, indexed=False
    )
    await chain.catch_up_all(session)
    found = await session.execute(
        sa.select(chain.RECIPIENTS.c.ordinal, chain.RECIPIENTS.c.user, chain.RECIPIENTS.c.client_id)
        .where(chain.RECIPIENTS.c.seq == seq)
        .order_by(chain.RECIPIENTS.c.ordinal)
    )
    expected = [
        (r.ordinal, r.user, r.client_id) for r in chain.recipients_in({"recipients": listed})
    ]
    assert [tuple(row) for row in found] == expected
    assert expected == ([(3, "u-3", "client-c")] if isinstance(listed, list) and listed else [])
    assert (await check(session)).ok


async def test_a_record_slipped_into_an_event_is_named(session: AsyncSession) -> None:
    seqs = await record(session, served(2), grouped=True)
    seqs += await record(session, served(1))
    event = await event_row(session, seqs[0])
    listed = json.loads(event["records"])
    listed.append({**listed[0], "id": str(uuid.uuid4())})
    await tamper(
        session,
        "UPDATE audit_event SET records = :records WHERE seq = :seq",
        records=json.dumps(listed, separators=(",", ":")),
        seq=seqs[0],
    )
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[0], Reason.ALTERED)


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_event_record WHERE seq = :seq AND ordinal = 1",
        (
            "INSERT INTO audit_event_record (seq, ordinal, record_type, record_id) "
            "VALUES (:seq, 7, 'Incident', 'another')"
        ),
    ],
    ids=["deleted", "inserted"],
)
async def test_a_record_index_that_disagrees_is_named(
    session: AsyncSession, statement: str
) -> None:
    seqs = await record(session, served(1))
    seqs += await record(session, served(3), grouped=True)
    seqs += await record(session, served(1))
    await tamper(session, statement, seq=seqs[1])
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (seqs[1], Reason.RECORD_INDEX)


async def test_version_1_events_still_verify(session: AsyncSession) -> None:
    """An event written before records were grouped: its one record in its own columns."""
    head = await chain.read_head(session)
    assert head is not None
    content: dict[str, Any] = dict.fromkeys(chain.CONTENT_COLUMNS)
    content.update(
        id=str(uuid.uuid4()),
        occurred_at=dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
        operation="consultation",
        outcome="served",
        organisation_code="E08000025",
        client_id="test-council",
        role="council_social_worker",
        operation_kind="query",
        record_type="Incident",
        record_id="inc-1",
        record_owner="WEST_MIDLANDS",
        fields='["id"]',
        child_ids='["c-1"]',
    )
    ordered = [content[name] for name in chain.CONTENT_COLUMNS]
    assert chain.canonical(ordered).startswith(b"[1,")  # no `records`: version 1
    digest = chain.event_hash(head.last_hash, ordered)
    seq = head.last_seq + 1
    row = {**content, "seq": seq, "prev_hash": head.last_hash, "hash": digest}
    await session.execute(sa.insert(chain.EVENTS), [row])
    await session.execute(
        sa.insert(chain.RECORDS),
        [{"seq": seq, "ordinal": 0, "record_type": "Incident", "record_id": "inc-1"}],
    )
    await session.execute(sa.insert(chain.CHILDREN), [{"child_id": "c-1", "seq": seq}])
    await session.execute(
        sa.update(chain.HEAD).values(last_seq=seq, last_hash=digest).where(chain.HEAD.c.id == 1)
    )
    # Written with its index rows, as version 1 appends were.
    await session.execute(sa.update(chain.PROGRESS).values(indexed_seq=seq))
    seqs = await record(session, served(2), grouped=True)
    report = await check(session)
    assert report.ok, report.problem
    assert report.last_seq == seqs[-1]
    history = await service.record_history(
        session, record_type="Incident", record_id="inc-1", first=5
    )
    assert [(a.event.seq, a.fields, a.child_ids) for a in history.items] == [
        (seq, ("id",), ("c-1",))
    ]


async def test_a_problem_message_names_no_content(session: AsyncSession) -> None:
    seqs = await record(session, served(2))
    await tamper(
        session, "UPDATE audit_event SET \"user\" = 'someone-else' WHERE seq = :seq", seq=seqs[0]
    )
    problem = (await check(session)).problem
    assert problem is not None
    assert "sw-0001" not in problem.message
    assert "someone-else" not in problem.message


async def test_small_batches_walk_the_same_chain(session: AsyncSession) -> None:
    seqs = await record(session, served(7))
    await tamper(session, "UPDATE audit_event SET purpose = 'x' WHERE seq = :seq", seq=seqs[5])
    report = await verify.verify(session, batch_size=2)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.reason) == (seqs[5], Reason.ALTERED)


async def test_verify_through_stops_there(session: AsyncSession) -> None:
    seqs = await record(session, served(3))
    await tamper(session, "UPDATE audit_event SET purpose = 'x' WHERE seq = :seq", seq=seqs[2])
    report = await verify.verify(session, through=seqs[1])
    assert report.ok
    assert report.last_seq == seqs[1]
    assert report.last_hash == (await event_row(session, seqs[1]))["hash"]


# --- PostgreSQL refuses changes itself ----------------------------------------------------------

postgres_only = pytest.mark.skipif(not is_postgres(), reason="the triggers are PostgreSQL's")

REFUSED = [
    "UPDATE audit_event SET purpose = 'x' WHERE seq = :seq",
    "DELETE FROM audit_event WHERE seq = :seq",
    "TRUNCATE audit_event",
    "UPDATE audit_event_child SET child_id = 'x' WHERE seq = :seq",
    "DELETE FROM audit_event_child WHERE seq = :seq",
    "TRUNCATE audit_event_child",
    "DELETE FROM audit_chain_head",
    "TRUNCATE audit_chain_head",
]


@postgres_only
@pytest.mark.parametrize("statement", REFUSED)
async def test_postgresql_refuses_changes_to_the_log(session: AsyncSession, statement: str) -> None:
    seqs = await record(session, served(1))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(sa.text(statement), {"seq": seqs[0]})
    assert (await event_row(session, seqs[0]))["purpose"] == ACTOR.purpose


@postgres_only
async def test_postgresql_allows_deletion_only_in_a_declared_erasure(session: AsyncSession) -> None:
    seqs = await record(session, served(1))
    await session.execute(sa.select(sa.func.set_config("hub.audit_erasure", "on", sa.true())))
    await session.execute(sa.text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": seqs[0]})
    count = sa.select(sa.func.count()).where(chain.EVENTS.c.seq == seqs[0])
    assert (await session.execute(count)).scalar_one() == 0
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(sa.text("UPDATE audit_event SET purpose = 'x'"))


# --- retention ----------------------------------------------------------------------------------

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the time `record` stamps events with."""

    def set_to(moment: dt.datetime) -> None:
        monkeypatch.setattr(service, "utcnow", lambda: moment)

    return set_to


async def test_erasure_is_logged_and_verify_still_passes(session: AsyncSession, clock: Any) -> None:
    clock(NOW - dt.timedelta(days=40))
    await record(session, served(1))
    # Everything older than now goes first (other tests' events included, rolled back after).
    await retention.erase_before(session, cutoff=NOW + dt.timedelta(days=1), actor=ACTOR)
    clock(NOW - dt.timedelta(days=30))
    old = await record(session, served(3))
    clock(NOW - dt.timedelta(days=1))
    recent = await record(session, served(2))
    anchor = (await event_row(session, old[-1]))["hash"]

    report = await retention.erase_before(session, cutoff=NOW - dt.timedelta(days=10), actor=ACTOR)

    assert (report.erased, report.last_seq) == (4, old[-1])  # the first erasure event and 3 old
    assert (report.anchor_hash, report.erasure_seq) == (anchor, recent[-1] + 1)
    erasure = await event_row(session, recent[-1] + 1)
    assert (erasure["operation"], erasure["operation_kind"]) == ("erasure", "retention")
    detail = json.loads(erasure["detail"])
    assert (detail["erased_first_seq"], detail["erased_last_seq"]) == (old[0] - 1, old[-1])
    assert detail["erased_count"] == 4
    checked = await check(session)
    assert checked.ok, checked.problem
    assert (checked.first_seq, checked.erased_through) == (recent[0], old[-1])
    assert (await event_row(session, recent[0]))["prev_hash"] == detail["anchor_hash"]


@pytest.mark.parametrize("victim", ["kept event", "erasure event"])
async def test_an_unlogged_deletion_after_an_erasure_is_still_caught(
    session: AsyncSession, clock: Any, victim: str
) -> None:
    clock(NOW - dt.timedelta(days=40))
    await record(session, served(1))
    await retention.erase_before(session, cutoff=NOW + dt.timedelta(days=1), actor=ACTOR)
    clock(NOW - dt.timedelta(days=1))
    kept = await record(session, served(3))
    assert (await check(session)).ok
    erasure_seq = kept[0] - 1
    deleted = kept[1] if victim == "kept event" else erasure_seq
    await tamper(session, "DELETE FROM audit_event_child WHERE seq = :seq", seq=deleted)
    await tamper(session, "DELETE FROM audit_event WHERE seq = :seq", seq=deleted)
    problem = (await check(session)).problem
    assert problem is not None
    assert problem.reason == Reason.DELETED
    # Without its erasure event, nothing accounts for the erased range either.
    assert problem.seq == (deleted if victim == "kept event" else 1)


async def test_an_event_put_back_into_an_erased_range_is_caught(
    session: AsyncSession, clock: Any
) -> None:
    clock(NOW - dt.timedelta(days=40))
    old = await record(session, served(2))
    restored = await event_row(session, old[-1])
    await retention.erase_before(session, cutoff=NOW + dt.timedelta(days=1), actor=ACTOR)
    await insert_event(session, restored)
    problem = (await check(session)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (old[-1], Reason.INSERTED)


async def test_erasure_refuses_to_hide_tampering(session: AsyncSession, clock: Any) -> None:
    clock(NOW - dt.timedelta(days=40))
    seqs = await record(session, served(2))
    await tamper(session, "UPDATE audit_event SET purpose = 'x' WHERE seq = :seq", seq=seqs[0])
    with pytest.raises(retention.ErasureRefused) as refused:
        await retention.erase_before(session, cutoff=NOW + dt.timedelta(days=1), actor=ACTOR)
    assert f"seq {seqs[0]}" in refused.value.message
    assert refused.value.code == "AUDIT_CHAIN_BROKEN"


async def test_erasure_with_nothing_before_the_cutoff_logs_nothing(session: AsyncSession) -> None:
    before = await chain.read_head(session)
    report = await retention.erase_before(
        session, cutoff=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), actor=ACTOR
    )
    assert report.erased == 0
    assert await chain.read_head(session) == before


async def test_erasure_refuses_a_naive_cutoff(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput):
        await retention.erase_before(session, cutoff=dt.datetime(2026, 1, 1), actor=ACTOR)  # noqa: DTZ001
