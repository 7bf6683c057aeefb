"""Investigations as the timeliness report measures them: a record kind declared once.

Each status change is an ``investigation_status`` record of its own (its id is the change's)
with the sharing stages; first sight and acknowledgement belong to the investigation as a whole,
timed from its opening change. Its receivers are its children's councils and its incidents'
location councils.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.incidents.models import Incident
from hub.investigations.models import (
    Investigation,
    InvestigationChild,
    InvestigationIncident,
    InvestigationTransition,
)
from hub.timeliness import kinds
from hub.timeliness.timeline import RecordTimes

KIND = "investigation_status"


async def load(
    session: AsyncSession, ids: Sequence[str] | None, period: kinds.Period | None
) -> list[kinds.Loaded]:
    investigations: list[Investigation] = []
    transitions: list[InvestigationTransition] = []
    forces: dict[str, str] = {}  # the force of each investigation a status change belongs to
    if ids is not None:
        query = sa.select(Investigation).where(col(Investigation.id).in_(ids))
        investigations = list((await session.execute(query)).scalars())
        changes = sa.select(InvestigationTransition).where(
            col(InvestigationTransition.investigation_id).in_(ids)
        )
        transitions = list((await session.execute(changes)).scalars())
        forces = {i.id: i.force_code for i in investigations}
    elif period is not None:
        investigations, transitions, forces = await _in_period(session, period)
    return await _loaded(session, investigations, transitions, forces)


async def _in_period(
    session: AsyncSession, period: kinds.Period
) -> tuple[list[Investigation], list[InvestigationTransition], dict[str, str]]:
    """The status changes in the period; the investigations opened by one of them."""
    changes = (
        sa.select(InvestigationTransition, col(Investigation.force_code))
        .join(Investigation, col(Investigation.id) == InvestigationTransition.investigation_id)
        .where(
            col(InvestigationTransition.changed_at) >= period.start,
            col(InvestigationTransition.changed_at) < period.end,
            col(InvestigationTransition.shared_at) <= period.as_of,
        )
    )
    investigation = sa.select(Investigation).where(col(Investigation.shared_at) <= period.as_of)
    if period.force_code is not None:
        changes = changes.where(col(Investigation.force_code) == period.force_code)
        investigation = investigation.where(col(Investigation.force_code) == period.force_code)
    transitions: list[InvestigationTransition] = []
    forces: dict[str, str] = {}
    for change, force in (await session.execute(changes)).all():
        transitions.append(change)
        forces[change.investigation_id] = force
    opened = {t.investigation_id for t in transitions if t.from_status is None}
    investigations: list[Investigation] = []
    if opened:
        investigation = investigation.where(col(Investigation.id).in_(opened))
        investigations = list((await session.execute(investigation)).scalars())
    return investigations, transitions, forces


async def _loaded(
    session: AsyncSession,
    investigations: list[Investigation],
    transitions: list[InvestigationTransition],
    forces: dict[str, str],
) -> list[kinds.Loaded]:
    ids = list({i.id for i in investigations} | {t.investigation_id for t in transitions})
    found = {i: kinds.Loaded("Investigation", i, []) for i in ids}
    opened_at: dict[str, dt.datetime] = {}
    for t in sorted(transitions, key=lambda t: t.changed_at):
        opened_at.setdefault(t.investigation_id, t.changed_at)
    for investigation in investigations:
        found[investigation.id].records.append(
            RecordTimes(
                KIND,
                investigation.id,
                investigation.force_code,
                opened_at.get(investigation.id, investigation.status_changed_at),
                None,
                investigation.shared_at,
                share_stages=False,
            )
        )
    for t in transitions:
        force = forces.get(t.investigation_id)
        if force is None:
            continue
        found[t.investigation_id].records.append(
            RecordTimes(KIND, t.id, force, t.changed_at, None, t.shared_at, receipt_stages=False)
        )
    if ids:
        children = await session.execute(
            sa.select(
                col(InvestigationChild.investigation_id), col(InvestigationChild.child_id)
            ).where(col(InvestigationChild.investigation_id).in_(ids))
        )
        for investigation_id, child_id in children.all():
            found[investigation_id].children.add(child_id)
        linked = await session.execute(
            sa.select(
                col(InvestigationIncident.investigation_id), col(Incident.location_council_code)
            )
            .join(Incident, col(Incident.id) == InvestigationIncident.incident_id)
            .where(col(InvestigationIncident.investigation_id).in_(ids))
        )
        for investigation_id, council in linked.all():
            found[investigation_id].located.add(council)
    return list(found.values())


SQL = kinds.FactsSql(
    base="SELECT v.id, v.force_code, v.shared_at FROM investigation v WHERE true /*ONLY*/",
    only="v.id",
    records="""
  SELECT t.investigation_id AS subject_id, t.id AS record_id, 'investigation_status' AS kind,
    v.force_code, t.changed_at AS event_at, CAST(NULL AS timestamptz) AS recorded_at,
    t.shared_at, true AS share_stages, false AS receipt_stages
  FROM investigation_transition t JOIN {base} v ON v.id = t.investigation_id
  UNION ALL
  SELECT t.investigation_id, t.investigation_id, 'investigation_status', v.force_code,
    t.changed_at, CAST(NULL AS timestamptz), v.shared_at, false, true
  FROM investigation_transition t JOIN {base} v ON v.id = t.investigation_id
  WHERE t.from_status IS NULL""",
    children="""
  SELECT ic.investigation_id AS subject_id, ic.child_id
  FROM {base} JOIN investigation_child ic ON ic.investigation_id = {base}.id""",
    located="""
  SELECT ii.investigation_id AS subject_id, i.location_council_code AS council
  FROM {base} JOIN investigation_incident ii ON ii.investigation_id = {base}.id
  JOIN incident i ON i.id = ii.incident_id""",
    row_flags=True,
    depends_on={
        # An investigation is received by its incidents' location councils too.
        "Incident": (
            "SELECT investigation_id FROM investigation_incident WHERE incident_id = ANY(:ids)"
        ),
    },
)

INVESTIGATIONS = kinds.register(
    kinds.RecordKind(
        record_type="Investigation",
        table="investigation",
        kinds={KIND: "Change in an investigation's status"},
        readings={**kinds.SHARING_READINGS, "event_at": "the status change (or the opening)"},
        stages=kinds.SHARING_STAGES,
        receivers=kinds.Receivers.COUNCILS,
        load=load,
        sql=SQL,
        models={
            Investigation: "id",
            InvestigationTransition: "investigation_id",
            InvestigationChild: "investigation_id",
            InvestigationIncident: "investigation_id",
        },
        position=30,
    )
)
