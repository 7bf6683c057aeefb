"""Recording access events and reading them back; pseudonyms; exports; failing closed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import chain, export, service
from hub.audit.models import AuditEvent, OperationKind, Outcome, S62Operation
from hub.db import Database
from hub.errors import InvalidInput
from tests.conftest import is_postgres
from tests.test_audit_chain import ACTOR, event_row, record, served

KEY = "test-pseudonym-key"


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT")):
            seen.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_one_event_per_response_with_what_was_returned(session: AsyncSession) -> None:
    records = served(2, children=2)
    (seq,) = await record(session, records, grouped=True)
    row = await event_row(session, seq)
    assert (row["user"], row["purpose"], row["outcome"]) == ("sw-0001", ACTOR.purpose, "served")
    assert (row["operation"], row["operation_kind"]) == ("consultation", "query")
    event = (await session.execute(sa.select(AuditEvent).where(AuditEvent.seq == seq))).scalar_one()
    accesses = service.accesses_of(event)[::-1]  # newest first: the last record first
    assert [(a.record_type, a.record_id, a.record_owner) for a in accesses] == [
        ("Incident", r.record_id, "WEST_MIDLANDS") for r in records
    ]
    assert all(a.fields == ("id", "occurredAt", "type") for a in accesses)  # sorted, once each
    assert [a.child_ids for a in accesses] == [tuple(sorted(r.child_ids)) for r in records]
    children = sa.select(chain.CHILDREN.c.child_id).where(chain.CHILDREN.c.seq == seq)
    assert sorted((await session.execute(children)).scalars()) == sorted(
        child for r in records for child in r.child_ids
    )


async def test_a_denial_without_records_is_one_event_about_no_record(session: AsyncSession) -> None:
    seqs = await record(session, [], outcome=Outcome.DENIED)
    row = await event_row(session, seqs[0])
    assert len(seqs) == 1
    assert (row["outcome"], row["record_type"], row["record_id"]) == ("denied", None, None)
    assert json.loads(row["fields"]) == []


async def _record_only(session: AsyncSession, records: list[service.ServedRecord]) -> int:
    return await service.record(
        session,
        actor=ACTOR,
        operation=S62Operation.CONSULTATION,
        operation_kind=OperationKind.QUERY,
        operation_name="CouncilIncidents",
        outcome=Outcome.SERVED,
        records=records,
        request_id=None,
        trace_id=None,
        agreement_version=None,
    )


async def test_record_takes_few_statements_whatever_the_number_of_records(
    session: AsyncSession, statements: list[str]
) -> None:
    for count in (1, 25, 400):
        head = await chain.read_head(session)
        assert head is not None
        statements.clear()
        assert await _record_only(session, served(count, children=2)) == head.last_seq + 1
        # PostgreSQL: one statement locks the head, links, inserts the event and moves the head.
        # SQLite: read the head, insert the event, move the head. On both the index rows come
        # after, from `chain.catch_up`.
        assert len(statements) == (1 if is_postgres() else 3), statements


async def test_a_response_without_children_writes_no_child_rows(
    session: AsyncSession, statements: list[str]
) -> None:
    statements.clear()
    await _record_only(session, served(2, children=0))
    assert len(statements) == (1 if is_postgres() else 3)
    await chain.catch_up_all(session)
    head = await chain.read_head(session)
    assert head is not None
    # The catch-up reached the event (its two records indexed) and wrote no child row for it.
    records = sa.select(sa.func.count()).where(chain.RECORDS.c.seq == head.last_seq)
    assert (await session.execute(records)).scalar_one() == 2
    children = sa.select(sa.func.count()).where(chain.CHILDREN.c.seq == head.last_seq)
    assert (await session.execute(children)).scalar_one() == 0


async def test_a_failed_write_fails_closed_and_says_nothing_personal(database_url: str) -> None:
    own = Database(database_url)  # its connections, and their broken state, die with it
    try:
        async with own.session(write=True) as session:
            await session.begin()
            # Make the database refuse writes, as a full disk or a lost primary would.
            refuse = "SET TRANSACTION READ ONLY" if is_postgres() else "PRAGMA query_only = ON"
            await session.execute(sa.text(refuse))
            with pytest.raises(service.AuditWriteFailed) as failed:
                await record(session, served(1))
            await session.rollback()
    finally:
        await own.dispose()
    assert failed.value.code == "AUDIT_UNAVAILABLE"
    assert "sw-0001" not in failed.value.message
    assert isinstance(failed.value.__cause__, sa.exc.DBAPIError)


def test_event_ids_are_uuid7_in_time_order() -> None:
    earlier = service.event_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    later = service.event_id(dt.datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=dt.UTC))
    assert uuid.UUID(earlier).version == uuid.UUID(later).version == 7
    assert earlier < later
    assert service.event_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) != earlier


async def test_long_caller_texts_are_clipped_not_fatal(session: AsyncSession) -> None:
    head = await chain.read_head(session)
    assert head is not None
    await service.record(
        session,
        actor=ACTOR,
        operation=S62Operation.CONSULTATION,
        operation_kind=OperationKind.QUERY,
        operation_name="Q" * 500,
        outcome=Outcome.SERVED,
        records=served(1),
        request_id="r" * 500,
        trace_id=None,
        agreement_version=None,
    )
    row = await event_row(session, head.last_seq + 1)
    assert (len(row["operation_name"]), len(row["request_id"])) == (128, 64)


# --- reading ------------------------------------------------------------------------------------


async def test_a_childs_history_is_newest_first_and_pages(session: AsyncSession) -> None:
    child = str(uuid.uuid4())
    concerning = [
        service.ServedRecord("Incident", str(uuid.uuid4()), ("id",), (child,), "WEST_MIDLANDS")
        for _ in range(3)
    ]
    seqs = await record(session, concerning[:2])
    await record(session, served(2))  # about other children
    seqs += await record(session, concerning[2:])
    first = await service.child_history(session, child_id=child, first=2)
    assert [event.seq for event in first.items] == [seqs[2], seqs[1]]
    assert first.has_next_page
    rest = await service.child_history(session, child_id=child, first=2, after=first.positions[-1])
    assert [event.seq for event in rest.items] == [seqs[0]]
    assert not rest.has_next_page


async def test_a_records_history(session: AsyncSession) -> None:
    target = served(1)[0]
    seqs = await record(session, [target])
    seqs += await record(session, [target, *served(1)])
    page = await service.record_history(
        session, record_type="Incident", record_id=target.record_id, first=10
    )
    assert [access.seq for access in page.items] == [seqs[1], seqs[0]]
    assert all(access.fields == ("id", "occurredAt", "type") for access in page.items)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "sw-filter-me"),
        ("organisation_code", "E06000052"),
        ("purpose", "strategy_discussion"),
    ],
)
async def test_events_filter_by_actor(session: AsyncSession, field: str, value: str) -> None:
    actor = service.Actor(**{**ACTOR.__dict__, field: value})
    mine = await record(session, served(2), actor=actor)
    await record(session, served(1))
    page = await service.list_events(
        session, filters=service.EventFilter(**{field: value}), first=10
    )
    assert [event.seq for event in page.items][:2] == mine[::-1]
    assert all(getattr(access.event, field) == value for access in page.items)


async def test_events_filter_by_owner_child_record_and_time(session: AsyncSession) -> None:
    child = str(uuid.uuid4())
    owned = service.ServedRecord(
        "MissingEpisode", str(uuid.uuid4()), ("id",), (child,), "DYFED_POWYS"
    )
    seqs = await record(session, [owned])
    await record(session, served(2))
    row = await event_row(session, seqs[0])
    at = row["occurred_at"]
    for filters in (
        service.EventFilter(record_owner="DYFED_POWYS"),
        service.EventFilter(child_id=child),
        service.EventFilter(record_type="MissingEpisode", record_id=owned.record_id),
        service.EventFilter(
            child_id=child, occurred_from=at, occurred_to=at + dt.timedelta(microseconds=1)
        ),
    ):
        page = await service.list_events(session, filters=filters, first=10)
        assert [event.seq for event in page.items] == seqs, filters
    empty = service.EventFilter(child_id=child, occurred_to=at)
    assert (await service.list_events(session, filters=empty, first=10)).items == []


async def test_a_page_reads_on_past_events_that_hold_no_match(session: AsyncSession) -> None:
    """Events the child index finds may list only other records: the page reads further down."""
    child = str(uuid.uuid4())

    def about_the_child(record_type: str) -> service.ServedRecord:
        return service.ServedRecord(
            record_type, str(uuid.uuid4()), ("id",), (child,), "WEST_MIDLANDS"
        )

    incidents = await record(session, [about_the_child("Incident") for _ in range(3)])
    # As many as one read takes (first + 2), so the next read starts at an incident.
    await record(session, [about_the_child("MissingEpisode") for _ in range(3)])
    filters = service.EventFilter(child_id=child, record_type="Incident")
    seen: list[int] = []
    after = None
    for _ in range(3):
        page = await service.list_events(session, filters=filters, first=1, after=after)
        seen += [access.seq for access in page.items]
        after = page.positions[-1]
    assert seen == incidents[::-1]
    assert not page.has_next_page


async def test_a_cursor_from_elsewhere_is_refused(session: AsyncSession) -> None:
    for cursor in ("not-a-cursor", "b3RoZXI6MTI"):  # the second is base64 of "other:12"
        with pytest.raises(InvalidInput) as refused:
            await service.list_events(session, filters=service.EventFilter(), first=1, after=cursor)
        assert refused.value.field == "after"


# --- pseudonyms ---------------------------------------------------------------------------------


def test_pseudonyms_are_stable_keyed_and_distinct() -> None:
    child, other = str(uuid.uuid4()), str(uuid.uuid4())
    alias = service.pseudonym(child, key=KEY)
    assert alias == service.pseudonym(child, key=KEY)
    assert alias != service.pseudonym(child, key="another-key")
    assert alias != service.pseudonym(other, key=KEY)
    assert re.fullmatch(r"C-[0-9a-f]{16}", alias)
    assert child not in alias


# --- exports ------------------------------------------------------------------------------------


async def _exported(session: AsyncSession, fmt: export.ExportFormat, key: str | None) -> str:
    chunks = export.stream(
        session,
        occurred_from=dt.datetime(2001, 1, 1, tzinfo=dt.UTC),
        occurred_to=dt.datetime(2001, 1, 2, tzinfo=dt.UTC),
        format=fmt,
        pseudonym_key=key,
    )
    return "".join([chunk async for chunk in chunks])


@pytest.fixture
async def in_2001(session: AsyncSession, monkeypatch: pytest.MonkeyPatch) -> list[AuditEvent]:
    """Events on a day no other test uses, so an export of that day holds only these."""
    moment = dt.datetime(2001, 1, 1, 12, tzinfo=dt.UTC)
    monkeypatch.setattr(service, "utcnow", lambda: moment)
    seqs = await record(
        session, served(2, children=2), detail={"note": 'a "quoted"\nline'}, grouped=True
    )
    seqs += await record(session, [], outcome=Outcome.DENIED)
    events = await session.execute(
        sa.select(AuditEvent).where(AuditEvent.seq.in_(seqs)).order_by(AuditEvent.seq)  # type: ignore[attr-defined]
    )
    return list(events.scalars())


async def test_a_jsonl_export_round_trips_and_can_be_rehashed(
    session: AsyncSession, in_2001: list[AuditEvent]
) -> None:
    lines = (await _exported(session, export.ExportFormat.JSONL, None)).splitlines()
    exported = [json.loads(line) for line in lines]
    assert [item["seq"] for item in exported] == [event.seq for event in in_2001]
    for item, event in zip(exported, in_2001, strict=True):
        assert item["id"] == event.id
        assert item["child_ids"] == event.child_id_list
        assert item["records"] == json.loads(event.records or "null")
        assert item["detail"] == event.detail_data
        # An auditor can re-hash the export without the hub: the JSON re-serialised compactly
        # (records keep their keys' order; `detail` is key-sorted).
        content = [
            json.dumps(item[name], separators=(",", ":"), sort_keys=name != "records")
            if name in {"fields", "child_ids"}
            or (name in {"detail", "records"} and item[name] is not None)
            else item[name]
            for name in chain.CONTENT_COLUMNS
        ]
        content[1] = dt.datetime.fromisoformat(content[1])
        assert chain.event_hash(item["prev_hash"], content) == item["hash"]


async def test_a_csv_export_round_trips_with_pseudonyms(
    session: AsyncSession, in_2001: list[AuditEvent]
) -> None:
    text = await _exported(session, export.ExportFormat.CSV, KEY)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(export.COLUMNS)
    assert [int(row["seq"]) for row in rows] == [event.seq for event in in_2001]
    for row, event in zip(rows, in_2001, strict=True):
        assert (row["id"], row["hash"], row["fields"]) == (event.id, event.hash, event.fields)
        expected = [service.pseudonym(child, key=KEY) for child in event.child_id_list]
        assert json.loads(row["child_ids"]) == expected
        listed = [entry["children"] for entry in json.loads(row["records"] or "[]")]
        assert sorted(child for children in listed for child in children) == sorted(expected)
        assert not any(child in text for child in event.child_id_list)
        assert row["occurred_at"] == "2001-01-01T12:00:00.000000+00:00"


async def test_an_empty_csv_export_is_just_the_header(session: AsyncSession) -> None:
    chunks = export.stream(
        session,
        occurred_from=dt.datetime(1990, 1, 1, tzinfo=dt.UTC),
        occurred_to=dt.datetime(1990, 1, 2, tzinfo=dt.UTC),
        format=export.ExportFormat.CSV,
    )
    assert "".join([chunk async for chunk in chunks]) == ",".join(export.COLUMNS) + "\n"


async def test_export_counts_and_reports_progress(
    session: AsyncSession, in_2001: list[AuditEvent]
) -> None:
    seen: list[int] = []
    chunks = export.stream(
        session,
        occurred_from=dt.datetime(2001, 1, 1, tzinfo=dt.UTC),
        occurred_to=dt.datetime(2001, 1, 2, tzinfo=dt.UTC),
        format=export.ExportFormat.JSONL,
        on_rows=seen.append,
    )
    _ = [chunk async for chunk in chunks]
    counted = await export.count(
        session,
        occurred_from=dt.datetime(2001, 1, 1, tzinfo=dt.UTC),
        occurred_to=dt.datetime(2001, 1, 2, tzinfo=dt.UTC),
    )
    assert sum(seen) == counted == len(in_2001)


def test_an_events_records_text_is_what_the_json_encoder_writes() -> None:
    """The records text is built piece by piece for speed; it must stay byte for byte what
    the compact encoder writes for the same objects, or the chain would hash another text."""
    odd = 'quote " backslash \\ tab \t newline \n bell \x07 é 中 \u2028'
    records = [
        service.ServedRecord(
            "Incident", "i-1", ("summary", "id", "id"), ("c-2", "c-1", "c-2"), "F"
        ),
        service.ServedRecord("Child", odd, ("givenName",), (), None),
        service.ServedRecord(odd, "i-2", ("summary", "id", "id"), (odd,), odd),
        service.ServedRecord("Incident", "i-3", (), ("c-1",), ""),
        # A child's one child is itself: its id, encoded once, serves both.
        service.ServedRecord("Child", odd, ("givenName",), (odd,), "F"),
        service.ServedRecord("Child", "c-1", ("givenName", "id"), ("c-1",), "F"),
    ]
    expected = chain.encode_json(
        [
            {
                "type": r.record_type,
                "id": r.record_id,
                "owner": r.owner,
                "fields": sorted(set(r.fields)),
                "children": sorted(set(r.child_ids)),
            }
            for r in records
        ]
    )
    assert service._records_json(records) == expected
    assert json.loads(expected)[1]["id"] == odd
    assert service._records_json([]) == "[]"
