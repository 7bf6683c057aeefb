from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.base import enum_field, org_field, utc_field


class Role(enum.StrEnum):
    POLICE_OFFICER = "police_officer"
    COUNCIL_SOCIAL_WORKER = "council_social_worker"
    SCHOOL_DSL = "school_dsl"
    AUDITOR = "auditor"
    DPO = "dpo"
    HUB_ADMIN = "hub_admin"


class OAuthClient(SQLModel, table=True):
    """A machine client (a force's or council's system). The secret is kept only as a hash."""

    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True, max_length=64)
    secret_hash: str = Field(max_length=200)
    organisation_code: str = org_field()
    role: str = enum_field()
    name: str = Field(default="", max_length=200)
    created_at: dt.datetime = utc_field(now=True)
    revoked_at: dt.datetime | None = utc_field(nullable=True)


class CouncilReach(SQLModel, table=True):
    """A record a council reaches through something other than its own columns: a child of the
    council's (responsible or host) the record names, or, for an investigation, an incident in
    the council's area it is linked to. One row for each (list, record, council), with the
    record's time, so that a council's newest are read from one index in time order
    (`RowScope.reached`), however many of them it has: through its children, a page read every
    record of every child of the council to find the newest.

    Derived, never written by the hub: PostgreSQL's triggers keep it as the links, the children's
    councils and the records' times change (migration 0023 says how, and why it locks what it
    locks). SQLite's lists are one statement and never read it, and there it stays empty.
    A list's page still checks every record it names against the whole scope: a row here only
    nominates a record, it never shows one.

    Not `stage_fact` (`hub.timeliness.facts`), which also derives each record's councils: its
    rows are a timeline's events (an investigation's each status change, not its current time),
    and it is refreshed by the hub's own sessions at commit, so a write that bypasses them (a
    bulk load) needs a rebuild; a list must find each record once, at its list's time, after
    any write."""

    __tablename__ = "council_reach"
    __table_args__ = (
        sa.Index(
            "ix_council_reach_kind_council_code_at", "kind", "council_code", "at", "record_id"
        ),
    )

    kind: str = Field(primary_key=True, max_length=32)  # the list's table: `incident`, ...
    record_id: str = Field(primary_key=True, max_length=36)
    council_code: str = Field(primary_key=True, max_length=32)
    at: dt.datetime = utc_field()  # the record's time, as its list orders it
