"""A nested list query runs a constant number of SQL statements, whatever the page size."""

from __future__ import annotations

import asyncio
import inspect
import re
from types import SimpleNamespace

import httpx
import pytest
from strawberry.dataloader import DataLoader

from hub.access.models import Role
from hub.graphql.loaders import KeyCache, at_once, prime
from hub.reference.models import Organisation as OrganisationRow
from hub.reference.types import Organisation, organisation_of
from tests.conftest import LiveServer, is_postgres, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    RECORD_MISSING,
    REPORT_INCIDENT,
    UPDATE_INVESTIGATION,
    child,
    incident,
    missing_episode,
    status_change,
)

NESTED = """
query Nested($first: Int!) {
  incidents(first: $first) {
    edges { node {
      policeReference force { name } locationCouncil { name }
      children { present child { givenName responsibleCouncil { name } hostCouncil { name }
                 references { value } missingEpisodes { id } } }
    } }
  }
  investigations(first: $first) {
    edges { node { status history { toStatus } incidents { id } children { id } force { id } } }
  }
}"""


async def _seed(http: httpx.AsyncClient, server: LiveServer, count: int) -> None:
    token = server.token(Role.POLICE_OFFICER, FORCE)
    for _ in range(count):
        reference = unique("DL")
        payload = incident(
            reference,
            children=[
                {"child": child(unique("DL-C1"), hostCouncil="E06000016"), "present": True},
                {"child": child(unique("DL-C2")), "victim": True},
            ],
        )
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": REPORT_INCIDENT, "variables": {"input": payload}},
        )
        await http.post(
            server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": UPDATE_INVESTIGATION,
                "variables": {
                    "input": status_change(
                        unique("DL-INV"), "OPEN", hours=1, incidentReferences=[reference]
                    )
                },
            },
        )


async def _statements_for(
    http: httpx.AsyncClient, server: LiveServer, first: int
) -> tuple[list[str], list[str]]:
    """(reads, audit writes) one council query ran, transaction control left out."""
    token = server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    server.statements.clear()
    response = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": NESTED, "variables": {"first": first}},
    )
    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]["incidents"]["edges"]) == first
    statements = [
        s
        for s in server.statements
        if not s.startswith(("BEGIN", "COMMIT")) and not _in_any_request(s)
    ]
    # A council's read also notes its first sight of each record, in the audit's transaction.
    writes = [s for s in statements if "audit_" in s or "record_receipt" in s]
    return [s for s in statements if s not in writes], writes


def _in_any_request(statement: str) -> bool:
    """Whether `statement` is one that lands in whichever request comes when it runs, left out
    of what a request is counted for: the audit indexer's catch-up (`chain.catch_up`), which
    runs after a response's commit, off the request path, whenever the process gets to it;
    and the revocation list's refresh (`hub.access.revocation`), once its few seconds are up."""
    return "audit_index_progress" in statement or "FROM oauth_client" in statement


