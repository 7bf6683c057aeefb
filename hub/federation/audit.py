"""`POST /federation/audit`: one access event per gateway response, written before it leaves.

The rule: the gateway sends every client response's records here (from every subgraph, the hub's
included) and releases the response only when this endpoint answers that the event is written;
otherwise the client gets `AUDIT_UNAVAILABLE` and no data. No subgraph is asked to audit, so no
subgraph can forget to. The hub's own fetches for the same response (proven the gateway's by its
own token, and naming the report's id) are held, not appended (`hub.federation.deferred`), and
written here with the response's event, in the same append: one event per response, with what
the caller received from every subgraph and what the hub released for it. A held fetch no report
takes in time is written by the hub itself, so a gateway cannot turn the hub's own audit off.
A response the hub alone serves is not reported: the gateway's fetch for it carries no report
id, and the hub audits it at once, as a direct read, marked as the gateway's.

Only a client the hub's settings name as a gateway (`HUB_FEDERATION_GATEWAY_CLIENTS`) may report;
the caller is taken from the caller's own token, verified here, never from the gateway's word.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import telemetry
from hub.access.identity import Principal
from hub.access.revocation import authenticate_live
from hub.audit import service as audit
from hub.audit.models import OperationKind, Outcome, S62Operation
from hub.audit.service import Actor, AuditWriteFailed, ServedRecord
from hub.children.models import Child
from hub.errors import Forbidden, HubError, Unauthenticated
from hub.federation.deferred import HeldFetch, Key
from hub.federation.report import ReportedRecord, ResponseReport, parse
from hub.graphql.audit_trail import LoadedChildren, children_of, owner_of
from hub.incidents.models import Incident
from hub.investigations.models import Investigation
from hub.joint_visits.models import JointVisitRequest
from hub.missing.models import MissingEpisode
from hub.protection.models import PoliceProtection
from hub.timeliness.models import FirstSeen

if TYPE_CHECKING:
    from hub.app import HubState

log = logging.getLogger("hub.federation")
AUDIT_PATH = "/federation/audit"
# Sent by the gateway with its fetches from the hub (and to no other subgraph): its own token,
# and the id its report of the response will carry.
GATEWAY_AUTHORIZATION = "hub-gateway-authorization"
GATEWAY_REPORT = "hub-gateway-report"
_REPORT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MODELS: dict[str, Any] = {
    "Child": Child,
    "Incident": Incident,
    "MissingEpisode": MissingEpisode,
    "Investigation": Investigation,
    "JointVisitRequest": JointVisitRequest,
    "PoliceProtection": PoliceProtection,
}


class NotTheGateway(Forbidden):
    """A valid client that the hub's settings do not name as its federated gateway."""


def routes() -> list[Route]:
    return [Route(AUDIT_PATH, audit_endpoint, methods=["POST"])]


def _error(status: int, error: HubError) -> Response:
    return JSONResponse(
        {"written": False, "errors": [{"message": error.message, "extensions": error.extensions}]},
        status_code=status,
    )


async def audit_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    try:
        gateway = await _gateway(request, hub)
        report = parse(json.loads(await request.body()))
        # A revoked caller is refused here too: the gateway then sends it nothing, from any
        # subgraph (the council's checks the token's signature, not the hub's client register).
        caller = await authenticate_live(
            report.caller_headers, settings=hub.settings, keys=hub.keys, clients=hub.client_status
        )
    except Unauthenticated as error:
        return _error(401, error)
    except Forbidden as error:
        return _error(403, error)
    except HubError as error:
        return _error(400, error)
    except ValueError:
        return _error(400, HubError("the report is not JSON"))
    try:
        await _record(hub, gateway=gateway, caller=caller, report=report)
    except (AuditWriteFailed, SQLAlchemyError) as error:
        # The type only: a database error's text can carry parameters.
        log.error(  # noqa: TRY400 - no traceback: its frames can hold the parameters
            "federated audit write failed: %s", type(error).__name__
        )
        return _error(503, AuditWriteFailed("the audit log could not be written"))
    hub.indexer.poke()
    return JSONResponse({"written": True})


async def _gateway(request: Request, hub: HubState) -> Principal:
    gateway = await authenticate_live(
        request.headers, settings=hub.settings, keys=hub.keys, clients=hub.client_status
    )
    if gateway.client_id not in hub.settings.federation_gateway_clients:
        raise NotTheGateway("only the federated gateway reports responses")
    return gateway


@dataclasses.dataclass(frozen=True)
class GatewayFetch:
    """A fetch the federated gateway proved its own with its live token."""

    gateway: str  # the gateway's client id
    # The report its response will have, when it will have one: the fetch's events are then
    # held for it. None: a response the hub alone serves, audited here at once, as a direct read.
    report: Key | None

    def audit_detail(self) -> dict[str, Any]:
        """In the event of a fetch audited at once: it came through the gateway (its token)."""
        return {"channel": "gateway", "gateway": self.gateway}


