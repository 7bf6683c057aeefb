from __future__ import annotations

import datetime as dt
import enum

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
