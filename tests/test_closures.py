"""Closures need the council's view (issue 14, item 1), through uvicorn with real tokens.

A force closing an investigation about children tells each council of those children at once
(recordChanges); a council agrees or challenges; a challenge reaches the force, which reopens
(a status change linked to the challenge) or upholds. Idempotent, validated, scoped per role,
audited, and counted in `closureFigures`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from hub.access.models import Role
from hub.closures.models import ClosureReview
from hub.db import Database
from hub.investigations.models import InvestigationTransition
from tests.conftest import LiveServer, unique
from tests.factories import (
    COUNCIL,
    FORCE,
    HOST_COUNCIL,
    OTHER_COUNCIL,
    OTHER_FORCE,
    REPORT_INCIDENT,
    UPDATE_INVESTIGATION,
    child,
    incident,
    iso,
)
from tests.test_audit_trail import _events
from tests.test_subscription_fanout import _joined, fanout_server
from tests.test_subscriptions import WAIT, _latest_cursor, _ws_url

__all__ = ["fanout_server"]  # the fixture, for the fan-out test below

REVIEW_FIELDS = """
  id council { id } force { id } closedAt requestedAt response challengeReason responseText
  respondedAt challengeOpen answer answerReason answerText answeredAt
  closure { toStatus changedAt } reopening { fromStatus toStatus changedAt reason }
  investigation { id status }
