"""What can be escalated: each domain declares the stages whose end another organisation waits for.

A declaration names the targets' kind and stage it holds (`auth/targets.toml`), and how to find
the open stages, those started and not ended, that have not been escalated yet: the record, when
the stage started, who owes its end and who is waiting. The scanner (`hub.escalation.scan`)
judges each against its target's deadline; the domain never computes deadlines itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hub.escalation.models import Escalation


@dataclasses.dataclass(frozen=True, slots=True)
class OpenStage:
    record_type: str
    record_id: str
    started_at: dt.datetime
    owed_by: str  # the organisation whose answer ends the stage
    waiting: str  # the organisation waiting for it


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The open stages a scan asks for: not yet escalated under `target_id`, started within."""

    target_id: str
    started_after: dt.datetime
    started_before: dt.datetime


OpenStages = Callable[[AsyncSession, Window], Awaitable[list[OpenStage]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Escalable:
    kind: str  # the targets file's kind
    stage: str  # and stage
    description: str  # what is overdue, for people: "a missing child not acknowledged"
    open_stages: OpenStages


_DECLARED: dict[tuple[str, str], Escalable] = {}


def declare(escalable: Escalable) -> Escalable:
    """Register a domain's escalable stage (at import of its declaring module)."""
    key = (escalable.kind, escalable.stage)
    if _DECLARED.get(key, escalable) is not escalable:
        msg = f"two declarations for {key}"
        raise ValueError(msg)
    _DECLARED[key] = escalable
    return escalable


def declared() -> Mapping[str, Escalable]:
    """Every declaration, by "kind/stage" (the catalogue's modules imported first)."""
    from hub.escalation import catalogue  # noqa: F401, PLC0415 - registers the domains

    return {f"{kind}/{stage}": escalable for (kind, stage), escalable in _DECLARED.items()}


def not_escalated(
    window: Window,
    record_type: str,
    record_id: sa.ColumnElement[str],
    owed_by: sa.ColumnElement[str],
) -> sa.ColumnElement[bool]:
    """The condition every declaration's query carries: no escalation raised for it yet."""
    table = Escalation.__table__  # type: ignore[attr-defined]
    return ~sa.exists().where(
        table.c.target_id == window.target_id,
        table.c.record_type == record_type,
        table.c.record_id == record_id,
        table.c.owed_by_code == owed_by,
    )
