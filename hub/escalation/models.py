"""Escalations: a stage that has not ended by its target's deadline, raised once.

An escalation is derived from stored state (the stage's record says it started and has not
ended), never from a timer held in memory, so it survives restarts; its unique key (which target,
which record, owed by whom) makes it raised once however many hub processes scan.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import id_field, org_field, utc_field


class Escalation(SQLModel, table=True):
    __tablename__ = "escalation"
    __table_args__ = (
        sa.UniqueConstraint("target_id", "record_type", "record_id", "owed_by_code"),
        sa.Index("ix_escalation_raised_at", "raised_at"),
    )

    id: str = id_field()
    # The target whose deadline passed (auth/targets.toml), and the stage it holds to.
    target_id: str = Field(max_length=32)
    kind: str = Field(max_length=48)
    stage: str = Field(max_length=48)
    record_type: str = Field(max_length=32)
    record_id: str = Field(max_length=36)
    # The organisation that owes the answer, and the one waiting for it.
    owed_by_code: str = org_field()
    waiting_code: str = org_field()
    stage_started_at: dt.datetime = utc_field()
    deadline: dt.datetime = utc_field()
    raised_at: dt.datetime = utc_field(now=True)
