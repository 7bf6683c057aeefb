"""The information sharing agreement (`auth/agreement.toml`) loaded, checked and versioned.

The file says, per role, which organisations may hold it, which purposes it may give, which rows
it sees and which fields of each GraphQL type. It is checked against the schema at start: any
unknown role, purpose, type or field stops the hub with the whole list of problems.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema

from hub.access.models import Role
from hub.reference.models import OrganisationKind

# The types whose fields the agreement governs. Connection wrappers, page info and the viewer
# carry no case data and are open to every authenticated caller.
GUARDED_TYPES = (
    "Query",
    "Mutation",
    "Subscription",
    "Organisation",
    "Child",
    "ChildReference",
    "Incident",
    "IncidentChild",
    "MissingEpisode",
    "Investigation",
    "StatusChangeRecord",
    "ClosureReview",
    "ClosureFigures",
    "ClosureFigureRow",
    "Meeting",
    "MeetingChild",
    "MeetingInvitation",
    "JointVisitRequest",
    "PoliceProtection",
    "AccessEvent",
    "AccessRecipient",
    "AuditCheckpoint",
    "Timeline",
    "TimelineStage",
    "Receipt",
    "SharingReport",
    "ReportTarget",
    "StageFigures",
    "ReportBreach",
    "ReportBurst",
    "BatchingFigure",
    "ReportChart",
    "Escalation",
    "EscalationFigure",
    "VettingCheck",
    "VettingApplicant",
    "VettingFigures",
    "VettingGroupFigures",
    "Webhook",
    "WebhookRegistration",
    "AttendanceFigures",
    "SeniorityFigures",
    "JointVisitFigures",
    "ProtectionFigures",
    "ProtectionFinding",
)
# Federation's own root fields: `_service` is the contract, `_entities` resolves entities whose
# fields and rows are governed like any other path.
OPEN_QUERY_FIELDS = frozenset({"_service", "_entities"})
EVERY_FIELD = "*"


class RowKind(enum.StrEnum):
    OWN_FORCE = "own_force"
    COUNCIL_CHILDREN = "council_children"
    SCHOOL_PUPILS = "school_pupils"
    NONE = "none"


class AuditRows(enum.StrEnum):
    """Which access events a role reads: every one, its organisation's records', or none."""

    ALL = "all"
    OWN_RECORDS = "own_records"
    NONE = "none"


class ChildIdentities(enum.StrEnum):
    """How a role sees children in access events: by their hub id, or only by a pseudonym."""

    IDENTIFIED = "identified"
    PSEUDONYMISED = "pseudonymised"


class AgreementInvalid(Exception):
    def __init__(self, path: Path, problems: list[str]) -> None:
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the sharing agreement {path} has {len(problems)} problem(s):\n{listing}")
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class RolePolicy:
    role: Role
    description: str
    organisation_kinds: frozenset[OrganisationKind]
    purposes: frozenset[str]
    rows: RowKind
    fields: Mapping[str, frozenset[str]]
    audit_rows: AuditRows = AuditRows.NONE
    child_identities: ChildIdentities = ChildIdentities.IDENTIFIED
    # Only for the hub's own jobs (reports, benchmarks' baseline), never for a client request.
    internal: bool = False
    # The purpose a push is made for when the pushing system names none: a force's record
    # system pushes as records are made, not for one officer's enquiry. Never used for a read.
    default_purpose: str | None = None

    def sees(self, type_name: str, field: str) -> bool:
        if self.internal or (type_name == "Query" and field in OPEN_QUERY_FIELDS):
            return True
        allowed = self.fields.get(type_name)
        # Types the agreement does not govern are open; governed ones only as listed.
        return type_name not in GUARDED_TYPES or (allowed is not None and field in allowed)

    def purpose_given(self, named: str | None, *, mutation: bool) -> str | None:
        """The purpose an operation is made for: the one named, else for a push the default.

        Only pushing roles have a default (checked at load), so a mutation by any other role,
        such as a council's `acknowledge`, still has to name its purpose.
        """
        return named if named is not None or not mutation else self.default_purpose


@dataclasses.dataclass(frozen=True)
class Agreement:
    title: str
    reference: str
    purposes: Mapping[str, str]
    roles: Mapping[Role, RolePolicy]
    version: str
    path: Path
    # The role whose clients (the federation gateway) read the contract, `_service { sdl }`,
    # in production; None: nobody does.
    gateway_role: Role | None = None

    def policy(self, role: Role) -> RolePolicy:
        return self.roles[role]

    @classmethod
    def load(cls, path: Path, schema: GraphQLSchema) -> Agreement:
        raw = path.read_bytes()
        try:
            document = tomllib.loads(raw.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise AgreementInvalid(path, [f"not valid TOML: {error}"]) from error
        problems: list[str] = []
        agreement = _parse(document, schema, problems, path=path, version=_version(raw))
        if problems or agreement is None:
            raise AgreementInvalid(path, problems)
        return agreement


def _version(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def file_version(path: Path) -> str:
    """The version the hub records for an agreement file (its hash), without the schema check."""
    return _version(path.read_bytes())


def _type_fields(schema: GraphQLSchema) -> dict[str, frozenset[str]]:
    fields: dict[str, frozenset[str]] = {}
    for name in GUARDED_TYPES:
        graphql_type = schema.get_type(name)
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            fields[name] = frozenset(graphql_type.fields)
    return fields


def _parse(
    document: dict[str, Any],
    schema: GraphQLSchema,
    problems: list[str],
    *,
    path: Path,
    version: str,
) -> Agreement | None:
    head = document.get("agreement", {})
    purposes = document.get("purposes", {})
    if not isinstance(purposes, dict) or not purposes:
        problems.append("[purposes] must list at least one purpose")
        purposes = {}
    for code, text in purposes.items():
        if not isinstance(text, str) or not text.strip():
            problems.append(f"purpose {code!r} needs a description")
    known_types = _type_fields(schema)
    raw_roles = document.get("roles", {})
    roles: dict[Role, RolePolicy] = {}
    for name, body in raw_roles.items():
        policy = _role(name, body, purposes, known_types, problems)
        if policy is not None:
            roles[policy.role] = policy
    missing = sorted(r.value for r in Role if r.value not in raw_roles)
    if missing:
        problems.append(f"roles without terms: {', '.join(missing)}")
    gateway_role = _gateway_role(document.get("federation", {}), problems)
    if problems:
        return None
    return Agreement(
        title=str(head.get("title", "")),
        reference=str(head.get("reference", "")),
        purposes=dict(purposes),
        roles=roles,
        version=version,
        path=path,
        gateway_role=gateway_role,
    )


def _gateway_role(federation: Any, problems: list[str]) -> Role | None:
    """`[federation] gateway_role`: the role the federation gateway's client holds."""
    if not isinstance(federation, dict):
        problems.append("[federation] must be a table")
        return None
    unknown = sorted(set(federation) - {"gateway_role"})
    problems.extend(f"[federation]: unknown term {name!r}" for name in unknown)
    name = federation.get("gateway_role")
    return None if name is None else _one_of(name, Role, problems, "[federation] gateway_role")


