"""A force loading its history: many incidents in one push, checked and stored together.

All or nothing: every record is checked before anything is stored (an error names the record,
`input.3.occurredAt`), and the request's one transaction keeps all of them or none. Each record
is idempotent as a single push is (`hub.pushes`): one pushed before with the same content is
returned and not stored again, different content under its police reference or idempotency key
is a CONFLICT naming the record, and so is a second record in the batch that takes another's
key with different content (the same content twice is one record).

The batch costs a few statements, not a few per record: one lookup of the organisations named,
one of the incidents pushed before, one of the children the force already holds, and one INSERT
of every table's rows (on SQLite, one per table). Two rare cases take the single push's path,
record by record: a new child with an NHS number (matched and linked to other organisations'
children, a combination the audit logs), and a batch that loses a race with a concurrent push
of one of its records.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import pushes, validation
from hub.base import new_id
from hub.children import service as children
from hub.children.models import Child, ChildReference, ReferenceKind
from hub.db import GivenRows, among, dialect_of, rows, utcnow
from hub.errors import Conflict
from hub.incidents import service as incidents
from hub.incidents.models import Incident, IncidentChild
from hub.incidents.service import IncidentReport
from hub.timeliness import facts


class Stored(NamedTuple):
    # The incident: the model's object, or a record of its columns (a named tuple) where the
    # push's own INSERT returned it (PostgreSQL).
    record: Any
    created: bool  # whether this push created it
    # The children it was created with (every child it concerns), when this push created it
    # and knows them: the response's audit then need not look them up.
    child_ids: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class _Checked:
    at: str  # where the record is in the request: `input.3`
    report: IncidentReport
    payload_hash: str

    def names(self) -> list[tuple[str, str]]:
        named = [("reference", self.report.police_reference)]
        if self.report.idempotency_key is not None:
            named.append(("key", self.report.idempotency_key))
        return named


class Reported(NamedTuple):
    records: list[Stored]  # each report's, in order
    # Every organisation the push named (rows of every column, by code), as a request's
    # organisation loader reads them: its resolver need not read them again.
    organisations: dict[str, Any]


_CHILD: sa.Table = Child.__table__  # type: ignore[attr-defined]
_REFERENCE: sa.Table = ChildReference.__table__  # type: ignore[attr-defined]
_LINK: sa.Table = IncidentChild.__table__  # type: ignore[attr-defined]
_INCIDENT: sa.Table = Incident.__table__  # type: ignore[attr-defined]

# Where a single push's report is in its request: its errors name `input.occurredAt`.
SINGLE = "input"


async def report_one(
    session: AsyncSession, *, force_code: str, client_id: str, report: IncidentReport
) -> Reported:
    """A single push (`reportIncident`) as a batch of one: the same checks and idempotency as
    `incidents.report`, in fewer statements (rows, not ORM objects)."""
    return await report_many(
        session, force_code=force_code, client_id=client_id, reports=[report], places=[SINGLE]
    )


async def report_many(
    session: AsyncSession,
    *,
    force_code: str,
    client_id: str,
    reports: Sequence[IncidentReport],
    places: Sequence[str] | None = None,
) -> Reported:
    """Record each pushed incident once, in order; return (record, created) for each.

    `places`: where each report is in the request, for errors (`input.3` by default)."""
    where = places or [f"input.{n}" for n in range(len(reports))]
    batch, organisations = await _checked(session, force_code, reports, where)
    # Asked with the organisations (any row answers): a new push's lookups find nothing.
    answer = next(iter(organisations.values()), None)
    seen = _Seen() if answer is None else _Seen(answer.pushed_before, answer.children_held)
    stored = await _stored_once(
        session, force_code=force_code, client_id=client_id, batch=batch, seen=seen
    )
    return Reported(stored, organisations)


@dataclasses.dataclass(frozen=True)
class _Seen:
    """Whether the force pushed any of the batch's incidents, and holds any of its children,
    before its checks' statement: where not, their lookups are not made. One committed since
    is found as a lost race is, through the INSERT's duplicate key."""

    incidents: bool = True
    children: bool = True


