"""A nested list query runs a constant number of SQL statements, whatever the page size."""

from __future__ import annotations

import httpx

from hub.access.models import Role
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    REPORT_INCIDENT,
    UPDATE_INVESTIGATION,
    child,
    incident,
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
    statements = [s for s in server.statements if not s.startswith(("BEGIN", "COMMIT"))]
    # A council's read also notes its first sight of each record, in the audit's transaction.
    writes = [s for s in statements if "audit_" in s or "record_receipt" in s]
    return [s for s in statements if s not in writes], writes


async def test_statement_count_does_not_grow_with_page_size(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await _seed(http, live_server, 12)
    small_reads, small_writes = await _statements_for(http, live_server, 2)
    large_reads, large_writes = await _statements_for(http, live_server, 12)
    assert len(small_reads) == len(large_reads), (small_reads, large_reads)
    assert len(small_writes) == len(large_writes)
    # Two roots and one statement per loader level below them, plus the audit's lookup of the
    # children that incidents and investigations concern (one statement each).
    assert len(large_reads) <= 13
    # The audit of the whole response: the chain head, the events, their children, the head
    # moved (one statement for all of it on PostgreSQL but the head lock), and the receipts.
    assert len(large_writes) <= 5