"""
RESPOND = f"""
mutation Respond($input: RespondToInvestigationClosureInput!) {{
  respondToInvestigationClosure(input: $input) {{ {REVIEW_FIELDS} }}
}}"""
ANSWER = f"""
mutation Answer($input: AnswerClosureChallengeInput!) {{
  answerClosureChallenge(input: $input) {{ {REVIEW_FIELDS} }}
}}"""
INVESTIGATION = f"""
query($id: ID!) {{
  investigation(id: $id) {{
    id status
    closureDecision {{ toStatus changedAt reason }}
    closureReviews {{ {REVIEW_FIELDS} }}
    history {{ fromStatus toStatus changedAt reason reopenedAfter {{ id council {{ id }} }} }}
  }}
}}"""
FIGURES = """
query($from: Date!, $to: Date!, $force: String, $council: String) {
  closureFigures(from: $from, to: $to, force: $force, council: $council) {
    periodFrom periodTo
    rows {
      force { id } council { id } closures agreed challenged awaitingResponse
      challengesAnswered challengesOpen reopenedAfterChallenge upheld medianHoursToAnswer
    }
    total { closures agreed challenged awaitingResponse reopenedAfterChallenge }
  }
}"""
CHANGES = f"""
subscription($after: String) {{
  recordChanges(after: $after) {{
    cursor change
    record {{ __typename id ... on Investigation {{ status }} }}
    closureReview {{ {REVIEW_FIELDS} }}
  }}
}}"""


async def _call(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: dict[str, Any],
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token(role, org)}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = await http.post(
        server.graphql_url, headers=headers, json={"query": query, "variables": variables}
    )
    body: dict[str, Any] = response.json()
    return body


async def _ok(
    http: httpx.AsyncClient,
    server: LiveServer,
    role: Role,
    org: str,
    query: str,
    variables: dict[str, Any],
    **kwargs: Any,
) -> Any:
    body = await _call(http, server, role, org, query, variables, **kwargs)
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


def _code(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body["data"] is None or next(iter(body["data"].values())) is None, body
    (error,) = body["errors"]
    return error["extensions"]["code"], error["extensions"].get("field")


def _at(moment: dt.datetime) -> str:
    return iso(moment)


async def _investigation(
    http: httpx.AsyncClient,
    server: LiveServer,
    *,
    force: str = FORCE,
    council: str = COUNCIL,
    host: str | None = HOST_COUNCIL,
    opened: dt.datetime,
    kind: str = "CHILD_PROTECTION",
) -> tuple[str, str]:
    """An incident about one child (responsible `council`, placed in `host`) and an open
    investigation of it. Returns (police reference, investigation id)."""
    reference = unique("CL-INC")
    extra = {"hostCouncil": host} if host else {}
    await _ok(
        http,
        server,
        Role.POLICE_OFFICER,
        force,
        REPORT_INCIDENT,
        {
            "input": incident(
                reference,
                council=council,
                type=kind,
                occurredAt=_at(opened - dt.timedelta(hours=2)),
                recordedAt=_at(opened - dt.timedelta(hours=1)),
                children=[
                    {"child": child(f"{reference}-C", council=council, **extra), "present": True}
                ],
            )
        },
    )
    investigation_reference = unique("CL-INV")
    pushed = await _status(
        http, server, investigation_reference, "OPEN", opened, force=force, incidents=[reference]
    )
    return investigation_reference, pushed["id"]


async def _status(
    http: httpx.AsyncClient,
    server: LiveServer,
    reference: str,
    status: str,
    at: dt.datetime,
    *,
    force: str = FORCE,
    incidents: list[str] | None = None,
    reason: str = "Synthetic reason",
) -> Any:
    payload: dict[str, Any] = {
        "policeReference": reference,
        "status": status,
        "changedAt": _at(at),
        "reason": reason,
    }
    if incidents:
        payload["incidentReferences"] = incidents
    return await _ok(
        http, server, Role.POLICE_OFFICER, force, UPDATE_INVESTIGATION, {"input": payload}
    )


def _respond(investigation: str, response: str, **extra: Any) -> dict[str, Any]:
    return {"input": {"investigationId": investigation, "response": response, **extra}}


def _challenge(investigation: str, reason: str = "NON_ACCIDENTAL_INJURY_EVIDENCE") -> Any:
    return _respond(
        investigation, "CHALLENGE", reason=reason, text="Synthetic: the medical shows injuries."
    )


def _answer(challenge: str, answer: str, at: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "challengeId": challenge,
            "answer": answer,
            "answeredAt": _at(at),
            "text": "Synthetic answer.",
            **extra,
        }
    }


def _recent(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours)


@asynccontextmanager
async def _subscribed(
    server: LiveServer, db: Database, role: Role, org: str, *, request_id: str | None = None
) -> AsyncIterator[ClientConnection]:
    after = await _latest_cursor(db, server, role, org)
    headers = {
        "Authorization": f"Bearer {server.token(role, org)}",
        "X-Request-Id": request_id or str(uuid.uuid4()),
    }
    async with connect(
        _ws_url(server), subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _review_delivered(ws: ClientConnection, investigation: str) -> dict[str, Any]:
    """The next delivery carrying a closure review of the investigation (skipping others)."""
    for _ in range(20):
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        event = message["payload"]["data"]["recordChanges"]
        if event["closureReview"] is not None and event["record"]["id"] == investigation:
            return dict(event)
    pytest.fail("no closure review was delivered")


async def _delivered_within(ws: ClientConnection, *, seconds: float) -> list[str]:
    """The ids of the records delivered until nothing comes for `seconds`."""
    ids = []
    while True:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), seconds))
        except TimeoutError:
            return ids
        ids.append(message["payload"]["data"]["recordChanges"]["record"]["id"])


async def _stored_reviews(db: Database, investigation: str) -> list[ClosureReview]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            sa.select(ClosureReview)
            .where(ClosureReview.investigation_id == investigation)
            .order_by(ClosureReview.council_code)
        )
        return list(rows.scalars())


# --- the flows --------------------------------------------------------------------------------


async def test_a_closure_tells_each_council_at_once_and_a_council_agrees(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    subscription = str(uuid.uuid4())
    async with (
        _subscribed(
            live_server, db, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, request_id=subscription
        ) as ours,
        _subscribed(live_server, db, Role.COUNCIL_SOCIAL_WORKER, HOST_COUNCIL) as host,
        _subscribed(live_server, db, Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL) as other,
    ):
        await _status(http, live_server, reference, "NO_FURTHER_ACTION", _recent(2))
        told = await _review_delivered(ours, investigation)
        told_host = await _review_delivered(host, investigation)
        # Another council's subscriber is sent nothing of it (the next thing it gets, if
        # anything, is not this investigation's).
        others = await _delivered_within(other, seconds=2)
    assert investigation not in others
    assert told["change"] == "COLLECTED"
    assert told["record"] == {
        "__typename": "Investigation",
        "id": investigation,
        "status": "NO_FURTHER_ACTION",
    }
    review = told["closureReview"]
    assert (review["council"]["id"], review["response"], review["challengeOpen"]) == (
        COUNCIL,
        None,
        False,
    )
    assert review["closure"]["toStatus"] == "NO_FURTHER_ACTION"
    assert told_host["closureReview"]["council"]["id"] == HOST_COUNCIL
    # The delivery was a disclosure of the review (and its investigation) in the audit log.
    delivered = {
        (e.operation, e.record_type, e.record_id)
        for e in await _events(db, subscription)
        if e.record_id in {investigation, review["id"]}
    }
    assert ("disclosure", "ClosureReview", review["id"]) in delivered
    assert ("disclosure", "Investigation", investigation) in delivered

    agreed = await _ok(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        RESPOND,
        _respond(investigation, "AGREE"),
    )
    assert (agreed["id"], agreed["response"], agreed["challengeReason"]) == (
        review["id"],
        "AGREE",
        None,
    )
    assert agreed["respondedAt"] is not None
    # The force sees both councils' views on its investigation, and the decision it made.
    seen = await _ok(
        http, live_server, Role.POLICE_OFFICER, FORCE, INVESTIGATION, {"id": investigation}
    )
    assert seen["closureDecision"]["toStatus"] == "NO_FURTHER_ACTION"
    assert {(r["council"]["id"], r["response"]) for r in seen["closureReviews"]} == {
        (COUNCIL, "AGREE"),
        (HOST_COUNCIL, None),
    }


async def test_a_challenge_reaches_the_force_which_reopens_linked_to_it(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(50))
    await _status(http, live_server, reference, "CLOSED", _recent(40))
    async with _subscribed(live_server, db, Role.POLICE_OFFICER, FORCE) as force_ws:
        challenge = await _ok(
            http,
            live_server,
            Role.COUNCIL_SOCIAL_WORKER,
            COUNCIL,
            RESPOND,
            _challenge(investigation),
        )
        told = await _review_delivered(force_ws, investigation)
    assert told["change"] == "ALTERED"
    assert told["closureReview"]["id"] == challenge["id"]
    assert told["closureReview"]["challengeOpen"] is True
    assert told["closureReview"]["challengeReason"] == "NON_ACCIDENTAL_INJURY_EVIDENCE"

    reopen_at = _recent(10)
    answered = await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        ANSWER,
        _answer(challenge["id"], "REOPENED", reopen_at, reopenedStatus="INVESTIGATING"),
    )
    assert (answered["answer"], answered["challengeOpen"]) == ("REOPENED", False)
    reopened = answered["reopening"]
    assert (reopened["fromStatus"], reopened["toStatus"], reopened["reason"]) == (
        "CLOSED",
        "INVESTIGATING",
        "Synthetic answer.",
    )
    assert dt.datetime.fromisoformat(reopened["changedAt"]) == dt.datetime.fromisoformat(
        answered["answeredAt"]
    )
    assert answered["investigation"]["status"] == "INVESTIGATING"
    seen = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, INVESTIGATION, {"id": investigation}
    )
    assert seen["status"] == "INVESTIGATING"
    assert seen["closureDecision"] is None
    *_, reopening = seen["history"]
    assert (reopening["fromStatus"], reopening["toStatus"]) == ("CLOSED", "INVESTIGATING")
    assert reopening["reopenedAfter"] == [{"id": challenge["id"], "council": {"id": COUNCIL}}]
    async with db.transaction(write=False) as session:
        stored = await session.get(ClosureReview, challenge["id"])
        assert stored is not None
        link = await session.get(InvestigationTransition, stored.reopening_transition_id)
    assert link is not None
    assert link.to_status == "investigating"
    # Answering again with the same content returns it; nothing new is stored.
    again = await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        ANSWER,
        _answer(challenge["id"], "REOPENED", reopen_at, reopenedStatus="INVESTIGATING"),
    )
    assert again["answeredAt"] == answered["answeredAt"]
    async with db.transaction(write=False) as session:
        transitions = await session.execute(
            sa.select(sa.func.count()).where(
                InvestigationTransition.investigation_id == investigation
            )
        )
        assert transitions.scalar_one() == 3  # opened, closed, reopened


async def test_a_challenge_upheld_keeps_the_closure_and_says_why(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "NO_FURTHER_ACTION", _recent(20))
    challenge = await _ok(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        RESPOND,
        _challenge(investigation, "THRESHOLD_DISAGREEMENT"),
    )
    at = _recent(5)
    upheld = await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        ANSWER,
        _answer(challenge["id"], "UPHELD", at, reason="INSUFFICIENT_EVIDENCE"),
    )
    assert (upheld["answer"], upheld["answerReason"], upheld["reopening"]) == (
        "UPHELD",
        "INSUFFICIENT_EVIDENCE",
        None,
    )
    assert upheld["investigation"]["status"] == "NO_FURTHER_ACTION"
    seen = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, INVESTIGATION, {"id": investigation}
    )
    (mine,) = seen["closureReviews"]
    assert (mine["answer"], mine["answerText"], mine["challengeOpen"]) == (
        "UPHELD",
        "Synthetic answer.",
        False,
    )
    # A different answer afterwards is a CONFLICT: an answer, once given, stands.
    changed = await _call(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        ANSWER,
        _answer(challenge["id"], "REOPENED", _recent(1)),
    )
    assert _code(changed) == ("CONFLICT", None)


async def test_responding_is_idempotent_and_a_different_view_is_a_conflict(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    first = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, RESPOND, _challenge(investigation)
    )
    again = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, RESPOND, _challenge(investigation)
    )
    assert (again["id"], again["respondedAt"]) == (first["id"], first["respondedAt"])
    different = await _call(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        RESPOND,
        _respond(investigation, "AGREE"),
    )
    assert _code(different) == ("CONFLICT", None)
    stored = {r.council_code: r for r in await _stored_reviews(db, investigation)}
    assert stored[COUNCIL].response == "challenge"
    assert stored[HOST_COUNCIL].response is None


async def test_bad_responses_name_the_field_and_store_nothing(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    council = (Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    # Not closed yet.
    assert _code(
        await _call(http, live_server, *council, RESPOND, _respond(investigation, "AGREE"))
    ) == ("INVALID_INPUT", "input.investigationId")
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    secret = "Synthetic secret text " + "x" * 2000
    cases = [
        (_respond(investigation, "CHALLENGE", text="Why."), "input.reason"),
        (_respond(investigation, "CHALLENGE", reason="OTHER"), "input.text"),
        (_respond(investigation, "CHALLENGE", reason="OTHER", text="   "), "input.text"),
        (_respond(investigation, "AGREE", reason="OTHER"), "input.reason"),
        (_respond(investigation, "CHALLENGE", reason="OTHER", text=secret), "input.text"),
    ]
    for variables, field in cases:
        body = await _call(http, live_server, *council, RESPOND, variables)
        assert _code(body) == ("INVALID_INPUT", field), body
        assert "secret" not in json.dumps(body)
    # An id no one has, and another force's investigation about another council's child: both
    # simply do not exist for this council.
    assert _code(
        await _call(http, live_server, *council, RESPOND, _respond(str(uuid.uuid4()), "AGREE"))
    ) == ("NOT_FOUND", "input.investigationId")
    other_reference, other = await _investigation(
        http, live_server, force=OTHER_FORCE, council=OTHER_COUNCIL, host=None, opened=_recent(30)
    )
    await _status(http, live_server, other_reference, "CLOSED", _recent(20), force=OTHER_FORCE)
    assert _code(await _call(http, live_server, *council, RESPOND, _respond(other, "AGREE"))) == (
        "NOT_FOUND",
        "input.investigationId",
    )
    # A council that sees the investigation (the incident was in its area) but holds none of
    # its children is not asked, and learns nothing of the councils that are.
    located_reference = unique("CL-LOC")
    await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        REPORT_INCIDENT,
        {
            "input": incident(
                located_reference,
                council=COUNCIL,
                children=[
                    {
                        "child": child(f"{located_reference}-C", council=OTHER_COUNCIL),
                        "present": True,
                    }
                ],
            )
        },
    )
    located = unique("CL-INV")
    pushed = await _status(
        http, live_server, located, "OPEN", _recent(30), incidents=[located_reference]
    )
    await _status(http, live_server, located, "CLOSED", _recent(20))
    body = await _call(http, live_server, *council, RESPOND, _respond(pushed["id"], "AGREE"))
    assert _code(body) == ("INVALID_INPUT", "input.investigationId")
    assert OTHER_COUNCIL not in json.dumps(body)
    assert all(r.response is None for r in await _stored_reviews(db, investigation))
    assert [r.council_code for r in await _stored_reviews(db, pushed["id"])] == [OTHER_COUNCIL]


async def test_bad_answers_name_the_field_and_store_nothing(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    agreed = await _ok(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        HOST_COUNCIL,
        RESPOND,
        _respond(investigation, "AGREE"),
    )
    challenge = await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, RESPOND, _challenge(investigation)
    )
    force = (Role.POLICE_OFFICER, FORCE)
    cases = [
        (_answer(challenge["id"], "UPHELD", _recent(1)), ("INVALID_INPUT", "input.reason")),
        (
            _answer(challenge["id"], "REOPENED", _recent(1), reason="OTHER"),
            ("INVALID_INPUT", "input.reason"),
        ),
        (
            _answer(challenge["id"], "REOPENED", _recent(1), reopenedStatus="CLOSED"),
            ("INVALID_INPUT", "input.reopenedStatus"),
        ),
        (
            _answer(challenge["id"], "REOPENED", _recent(-2)),
            ("INVALID_INPUT", "input.answeredAt"),
        ),
        (
            _answer(challenge["id"], "REOPENED", _recent(25)),
            ("INVALID_INPUT", "input.answeredAt"),
        ),
        (
            {"input": {**_answer(challenge["id"], "REOPENED", _recent(1))["input"], "text": ""}},
            ("INVALID_INPUT", "input.text"),
        ),
        (
            {
                "input": {
                    **_answer(challenge["id"], "REOPENED", _recent(1))["input"],
                    "answeredAt": "2026-01-01T09:00:00",
                }
            },
            ("INVALID_INPUT", "input.answeredAt"),
        ),
        # An agreement is no challenge; an unknown id is none either.
        (_answer(agreed["id"], "REOPENED", _recent(1)), ("NOT_FOUND", "input.challengeId")),
        (_answer(str(uuid.uuid4()), "REOPENED", _recent(1)), ("NOT_FOUND", "input.challengeId")),
    ]
    for variables, expected in cases:
        body = await _call(http, live_server, *force, ANSWER, variables)
        assert _code(body) == expected, (variables, body)
    # Another force cannot answer this force's challenge: it does not exist for it.
    body = await _call(
        http,
        live_server,
        Role.POLICE_OFFICER,
        OTHER_FORCE,
        ANSWER,
        _answer(challenge["id"], "REOPENED", _recent(1)),
    )
    assert _code(body) == ("NOT_FOUND", "input.challengeId")
    stored = {r.council_code: r for r in await _stored_reviews(db, investigation)}
    assert (stored[COUNCIL].answer, stored[COUNCIL].reopening_transition_id) == (None, None)
    seen = await _ok(http, live_server, *force, INVESTIGATION, {"id": investigation})
    assert seen["status"] == "CLOSED"
    assert len(seen["history"]) == 2


# --- scoping ----------------------------------------------------------------------------------


async def test_each_role_sees_only_its_own_part(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    await _ok(
        http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL, RESPOND, _challenge(investigation)
    )
    councils = {}
    for org in (COUNCIL, HOST_COUNCIL):
        seen = await _ok(
            http, live_server, Role.COUNCIL_SOCIAL_WORKER, org, INVESTIGATION, {"id": investigation}
        )
        councils[org] = [(r["council"]["id"], r["response"]) for r in seen["closureReviews"]]
    assert councils == {COUNCIL: [(COUNCIL, "CHALLENGE")], HOST_COUNCIL: [(HOST_COUNCIL, None)]}
    police = await _ok(
        http, live_server, Role.POLICE_OFFICER, FORCE, INVESTIGATION, {"id": investigation}
    )
    assert sorted(r["council"]["id"] for r in police["closureReviews"]) == sorted(
        [COUNCIL, HOST_COUNCIL]
    )
    # Out of jurisdiction: the investigation does not exist for another force or council.
    for role, org in (
        (Role.POLICE_OFFICER, OTHER_FORCE),
        (Role.COUNCIL_SOCIAL_WORKER, OTHER_COUNCIL),
    ):
        body = await _call(http, live_server, role, org, INVESTIGATION, {"id": investigation})
        assert body["data"]["investigation"] is None, body
    # Schools, auditors, DPOs and operators see no investigation, and so no review.
    for role, org in (
        (Role.SCHOOL_DSL, "TEST-SCHOOL-A"),
        (Role.AUDITOR, "OFSTED"),
        (Role.DPO, COUNCIL),
        (Role.HUB_ADMIN, "HUB"),
    ):
        body = await _call(http, live_server, role, org, INVESTIGATION, {"id": investigation})
        assert body["data"] is None or body["data"]["investigation"] is None, body
        assert {e["extensions"]["code"] for e in body["errors"]} <= {
            "FORBIDDEN_FIELD",
            "PURPOSE_NOT_PERMITTED",
        }, body


async def test_review_fields_per_role_follow_the_agreement(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    """ClosureReview through `_entities` on Investigation, for the roles that reach one."""
    from tests.test_agreement_matrix import AGREEMENT, _selection  # noqa: PLC0415 - heavy

    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    inner, names = _selection("ClosureReview")
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) "
        f"{{ ... on Investigation {{ closureReviews {{ {inner} }} }} }} }}"
    )
    for role, org in ((Role.POLICE_OFFICER, FORCE), (Role.COUNCIL_SOCIAL_WORKER, COUNCIL)):
        body = await _call(
            http,
            live_server,
            role,
            org,
            query,
            {"r": [{"__typename": "Investigation", "id": investigation}]},
        )
        allowed = AGREEMENT.policy(role).fields["ClosureReview"]
        refused = {
            e["path"][-1]
            for e in body.get("errors", [])
            if e["extensions"]["code"] == "FORBIDDEN_FIELD"
        }
        assert refused == set(names) - allowed, body
        assert body["data"]["_entities"][0]["closureReviews"], body
    for role in Role:
        policy = AGREEMENT.policy(role)
        if "ClosureReview" in policy.fields:
            # Granted only to roles that reach investigations.
            assert "closureReviews" in policy.fields.get("Investigation", ()), role


# --- figures ----------------------------------------------------------------------------------

CLEVELAND = "CLEVELAND"
STOCKTON = "E06000004"  # Stockton-on-Tees
MIDDLESBROUGH = "E06000002"


def _day(days_ago: int) -> dt.datetime:
    """Noon, `days_ago` days back: each test's closures on days of their own."""
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