async def _stored_once(
    session: AsyncSession, *, force_code: str, client_id: str, batch: list[_Checked], seen: _Seen
) -> list[Stored]:
    before: dict[tuple[str, str], Incident] = {}
    if seen.incidents:
        before = await _pushed_before(session, force_code=force_code, batch=batch)
    results: list[Stored | None] = [None] * len(batch)
    fresh: dict[tuple[str, str], int] = {}  # a new record's keys: its place in the batch
    new: list[int] = []
    for place, record in enumerate(batch):
        earlier = next((before[k] for k in record.names() if k in before), None)
        if earlier is not None:
            results[place] = Stored(_same(earlier, record), created=False)
            continue
        twin = next((fresh[k] for k in record.names() if k in fresh), None)
        if twin is None:
            fresh.update(dict.fromkeys(record.names(), place))
            new.append(place)
        elif batch[twin].payload_hash != record.payload_hash:
            raise _conflict(record)
    rows = await _inserted_once(
        session,
        force_code=force_code,
        client_id=client_id,
        batch=[batch[p] for p in new],
        seen=seen,
    )
    if rows is None:
        # A concurrent push stored one of these first: the single push's path finds it.
        return [
            Stored(
                *await incidents.report(
                    session, force_code=force_code, client_id=client_id, incident=record.report
                )
            )
            for record in batch
        ]
    for place, row in zip(new, rows, strict=True):
        results[place] = row
    for place, record in enumerate(batch):
        if results[place] is None:  # the same record twice in the batch: the first one's row
            twin = next(fresh[k] for k in record.names() if k in fresh)
            results[place] = Stored(_stored(results[twin]).record, created=False)
    return [_stored(result) for result in results]


async def _inserted_once(
    session: AsyncSession, *, force_code: str, client_id: str, batch: list[_Checked], seen: _Seen
) -> list[Stored] | None:
    """The batch's new records stored, or None if a concurrent push stored one of them first
    (and this one then stored nothing of the batch that the single push's path would not).

    Inside a savepoint, rolled back on a duplicate key; but a single record naming no child
    the force held (nothing to update) and no NHS number (no matching) is written by one
    statement that skips a duplicate rather than failing, so that it needs no savepoint: two
    round trips fewer for most single pushes (`_in_one_statement`). If it loses, all it may
    leave is new children of its own, each with its reference (none, if the winner pushed the
    same content: it took their references), which the single push's path then finds."""
    if not batch:  # every record was pushed before
        return []
    one = len(batch) == 1 and not seen.children
    if one and _postgres(session) and not any(c.child.nhs_number for c in batch[0].report.children):
        return await _insert(
            session,
            force_code=force_code,
            client_id=client_id,
            batch=batch,
            may_hold=False,
            guarded=False,
        )
    try:
        async with session.begin_nested():
            return await _insert(
                session,
                force_code=force_code,
                client_id=client_id,
                batch=batch,
                may_hold=seen.children,
            )
    except IntegrityError:
        return None


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _stored(result: Stored | None) -> Stored:
    assert result is not None  # noqa: S101 - every place is filled above
    return result


async def _checked(
    session: AsyncSession, force_code: str, reports: Sequence[IncidentReport], places: Sequence[str]
) -> tuple[list[_Checked], dict[str, Any]]:
    """The batch checked, and the organisations it names, each row also saying whether the
    force pushed any of its incidents (`pushed_before`) and holds any of its children
    (`children_held`)."""
    now = utcnow()
    batch, codes = [], []
    for at, report in zip(places, reports, strict=True):
        normalised, named = incidents.checked(report, now=now, at=at)
        batch.append(_Checked(at, normalised, pushes.fingerprint(normalised)))
        codes += named
    values = {
        "probe_force": force_code,
        "probe_references": sorted({r.report.police_reference for r in batch}),
        "probe_keys": sorted({k for r in batch if (k := r.report.idempotency_key) is not None}),
        "probe_people": sorted(
            {c.child.police_reference for r in batch for c in r.report.children}
        ),
    }
    probes = validation.Probes(_probes(dialect_of(session)), values)
    return batch, await validation.require_organisations(session, codes, probes=probes)


def _force_has(column: sa.Column[Any], values: str, dialect: str | None) -> sa.Exists:
    """Whether the probed force has an incident with any of `values` in `column`."""
    return (
        sa.select(col(Incident.id))
        .where(
            col(Incident.force_code) == sa.bindparam("probe_force"),
            among(column, values, dialect=dialect),
        )
        .exists()
    )


