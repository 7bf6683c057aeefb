"""Missing episodes as the timeliness report measures them: a record kind declared once.

A ``missing_episode`` has the police sharing stages, from the report of the missing child, and
the return home interview (T5) from the child's return; its receivers are the child's
responsible and host councils.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.missing.models import MissingEpisode
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

RETURN_INTERVIEW = kinds.Stage(
    "returned_to_return_interview",
    "returned_at",
    "interview_at",
    "child's return to return home interview",
)


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    query = sa.select(MissingEpisode)
    if ids is not None:
        query = query.where(col(MissingEpisode.id).in_(ids))
    if period is not None:
        query = query.where(
            col(MissingEpisode.reported_missing_at) >= period.start,
            col(MissingEpisode.reported_missing_at) < period.end,
            col(MissingEpisode.shared_at) <= period.as_of,
        )
        if period.force_code is not None:
            query = query.where(col(MissingEpisode.force_code) == period.force_code)
    return [
        kinds.Loaded(
            "MissingEpisode",
            e.id,
            [
                RecordTimes(
                    "missing_episode",
                    e.id,
                    e.force_code,
                    e.reported_missing_at,
                    e.recorded_at,
                    e.shared_at,
                    returned_at=e.returned_at,
                    return_interview_at=e.return_interview_at,
                )
            ],
            children={e.child_id},
        )
        for e in (await session.execute(query)).scalars()
    ]


SQL = kinds.FactsSql(
    base="""
  SELECT m.id, m.child_id, m.force_code, m.reported_missing_at, m.recorded_at, m.shared_at,
    m.returned_at, m.return_interview_at
  FROM missing_episode m WHERE true /*ONLY*/""",
    only="m.id",
    records="""
  SELECT id AS subject_id, id AS record_id, 'missing_episode' AS kind, force_code,
    reported_missing_at AS event_at, recorded_at, shared_at, returned_at,
    return_interview_at AS interview_at
  FROM {base}""",
    children="SELECT id AS subject_id, child_id FROM {base}",
)

MISSING_EPISODES = kinds.register(
    kinds.RecordKind(
        record_type="MissingEpisode",
        table="missing_episode",
        kinds={"missing_episode": "Child missing from home or care"},
        readings={
            **kinds.SHARING_READINGS,
            "event_at": "the report of the missing child",
            "returned_at": "the child's return",
            "interview_at": "the return home interview",
        },
        stages=(*kinds.SHARING_STAGES, RETURN_INTERVIEW),
        receivers=kinds.Receivers.COUNCILS,
        load=load,
        sql=SQL,
        models={MissingEpisode: "id"},
        position=20,
        pushed=lambda e: ("missing_episode", e.reported_missing_at, e.last_seen_council_code),
    )
)
