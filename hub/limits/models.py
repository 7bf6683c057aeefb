"""The per-client limiter's shared state on PostgreSQL (SQLite keeps it in memory)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class RateLimit(SQLModel, table=True):
    """One client's GCRA arrival time and requests in flight, as epoch seconds (database clock).

    UNLOGGED on PostgreSQL: no WAL for state that is worthless after a crash (emptied then).
    """

    __tablename__ = "rate_limit"

    client_id: str = Field(primary_key=True, max_length=64)
    tat: float = Field(sa_type=sa.Float(precision=53))
    in_flight: int
    touched: float = Field(sa_type=sa.Float(precision=53))
    admitted: bool