@functools.lru_cache(maxsize=4)
def _probes(dialect: str | None) -> tuple[tuple[str, sa.ColumnElement[bool]], ...]:
    """What `_pushed_before` and `_children_held` would find, as EXISTS clauses (their values
    bound, each list as one parameter: `among`), built once for each database.

    `pushed_before` is two EXISTS, one per unique index ((force, reference) and (force, key)):
    as one EXISTS over `reference = ANY(...) OR key = ANY(...)`, PostgreSQL's generic plan
    (the statement is prepared once) scanned every incident of the force, for a push naming
    none of them, the usual case, its cost growing with them (`tests/test_push_probe_plans`)."""
    return (
        (
            "pushed_before",
            sa.or_(
                _force_has(_INCIDENT.c.police_reference, "probe_references", dialect),
                _force_has(_INCIDENT.c.idempotency_key, "probe_keys", dialect),
            ),
        ),
        (
            # A reference's child always exists (a foreign key; children are never deleted):
            # joined to `child` as `_children_held` is, PostgreSQL's generic plan scanned every
            # child for a push naming none the force held, its cost growing with them.
            "children_held",
            sa.select(col(ChildReference.id))
            .where(
                col(ChildReference.organisation_code) == sa.bindparam("probe_force"),
                col(ChildReference.kind) == ReferenceKind.POLICE_PERSON,
                among(_REFERENCE.c.value, "probe_people", dialect=dialect),
            )
            .exists(),
        ),
    )


def _same(earlier: Incident, record: _Checked) -> Incident:
    if earlier.payload_hash != record.payload_hash:
        raise _conflict(record)
    return earlier


def _conflict(record: _Checked) -> Conflict:
    if record.at == SINGLE:  # as `pushes.same_or_conflict` says it to a single push
        return Conflict(
            "a different incident was already pushed with this police reference or idempotency key"
        )
    return Conflict(
        f"{record.at}: a different incident was already pushed with this police reference "
        "or idempotency key",
        field=record.at,
    )


def _pushed_before_query(force_code: str, batch: Sequence[_Checked]) -> sa.Select[Any]:
    references = {r.report.police_reference for r in batch}
    keys = {r.report.idempotency_key for r in batch} - {None}
    named: sa.ColumnElement[bool] = col(Incident.police_reference).in_(references)
    if keys:
        named = sa.or_(named, col(Incident.idempotency_key).in_(keys))
    return sa.select(Incident).where(col(Incident.force_code) == force_code, named)


async def _pushed_before(
    session: AsyncSession, *, force_code: str, batch: Sequence[_Checked]
) -> dict[tuple[str, str], Incident]:
    """The force's incidents pushed before under any of the batch's references or keys."""
    query = _pushed_before_query(force_code, batch)
    found: dict[tuple[str, str], Incident] = {}
    for row in (await session.execute(query)).scalars():
        found[("reference", row.police_reference)] = row
        if row.idempotency_key is not None:
            found[("key", row.idempotency_key)] = row
    return found


async def _insert(
    session: AsyncSession,
    *,
    force_code: str,
    client_id: str,
    batch: Sequence[_Checked],
    may_hold: bool = True,
    guarded: bool = True,
) -> list[Stored] | None:
    """The batch's new incidents and children, an INSERT per table (rows, not ORM objects: the
    ORM's per-object work cost more than the database's)."""
    incident_rows = [_incident_row(r, force_code=force_code, client_id=client_id) for r in batch]
    # `may_hold`: whether the force may hold any of the batch's children (else no lookup).
    held: dict[str, Child | str] = {}
    if may_hold:
        held = await _children_held(session, force_code=force_code, batch=batch)
    new_children = _NewChildren(force_code=force_code)
    links: dict[tuple[str, str], dict[str, Any]] = {}
    for row, record in zip(incident_rows, batch, strict=True):
        for involved in record.report.children:
            child_id = await _child(
                session,
                held,
                new_children,
                details=involved.child,
                default_council=record.report.location_council,
            )
            link = links.setdefault(
                (row["id"], child_id),
                {
                    "incident_id": row["id"],
                    "child_id": child_id,
                    "present": False,
                    "household_member": False,
                    "victim": False,
                },
            )
            link["present"] |= involved.present
            link["household_member"] |= involved.household_member
            link["victim"] |= involved.victim
    await session.flush()  # placement changes to children the force held
    if _postgres(session):
        written = await _in_one_statement(
            session, new_children, incident_rows, [*links.values()], guarded
        )
        if written is None:
            return None
        stored = written
    else:
        await new_children.insert(session)  # SQLite: no INSERT in a WITH
        stored = list(
            (
                await session.execute(
                    sa.insert(Incident).returning(Incident, sort_by_parameter_order=True),
                    incident_rows,
                )
            ).scalars()
        )
        await session.execute(sa.insert(IncidentChild), list(links.values()))
    linked: dict[str, list[str]] = {row["id"]: [] for row in incident_rows}
    for incident_id, child_id in links:
        linked[incident_id].append(child_id)
    # Rows the ORM did not flush: their stage facts are marked here instead, as new records.
    facts.mark(
        session.sync_session, [("Incident", row["id"]) for row in incident_rows], created=True
    )
    return [Stored(row, created=True, child_ids=tuple(sorted(linked[row.id]))) for row in stored]