async def test_statement_count_does_not_grow_with_page_size(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await _seed(http, live_server, 12)
    small_reads, small_writes = await _statements_for(http, live_server, 2)
    large_reads, large_writes = await _statements_for(http, live_server, 12)
    small_lookups, large_lookups = _audit_lookups(small_reads), _audit_lookups(large_reads)
    assert len(small_reads) - len(small_lookups) == len(large_reads) - len(large_lookups), (
        small_reads,
        large_reads,
    )
    assert len(small_writes) == len(large_writes)
    # Two roots and one statement per loader level below them. The audit looks up the
    # children of records whose children the loaders did not fetch (here the incidents under
    # investigations): at most one statement per record type.
    assert len(large_reads) - len(large_lookups) <= 11
    assert len(large_lookups) <= 2
    # The audit of the whole response: on PostgreSQL one statement (events, the head, the
    # receipts); on SQLite the head read, the events, the head moved and the receipts. On
    # both the index rows come after.
    assert len(large_writes) == (1 if is_postgres() else 4), large_writes


_AUDIT_LOOKUP = re.compile(
    r"^SELECT (incident_child\.incident_id, incident_child\.child_id"
    r"|investigation_child\.investigation_id, investigation_child\.child_id)\s+FROM"
)


def _audit_lookups(statements: list[str]) -> list[str]:
    """The audit's own lookups of the children records concern (two columns, no scope)."""
    return [s for s in statements if _AUDIT_LOOKUP.match(s)]


PAGE_BY_FRAGMENTS = """
query Page($first: Int!) {
  incidents(first: $first) { edges { ...Edge } }
}
fragment Edge on IncidentEdge { node { ... on Incident { ...Record } } }
fragment Record on Incident {
  policeReference force { name } locationCouncil { name }
  children { present child { givenName } }
}"""

PAGE_WITHOUT_CHILDREN = """
query Page($first: Int!) { incidents(first: $first) { edges { node { policeReference } } } }"""


async def _page_statements(
    http: httpx.AsyncClient, server: LiveServer, query: str, first: int
) -> tuple[dict[str, object], list[str]]:
    token = server.token(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    server.statements.clear()
    response = await http.post(
        server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": {"first": first}},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"], [s for s in server.statements if s.startswith(("SELECT", "WITH page"))]


async def test_a_page_loads_what_its_items_ask_for_through_fragments(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    """The page's own statement brings the items' organisations, and their links with each
    one's child, whatever the page size, reached through named and inline fragments."""
    await _seed(http, live_server, 3)
    data, statements = await _page_statements(http, live_server, PAGE_BY_FRAGMENTS, 3)
    edges = data["incidents"]["edges"]  # type: ignore[index]
    assert len(edges) == 3
    for edge in edges:
        node = edge["node"]
        assert node["force"]["name"]
        assert node["locationCouncil"]["name"]
        assert [c["child"]["givenName"] for c in node["children"]] != []
        assert all(c["child"]["givenName"] for c in node["children"])
    # The organisations came with the incidents: none loaded after them.
    assert [s for s in statements if s.startswith("SELECT organisation.")] == [], statements
    # PostgreSQL chooses the page's rows first (`WITH page`), then adds their children.
    [page] = [s for s in statements if s.startswith(("SELECT incident.", "WITH page AS"))]
    assert "LEFT OUTER JOIN organisation AS force__organisation" in page, page
    assert "LEFT OUTER JOIN organisation AS council__organisation" in page, page
    # The links and their children came with the incidents too, in the page's statement.
    assert [s for s in statements if s.startswith("SELECT child.")] == [], statements
    assert [s for s in statements if s.startswith("SELECT incident_child.")] == [], statements
    assert "FROM incident_child JOIN child ON" in page, page
    nested = "json_agg(json_build_array(" if is_postgres() else "json_group_array(json_array("
    assert nested in page, page
    if is_postgres():  # once for the page, not a SELECT correlated with each incident
        assert "GROUP BY incident_child.incident_id" in page, page


async def test_a_page_loads_nothing_its_selection_does_not_name(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await _seed(http, live_server, 2)
    _, statements = await _page_statements(http, live_server, PAGE_WITHOUT_CHILDREN, 2)
    loaded = [s for s in statements if s.startswith(("SELECT organisation.", "SELECT child."))]
    assert loaded == [], statements
    links = [s for s in statements if s.startswith("SELECT incident_child.")]
    # Only the audit's own lookup of the records' children, which every served incident needs.
    assert links == _audit_lookups(statements), statements


MISSING_PAGE = """
query Missing($first: Int!) { missingEpisodes(first: $first) { edges { node {
  policeReference riskGrade status force { name } lastSeenCouncil { name }
  child { givenName responsibleCouncil { name } } } } } }"""
MISSING_BARE = """
query Missing($first: Int!) { missingEpisodes(first: $first) { edges { node {
  policeReference riskGrade } } } }"""


async def test_a_page_of_missing_episodes_loads_its_children_and_organisations_once(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    """A page's episodes ask for their children and organisations through its prefetch
    (`MissingEpisode.prefetch`): one load of each, whatever the page's size, and none of
    what its selection does not name."""
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    for _ in range(4):
        pushed = await http.post(
            live_server.graphql_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"query": RECORD_MISSING, "variables": {"input": missing_episode(unique("DL-M"))}},
        )
        assert "errors" not in pushed.json(), pushed.json()
    counts = []
    for first in (2, 4):
        data, statements = await _page_statements(http, live_server, MISSING_PAGE, first)
        edges = data["missingEpisodes"]["edges"]  # type: ignore[index]
        assert len(edges) == first
        for edge in edges:
            node = edge["node"]
            assert node["force"]["name"], node
            assert node["lastSeenCouncil"]["name"], node
            assert node["child"]["givenName"], node
            assert node["child"]["responsibleCouncil"]["name"], node
        children = [s for s in statements if s.startswith("SELECT child.")]
        organisations = [s for s in statements if s.startswith("SELECT organisation.")]
        assert len(children) == 1, children
        # The episodes' forces and last-seen councils in one; the children's councils after.
        assert len(organisations) <= 2, organisations
        counts.append(len([s for s in statements if not _in_any_request(s)]))
    assert counts[0] == counts[1], counts
    _, statements = await _page_statements(http, live_server, MISSING_BARE, 2)
    loaded = [s for s in statements if s.startswith(("SELECT organisation.", "SELECT child."))]
    assert loaded == [], statements


async def test_a_loaders_key_cache_serves_as_strawberrys_default_one() -> None:
    """`KeyCache`: the same futures by key, primed, loaded once, cleared one by one or all."""
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        batches.append(keys)
        return [key.upper() for key in keys]

    ours: DataLoader[str, str] = DataLoader(load_fn=load, cache_map=KeyCache())
    ours.prime("p", "primed")
    assert await ours.load_many(["a", "b", "a", "p"]) == ["A", "B", "A", "primed"]
    assert await ours.load("b") == "B"
    assert batches == [["a", "b"]]
    ours.clear("a")
    assert await ours.load("a") == "A"
    assert batches == [["a", "b"], ["a"]]
    ours.clear_all()
    assert await ours.load_many(["a", "p"]) == ["A", "P"]
    assert batches[-1] == ["a", "p"]


async def test_prime_keeps_what_was_loaded_and_settles_a_waiting_load() -> None:
    """`prime`: as strawberry's `prime_many`, a key loaded before keeps its value, the rest are
    finished at once, and a load still waiting for its batch takes the primed value."""
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        batches.append(keys)
        return [key.upper() for key in keys]

    loader: DataLoader[str, str] = DataLoader(load_fn=load, cache_map=KeyCache())
    assert await loader.load("a") == "A"
    prime(loader, {"a": "primed a", "b": "primed b"})
    assert await loader.load_many(["a", "b"]) == ["A", "primed b"]
    waiting = loader.load("c")  # its batch not sent yet
    prime(loader, {"c": "primed c"})
    assert await waiting == "primed c"
    assert batches == [["a"]]


async def test_an_organisation_named_by_many_fields_is_made_once_per_request() -> None:
    """`organisation_of`: a loaded organisation is made into the type once, and every later
    field naming it gets that one; one still loading, or unknown, is not kept."""
    batches: list[list[str]] = []

    async def load(codes: list[str]) -> list[OrganisationRow | None]:
        batches.append(codes)
        return [
            OrganisationRow(code=code, name=f"Synthetic {code}", kind="police_force")
            if code.startswith("F")
            else None
            for code in codes
        ]

    def request() -> SimpleNamespace:
        loaders = SimpleNamespace(
            organisation=DataLoader(load_fn=load, cache_map=KeyCache()), made_organisations={}
        )
        return SimpleNamespace(context=SimpleNamespace(loaders=loaders))

    info = request()
    waiting = organisation_of(info, "F1")  # what the field reads
    assert not isinstance(waiting, Organisation)
    first = await waiting  # loading: an awaitable
    assert info.context.loaders.made_organisations == {}  # made once loaded, not before
    again = organisation_of(info, "F1")
    assert isinstance(again, Organisation)
    assert again == first
    assert organisation_of(info, "F1") is again
    assert await organisation_of(info, "X9") is None
    assert organisation_of(info, "X9") is None
    assert set(info.context.loaders.made_organisations) == {"F1"}
    other = organisation_of(request(), "F1")  # another request
    assert not isinstance(other, Organisation)  # loads anew: nothing outlives a request
    assert await other == again
    assert batches == [["F1"], ["X9"], ["F1"]]


async def test_at_once_completes_from_a_finished_load_and_awaits_any_other() -> None:
    """`at_once`: a value already loaded is completed at once, without an awaitable; a load
    not finished, failed or cancelled is the loader's to answer (a failure raised there, a
    cancelled load loaded again)."""
    asked: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        asked.append(keys)
        return [f"loaded {key}" for key in keys]

    loader: DataLoader[str, str] = DataLoader(load_fn=load)
    loop = asyncio.get_running_loop()
    done, failed, cancelled = loop.create_future(), loop.create_future(), loop.create_future()
    done.set_result("ready")
    failed.set_exception(LookupError("gone"))
    cancelled.cancel()
    for key, future in {"done": done, "failed": failed, "cancelled": cancelled}.items():
        loader.cache_map.set(key, future)

    assert at_once(loader, "done", str.upper) == "READY"
    later = at_once(loader, "new", str.upper)
    assert inspect.isawaitable(later)
    assert await later == "LOADED NEW"
    assert asked == [["new"]]
    failing = at_once(loader, "failed", str.upper)
    assert inspect.isawaitable(failing)
    with pytest.raises(LookupError) as raised:
        await failing
    assert str(raised.value) == "gone"  # the loader's own failure, as it raised it
    # A cancelled load is no answer: the loader loads the key again.
    again = at_once(loader, "cancelled", str.upper)
    assert inspect.isawaitable(again)
    assert await again == "LOADED CANCELLED"
    assert asked == [["new"], ["cancelled"]]
