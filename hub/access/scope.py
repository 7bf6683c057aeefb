"""Row scope: which records a caller's organisation may see, as SQL predicates.

Jurisdiction decides rows. A force sees what it pushed; a council sees records about children
it is responsible for or hosts in a placement, and incidents located in its area. Every other
role sees no case rows. The predicates are applied inside the queries, so a record out of scope
is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col

from hub.access.models import Role
from hub.children.models import Child, ChildReference
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import Investigation, InvestigationChild, InvestigationIncident
from hub.missing.models import MissingEpisode


@dataclasses.dataclass(frozen=True)
class RowScope:
    forces: frozenset[str] = frozenset()
    councils: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def for_role(cls, *, role: Role, organisation_code: str) -> RowScope:
        if role is Role.POLICE_OFFICER:
            return cls(forces=frozenset({organisation_code}))
        if role is Role.COUNCIL_SOCIAL_WORKER:
            return cls(councils=frozenset({organisation_code}))
        return cls()

    @classmethod
    def unrestricted(cls) -> RowScope:
        """For the hub's own jobs (CLI, benchmarks' baseline), never for a client request."""
        return cls(everything=True)

    # Subqueries use their own aliases so that they never correlate with the outer query's
    # tables by accident (a loader may select from the same tables).
    def _child_is_ours(self, child_id: Any) -> sa.ColumnElement[bool]:
        child = aliased(Child)
        return (
            sa.exists()
            .where(
                col(child.id) == child_id,
                sa.or_(
                    col(child.responsible_council_code).in_(self.councils),
                    col(child.host_council_code).in_(self.councils),
                ),
            )
            .correlate_except(child)
        )

    def _any_child_ours(
        self, link_model: Any, link_column: Any, record_id: Any
    ) -> sa.ColumnElement[bool]:
        """Some child linked to the record (through `link_model`) is one of our councils'."""
        link = aliased(link_model)
        return (
            sa.exists()
            .where(
                getattr(link, link_column.key) == record_id,
                self._child_is_ours(link.child_id),
            )
            .correlate_except(link)
        )

    def children(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(Child.responsible_council_code).in_(self.councils),
            col(Child.host_council_code).in_(self.councils),
            sa.exists().where(
                col(ChildReference.child_id) == Child.id,
                col(ChildReference.organisation_code).in_(self.forces),
            ),
        )

    def incidents(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(Incident.force_code).in_(self.forces),
            col(Incident.location_council_code).in_(self.councils),
            self._any_child_ours(IncidentChild, IncidentChild.incident_id, Incident.id),
        )

    def missing_episodes(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(MissingEpisode.force_code).in_(self.forces),
            self._child_is_ours(MissingEpisode.child_id),
        )

    def investigations(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        link, incident = aliased(InvestigationIncident), aliased(Incident)
        linked_incident = (
            sa.exists()
            .where(
                col(link.investigation_id) == Investigation.id,
                col(incident.id) == link.incident_id,
                col(incident.location_council_code).in_(self.councils),
            )
            .correlate_except(link, incident)
        )
        return sa.or_(
            col(Investigation.force_code).in_(self.forces),
            self._any_child_ours(
                InvestigationChild, InvestigationChild.investigation_id, Investigation.id
            ),
            linked_incident,
        )
