"""Joint visit requests as the timeliness report measures them: a record kind declared once.

A request (a joint visit or an ABE interview) is measured for the council that made it: from
reaching the force to the force's answer, and that answer against the time the council needs
the visit by. Its event is the request as the council recorded it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.joint_visits.models import JointVisitRequest
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

KIND = "joint_visit_request"

STAGES = (
    kinds.Stage(
        "request_to_answer",
        "shared_at",
        "reading_1_at",
        "request to the force's answer",
        deadline="reading_2_at",
        deadline_text="the time the council needs it",
    ),
)


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    query = sa.select(JointVisitRequest)
    if ids is not None:
        query = query.where(col(JointVisitRequest.id).in_(ids))
    if period is not None:
        query = query.where(
            col(JointVisitRequest.recorded_at) >= period.start,
            col(JointVisitRequest.recorded_at) < period.end,
            col(JointVisitRequest.shared_at) <= period.as_of,
        )
        if period.force_code is not None:
            query = query.where(col(JointVisitRequest.force_code) == period.force_code)
    return [
        kinds.Loaded(
            "JointVisitRequest",
            r.id,
            [
                RecordTimes(
                    KIND,
                    r.id,
                    r.force_code,
                    r.recorded_at,
                    None,
                    r.shared_at,
                    readings={
                        "reading_1_at": r.responded_at,
                        "reading_2_at": r.needed_by,
                        "reading_3_at": r.outcome_at,
                    },
                )
            ],
            named=[(r.council_code, r.child_id)],
        )
        for r in (await session.execute(query)).scalars()
    ]


SQL = kinds.FactsSql(
    base="SELECT r.* FROM joint_visit_request r WHERE true /*ONLY*/",
    only="r.id",
    records="""
  SELECT id AS subject_id, id AS record_id, 'joint_visit_request' AS kind, force_code,
    recorded_at AS event_at, shared_at, responded_at AS reading_1_at, needed_by AS reading_2_at,
    outcome_at AS reading_3_at
  FROM {base}""",
    named="SELECT id AS subject_id, council_code AS council, child_id FROM {base}",
)

JOINT_VISIT_REQUESTS = kinds.register(
    kinds.RecordKind(
        record_type="JointVisitRequest",
        table="joint_visit_request",
        kinds={KIND: "Joint visit or ABE interview requested of the police"},
        readings={
            "event_at": "the request, as the council recorded it",
            "shared_at": "the request reached the force",
            "reading_1_at": "the force's answer",
            "reading_2_at": "needed by",
            "reading_3_at": "the visit held, or not",
        },
        stages=STAGES,
        receivers=kinds.Receivers.NAMED,
        load=load,
        sql=SQL,
        models={JointVisitRequest: "id"},
        position=60,
    )
)
