"""Synthetic push payloads (GraphQL variables). Every name and reference is invented."""

from __future__ import annotations

import datetime as dt
from typing import Any

FORCE = "WEST_MIDLANDS"
OTHER_FORCE = "GREATER_MANCHESTER"
COUNCIL = "E08000025"  # Birmingham
OTHER_COUNCIL = "E08000003"  # Manchester
HOST_COUNCIL = "E06000016"  # Leicester
THIRD_COUNCIL = "E06000052"  # Cornwall

REPORT_INCIDENT = """
mutation Report($input: ReportIncidentInput!) {
  reportIncident(input: $input) {
    id policeReference type occurredAt recordedAt sharedAt dashRisk summary
    force { id } locationCouncil { id }
    children { present householdMember victim child { id givenName responsibleCouncil { id } } }
  }
}"""

RECORD_MISSING = """
mutation Missing($input: RecordMissingEpisodeInput!) {
  recordMissingEpisode(input: $input) {
    id policeReference status riskGrade riskFramework missingFrom reportedMissingAt sharedAt
    child { id hostCouncil { id } responsibleCouncil { id } lookedAfter }
    lastSeenCouncil { id }
  }
}"""

UPDATE_MISSING = """
mutation Update($input: UpdateMissingEpisodeInput!) {
  updateMissingEpisode(input: $input) { id status foundAt returnedAt }
}"""

UPDATE_INVESTIGATION = """
mutation Investigation($input: UpdateInvestigationStatusInput!) {
  updateInvestigationStatus(input: $input) {
    id policeReference status statusChangedAt
    history { fromStatus toStatus changedAt reason }
    incidents { id policeReference }
    children { id }
  }
}"""


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def hours_ago(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours)


def child(reference: str, *, council: str = COUNCIL, **extra: Any) -> dict[str, Any]:
    return {
        "policeReference": reference,
        "givenName": "Alex",
        "familyName": "Example",
        "dateOfBirth": "2015-03-04",
        "responsibleCouncil": council,
        **extra,
    }


def incident(
    reference: str,
    *,
    children: list[dict[str, Any]] | None = None,
    council: str = COUNCIL,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "policeReference": reference,
        "type": "DOMESTIC_ABUSE",
        "occurredAt": iso(hours_ago(5)),
        "recordedAt": iso(hours_ago(4)),
        "locationCouncil": council,
        "dashRisk": "MEDIUM",
        "summary": "Synthetic test incident.",
        "children": children
        or [{"child": child(f"{reference}-C1", council=council), "present": True}],
        **extra,
    }


def missing_episode(
    reference: str, *, child_input: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "policeReference": reference,
        "child": child_input or child(f"{reference}-C1"),
        "reportedMissingAt": iso(hours_ago(3)),
        "recordedAt": iso(hours_ago(2.5)),
        "riskGrade": "HIGH",
        "lastSeenCouncil": COUNCIL,
        "missingFrom": "HOME",
        **extra,
    }


def status_change(
    reference: str, status: str, *, hours: float, reason: str = "Test reason", **extra: Any
) -> dict[str, Any]:
    return {
        "policeReference": reference,
        "status": status,
        "changedAt": iso(hours_ago(hours)),
        "reason": reason,
        **extra,
    }


REQUEST_JOINT_VISIT = """
mutation Request($input: RequestJointVisitInput!) {
  requestJointVisit(input: $input) {
    id councilReference kind urgency neededBy recordedAt sharedAt
    council { id } force { id } child { id }
    response responseReason officerRole respondedAt outcome outcomeAt
  }
}"""

RESPOND_JOINT_VISIT = """
mutation Respond($input: RespondToJointVisitRequestInput!) {
  respondToJointVisitRequest(input: $input) {
    id response responseReason officerRole respondedAt outcome
  }
}"""

RECORD_JOINT_VISIT = """
mutation Outcome($input: RecordJointVisitInput!) {
  recordJointVisit(input: $input) { id response outcome outcomeAt }
}"""

RECORD_PROTECTION = """
mutation Protection($input: RecordPoliceProtectionInput!) {
  recordPoliceProtection(input: $input) {
    id policeReference takenAt recordedAt sharedAt placedIn consultedBefore consultedAt
    consultedRole alternativesConsidered force { id } placedCouncil { id }
    consultedCouncil { id } child { id responsibleCouncil { id } }
  }
}"""


def joint_visit(
    reference: str, child_id: str, *, force: str = FORCE, **extra: Any
) -> dict[str, Any]:
    return {
        "councilReference": reference,
        "childId": child_id,
        "force": force,
        "kind": "VISIT",
        "urgency": "WITHIN_24_HOURS",
        "neededBy": iso(hours_ago(-20)),
        "recordedAt": iso(hours_ago(2)),
        **extra,
    }


def protection(
    reference: str, *, child_input: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A protection after a telephone discussion with the council's emergency duty team."""
    return {
        "policeReference": reference,
        "child": child_input or child(f"{reference}-C1"),
        "takenAt": iso(hours_ago(3)),
        "recordedAt": iso(hours_ago(2.5)),
        "placedIn": "FOSTER_CARE",
        "placedCouncil": COUNCIL,
        "consultedBefore": True,
        "consultedAt": iso(hours_ago(3.5)),
        "consultedCouncil": COUNCIL,
        "consultedRole": "EMERGENCY_DUTY_TEAM",
        "alternativesConsidered": ["FAMILY_OR_FRIENDS"],
        **extra,
    }