async def test_a_cleveland_like_closure_is_challenged_reopened_and_found_in_the_figures(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """The letter's case: an investigation closed although the children had non-accidental
    injuries, reopened only after the council intervened. Built through the API as the force
    and the council would, then found in the figures each side and the inspectorate read."""
    opened, closed = _day(200), _day(199)
    reference, investigation = await _investigation(
        http,
        live_server,
        force=CLEVELAND,
        council=STOCKTON,
        host=None,
        opened=opened - dt.timedelta(days=10),
        kind="CHILD_PROTECTION",
    )
    await _status(
        http,
        live_server,
        reference,
        "NO_FURTHER_ACTION",
        closed,
        force=CLEVELAND,
        reason="Synthetic: no further police action.",
    )
    stockton = (Role.COUNCIL_SOCIAL_WORKER, STOCKTON)
    challenge = await _ok(http, live_server, *stockton, RESPOND, _challenge(investigation))
    # The council's challenge was received now; the force answers later (its time). The
    # answer's time must be after the closure and not in the future: a day from now is not.
    reopened_at = _recent(0.5)
    answered = await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        CLEVELAND,
        ANSWER,
        _answer(challenge["id"], "REOPENED", reopened_at),
    )
    assert answered["investigation"]["status"] == "OPEN"
    # A second closure in the same force, agreed by Middlesbrough, and one not answered yet.
    for council, respond in ((MIDDLESBROUGH, True), (MIDDLESBROUGH, False)):
        ref, inv = await _investigation(
            http, live_server, force=CLEVELAND, council=council, host=None, opened=opened
        )
        await _status(http, live_server, ref, "CLOSED", closed, force=CLEVELAND)
        if respond:
            await _ok(
                http,
                live_server,
                Role.COUNCIL_SOCIAL_WORKER,
                council,
                RESPOND,
                _respond(inv, "AGREE"),
            )
    period = {"from": _day(201).date().isoformat(), "to": _day(198).date().isoformat()}
    request_id = str(uuid.uuid4())
    national = await _ok(
        http, live_server, Role.AUDITOR, "OFSTED", FIGURES, period, request_id=request_id
    )
    rows = {(r["force"]["id"], r["council"]["id"]): r for r in national["rows"]}
    assert rows[CLEVELAND, STOCKTON] == {
        "force": {"id": CLEVELAND},
        "council": {"id": STOCKTON},
        "closures": 1,
        "agreed": 0,
        "challenged": 1,
        "awaitingResponse": 0,
        "challengesAnswered": 1,
        "challengesOpen": 0,
        "reopenedAfterChallenge": 1,
        "upheld": 0,
        "medianHoursToAnswer": 0.0,  # answered within seconds of the challenge here
    }
    middlesbrough = rows[CLEVELAND, MIDDLESBROUGH]
    assert (
        middlesbrough["closures"],
        middlesbrough["agreed"],
        middlesbrough["awaitingResponse"],
    ) == (
        2,
        1,
        1,
    )
    assert national["total"] == {
        "closures": 3,
        "agreed": 1,
        "challenged": 1,
        "awaitingResponse": 1,
        "reopenedAfterChallenge": 1,
    }
    # The figures are a disclosure in the audit, naming no case and no child.
    (event,) = await _events(db, request_id)
    assert (event.operation, event.record_type) == ("disclosure", None)
    assert "closure figures" in event.detail
    assert investigation not in event.detail
    # The council reads its own row only; the force its own force only.
    own = await _ok(http, live_server, *stockton, FIGURES, period)
    assert [(r["force"]["id"], r["council"]["id"]) for r in own["rows"]] == [(CLEVELAND, STOCKTON)]
    force = await _ok(http, live_server, Role.POLICE_OFFICER, CLEVELAND, FIGURES, period)
    assert {r["council"]["id"] for r in force["rows"]} == {STOCKTON, MIDDLESBROUGH}
    other = await _call(
        http, live_server, Role.POLICE_OFFICER, FORCE, FIGURES, {**period, "force": CLEVELAND}
    )
    assert _code(other) == ("FORBIDDEN", None)
    for role, org in (
        (Role.SCHOOL_DSL, "TEST-SCHOOL-A"),
        (Role.DPO, COUNCIL),
        (Role.HUB_ADMIN, "HUB"),
    ):
        body = await _call(http, live_server, role, org, FIGURES, period)
        assert body["data"] is None or body["data"]["closureFigures"] is None, body


