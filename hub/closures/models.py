"""Closure reviews: a council's say on a force closing an investigation about its children.

One row per closure and council told: the council's response (agree, or challenge with a
reason), and for a challenge the force's answer (reopened, or upheld with a reason). A
reopening is a status transition of the investigation; the row links to it.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, id_field, org_field, utc_field
from hub.investigations.models import InvestigationStatus

# Charged is not a closure: the case goes on to prosecution. The letter's failure is an
# investigation ended with no action while the children were still at risk.
CLOSED_STATUSES = frozenset({InvestigationStatus.NO_FURTHER_ACTION, InvestigationStatus.CLOSED})
REOPENED_STATUSES = frozenset({InvestigationStatus.OPEN, InvestigationStatus.INVESTIGATING})


class ClosureResponse(enum.StrEnum):
    AGREE = "agree"
    CHALLENGE = "challenge"


class ChallengeReason(enum.StrEnum):
    NON_ACCIDENTAL_INJURY_EVIDENCE = "non_accidental_injury_evidence"
    NEW_INFORMATION = "new_information"
    THRESHOLD_DISAGREEMENT = "threshold_disagreement"
    ONGOING_RISK = "ongoing_risk"
    OTHER = "other"


class ChallengeAnswer(enum.StrEnum):
    REOPENED = "reopened"
    UPHELD = "upheld"


class UpheldReason(enum.StrEnum):
    """Why a force keeps an investigation closed despite a council's challenge."""

    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    EVIDENCE_CONSIDERED = "evidence_considered"
    RISK_MANAGED_BY_OTHER_AGENCY = "risk_managed_by_other_agency"
    NO_CRIME_DISCLOSED = "no_crime_disclosed"
    OTHER = "other"


class ClosureReview(SQLModel, table=True):
    __tablename__ = "closure_review"
    __table_args__ = (
        sa.UniqueConstraint(
            "closing_transition_id", "council_code", name="uq_closure_review_closure_council"
        ),
    )

    id: str = id_field()
    investigation_id: str = Field(foreign_key="investigation.id", max_length=36, index=True)
    closing_transition_id: str = Field(foreign_key="investigation_transition.id", max_length=36)
    force_code: str = org_field()
    council_code: str = org_field()
    closed_at: dt.datetime = utc_field(index=True)  # the force's time for the closure
    requested_at: dt.datetime = utc_field(now=True)  # when the council was told
    response: str | None = enum_field(nullable=True)
    challenge_reason: str | None = enum_field(nullable=True)
    response_text: str | None = Field(default=None, sa_type=sa.Text)
    responded_at: dt.datetime | None = utc_field(nullable=True)
    responded_by_client: str | None = Field(default=None, max_length=64)
    response_hash: str | None = Field(default=None, max_length=64)
    answer: str | None = enum_field(nullable=True)
    answer_reason: str | None = enum_field(nullable=True)
    answer_text: str | None = Field(default=None, sa_type=sa.Text)
    answered_at: dt.datetime | None = utc_field(nullable=True)  # the force's time
    # The hub's clock: the time to answer is measured between two receipts, not claimed times.
    answer_received_at: dt.datetime | None = utc_field(nullable=True)
    answered_by_client: str | None = Field(default=None, max_length=64)
    answer_hash: str | None = Field(default=None, max_length=64)
    reopening_transition_id: str | None = Field(
        default=None, foreign_key="investigation_transition.id", max_length=36
    )
