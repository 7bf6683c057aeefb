"""Police protections as the timeliness report measures them: a record kind declared once.

A protection (Children Act 1989 s.46) has the police sharing stages, from the child being taken
into protection to the hub and on to each receiving council's first sight and acknowledgement;
its receivers are the child's responsible and host councils and the council it was placed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.protection.models import PoliceProtection
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

KIND = "police_protection"


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    query = sa.select(PoliceProtection)
    if ids is not None:
        query = query.where(col(PoliceProtection.id).in_(ids))
    if period is not None:
        query = query.where(
            col(PoliceProtection.taken_at) >= period.start,
            col(PoliceProtection.taken_at) < period.end,
            col(PoliceProtection.shared_at) <= period.as_of,
        )
        if period.force_code is not None:
            query = query.where(col(PoliceProtection.force_code) == period.force_code)
    return [
        kinds.Loaded(
            "PoliceProtection",
            p.id,
            [RecordTimes(KIND, p.id, p.force_code, p.taken_at, p.recorded_at, p.shared_at)],
            located={p.placed_council_code} if p.placed_council_code else set(),
            children={p.child_id},
        )
        for p in (await session.execute(query)).scalars()
    ]


SQL = kinds.FactsSql(
    base="""
  SELECT p.id, p.force_code, p.child_id, p.taken_at, p.recorded_at, p.shared_at,
    p.placed_council_code
  FROM police_protection p WHERE true /*ONLY*/""",
    only="p.id",
    records="""
  SELECT id AS subject_id, id AS record_id, 'police_protection' AS kind, force_code,
    taken_at AS event_at, recorded_at, shared_at
  FROM {base}""",
    children="SELECT id AS subject_id, child_id FROM {base}",
    located="""
  SELECT id AS subject_id, placed_council_code AS council FROM {base}
  WHERE placed_council_code IS NOT NULL""",
)

POLICE_PROTECTIONS = kinds.register(
    kinds.RecordKind(
        record_type="PoliceProtection",
        table="police_protection",
        kinds={KIND: "Child taken into police protection (Children Act 1989 s.46)"},
        readings={**kinds.SHARING_READINGS, "event_at": "the child taken into police protection"},
        stages=kinds.SHARING_STAGES,
        receivers=kinds.Receivers.COUNCILS,
        load=load,
        sql=SQL,
        models={PoliceProtection: "id"},
        position=40,
    )
)
