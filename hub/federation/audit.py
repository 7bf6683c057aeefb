"""`POST /federation/audit`: one access event per gateway response, written before it leaves.

The rule: the gateway sends every client response's records here (from every subgraph, the hub's
included) and releases the response only when this endpoint answers that the event is written;
otherwise the client gets `AUDIT_UNAVAILABLE` and no data. No subgraph is asked to audit, so no
subgraph can forget to. The hub's own subgraph fetches are still audited by the hub as they
always are (what the hub released, whoever asked; a gateway cannot turn that off), and carry the
same request id: a response with hub data is in two events, one for what the hub released to the
gateway on the caller's behalf, one (`federated`) for what the caller received from the graph.

Only a client the hub's settings name as a gateway (`HUB_FEDERATION_GATEWAY_CLIENTS`) may report;
the caller is taken from the caller's own token, verified here, never from the gateway's word.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
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
from hub.federation.report import ReportedRecord, ResponseReport, parse
from hub.graphql.audit_trail import LoadedChildren, children_of, owner_of
from hub.incidents.models import Incident
from hub.investigations.models import Investigation
from hub.joint_visits.models import JointVisitRequest
from hub.missing.models import MissingEpisode
from hub.protection.models import PoliceProtection

if TYPE_CHECKING:
    from hub.app import HubState

log = logging.getLogger("hub.federation")
AUDIT_PATH = "/federation/audit"
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


async def _record(
    hub: HubState, *, gateway: Principal, caller: Principal, report: ResponseReport
) -> None:
    """The report's event: its records looked up as the hub knows them, then appended."""
    db = hub.db
    if db.audits_reads_in_place:
        async with db.transaction(write=True) as session:
            served = await _served(session, report.records)
            await _write(session, hub, gateway=gateway, caller=caller, report=report, served=served)
        return
    # On SQLite a writer holds the database's one write lock from BEGIN, which every other
    # response's audit waits for: the look-ups are done before it, as the hub's own reads are.
    async with db.transaction(write=False) as session:
        served = await _served(session, report.records)
    async with db.transaction(write=True) as session:
        await _write(session, hub, gateway=gateway, caller=caller, report=report, served=served)


async def _write(
    session: AsyncSession,
    hub: HubState,
    *,
    gateway: Principal,
    caller: Principal,
    report: ResponseReport,
    served: list[ServedRecord],
) -> None:
    draft = audit.EventDraft(
        actor=Actor(
            user=caller.user,
            organisation_code=caller.organisation_code,
            client_id=caller.client_id,
            role=caller.role.value,
            purpose=caller.purpose,
        ),
        # Records a subscriber is sent are deliveries (s.62 disclosures), as in the hub's events.
        operation=S62Operation.DISCLOSURE if report.subscription else S62Operation.CONSULTATION,
        operation_kind=OperationKind.FEDERATED,
        operation_name=report.operation_name,
        outcome=Outcome.SERVED,
        records=served,
        request_id=report.request_id,
        trace_id=telemetry.current_trace_id(),
        agreement_version=hub.agreement.version,
        detail={"gateway": gateway.client_id, "served_by": report.served_by()},
    )
    await audit.record_many(session, [draft])


async def _served(session: AsyncSession, records: Sequence[ReportedRecord]) -> list[ServedRecord]:
    """Each reported record with its owner and the children it concerns, as the hub knows them."""
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
