"""Exporting the log: JSON lines or CSV, streamed from a server-side cursor in constant memory.

One line (or CSV row) per event, its records nested in `records`. Every column is exported,
`prev_hash` and `hash` included. With real child ids an export can be
re-hashed independently (`chain.CONTENT_COLUMNS` and `chain.canonical` define the bytes); with
pseudonyms (`pseudonym_key`) it cannot, by design: the ids are what is withheld.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.audit.chain import EVENT_COLUMNS, timestamp_text
from hub.audit.models import AuditEvent
from hub.audit.service import pseudonym, pseudonymised_record_id

COLUMNS = EVENT_COLUMNS  # seq, the hashed content in its order, prev_hash, hash
_JSON_COLUMNS = ("fields", "child_ids", "detail", "records")
BATCH_ROWS = 5_000


class ExportFormat(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _in_range(occurred_from: dt.datetime, occurred_to: dt.datetime) -> tuple[Any, ...]:
    return (
        col(AuditEvent.occurred_at) >= occurred_from,
        col(AuditEvent.occurred_at) < occurred_to,
    )


async def count(
    session: AsyncSession, *, occurred_from: dt.datetime, occurred_to: dt.datetime
) -> int:
    """How many events an export of this range holds (for a progress bar and the log)."""
    query = sa.select(sa.func.count()).where(*_in_range(occurred_from, occurred_to))
    return int((await session.execute(query)).scalar_one())


def _pseudonymised(child_ids: str, key: str) -> str:
    ids = [pseudonym(child_id, key=key) for child_id in json.loads(child_ids)]
    return json.dumps(ids, separators=(",", ":"))


def _pseudonymised_records(records: str | None, key: str) -> str | None:
    if records is None:
        return None
    listed = json.loads(records)
    for entry in listed:
        entry["id"] = pseudonymised_record_id(entry["type"], entry["id"], key=key)
        entry["children"] = [pseudonym(child_id, key=key) for child_id in entry["children"]]
    return json.dumps(listed, separators=(",", ":"))


def _text_row(row: Sequence[Any], key: str | None) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    record["occurred_at"] = timestamp_text(record["occurred_at"])
    if key is not None:
        record["child_ids"] = _pseudonymised(record["child_ids"], key)
        record["records"] = _pseudonymised_records(record["records"], key)
        if record["record_id"] is not None:
            record["record_id"] = pseudonymised_record_id(
                record["record_type"], record["record_id"], key=key
            )
    return record


def _jsonl(rows: Sequence[Sequence[Any]], key: str | None) -> str:
    lines = []
    for row in rows:
        record = _text_row(row, key)
        for name in _JSON_COLUMNS:  # nested JSON, not JSON in a string
            record[name] = None if record[name] is None else json.loads(record[name])
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    return "".join(lines)


def _csv(rows: Sequence[Sequence[Any]], key: str | None, *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(_text_row(row, key) for row in rows)
    return buffer.getvalue()


async def stream(
    session: AsyncSession,
    *,
    occurred_from: dt.datetime,
    occurred_to: dt.datetime,
    format: ExportFormat,  # noqa: A002 - the CLI's word for it
    pseudonym_key: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """Events with `occurred_from <= occurred_at < occurred_to`, in seq order, as text chunks.

    A CSV export starts with its header even when empty. `on_rows` hears how many rows each
    chunk holds (for a progress bar). Run in a snapshot (`chain.begin_snapshot`).
    """
    query = (
        sa.select(*(col(getattr(AuditEvent, name)) for name in COLUMNS))
        .where(*_in_range(occurred_from, occurred_to))
        .order_by(col(AuditEvent.seq))
        .execution_options(yield_per=BATCH_ROWS)
    )
    result = await session.stream(query)
    if format is ExportFormat.CSV:
        yield _csv([], pseudonym_key, header=True)
    async for rows in result.partitions():
        if on_rows is not None:
            on_rows(len(rows))
        if format is ExportFormat.CSV:
            yield _csv(rows, pseudonym_key, header=False)
        else:
            yield _jsonl(rows, pseudonym_key)