async def test_the_median_time_to_answer_is_from_challenge_to_answer(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """Challenges answered 2 and 6 hours after they were raised: a median of 4 hours."""
    council = "E06000001"  # Hartlepool: this test's own figures
    ids = []
    for _ in range(2):
        ref, inv = await _investigation(
            http, live_server, force=CLEVELAND, council=council, host=None, opened=_day(300)
        )
        await _status(http, live_server, ref, "CLOSED", _day(299), force=CLEVELAND)
        challenge = await _ok(
            http, live_server, Role.COUNCIL_SOCIAL_WORKER, council, RESPOND, _challenge(inv)
        )
        ids.append(challenge["id"])
    for challenge_id in ids:
        await _ok(
            http,
            live_server,
            Role.POLICE_OFFICER,
            CLEVELAND,
            ANSWER,
            _answer(challenge_id, "UPHELD", _recent(0), reason="OTHER"),
        )
    # The hub's receipts of each challenge and answer, moved to known times (a test cannot
    # wait hours): 2 and 6 hours apart.
    raised = _day(298)
    async with db.transaction(write=True) as session:
        for challenge_id, hours in zip(ids, (2, 6), strict=True):
            await session.execute(
                sa.update(ClosureReview)
                .where(ClosureReview.id == challenge_id)  # type: ignore[arg-type]
                .values(responded_at=raised, answer_received_at=raised + dt.timedelta(hours=hours))
            )
    period = {"from": _day(300).date().isoformat(), "to": _day(298).date().isoformat()}
    figures = await _ok(http, live_server, Role.COUNCIL_SOCIAL_WORKER, council, FIGURES, period)
    (row,) = figures["rows"]
    assert (row["challenged"], row["upheld"], row["medianHoursToAnswer"]) == (2, 2, 4.0)


# --- audit ------------------------------------------------------------------------------------


async def test_responses_and_answers_are_audited_as_alterations_of_the_review(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    request_id = str(uuid.uuid4())
    challenge = await _ok(
        http,
        live_server,
        Role.COUNCIL_SOCIAL_WORKER,
        COUNCIL,
        RESPOND,
        _challenge(investigation),
        request_id=request_id,
    )
    events = await _events(db, request_id)
    reviews = [e for e in events if e.record_type == "ClosureReview"]
    assert [(e.operation, e.record_id, e.record_owner, e.role) for e in reviews] == [
        ("alteration", challenge["id"], COUNCIL, "council_social_worker")
    ]
    assert "responseText" in json.loads(reviews[0].fields)
    assert len(json.loads(reviews[0].child_ids)) == 1  # the investigation's child
    # The force reading the councils' views: a consultation of each review it received.
    request_id = str(uuid.uuid4())
    await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        INVESTIGATION,
        {"id": investigation},
        request_id=request_id,
    )
    read = {(e.record_type, e.operation) for e in await _events(db, request_id)}
    assert read == {("Investigation", "consultation"), ("ClosureReview", "consultation")}
    request_id = str(uuid.uuid4())
    await _ok(
        http,
        live_server,
        Role.POLICE_OFFICER,
        FORCE,
        ANSWER,
        _answer(challenge["id"], "REOPENED", _recent(1)),
        request_id=request_id,
    )
    altered = {(e.record_type, e.operation) for e in await _events(db, request_id)}
    assert ("ClosureReview", "alteration") in altered


async def test_concurrent_identical_answers_reopen_once(
    http: httpx.AsyncClient, live_server: LiveServer, db: Database
) -> None:
    """A force's system retrying at once: one answer, one reopening, every call the same."""
    reference, investigation = await _investigation(http, live_server, opened=_recent(30))
    await _status(http, live_server, reference, "CLOSED", _recent(20))
    responses = await asyncio.gather(
        *(
            _ok(
                http,
                live_server,
                Role.COUNCIL_SOCIAL_WORKER,
                COUNCIL,
                RESPOND,
                _challenge(investigation),
            )
            for _ in range(4)
        )
    )
    assert len({r["id"] for r in responses}) == 1
    at = _recent(1)
    answers = await asyncio.gather(
        *(
            _ok(
                http,
                live_server,
                Role.POLICE_OFFICER,
                FORCE,
                ANSWER,
                _answer(responses[0]["id"], "REOPENED", at),
            )
            for _ in range(4)
        )
    )
    assert {a["reopening"]["toStatus"] for a in answers} == {"OPEN"}
    async with db.transaction(write=False) as session:
        reopenings = await session.execute(
            sa.select(sa.func.count()).where(
                InvestigationTransition.investigation_id == investigation,
                InvestigationTransition.to_status == "open",
            )
        )
        assert reopenings.scalar_one() == 2  # the opening push and the one reopening


async def test_a_fanned_out_group_is_told_of_a_closure_once_each(
    http: httpx.AsyncClient, fanout_server: LiveServer, db: Database
) -> None:
    """With fan-out on, two subscribers of one council (one group) both get the review."""
    reference, investigation = await _investigation(http, fanout_server, opened=_recent(30))
    async with (
        _subscribed(fanout_server, db, Role.COUNCIL_SOCIAL_WORKER, COUNCIL) as first,
        _subscribed(fanout_server, db, Role.COUNCIL_SOCIAL_WORKER, COUNCIL) as second,
    ):
        await _joined(fanout_server, 2)
        await _status(http, fanout_server, reference, "CLOSED", _recent(2))
        told = [await _review_delivered(ws, investigation) for ws in (first, second)]
    assert {t["closureReview"]["council"]["id"] for t in told} == {COUNCIL}
    assert told[0]["closureReview"]["id"] == told[1]["closureReview"]["id"]
