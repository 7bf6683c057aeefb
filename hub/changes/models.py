"""The outbox: one row per record a push created or changed, in the push's own transaction.

Subscribers read it in `seq` order and resume from the last `seq` they were sent, so a change
committed while a council's connection was down is delivered when it comes back.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, utc_field


class ChangeKind(enum.StrEnum):
    COLLECTED = "collected"  # a push created the record
    ALTERED = "altered"  # a push or a council changed it


class RecordChange(SQLModel, table=True):
    __tablename__ = "record_change"

    # SQLite's INTEGER PRIMARY KEY is its rowid: increasing, as PostgreSQL's identity is.
    seq: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    occurred_at: dt.datetime = utc_field(now=True)
    record_type: str = Field(max_length=32)
    record_id: str = Field(max_length=36)
    change: str = enum_field()
