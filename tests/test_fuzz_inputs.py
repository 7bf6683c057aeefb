"""Property: whatever goes into any input field, the hub answers without INTERNAL, without the
value in any error or log line, and stores nothing from a push it refused (issue 12).

Each example takes one operation of the contract, one of its input fields, and a hostile value
(arbitrary text with NUL, controls, lone surrogates, quotes or 5,000 characters; extreme dates;
the wrong JSON type), each carrying a marker. It is sent to the live hub twice, as a variable and
written into the query, with a real token.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.access.models import Role
from hub.db import Database
from hub.incidents.models import Incident
from hub.investigations.models import Investigation
from hub.missing.models import MissingEpisode
from tests.conftest import LiveServer
from tests.factories import (
    COUNCIL,
    FORCE,
    child,
    hours_ago,
    incident,
    iso,
    missing_episode,
    status_change,
)
from tests.server_log import Captured, capturing

MARK = "FUZZMARK"
NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*\Z")

# Field kinds decide the hostile values tried; enum fields are written bare in a literal.
TEXT, DATETIME, DATE, BOOL, ENUM, ID, INT, LIST = (
    "text", "datetime", "date", "bool", "enum", "id", "int", "list"
)  # fmt: skip

CHILD_FIELDS = {
    "policeReference": TEXT,
    "givenName": TEXT,
    "familyName": TEXT,
    "dateOfBirth": DATE,
    "nhsNumber": TEXT,
    "responsibleCouncil": TEXT,
    "hostCouncil": TEXT,
    "lookedAfter": BOOL,
    "school": TEXT,
}


def _child_paths(prefix: tuple[Any, ...]) -> dict[tuple[Any, ...], str]:
    return {(*prefix, name): kind for name, kind in CHILD_FIELDS.items()}


def _push(name: str, argument: str, type_: str) -> str:
    return f"mutation(${argument}: {type_}) {{ {name}({argument}: ${argument}) {{ id }} }}"


# name: (role, query, arguments' types, valid arguments (a fresh reference each time), fields)
def _operations(reference: str) -> dict[str, tuple[Role, str, dict[str, Any], dict]]:
    filter_query = (
        "query($filter: {t}, $first: Int, $after: String) {{ {f}(filter: $filter, first: $first,"
        " after: $after) {{ edges {{ cursor }} }} }}"
    )
    read = Role.COUNCIL_SOCIAL_WORKER
    return {
        "reportIncident": (
            Role.POLICE_OFFICER,
            _push("reportIncident", "input", "ReportIncidentInput!"),
            {"input": incident(reference)},
            {
                ("input", "policeReference"): TEXT,
                ("input", "type"): ENUM,
                ("input", "occurredAt"): DATETIME,
                ("input", "recordedAt"): DATETIME,
                ("input", "locationCouncil"): TEXT,
                ("input", "dashRisk"): ENUM,
                ("input", "summary"): TEXT,
                ("input", "operationalNotes"): TEXT,
                ("input", "idempotencyKey"): TEXT,
                ("input", "children"): LIST,
                ("input", "children", 0, "present"): BOOL,
                ("input", "children", 0, "victim"): BOOL,
                **_child_paths(("input", "children", 0, "child")),
            },
        ),
        "recordMissingEpisode": (
            Role.POLICE_OFFICER,
            _push("recordMissingEpisode", "input", "RecordMissingEpisodeInput!"),
            {"input": missing_episode(reference)},
            {
                ("input", "policeReference"): TEXT,
                ("input", "reportedMissingAt"): DATETIME,
                ("input", "recordedAt"): DATETIME,
                ("input", "riskGrade"): ENUM,
                ("input", "lastSeenCouncil"): TEXT,
                ("input", "missingFrom"): ENUM,
                ("input", "riskFramework"): TEXT,
                ("input", "idempotencyKey"): TEXT,
                **_child_paths(("input", "child")),
            },
        ),
        "updateMissingEpisode": (
            Role.POLICE_OFFICER,
            _push("updateMissingEpisode", "input", "UpdateMissingEpisodeInput!"),
            {"input": {"policeReference": reference, "status": "FOUND", "at": iso(hours_ago(1))}},
            {
                ("input", "policeReference"): TEXT,
                ("input", "status"): ENUM,
                ("input", "at"): DATETIME,
                ("input", "riskGrade"): ENUM,
            },
        ),
        "updateInvestigationStatus": (
            Role.POLICE_OFFICER,
            _push("updateInvestigationStatus", "input", "UpdateInvestigationStatusInput!"),
            {
                "input": status_change(
                    reference, "OPEN", hours=1, children=[child(f"{reference}-C")]
                )
            },
            {
                ("input", "policeReference"): TEXT,
                ("input", "status"): ENUM,
                ("input", "changedAt"): DATETIME,
                ("input", "reason"): TEXT,
                ("input", "incidentReferences"): LIST,
                ("input", "idempotencyKey"): TEXT,
                **_child_paths(("input", "children", 0)),
            },
        ),
        "acknowledge": (
            read,
            (
                "mutation($recordType: String!, $id: ID!) "
                "{ acknowledge(recordType: $recordType, id: $id) { acknowledgedAt } }"
            ),
            {"recordType": "Incident", "id": str(uuid.uuid4())},
            {("recordType",): TEXT, ("id",): ID},
        ),
        "recordReturnInterview": (
            read,
            (
                "mutation($missingEpisodeId: ID!, $heldAt: DateTime!) { recordReturnInterview("
                "missingEpisodeId: $missingEpisodeId, heldAt: $heldAt) { id } }"
            ),
            {"missingEpisodeId": str(uuid.uuid4()), "heldAt": iso(hours_ago(1))},
            {("missingEpisodeId",): ID, ("heldAt",): DATETIME},
        ),
        "incidents": (
            read,
            filter_query.format(t="IncidentFilterInput", f="incidents"),
            {"filter": {"childId": None}, "first": 5, "after": None},
            {
                ("filter", "childId"): ID,
                ("filter", "occurredFrom"): DATETIME,
                ("filter", "occurredTo"): DATETIME,
                ("filter", "types"): LIST,
                ("first",): INT,
                ("after",): TEXT,
            },
        ),
        "missingEpisodes": (
            read,
            filter_query.format(t="MissingEpisodeFilterInput", f="missingEpisodes"),
            {"filter": {"childId": None}, "first": 5, "after": None},
            {
                ("filter", "childId"): ID,
                ("filter", "reportedFrom"): DATETIME,
                ("filter", "reportedTo"): DATETIME,
                ("filter", "statuses"): LIST,
            },
        ),
        "investigations": (
            read,
            filter_query.format(t="InvestigationFilterInput", f="investigations"),
            {"filter": {"childId": None}, "first": 5, "after": None},
            {("filter", "changedFrom"): DATETIME, ("filter", "statuses"): LIST},
        ),
        "accessEvents": (
            Role.AUDITOR,
            filter_query.format(t="AccessEventFilterInput", f="accessEvents"),
            {"filter": {"user": None}, "first": 5, "after": None},
            {
                ("filter", "user"): TEXT,
                ("filter", "organisation"): TEXT,
                ("filter", "recordType"): TEXT,
                ("filter", "recordId"): ID,
                ("filter", "purpose"): TEXT,
                ("filter", "occurredFrom"): DATETIME,
                ("after",): TEXT,
            },
        ),
        "sharingReport": (
            Role.AUDITOR,
            (
                "query($from: Date!, $to: Date!, $force: String, $council: String, $kind: String)"
                " { sharingReport(from: $from, to: $to, force: $force, council: $council,"
                " kind: $kind) { breachCount } }"
            ),
            {
                "from": "2026-01-01",
                "to": "2026-01-31",
                "force": None,
                "council": None,
                "kind": None,
            },
            {("from",): DATE, ("to",): DATE, ("force",): TEXT, ("council",): TEXT, ("kind",): TEXT},
        ),
        "records by id": (
            read,
            (
                "query($id: ID!) { child(id: $id) { id } incident(id: $id) { id }"
                " missingEpisode(id: $id) { id } investigation(id: $id) { id } }"
            ),
            {"id": str(uuid.uuid4())},
            {("id",): ID},
        ),
        "recordAccessHistory": (
            Role.AUDITOR,
            (
                "query($recordType: String!, $recordId: ID!) { recordAccessHistory(recordType:"
                " $recordType, recordId: $recordId) { edges { cursor } } }"
            ),
            {"recordType": "Incident", "recordId": str(uuid.uuid4())},
            {("recordType",): TEXT, ("recordId",): ID},
        ),
        "_entities": (
            read,
            (
                "query($representations: [_Any!]!) { _entities(representations: $representations)"
                " { ... on Incident { id } } }"
            ),
            {"representations": [{"__typename": "Incident", "id": str(uuid.uuid4())}]},
            {
                ("representations", 0, "id"): ID,
                ("representations", 0, "__typename"): TEXT,
                ("representations", 0): TEXT,
            },
        ),
    }


OPERATIONS = sorted(_operations("X"))
PUSHES = {"reportIncident": Incident, "recordMissingEpisode": MissingEpisode}
PUSHES["updateInvestigationStatus"] = Investigation

_ODD = [
    "\x00",
    "\ud800",
    "\udfff",
    "\x1b",
    "\x7f",
    "\n",
    "\t",
    "'",
    '"',
    "\\",
    "\u2028",
    "x" * 5000,
]
_pieces = st.one_of(st.text(max_size=20), st.sampled_from(_ODD))
text = st.builds(lambda a, b: f"{a}{MARK}{b}", _pieces, _pieces)
datetimes = st.sampled_from(
    [
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "9999-12-31T23:59:59+00:00",
        "1899-12-31T23:59:59Z",
        "2026-02-30T10:00:00Z",
        "2026-01-05T10:00:00",
    ]
)
dates = st.sampled_from(["0001-01-01", "9999-12-31", "1899-12-31", "2015-02-29", "2015-13-45"])
wrong_type = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(text, max_size=2),
    st.dictionaries(st.sampled_from(["a", MARK, "id"]), text, max_size=2),
)
BY_KIND = {
    TEXT: text,
    DATETIME: datetimes | text,
    DATE: dates | text,
    BOOL: text,
    ENUM: text | st.just(f"{MARK}_NOT_A_VALUE"),
    ID: text,
    INT: text,
    LIST: text,
}


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(value, list):
        copy = list(value)
        copy[head] = _put(copy[head], tuple(rest), new)
        return copy
    return {**value, head: _put((value or {}).get(head), tuple(rest), new)}


def _literal(value: Any, enum: bool) -> str:
    """A JSON value written as a GraphQL literal (strings escaped as JSON does, which GraphQL
    reads the same); a name at an enum field is written bare."""
    if isinstance(value, dict):
        fields = ", ".join(f"{k}: {_literal(v, enum=False)}" for k, v in value.items())
        return "{" + fields + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, enum=enum) for v in value) + "]"
    if isinstance(value, str) and enum and NAME.match(value):
        return value
    return "null" if value is None else json.dumps(value)


ENUM_NAMES = {"type", "dashRisk", "riskGrade", "missingFrom", "status", "types", "statuses"}


def _written(query: str, variables: dict[str, Any]) -> str:
    """The operation with its variables written into the query instead."""
    body = query[query.index("{") :]
    for name, value in variables.items():
        body = re.sub(rf"\${name}\b", lambda _, v=value, n=name: _literal(v, n in ENUM_NAMES), body)
    keyword = query.split("(", 1)[0].split("{", 1)[0].strip()
    return f"{keyword} {_enums_bare(body)}"


def _enums_bare(body: str) -> str:
    # Enum fields inside input objects: `type: "DOMESTIC_ABUSE"` -> `type: DOMESTIC_ABUSE`.
    names = "|".join(ENUM_NAMES)
    return re.sub(rf'\b({names}): "([_A-Za-z][_0-9A-Za-z]*)"', r"\1: \2", body)


def assert_answered(errors: list[dict[str, Any]], case: tuple[Any, ...]) -> None:
    """No INTERNAL, every error coded, and no hostile value echoed in any error."""
    codes = [e.get("extensions", {}).get("code") for e in errors]
    assert "INTERNAL" not in codes, (*case, errors)
    assert None not in codes, (*case, errors)
    assert MARK not in json.dumps(errors), (*case, errors)


class Fuzz:
    def __init__(
        self, server: LiveServer, log: Captured, tokens: dict[Role, str] | None = None
    ) -> None:
        self.server = server
        self.log = log
        self.http = httpx.Client(timeout=30)
        self.refused: dict[str, list[str]] = {name: [] for name in PUSHES}
        self.tokens = tokens or {
            role: server.token(role, FORCE if role is Role.POLICE_OFFICER else COUNCIL)
            for role in Role
        }
        if tokens is None:
            self.tokens[Role.AUDITOR] = server.token(Role.AUDITOR, "OFSTED")

    def send(self, role: Role, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            self.server.graphql_url,
            content=json.dumps({"query": query, "variables": variables}),
            headers={
                "Authorization": f"Bearer {self.tokens[role]}",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        return body

    def check(self, name: str, path: tuple[Any, ...], value: Any) -> None:
        reference = f"FZ-{uuid.uuid4().hex[:12].upper()}"
        role, query, valid, _ = _operations(reference)[name]
        variables = _put(valid, path, value)
        for sent_query, sent_variables in (
            (query, variables),
            (_written(query, variables), {}),
        ):
            body = self.send(role, sent_query, sent_variables)
            errors = body.get("errors") or []
            assert_answered(errors, (name, path))
            if errors and name in PUSHES and path != ("input", "policeReference"):
                self.refused[name].append(reference)
        assert self.log.leaking(MARK) == [], (name, path)

    async def stored(self, database_url: str) -> list[str]:
        database = Database(database_url)
        found: list[str] = []
        try:
            async with database.transaction(write=False) as session:
                for name, model in PUSHES.items():
                    references = self.refused[name]
                    if references:
                        column = model.police_reference  # type: ignore[attr-defined]
                        rows = await session.scalars(
                            sa.select(column).where(column.in_(references))
                        )
                        found += list(rows)
        finally:
            await database.dispose()
        return found


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, tuple[Any, ...], Any]:
    name = draw(st.sampled_from(OPERATIONS))
    fields = _operations("X")[name][3]
    path = draw(st.sampled_from(sorted(fields, key=repr)))
    value = draw(st.one_of(BY_KIND[fields[path]], wrong_type))
    return name, path, value


def test_no_input_makes_the_hub_leak_or_fail(live_server: LiveServer, database_url: str) -> None:
    with capturing() as log:
        fuzz = Fuzz(live_server, log)

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(cases())
        def property_(case: tuple[str, tuple[Any, ...], Any]) -> None:
            fuzz.check(*case)

        try:
            property_()
        finally:
            fuzz.http.close()
    assert sum(map(len, fuzz.refused.values())) > 0, "no push was refused: the test tests nothing"
    assert asyncio.run(fuzz.stored(database_url)) == [], "a refused push was stored"


@pytest.mark.parametrize("name", OPERATIONS)
def test_every_operation_is_valid_as_sent(live_server: LiveServer, name: str) -> None:
    """The fuzz's baseline: each operation, unchanged, is accepted in both forms (so a refusal
    in the property is the hostile value's doing)."""
    role, query, valid, _ = _operations(f"FZ-{uuid.uuid4().hex[:12].upper()}")[name]
    with capturing() as log:
        fuzz = Fuzz(live_server, log)
        try:
            for sent in ((query, valid), (_written(query, valid), {})):
                errors = fuzz.send(role, *sent).get("errors") or []
                codes = {e["extensions"]["code"] for e in errors}
                assert codes <= {"NOT_FOUND", "FORBIDDEN"}, (name, sent[0], errors)
        finally:
            fuzz.http.close()