async def _in_one_statement(
    session: AsyncSession,
    new_children: _NewChildren,
    incident_rows: list[dict[str, Any]],
    links: list[dict[str, Any]],
    guarded: bool,  # whether a savepoint is around it
) -> list[Any] | None:
    """The records' rows of every table in one INSERT, its other tables' as data-modifying
    WITHs (PostgreSQL): one round trip, not four. Their foreign keys are checked at the end of
    the statement, once every row is in; a duplicate key fails the whole statement, as it
    would fail one of the four, and the savepoint around it is rolled back just the same.
    Each table's rows go as one JSON parameter (`GivenRows`); the incidents come back as
    records of their columns (`hub.db.rows`), not as the model's objects.

    Unguarded (one record, no savepoint), a duplicate is skipped instead: a child whose
    reference another push took is not stored, and then the incident is not either, nor its
    links; None says so. What it did store then (the children whose references were free,
    each with its reference) is what the single push's path stores again, and finds."""
    dialect = session.get_bind().dialect
    given: dict[str, Any] = {
        _CHILD.name: _GIVEN[_CHILD.name].value(new_children.rows, dialect),
        _REFERENCE.name: _GIVEN[_REFERENCE.name].value(new_children.references, dialect),
        _LINK.name: _GIVEN[_LINK.name].value(links, dialect),
        _INCIDENT.name: _GIVEN[_INCIDENT.name].value(incident_rows, dialect),
    }
    references = len(new_children.references)
    new_children.rows, new_children.references = [], []
    statement = _ONE_STATEMENT
    if not guarded:
        statement, given["references_given"] = _ONE_STATEMENT_OR_NONE, references
    found = {row.id: row for row in await rows(session, statement, given)}
    if not guarded and not found:
        return None
    return [found[row["id"]] for row in incident_rows]


_GIVEN = {table.name: GivenRows(table) for table in (_CHILD, _REFERENCE, _LINK, _INCIDENT)}


def _inserting(table: sa.Table, *, where: str | None = None, skip: bool = False) -> str:
    """`INSERT INTO <table>` of its given rows (those `where` keeps; duplicates skipped)."""
    given = _GIVEN[table.name]
    kept = "" if where is None else f" WHERE {where}"
    skipped = " ON CONFLICT DO NOTHING" if skip else ""
    return f"INSERT INTO {table.name} ({given.columns}) {given.sql}{kept}{skipped}"


