"""Synthetic meeting pushes (GraphQL variables) and the calls that make them. All invented."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from hub.access.models import Role
from tests.conftest import LiveServer, unique
from tests.factories import COUNCIL, FORCE, hours_ago, iso

MEETING_FIELDS = """
  id councilReference kind mode scheduledAt preBirth recordedAt sharedAt heldAt
  council { id }
  strategyDiscussion { id }
  children { unborn expectedDeliveryDate motherCouncil { id } child { id } }
  invitations {
    force { id } invitedAt response responseReason respondedAt reportSubmittedAt reportText
    attendance attendeeRole attendanceRecordedAt
  }
"""
SCHEDULE_MEETING = f"""
mutation Schedule($input: ScheduleMeetingInput!) {{
  scheduleMeeting(input: $input) {{ {MEETING_FIELDS} }}
}}"""
RESPOND = f"""
mutation Respond($input: RespondToMeetingInvitationInput!) {{
  respondToMeetingInvitation(input: $input) {{ {MEETING_FIELDS} }}
}}"""
SUBMIT_REPORT = f"""
mutation Report($input: SubmitMeetingReportInput!) {{
  submitMeetingReport(input: $input) {{ {MEETING_FIELDS} }}
}}"""
RECORD_ATTENDANCE = f"""
mutation Attendance($input: RecordMeetingAttendanceInput!) {{
  recordMeetingAttendance(input: $input) {{ {MEETING_FIELDS} }}
}}"""
MEETING = f"query($id: ID!) {{ meeting(id: $id) {{ {MEETING_FIELDS} }} }}"


def days_ahead(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def unborn(*, due_in_days: int = 60, mother_council: str = COUNCIL) -> dict[str, Any]:
    due = (days_ahead(due_in_days)).date().isoformat()
    return {"expectedDeliveryDate": due, "motherCouncil": mother_council}


def meeting(
    reference: str,
    *,
    children: list[dict[str, Any]],
    kind: str = "STRATEGY_DISCUSSION",
    forces: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "councilReference": reference,
        "kind": kind,
        "scheduledAt": iso(days_ahead(2)),
        "mode": "VIDEO",
        "recordedAt": iso(hours_ago(1)),
        "children": children,
        "invitedForces": forces if forces is not None else [FORCE],
        **extra,
    }


async def call(
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
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def schedule(
    http: httpx.AsyncClient,
    server: LiveServer,
    payload: dict[str, Any],
    *,
    council: str = COUNCIL,
) -> dict[str, Any]:
    """A meeting the council convenes; it must be stored."""
    body = await call(
        http, server, Role.COUNCIL_SOCIAL_WORKER, council, SCHEDULE_MEETING, {"input": payload}
    )
    assert "errors" not in body, body
    stored: dict[str, Any] = body["data"]["scheduleMeeting"]
    return stored


async def strategy_discussion(
    http: httpx.AsyncClient,
    server: LiveServer,
    child_id: str,
    *,
    council: str = COUNCIL,
    forces: list[str] | None = None,
) -> dict[str, Any]:
    payload = meeting(
        unique("SD"),
        children=[{"childId": child_id}],
        forces=forces,
        scheduledAt=iso(hours_ago(30)),
        recordedAt=iso(hours_ago(48)),
    )
    return await schedule(http, server, payload, council=council)
