"""Row scope: which records a caller's organisation may see, as SQL predicates.

Jurisdiction decides rows, as the sharing agreement's `rows` term names them. A force sees what
it pushed; a council sees records about children it is responsible for or hosts in a placement,
and incidents located in its area; a school sees domestic abuse incidents involving its pupils,
and of their children only its pupils (a pupil in no such incident does not exist for it). Other
roles see no case rows. The predicates are applied inside the queries, so a record out of scope
is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col

from hub.access.agreement import RowKind
from hub.access.models import CouncilReach
from hub.children.models import Child, ChildReference
from hub.closures.models import ClosureReview
from hub.incidents.models import Incident, IncidentChild, IncidentType
from hub.investigations.models import Investigation, InvestigationChild, InvestigationIncident
from hub.missing.models import MissingEpisode
from hub.pagination import ByCode, Naming

# A condition of a scope's OR, as a list's branch reads it (`pagination.Listing.scoped`).
Branch = sa.ColumnElement[bool] | ByCode

# Subqueries use aliases of their own so that they never correlate with the outer query's tables
# by accident (a loader may select from the same tables). Building an alias is costly, so they
# are built once; the same alias in sibling subqueries is fine, each has its own FROM.
_child = aliased(Child, name="scope_child")
_incident = aliased(Incident, name="scope_incident")
_incident_child = aliased(IncidentChild, name="scope_incident_child")
_investigation_child = aliased(InvestigationChild, name="scope_investigation_child")
_investigation_incident = aliased(InvestigationIncident, name="scope_investigation_incident")


def one_of(column: Any, ids: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """`column` is one of `ids` (PostgreSQL): the ids are read first, on their own, as one
    array, then unnested and joined, the rows by `column`'s index where that is cheaper.

    As `EXISTS`, a branch's generic plan (which knows neither the limit nor how few the ids
    are) walked the time index back through every newer record in the country and tested
    each (`tests/test_listing_plans`: 10,000 to 40,000 rows read where the council has 30).
    As `IN` the ids' own query, the planner, which takes the council's children for an
    average council's share, read the whole link table to find the council's 30 (100,030
    rows at `bench-listing`'s size). As `= ANY(ARRAY(...))`, where it read the tables whole
    (while they are small) it tested each row against the array, which PostgreSQL searches
    from its start: a page cost the council's children times the rows read (5.2 ms at 680
    children and 340 incidents, 0.9 ms unnested and joined).

    A council's branches through a child no longer use it: read this way, they read every
    record of every child of the council, however old, to find the newest. They read
    `CouncilReach` (`RowScope.reached`)."""
    unnested = sa.select(sa.func.unnest(sa.func.array(ids.scalar_subquery())))
    among: sa.ColumnElement[bool] = column.in_(unnested)
    return among


@dataclasses.dataclass(frozen=True)
class RowScope:
    """The rows a caller may see. Equal scopes share their (cached) predicates."""

    forces: frozenset[str] = frozenset()
    councils: frozenset[str] = frozenset()
    schools: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def for_rows(cls, rows: RowKind, organisation_code: str) -> RowScope:
        ours = frozenset({organisation_code})
        match rows:
            case RowKind.OWN_FORCE:
                return cls(forces=ours)
            case RowKind.COUNCIL_CHILDREN:
                return cls(councils=ours)
            case RowKind.SCHOOL_PUPILS:
                return cls(schools=ours)
            case RowKind.NONE:
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

    def child_is_ours(self, child_id: Any) -> sa.ColumnElement[bool]:
        """The child (an id column of the caller's table) is one of our councils' children: for
        the domains that scope their own records (`hub.joint_visits`, `hub.protection`)."""
        return self._child_is_ours(child_id)

    def _any_child_ours(
        self, link: Any, record_column: Any, record_id: Any
    ) -> sa.ColumnElement[bool]:
        """Some child linked to the record (through the `link` alias) is one of our councils'."""
        return (
            sa.exists()
            .where(record_column == record_id, self._child_is_ours(link.child_id))
            .correlate_except(link)
        )

    def reached(self, kind: str) -> tuple[ByCode, ...]:
        """The records of the list `kind` (its table) our councils reach through a child of
        theirs, or an investigation through an incident in their area, as a list's branch
        (PostgreSQL): each council's newest from `CouncilReach`'s (council, time) index, which
        PostgreSQL's triggers keep. No branch for a scope of no council.

        Read through the children themselves, a branch read every record of every child of the
        council to find the newest, its cost growing with the council's own history
        (`bench-listing --ours`)."""
        if not self.councils:
            return ()
        naming = Naming(
            col(CouncilReach.record_id), col(CouncilReach.at), col(CouncilReach.kind) == kind
        )
        return (ByCode(col(CouncilReach.council_code), self.councils, naming),)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def children(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(Child.responsible_council_code).in_(self.councils),
            col(Child.host_council_code).in_(self.councils),
            sa.and_(col(Child.school_code).in_(self.schools), self._encompass_notice()),
            sa.exists().where(
                col(ChildReference.child_id) == Child.id,
                col(ChildReference.organisation_code).in_(self.forces),
            ),
        )

    def _encompass_notice(self) -> sa.ColumnElement[bool]:
        """Operation Encompass, from the child's side: a domestic abuse incident involves them.

        A school sees a pupil only through such a notice (`incidents`), so being on the roll
        alone, or being in an incident of another kind, does not make a child the school's.
        """
        return (
            sa.exists()
            .where(
                col(_incident_child.child_id) == Child.id,
                col(_incident.id) == _incident_child.incident_id,
                col(_incident.type) == IncidentType.DOMESTIC_ABUSE,
            )
            .correlate_except(_incident_child, _incident)
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def incidents(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        return sa.or_(
            col(Incident.force_code).in_(self.forces),
            col(Incident.location_council_code).in_(self.councils),
            self._any_child_ours(_incident_child, _incident_child.incident_id, Incident.id),
            sa.and_(col(Incident.type) == IncidentType.DOMESTIC_ABUSE, self._pupil_involved()),
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def incident_branches(self) -> tuple[Branch, ...]:
        """`incidents` as the conditions it is the OR of, for PostgreSQL, each read on its own
        (a list reads each one's newest first: `pagination.Listing`'s branches): the force's
        and the area's from their (code, time) indexes (`ByCode`), those through a child from
        what the council reaches (`reached`), a school's as `one_of` its pupils' incidents. A
        condition the scope cannot meet (a council's as a force) is left out."""
        if self.everything:
            return ()  # one condition, no OR: the list is one statement
        branches: list[Branch] = [
            ByCode(col(Incident.force_code), self.forces),
            ByCode(col(Incident.location_council_code), self.councils),
            *self.reached("incident"),
        ]
        if self.schools:
            pupils = sa.select(col(_child.id)).where(col(_child.school_code).in_(self.schools))
            of_pupils = sa.select(col(_incident_child.incident_id)).where(
                one_of(col(_incident_child.child_id), pupils)
            )
            branches.append(
                sa.and_(
                    col(Incident.type) == IncidentType.DOMESTIC_ABUSE,
                    one_of(col(Incident.id), of_pupils),
                )
            )
        return tuple(branches)

    def _pupil_involved(self) -> sa.ColumnElement[bool]:
        """Operation Encompass: one of the school's pupils was involved in the incident."""
        return (
            sa.exists()
            .where(
                col(_incident_child.incident_id) == Incident.id,
                col(_child.id) == _incident_child.child_id,
                col(_child.school_code).in_(self.schools),
            )
            .correlate_except(_incident_child, _child)
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def child_references(self) -> sa.ColumnElement[bool]:
        """Which of a visible child's references the caller sees: a force only its own.

        A force reaches another organisation's row of a child through a meeting it is invited
        to (the council names the child); that force's person reference is not its business.
        """
        if self.everything or self.councils or not self.forces:
            return sa.true()
        return col(ChildReference.organisation_code).in_(self.forces)

    @property
    def sees_every_incident_child(self) -> bool:
        """Whether `incident_children` lets every child of a visible incident through."""
        return self.everything or not self.schools or bool(self.forces or self.councils)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def incident_children(self) -> sa.ColumnElement[bool]:
        """Which of an incident's children the caller sees: a school only its own pupils."""
        if self.sees_every_incident_child:
            return sa.true()
        return (
            sa.exists()
            .where(
                col(_child.id) == IncidentChild.child_id, col(_child.school_code).in_(self.schools)
            )
            .correlate_except(_child)
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
    def missing_episode_branches(self) -> tuple[Branch, ...]:
        """`missing_episodes` as the conditions it is the OR of (`incident_branches`)."""
        if self.everything:
            return ()  # one condition, no OR: the list is one statement
        return (
            ByCode(col(MissingEpisode.force_code), self.forces),
            *self.reached("missing_episode"),
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

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def investigation_branches(self) -> tuple[Branch, ...]:
        """`investigations` as the conditions it is the OR of (`incident_branches`): the
        force's, and those of a child of ours or linked to an incident in our area, from what
        the council reaches (`reached`)."""
        if self.everything:
            return ()  # one condition, no OR: the list is one statement
        return (
            ByCode(col(Investigation.force_code), self.forces),
            *self.reached("investigation"),
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - scopes are few and live as long as the hub
    def closure_reviews(self) -> sa.ColumnElement[bool]:
        """A force sees every council's view of its closures; a council only its own."""
        if self.everything:
            return sa.true()
        return sa.or_(
            col(ClosureReview.force_code).in_(self.forces),
            col(ClosureReview.council_code).in_(self.councils),
        )
