"""Property: whichever role calls and whatever it sends, the hub answers without INTERNAL, without
the value in any error or log line, and with no record outside the caller's rows (issue 17).

The operations and hostile values are test_fuzz_inputs.py's. Here each example is sent with one
role's token (its organisation in tests/scenario.py), asks for the fields that would show a record
(ids, police references, children's names and references), and may carry what a role is most
tempted to reach for: the ids, references and cursors of records outside its rows (another force's,
another council's children, another school's pupil). No outside id, reference or name may appear
anywhere in any answer. A random draw meets a given role, operation and record only by luck, so
every way of naming a record is also sent with every outside record, as every role.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.access.models import Role
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    OTHER_COUNCIL,
    OTHER_FORCE,
    REPORT_INCIDENT,
    child,
    incident,
)
from tests.scenario import ORGANISATION_OF, OTHER_SCHOOL, Side, World
from tests.server_log import capturing
from tests.test_fuzz_inputs import (
    BY_KIND,
    ID,
    MARK,
    OPERATIONS,
    Fuzz,
    _operations,
    _put,
    _written,
    assert_answered,
    wrong_type,
)

CHILD = "id givenName familyName references { value }"
INCIDENT = f"id policeReference children {{ child {{ {CHILD} }} }}"
EPISODE = f"id policeReference child {{ {CHILD} }}"
INVESTIGATION = f"id policeReference incidents {{ id policeReference }} children {{ {CHILD} }}"
CHILD_RECORDS = (
    f"{CHILD} incidents {{ id policeReference }} missingEpisodes {{ id policeReference }}"
    " investigations { id policeReference }"
)
EVENT = "recordId children recordOwner { id }"
PUSHED = {
    "reportIncident": INCIDENT,
    "recordMissingEpisode": EPISODE,
    "updateMissingEpisode": EPISODE,
    "recordReturnInterview": EPISODE,
    "updateInvestigationStatus": INVESTIGATION,
}
LISTED = {
    "incidents": INCIDENT,
    "missingEpisodes": EPISODE,
    "investigations": INVESTIGATION,
    "accessEvents": EVENT,
    "recordAccessHistory": EVENT,
}
# Each operation's selection, widened to whatever would show a record; `acknowledge` answers a
# receipt, which names no record.
WIDENED: dict[str, list[tuple[str, str]]] = {
    **{name: [("{ id }", f"{{ {fields} }}")] for name, fields in PUSHED.items()},
    **{
        name: [("edges { cursor }", f"edges {{ cursor node {{ {f} }} }}")]
        for name, f in LISTED.items()
    },
    "sharingReport": [("{ breachCount }", "{ breachCount breaches { recordId child } }")],
    "records by id": [
        ("child(id: $id) { id }", f"child(id: $id) {{ {CHILD_RECORDS} }}"),
        ("incident(id: $id) { id }", f"incident(id: $id) {{ {INCIDENT} }}"),
        ("missingEpisode(id: $id) { id }", f"missingEpisode(id: $id) {{ {EPISODE} }}"),
        ("investigation(id: $id) { id }", f"investigation(id: $id) {{ {INVESTIGATION} }}"),
    ],
    "_entities": [
        (
            "... on Incident { id }",
            (
                f"... on Incident {{ {INCIDENT} }} ... on Child {{ {CHILD_RECORDS} }}"
                f" ... on MissingEpisode {{ {EPISODE} }} ... on Investigation {{ {INVESTIGATION} }}"
            ),
        )
    ],
    "acknowledge": [],
}
TYPES = ["Incident", "Child", "MissingEpisode", "Investigation"]
LISTS = ("incidents", "missingEpisodes", "investigations")
ROLES = sorted(Role)


def widened(name: str, query: str) -> str:
    for old, new in WIDENED[name]:
        assert old in query, (name, old)  # the operation changed: widen it again
        query = query.replace(old, new)
    return query


@dataclasses.dataclass(frozen=True)
class Secrets:
    """What identifies the records outside the callers' rows, and inputs that point at them."""

    records: frozenset[str]  # ids of incidents, missing episodes, investigations
    children: frozenset[str]  # children's ids
    references: frozenset[str]  # police references of the records and of the children
    names: frozenset[str]  # children's given and family names
    cursors: tuple[tuple[str, str], ...]  # their owners' cursors: (list, cursor)
    nhs_number: str  # the named outside child's
    linked: str  # an inside child, the force's own, linked by that NHS number to the outside one

    def for_role(self, role: Role) -> frozenset[str]:
        if role is Role.AUDITOR:
            # An inspectorate reads the whole audit: records' ids are in it by right, children
            # only by pseudonym, and never a reference or a name.
            return self.children | self.references | self.names
        return self.records | self.children | self.references | self.names