async def gateway_fetch(request: Request, hub: HubState) -> GatewayFetch | None:
    """The gateway's fetch, proven by the gateway's own live token, with the id of its
    response's report if it sent one; None for anyone else's request.

    A credential that fails (expired, revoked, not a gateway's, forged) is not an error for the
    caller: the fetch is then audited on its own, as a direct read is, without the gateway's
    mark. Nothing here can leave a fetch unaudited: with a report id its events are held for
    the report, and written by the hub itself if none comes (`hub.federation.deferred`).
    """
    credential = request.headers.get(GATEWAY_AUTHORIZATION)
    if not credential:
        return None
    try:
        gateway = await _verified_gateway(credential, hub)
    except HubError as error:
        log.warning("a gateway credential was refused (%s): fetch audited on its own", error.code)
        return None
    report_id = request.headers.get(GATEWAY_REPORT)
    if not report_id or not _REPORT_ID.match(report_id):
        return GatewayFetch(gateway.client_id, None)
    return GatewayFetch(gateway.client_id, (gateway.client_id, report_id))


CREDENTIAL_REVERIFY_SECONDS = 30.0
_CREDENTIALS_KEPT = 64


async def _verified_gateway(credential: str, hub: HubState) -> Principal:
    """The gateway behind a credential: its signature checked at most every 30 s per token
    (and never past its expiry), its client's revocation and role on every fetch."""
    now = time.monotonic()
    known = hub.gateway_credentials.get(credential)
    if known is not None and known[1] > now:
        gateway = known[0]
        await hub.client_status.check(gateway.client_id)
    else:
        gateway = await _gateway_of({"Authorization": credential}, hub)
        if len(hub.gateway_credentials) >= _CREDENTIALS_KEPT:
            hub.gateway_credentials.clear()
        until = now + CREDENTIAL_REVERIFY_SECONDS
        if gateway.expires_at is not None:
            left = (gateway.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
            until = min(until, now + left)
        hub.gateway_credentials[credential] = (gateway, until)
    if gateway.client_id not in hub.settings.federation_gateway_clients:
        raise NotTheGateway("only the federated gateway's fetches are audited with its reports")
    return gateway


async def _gateway_of(headers: Mapping[str, str], hub: HubState) -> Principal:
    gateway = await authenticate_live(
        headers, settings=hub.settings, keys=hub.keys, clients=hub.client_status
    )
    if gateway.client_id not in hub.settings.federation_gateway_clients:
        raise NotTheGateway("only the federated gateway's fetches are audited with its reports")
    return gateway


async def _record(
    hub: HubState, *, gateway: Principal, caller: Principal, report: ResponseReport
) -> None:
    """The report's event, with the hub's own fetches for the same response, in one append."""
    db = hub.db
    actor = Actor(
        user=caller.user,
        organisation_code=caller.organisation_code,
        client_id=caller.client_id,
        role=caller.role.value,
        purpose=caller.purpose,
    )
    key = (gateway.client_id, report.report_id) if report.report_id else None
    held = hub.held_fetches.take(key, actor) if key else []
    try:
        fetched = _fetched(held)
        unknown = [r for r in report.records if (r.type_name, r.record_id) not in fetched]
        if db.audits_reads_in_place:
            async with db.transaction(write=True) as session:
                served = await _served(session, unknown)
                await _write(
                    session,
                    hub,
                    gateway=gateway,
                    actor=actor,
                    report=report,
                    served=served,
                    held=held,
                )
            return
        # On SQLite a writer holds the database's one write lock from BEGIN, which every other
        # response's audit waits for: the look-ups are done before it, as the hub's own reads
        # are (and none at all when the hub's fetches served every record).
        served = []
        if unknown:
            async with db.transaction(write=False) as session:
                served = await _served(session, unknown)
        async with db.transaction(write=True) as session:
            await _write(
                session, hub, gateway=gateway, actor=actor, report=report, served=served, held=held
            )
    except BaseException:
        if key:
            hub.held_fetches.put_back(key, held)  # written by the hub itself when due
        raise


def _fetched(held: Sequence[HeldFetch]) -> dict[tuple[str, str], ServedRecord]:
    """What the hub's held fetches released, record by record (the consultations' records)."""
    released: dict[tuple[str, str], ServedRecord] = {}
    for fetch in held:
        for draft in fetch.drafts:
            if not _consulted(draft):
                continue
            for record in draft.records:
                key = (record.record_type, record.record_id)
                earlier = released.get(key)
                released[key] = (
                    record
                    if earlier is None
                    else earlier._replace(fields=tuple(sorted({*earlier.fields, *record.fields})))
                )
    return released


async def _write(
    session: AsyncSession,
    hub: HubState,
    *,
    gateway: Principal,
    actor: Actor,
    report: ResponseReport,
    served: list[ServedRecord],
    held: Sequence[HeldFetch],
) -> None:
    fetched = _fetched(held)
    records = _with_fetched(report, served, fetched)
    detail: dict[str, Any] = {"gateway": gateway.client_id, "served_by": report.served_by()}
    if held:
        # What left the hub for this response, the key fields the gateway joins on included.
        detail["hub_fetches"] = len(held)
        detail["hub_released"] = sorted(
            f"{r.record_type}.{f}" for r in fetched.values() for f in r.fields
        )
    draft = audit.EventDraft(
        actor=actor,
        # Records a subscriber is sent are deliveries (s.62 disclosures), as in the hub's events.
        operation=S62Operation.DISCLOSURE if report.subscription else S62Operation.CONSULTATION,
        operation_kind=OperationKind.FEDERATED,
        operation_name=report.operation_name,
        outcome=Outcome.SERVED,
        records=records,
        request_id=report.request_id,
        trace_id=telemetry.current_trace_id(),
        agreement_version=hub.agreement.version,
        detail=detail,
    )
    # The held fetches' other events (a refusal, a report's disclosure) go in the same append.
    others = [d for fetch in held for d in fetch.drafts if not _consulted(d)]
    await audit.record_many(
        session,
        [draft, *others],
        first_seen=_first_seen(held),
        lock_timeout=hub.settings.audit_lock_timeout_seconds,
    )


def _consulted(draft: audit.EventDraft) -> bool:
    """A fetch's records served as consultations: what goes into the response's event."""
    return draft.operation is S62Operation.CONSULTATION and draft.outcome is Outcome.SERVED


def _with_fetched(
    report: ResponseReport,
    served: list[ServedRecord],
    fetched: dict[tuple[str, str], ServedRecord],
) -> list[ServedRecord]:
    """Every record of the response, once: as reported (what the caller received, from every
    subgraph), with what the hub released of it added; then any the hub released that the
    response did not carry (the gateway fetched it, the caller did not receive it)."""
    merged: dict[tuple[str, str], ServedRecord] = {(r.record_type, r.record_id): r for r in served}
    for record in _merged(report.records):
        key = (record.type_name, record.record_id)
        hubs = fetched.get(key)
        if hubs is not None:
            merged[key] = hubs._replace(fields=tuple(sorted({*hubs.fields, *record.fields})))
    for key, hubs in fetched.items():
        merged.setdefault(key, hubs)
    return list(merged.values())


def _first_seen(held: Sequence[HeldFetch]) -> FirstSeen | None:
    """The receipts the held fetches' consultations amount to, as one (same caller)."""
    seen = [fetch.first_seen for fetch in held if fetch.first_seen is not None]
    if not seen:
        return None
    return FirstSeen(
        organisation_code=seen[0].organisation_code,
        records=tuple(dict.fromkeys(r for s in seen for r in s.records)),
        at=min(s.at for s in seen),
    )


async def _served(session: AsyncSession, records: Sequence[ReportedRecord]) -> list[ServedRecord]:
    """Each reported record with its owner and the children it concerns, as the hub knows them."""
    if not records:
        return []
    rows = await _rows(session, records)
    released = [
        (r.type_name, rows[(r.type_name, r.record_id)], r.fields)
        for r in records
        if (r.type_name, r.record_id) in rows
    ]
    children = await children_of(session, released, LoadedChildren())
    return [
        ServedRecord(
            record_type=r.type_name,
            record_id=r.record_id,
            fields=r.fields,
            child_ids=children.get((r.type_name, r.record_id), ()),
            owner=_owner(r.type_name, rows.get((r.type_name, r.record_id))),
        )
        for r in _merged(records)
    ]


def _merged(records: Iterable[ReportedRecord]) -> list[ReportedRecord]:
    """One entry per record, whichever places in the response carried it."""
    merged: dict[tuple[str, str], ReportedRecord] = {}
    for record in records:
        key = (record.type_name, record.record_id)
        earlier = merged.get(key)
        if earlier is not None:
            fields = dict(earlier.fields_by_subgraph)
            for subgraph, names in record.fields_by_subgraph.items():
                fields[subgraph] = tuple(sorted({*fields.get(subgraph, ()), *names}))
            record = ReportedRecord(record.type_name, record.record_id, fields)  # noqa: PLW2901 - merged in place of the earlier entry
        merged[key] = record
    return list(merged.values())


async def _rows(
    session: AsyncSession, records: Sequence[ReportedRecord]
) -> dict[tuple[str, str], Any]:
    """The hub's rows for the reported records it holds; other agencies' types have none here."""
    wanted: dict[str, set[str]] = {}
    for record in records:
        if record.type_name in _MODELS:
            wanted.setdefault(record.type_name, set()).add(record.record_id)
    found: dict[tuple[str, str], Any] = {}
    for type_name, ids in wanted.items():
        model = _MODELS[type_name]
        for row in (await session.execute(sa.select(model).where(model.id.in_(ids)))).scalars():
            found[(type_name, str(row.id))] = row
    return found


def _owner(type_name: str, row: Any) -> str | None:
    return None if row is None else owner_of(type_name, row)