def _one_statement(*, skip_duplicates: bool) -> sa.TextualSelect:
    """Every table's rows in one statement (constant names; the rows are bound), the
    incidents' columns returned.

    Skipping duplicates (`_ONE_STATEMENT_OR_NONE`): a child is stored only if its reference
    was, the incident only if every reference was (and its own keys are free), its links only
    if it was. Every row it stores has the rows its foreign keys name."""
    incident = _GIVEN[_INCIDENT.name].columns
    if skip_duplicates:
        references = _inserting(_REFERENCE, skip=True)
        children = _inserting(
            _CHILD, where="given.id IN (SELECT child_id FROM new_child_reference)"
        )
        every_reference = (
            "(SELECT count(*) FROM new_child_reference) = CAST(:references_given AS INTEGER)"
        )
        incidents = _inserting(_INCIDENT, where=every_reference, skip=True)
        links = _inserting(_LINK, where="given.incident_id IN (SELECT id FROM new_incident)")
        parts = [
            f"WITH new_child_reference AS ({references} RETURNING child_id)",
            f"new_child AS ({children})",
            f"new_incident AS ({incidents} RETURNING {incident})",
            f"new_incident_child AS ({links}) SELECT {incident} FROM new_incident",  # noqa: S608
        ]
    else:
        parts = [
            f"WITH new_child AS ({_inserting(_CHILD)})",
            f"new_child_reference AS ({_inserting(_REFERENCE)})",
            f"new_incident_child AS ({_inserting(_LINK)})",
        ]
        parts[-1] += f" {_inserting(_INCIDENT)} RETURNING {incident}"
    returned = (sa.column(column.name, column.type) for column in _INCIDENT.c)
    return sa.text(", ".join(parts)).columns(*returned)


_ONE_STATEMENT = _one_statement(skip_duplicates=False)
_ONE_STATEMENT_OR_NONE = _one_statement(skip_duplicates=True)


def _incident_row(record: _Checked, *, force_code: str, client_id: str) -> dict[str, Any]:
    report = record.report
    return {
        "id": new_id(),
        "force_code": force_code,
        "police_reference": report.police_reference,
        "idempotency_key": report.idempotency_key,
        "payload_hash": record.payload_hash,
        "type": report.type,
        "occurred_at": report.occurred_at,
        "recorded_at": report.recorded_at,
        "shared_at": utcnow(),
        "location_council_code": report.location_council,
        "dash_risk": report.dash_risk,
        "summary": report.summary,
        "operational_notes": report.operational_notes,
        "pushed_by_client": client_id,
    }


@dataclasses.dataclass
class _NewChildren:
    """The force's new children (without NHS numbers) the batch names, and their references."""

    force_code: str
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    references: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, details: children.ChildDetails, *, default_council: str) -> str:
        row = children.new_child_row(details, default_council=default_council)
        self.rows.append(row)
        self.references.append(
            {
                "id": new_id(),
                "child_id": row["id"],
                "organisation_code": self.force_code,
                "kind": ReferenceKind.POLICE_PERSON,
                "value": details.police_reference,
            }
        )
        return str(row["id"])

    async def insert(self, session: AsyncSession) -> None:
        if self.rows:
            await session.execute(sa.insert(Child), self.rows)
            await session.execute(sa.insert(ChildReference), self.references)
        self.rows, self.references = [], []


def _children_held_query(force_code: str, batch: Sequence[_Checked]) -> sa.Select[Child, str]:
    references = {c.child.police_reference for r in batch for c in r.report.children}
    return (
        sa.select(Child, col(ChildReference.value))
        .join(ChildReference, col(ChildReference.child_id) == Child.id)
        .where(
            col(ChildReference.organisation_code) == force_code,
            col(ChildReference.kind) == ReferenceKind.POLICE_PERSON,
            col(ChildReference.value).in_(references),
        )
    )


async def _children_held(
    session: AsyncSession, *, force_code: str, batch: Sequence[_Checked]
) -> dict[str, Child | str]:
    """The force's children the batch names by the force's person reference, by reference."""
    found = (await session.execute(_children_held_query(force_code, batch))).all()
    return {reference: child for child, reference in found}


async def _child(
    session: AsyncSession,
    held: dict[str, Child | str],
    new_children: _NewChildren,
    *,
    details: children.ChildDetails,
    default_council: str,
) -> str:
    """The id of the child as `children.record_from_push` finds or records them, from the
    batch's lookup: a child the force held gets what the push says of their placement."""
    known = held.get(details.police_reference)
    if isinstance(known, Child):
        children.apply_placement(session, known, details)
        return known.id
    if known is not None:  # recorded earlier in this batch, as `record_from_push` would find
        return known
    if details.nhs_number is not None:
        # Matching by NHS number reads what is stored: the batch's new children first.
        await new_children.insert(session)
        child = await children.record_from_push(
            session,
            force_code=new_children.force_code,
            details=details,
            default_council=default_council,
        )
        held[details.police_reference] = child
        return child.id
    child_id = new_children.add(details, default_council=default_council)
    held[details.police_reference] = child_id
    return child_id
