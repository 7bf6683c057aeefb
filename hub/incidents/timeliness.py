"""Incidents as the timeliness report measures them: a record kind declared once (`kinds`).

An incident is a ``domestic_abuse`` or an ``incident`` record, with the police sharing stages;
its receivers are its location's council and each child's responsible and host councils.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.incidents.models import Incident, IncidentChild
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

DOMESTIC_ABUSE = "domestic_abuse"


def incident_kind(incident_type: str) -> str:
    return DOMESTIC_ABUSE if incident_type == DOMESTIC_ABUSE else "incident"


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    query = sa.select(Incident)
    if ids is not None:
        query = query.where(col(Incident.id).in_(ids))
    if period is not None:
        query = query.where(
            col(Incident.occurred_at) >= period.start,
            col(Incident.occurred_at) < period.end,
            col(Incident.shared_at) <= period.as_of,
        )
        if period.force_code is not None:
            query = query.where(col(Incident.force_code) == period.force_code)
    incidents = list((await session.execute(query)).scalars())
    found = {
        i.id: kinds.Loaded(
            "Incident",
            i.id,
            [
                RecordTimes(
                    incident_kind(i.type),
                    i.id,
                    i.force_code,
                    i.occurred_at,
                    i.recorded_at,
                    i.shared_at,
                )
            ],
            located={i.location_council_code},
        )
        for i in incidents
    }
    if found:
        links = await session.execute(
            sa.select(col(IncidentChild.incident_id), col(IncidentChild.child_id)).where(
                col(IncidentChild.incident_id).in_(list(found))
            )
        )
        for incident_id, child_id in links.all():
            found[incident_id].children.add(child_id)
    return list(found.values())


SQL = kinds.FactsSql(
    base="""
  SELECT i.id, i.type, i.force_code, i.location_council_code, i.occurred_at, i.recorded_at,
    i.shared_at
  FROM incident i WHERE true /*ONLY*/""",
    only="i.id",
    records="""
  SELECT id AS subject_id, id AS record_id,
    CASE WHEN type = 'domestic_abuse' THEN 'domestic_abuse' ELSE 'incident' END AS kind,
    force_code, occurred_at AS event_at, recorded_at, shared_at
  FROM {base}""",
    children="""
  SELECT ic.incident_id AS subject_id, ic.child_id
  FROM {base} JOIN incident_child ic ON ic.incident_id = {base}.id""",
    located="SELECT id AS subject_id, location_council_code AS council FROM {base}",
)

INCIDENTS = kinds.register(
    kinds.RecordKind(
        record_type="Incident",
        table="incident",
        kinds={
            DOMESTIC_ABUSE: "Domestic abuse incident involving a child",
            "incident": "Other child safeguarding incident",
        },
        readings={
            **kinds.SHARING_READINGS,
            "event_at": "the incident",
        },
        stages=kinds.SHARING_STAGES,
        receivers=kinds.Receivers.COUNCILS,
        load=load,
        sql=SQL,
        models={Incident: "id", IncidentChild: "incident_id"},
        position=10,
        pushed=lambda i: (incident_kind(i.type), i.occurred_at, i.location_council_code),
    )
)