def leaked(body: dict[str, Any], secrets: frozenset[str]) -> list[str]:
    text = json.dumps(body)
    return sorted(secret for secret in secrets if secret in text)


def _letters(prefix: str) -> str:
    # A name no other record carries (names are letters; the factories all use "Alex Example").
    return prefix + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def _values(body: Any, key: str) -> Iterator[str]:
    if isinstance(body, dict):
        for k, v in body.items():
            if k == key and isinstance(v, str):
                yield v
            yield from _values(v, key)
    elif isinstance(body, list):
        for item in body:
            yield from _values(item, key)


class Owner:
    """A role that holds the outside records, asking for them."""

    def __init__(self, http: httpx.AsyncClient, server: LiveServer, role: Role, org: str) -> None:
        self.http = http
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.token(role, org)}"}

    async def __call__(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(
            self.server.graphql_url,
            json={"query": query, "variables": variables},
            headers=self.headers,
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body


async def _incident(force: Owner, council: str, **kid: Any) -> dict[str, Any]:
    pupil = child(unique("FZ-C"), council=council, **kid)
    payload = incident(
        unique("FZ-I"), council=council, children=[{"child": pupil, "present": True}]
    )
    body = await force(REPORT_INCIDENT, {"input": payload})
    pushed: dict[str, Any] = body["data"]["reportIncident"]
    return pushed


async def _cursors(owner: Owner) -> list[tuple[str, str]]:
    query = "{ %s(first: 2) { edges { cursor } } }"
    found: list[tuple[str, str]] = []
    for name in LISTS:
        found += [(name, cursor) for cursor in _values(await owner(query % name, {}), "cursor")]
    return found


async def gather(http: httpx.AsyncClient, server: LiveServer, outside: Side) -> Secrets:
    force = Owner(http, server, Role.POLICE_OFFICER, OTHER_FORCE)
    council = Owner(http, server, Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL)
    # One more outside incident: its pupil at the other school has a name of its own, and an
    # NHS number the inside force's own child also has (linked, never shown across).
    names, nhs = (_letters("Zed"), _letters("Quill")), str(uuid.uuid4().int)[:10]
    named = await _incident(
        force,
        OTHER_COUNCIL,
        school=OTHER_SCHOOL,
        givenName=names[0],
        familyName=names[1],
        nhsNumber=nhs,
    )
    ours = await _incident(Owner(http, server, Role.POLICE_OFFICER, FORCE), COUNCIL, nhsNumber=nhs)
    records = {outside.incident, outside.missing_episode, outside.investigation, named["id"]}
    children = {outside.child, outside.sibling, outside.missing_child}
    children |= {c["child"]["id"] for c in named["children"]}
    query = f"""query($i: ID!, $m: ID!, $v: ID!, $n: ID!) {{
      a: incident(id: $i) {{ {INCIDENT} }} b: missingEpisode(id: $m) {{ {EPISODE} }}
      c: investigation(id: $v) {{ {INVESTIGATION} }} d: incident(id: $n) {{ {INCIDENT} }} }}"""
    ids = {"i": outside.incident, "m": outside.missing_episode, "v": outside.investigation}
    body = await force(query, {**ids, "n": named["id"]})
    assert None not in body["data"].values(), body
    references = {*_values(body, "policeReference"), *_values(body, "value")}
    return Secrets(
        records=frozenset(records),
        children=frozenset(children),
        references=frozenset(references),
        names=frozenset(names),
        cursors=tuple(await _cursors(force) + await _cursors(council)),
        nhs_number=nhs,
        linked=ours["children"][0]["child"]["id"],
    )


@pytest.fixture(scope="module")
async def secrets(live_server: LiveServer, world: World) -> AsyncIterator[Secrets]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield await gather(http, live_server, world.outside)


def _pointing(
    name: str, path: tuple[Any, ...], kind: str, secrets: Secrets, world: World
) -> st.SearchStrategy[Any] | None:
    """Where a field points at records: records on either side (None where it does not)."""
    inside = [world.inside.incident, world.inside.child, secrets.linked]
    ids = st.sampled_from([*sorted(secrets.records | secrets.children), *inside])
    references = st.sampled_from(sorted(secrets.references))
    by_field = {
        "after": st.sampled_from([cursor for _, cursor in secrets.cursors]),
        "recordType": st.sampled_from(TYPES),
        "incidentReferences": st.lists(references, min_size=1, max_size=2),
        "nhsNumber": st.just(secrets.nhs_number),
    }
    if kind == ID:
        return ids
    if path == ("representations", 0):
        return st.fixed_dictionaries({"__typename": st.sampled_from(TYPES), "id": ids})
    # Only an update names an existing record by reference; a new push under another force's
    # reference is the caller's own record, rightly echoed back.
    if name == "updateMissingEpisode" and path[-1] == "policeReference":
        return references
    return by_field.get(path[-1])


def _fields(name: str) -> dict[tuple[Any, ...], str]:
    return _operations("X")[name][3]


@st.composite
def cases(
    draw: st.DrawFn, secrets: Secrets, world: World
) -> tuple[Role, str, tuple[Any, ...], Any]:
    """Half the examples aim at records (a field that points at one, given a record's id,
    reference or cursor); the others send a hostile value to any field."""
    role = draw(st.sampled_from(ROLES))
    aimable = [
        (name, path)
        for name in OPERATIONS
        for path, kind in sorted(_fields(name).items(), key=repr)
        if _pointing(name, path, kind, secrets, world) is not None
    ]
    if draw(st.booleans()):
        name, path = draw(st.sampled_from(aimable))
        pointing = _pointing(name, path, _fields(name)[path], secrets, world)
        assert pointing is not None
        return role, name, path, draw(pointing)
    name = draw(st.sampled_from(OPERATIONS))
    path = draw(st.sampled_from(sorted(_fields(name), key=repr)))
    return role, name, path, draw(st.one_of(BY_KIND[_fields(name)[path]], wrong_type))


class RoleFuzz(Fuzz):
    def __init__(self, server: LiveServer, log: Any, secrets: Secrets) -> None:
        tokens = {role: server.token(role, ORGANISATION_OF[role]) for role in Role}
        super().__init__(server, log, tokens)
        self.secrets = secrets
        self.aimed = 0  # examples that sent an outside id, reference or cursor

    def check_as(self, role: Role, name: str, path: tuple[Any, ...], value: Any) -> None:
        _, query, valid, _ = _operations(f"FZ-{uuid.uuid4().hex[:12].upper()}")[name]
        query = widened(name, query)
        variables = _put(valid, path, value)
        outside = self.secrets.for_role(role)
        sent_text = json.dumps(value)
        self.aimed += any(s in sent_text for s in (*outside, *(c for _, c in self.secrets.cursors)))
        for sent in ((query, variables), (_written(query, variables), {})):
            body = self.send(role, *sent)
            assert_answered(body.get("errors") or [], (role, name, path))
            assert leaked(body, outside) == [], (role, name, path, body)
        assert self.log.leaking(MARK) == [], (role, name, path)


def test_no_role_reaches_outside_its_rows(
    live_server: LiveServer, world: World, secrets: Secrets
) -> None:
    with capturing() as log:
        fuzz = RoleFuzz(live_server, log, secrets)

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(cases(secrets, world))
        def property_(case: tuple[Role, str, tuple[Any, ...], Any]) -> None:
            fuzz.check_as(*case)

        try:
            property_()
        finally:
            fuzz.http.close()
    assert fuzz.aimed > 0, "no example aimed at an outside record: the test tests nothing"


def aims(secrets: Secrets, outside: Side) -> list[tuple[str, tuple[Any, ...], Any]]:
    """Each operation's every way of naming a record, given each outside record it can name
    (and the inside child linked to one): (operation, field, value)."""
    ids = sorted(secrets.records | secrets.children)
    children = [outside.child, outside.sibling, outside.missing_child]
    references = sorted(secrets.references)
    named = [("records by id", ("id",), i) for i in [*ids, secrets.linked]]
    named += [("accessEvents", ("filter", "recordId"), i) for i in ids]
    named += [
        (n, ("filter", "childId"), c) for n in ("incidents", "missingEpisodes") for c in children
    ]
    named += [(n, ("after",), cursor) for n, cursor in secrets.cursors]
    for type_name in TYPES:
        record = {"__typename": type_name, "id": outside.id_of(type_name)}
        named.append(("_entities", ("representations", 0), record))
        named.append(
            ("recordAccessHistory", (), {"recordType": type_name, "recordId": record["id"]})
        )
        named.append(("acknowledge", (), {"recordType": type_name, "id": record["id"]}))
    named.append(("recordReturnInterview", ("missingEpisodeId",), outside.missing_episode))
    named += [("updateMissingEpisode", ("input", "policeReference"), r) for r in references]
    named += [
        ("updateInvestigationStatus", ("input", "incidentReferences"), [r]) for r in references
    ]
    nhs = {
        "reportIncident": ("input", "children", 0, "child", "nhsNumber"),
        "recordMissingEpisode": ("input", "child", "nhsNumber"),
        "updateInvestigationStatus": ("input", "children", 0, "nhsNumber"),
    }
    named += [(n, path, secrets.nhs_number) for n, path in nhs.items()]
    return named


@pytest.mark.parametrize("role", ROLES)
def test_no_role_is_shown_a_record_it_names_outside_its_rows(
    live_server: LiveServer, world: World, secrets: Secrets, role: Role
) -> None:
    """Every way to name a record, with every outside record: the fuzz's aim, made exhaustive
    (a random draw of role, operation and record reaches each combination only by luck)."""
    with capturing() as log:
        fuzz = RoleFuzz(live_server, log, secrets)
        try:
            for name, path, value in aims(secrets, world.outside):
                _, query, valid, _ = _operations(f"FZ-{uuid.uuid4().hex[:12].upper()}")[name]
                body = fuzz.send(role, widened(name, query), _put(valid, path, value))
                assert_answered(body.get("errors") or [], (role, name, path))
                assert leaked(body, secrets.for_role(role)) == [], (role, name, path, body)
        finally:
            fuzz.http.close()


@pytest.mark.parametrize("name", ["records by id", "_entities", "incidents"])
def test_the_owner_is_shown_what_the_fuzz_looks_for(
    live_server: LiveServer, world: World, secrets: Secrets, name: str
) -> None:
    """The detector's baseline: the force that pushed the outside records, asking the widened
    operation for them, receives them (so an empty `leaked` above means none was shown)."""
    _, query, valid, _ = _operations("X")[name]
    paths = {
        "records by id": (("id",), world.outside.incident),
        "_entities": (("representations", 0, "id"), world.outside.incident),
        "incidents": (("filter", "childId"), world.outside.child),
    }
    path, record = paths[name]
    with capturing() as log:
        fuzz = Fuzz(
            live_server,
            log,
            {Role.POLICE_OFFICER: live_server.token(Role.POLICE_OFFICER, OTHER_FORCE)},
        )
        try:
            body = fuzz.send(Role.POLICE_OFFICER, widened(name, query), _put(valid, path, record))
        finally:
            fuzz.http.close()
    assert leaked(body, secrets.for_role(Role.POLICE_OFFICER)) != [], body
