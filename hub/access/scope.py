"""Row scope: which records a caller's organisation may see, as SQL predicates.

Jurisdiction decides rows. A force sees what it pushed; a council sees records about children
it is responsible for or hosts in a placement, and incidents located in its area. Every other
role sees no case rows. The predicates are applied inside the queries, so a record out of scope
is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col

from hub.access.models import Role
from hub.children.models import Child, ChildReference
from hub.incidents.models import Incident, IncidentChild
from hub.investigations.models import Investigation, InvestigationChild, InvestigationIncident
from hub.missing.models import MissingEpisode

# Subqueries use aliases of their own so that they never correlate with the outer query's tables
# by accident (a loader may select from the same tables). Building an alias is costly, so they
# are built once; the same alias in sibling subqueries is fine, each has its own FROM.
_child = aliased(Child, name="scope_child")
_incident = aliased(Incident, name="scope_incident")
_incident_child = aliased(IncidentChild, name="scope_incident_child")
_investigation_child = aliased(InvestigationChild, name="scope_investigation_child")
_investigation_incident = aliased(InvestigationIncident, name="scope_investigation_incident")


@dataclasses.dataclass(frozen=True)
class RowScope:
    """The rows a caller may see. Equal scopes share their (cached) predicates."""

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

    def _child_is_ours(self, child_id: Any) -> sa.ColumnElement[bool]:
        return (
            sa.exists()
            .where(
                col(_child.id) == child_id,
                sa.or_(
                    col(_child.responsible_council_code).in_(self.councils),
                    col(_child.host_council_code).in_(self.councils),
                ),
            )
            .correlate_except(_child)
        )

    def _any_child_ours(
        self, link: Any, record_column: Any, record_id: Any
    ) -> sa.ColumnElement[bool]:
        """Some child linked to the record (through the `link` alias) is one of our councils'."""
        return (
            sa.exists()
            .where(record_column == record_id, self._child_is_ours(link.child_id))
            .correlate_except(link)
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
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

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def incidents(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(Incident.force_code).in_(self.forces),
            col(Incident.location_council_code).in_(self.councils),
            self._any_child_ours(_incident_child, _incident_child.incident_id, Incident.id),
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def missing_episodes(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(MissingEpisode.force_code).in_(self.forces),
            self._child_is_ours(MissingEpisode.child_id),
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def investigations(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        linked_incident = (
            sa.exists()
            .where(
                col(_investigation_incident.investigation_id) == Investigation.id,
                col(_incident.id) == _investigation_incident.incident_id,
                col(_incident.location_council_code).in_(self.councils),
            )
            .correlate_except(_investigation_incident, _incident)
        )
        return sa.or_(
            col(Investigation.force_code).in_(self.forces),
            self._any_child_ours(
                _investigation_child, _investigation_child.investigation_id, Investigation.id
            ),
            linked_incident,
        )