def _role(
    name: str,
    body: Any,
    purposes: Mapping[str, str],
    known_types: Mapping[str, frozenset[str]],
    problems: list[str],
) -> RolePolicy | None:
    try:
        role = Role(name)
    except ValueError:
        problems.append(f"unknown role {name!r}")
        return None
    where = f"role {name}"
    kinds = _enum_set(
        body.get("organisation_kinds", []),
        OrganisationKind,
        problems,
        f"{where}: organisation kind",
    )
    granted = set(body.get("purposes", []))
    problems.extend(f"{where}: unknown purpose {p!r}" for p in sorted(granted - set(purposes)))
    rows_text = body.get("rows")
    try:
        rows = RowKind(rows_text)
    except ValueError:
        problems.append(f"{where}: unknown rows {rows_text!r} (one of {', '.join(RowKind)})")
        rows = RowKind.NONE
    fields = _fields(body.get("fields", {}), known_types, problems, where)
    audit_rows = _one_of(body.get("audit", "none"), AuditRows, problems, f"{where}: audit")
    identities = _one_of(
        body.get("child_identities", "identified"),
        ChildIdentities,
        problems,
        f"{where}: child_identities",
    )
    default_purpose = _default_purpose(role, body.get("default_purpose"), granted, fields, problems)
    return RolePolicy(
        default_purpose=default_purpose,
        audit_rows=audit_rows or AuditRows.NONE,
        child_identities=identities or ChildIdentities.IDENTIFIED,
        role=role,
        description=str(body.get("description", "")),
        organisation_kinds=frozenset(kinds),
        purposes=frozenset(granted & set(purposes)),
        rows=rows,
        fields=fields,
    )


def _default_purpose(
    role: Role,
    value: Any,
    granted: set[str],
    fields: Mapping[str, frozenset[str]],
    problems: list[str],
) -> str | None:
    """A pushing role's default purpose: one the role may give; a role that changes nothing
    (no `Mutation` fields) has none.
    """
    if value is None:
        return None
    where = f"role {role.value}: default_purpose {value!r}"
    if not fields.get("Mutation"):
        problems.append(f"{where}: only a role that pushes records may have a default purpose")
        return None
    if value not in granted:
        problems.append(f"{where} is not one of the role's purposes")
        return None
    return str(value)


EnumT = TypeVar("EnumT", bound=enum.StrEnum)


def _one_of(value: Any, kind: type[EnumT], problems: list[str], what: str) -> EnumT | None:
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{what} {value!r} is unknown (one of {', '.join(kind)})")
        return None


def _enum_set(values: Any, kind: type[enum.StrEnum], problems: list[str], what: str) -> set[Any]:
    found = set()
    for value in values:
        try:
            found.add(kind(value))
        except ValueError:
            problems.append(f"{what} {value!r} is unknown")
    return found


def _fields(
    raw: Mapping[str, Any],
    known_types: Mapping[str, frozenset[str]],
    problems: list[str],
    where: str,
) -> dict[str, frozenset[str]]:
    fields: dict[str, frozenset[str]] = {}
    for type_name, listed in raw.items():
        available = known_types.get(type_name)
        if available is None:
            problems.append(f"{where}: unknown or ungoverned type {type_name!r}")
            continue
        if listed == EVERY_FIELD:
            fields[type_name] = available
            continue
        chosen = set(listed)
        problems.extend(
            f"{where}: {type_name} has no field {f!r}" for f in sorted(chosen - available)
        )
        if "id" in available and chosen and "id" not in chosen:
            problems.append(f"{where}: {type_name} is listed without its id")
        fields[type_name] = frozenset(chosen & available)
    return fields


@functools.cache
def organisation_kinds(path: Path) -> dict[Role, frozenset[OrganisationKind]]:
    """Who may hold each role, straight from the agreement's file.

    For issuing clients and tokens, where no schema is at hand; the hub itself checks the whole
    file against the schema at start.
    """
    document = tomllib.loads(path.read_text())
    return {
        Role(name): frozenset(OrganisationKind(k) for k in body.get("organisation_kinds", []))
        for name, body in document.get("roles", {}).items()
    }


def default_path() -> Path:
    """`auth/agreement.toml` of the checkout (the image sets HUB_AGREEMENT_FILE)."""
    return Path(__file__).resolve().parents[2] / "auth" / "agreement.toml"
