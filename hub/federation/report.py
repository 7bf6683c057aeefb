"""What the gateway reports of one client response: who asked, why, and what each record carried.

The gateway sends the caller's own token and context headers, not its word about the caller: the
hub verifies the token itself, so an event's who and why are the hub's finding, as for its reads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from hub.errors import InvalidInput

MAX_RECORDS = 5000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclasses.dataclass(frozen=True)
class ReportedRecord:
    """One record in the response: its type and id, and the fields each subgraph served of it."""

    type_name: str
    record_id: str
    fields_by_subgraph: Mapping[str, tuple[str, ...]]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted({f for fields in self.fields_by_subgraph.values() for f in fields}))


@dataclasses.dataclass(frozen=True)
class ResponseReport:
    caller_headers: Mapping[str, str]  # Authorization, Hub-Purpose, Hub-On-Behalf-Of
    request_id: str | None
    operation_name: str | None
    records: tuple[ReportedRecord, ...]
    subscription: bool = False  # a subscription's delivery: a disclosure, as the hub's own
    # The id the gateway sent with its fetches from the hub for this response (their events
    # are held for this report: `hub.federation.deferred`).
    report_id: str | None = None

    def served_by(self) -> dict[str, list[str]]:
        """Per subgraph, the `Type.field`s it served in this response (the event's detail)."""
        served: dict[str, set[str]] = {}
        for record in self.records:
            for subgraph, fields in record.fields_by_subgraph.items():
                served.setdefault(subgraph, set()).update(f"{record.type_name}.{f}" for f in fields)
        return {subgraph: sorted(fields) for subgraph, fields in sorted(served.items())}


def parse(body: Any) -> ResponseReport:
    """The report as sent; `InvalidInput` naming the part that is malformed (never its value)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("the report must be a JSON object", field="report")
    caller = body.get("caller")
    if not isinstance(caller, Mapping):
        raise InvalidInput("the report must name the caller", field="caller")
    headers = {
        name: str(caller[key])
        for key, name in (
            ("authorization", "Authorization"),
            ("purpose", "Hub-Purpose"),
            ("onBehalfOf", "Hub-On-Behalf-Of"),
        )
        if isinstance(caller.get(key), str)
    }
    records = body.get("records", [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise InvalidInput(f"records must be a list of at most {MAX_RECORDS}", field="records")
    return ResponseReport(
        caller_headers=headers,
        request_id=_optional_text(body, "requestId"),
        operation_name=_optional_text(body, "operationName"),
        records=tuple(_record(record, index) for index, record in enumerate(records)),
        subscription=body.get("operationType") == "subscription",
        report_id=_optional_text(body, "reportId"),
    )


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 128 or not value.isprintable():  # noqa: PLR2004 - the audit's column width
        raise InvalidInput(f"{key} must be printable text of at most 128 characters", field=key)
    return value


def _record(record: Any, index: int) -> ReportedRecord:
    place = f"records.{index}"
    if not isinstance(record, Mapping):
        raise InvalidInput("a record must be an object", field=place)
    type_name, record_id = record.get("type"), record.get("id")
    if not isinstance(type_name, str) or not _NAME.match(type_name):
        raise InvalidInput("a record's type must be a GraphQL type name", field=f"{place}.type")
    if not isinstance(record_id, str) or not _ID.match(record_id):
        raise InvalidInput("a record's id must be an identifier", field=f"{place}.id")
    fields = record.get("fields")
    if not isinstance(fields, Mapping) or not all(
        isinstance(subgraph, str)
        and _NAME.match(subgraph)
        and isinstance(names, list)
        and all(isinstance(n, str) and _NAME.match(n) for n in names)
        for subgraph, names in fields.items()
    ):
        raise InvalidInput(
            "a record's fields must map subgraph names to field names", field=f"{place}.fields"
        )
    return ReportedRecord(
        type_name=type_name,
        record_id=record_id,
        fields_by_subgraph={s: tuple(sorted(set(names))) for s, names in fields.items()},
    )
