"""Typed settings, read once from `HUB_*` environment variables (and a `.env` file)."""

from __future__ import annotations

import enum
from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.limits.rate import RoleLimit

DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key-change-me"
DEFAULT_DATA_DIR = Path(".hub")
# Per client: ample for a force's or a council's system (forces record a few a minute); the
# in-flight cap is what bounds how long a flood can keep another client's push waiting.
DEFAULT_RATE_LIMIT = RoleLimit(rate=20, burst=40, in_flight=4)


class Mode(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    mode: Mode = Mode.DEVELOPMENT
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'hub.db'}"
    data_dir: Path = DEFAULT_DATA_DIR

    # JOSE: a JWKS file of private keys; the first key signs, every key verifies.
    signing_keys_file: Path | None = None
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "safeguarding-hub"
    access_token_ttl_seconds: int = Field(default=600, ge=30, le=3600)

    # The sharing agreement; empty means the checkout's auth/agreement.toml.
    agreement_file: Path | None = None
    # The agreement's timescale targets; empty means the checkout's auth/targets.toml.
    targets_file: Path | None = None

    # How long access events are kept before `audit erase` may remove them (an erasure is itself
    # logged). Seven years by default: a local choice, the law sets no figure.
    audit_retention_days: int = Field(default=7 * 365, ge=30)

    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)

    # Off unless asked for: `demo` turns both on for a newcomer's GraphiQL.
    graphiql: bool = False
    introspection: bool = False
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    default_page_size: int = Field(default=50, ge=1)
    max_query_depth: int = Field(default=10, ge=2)
    clock_skew_seconds: int = Field(default=300, ge=0)
    # How often a subscription looks at the outbox when no notification woke it.
    change_poll_seconds: float = Field(default=5.0, gt=0)
    # PostgreSQL: how long the audit indexer gathers appended events before indexing them in
    # one statement (readers see unindexed events all the same).
    audit_index_delay_seconds: float = Field(default=0.5, ge=0, le=60)
    # PostgreSQL reports run their parts (two) on this many connections at once, in one
    # snapshot. One per part, even on two cores: numpy judges the stage facts while the
    # database finds the batching candidates.
    report_connections: int = Field(default=2, ge=1, le=8)
    # Per-client limits by role (JSON: {"police_officer": {"rate": 50, "burst": 100,
    # "in_flight": 16}}); a role not named gets "default". Settings, not the agreement: they
    # are the capacity of this deployment, tuned by its operators, not what may be shared.
    rate_limits: dict[str, RoleLimit] = Field(default_factory=dict)

    @property
    def limits(self) -> dict[str, RoleLimit]:
        return {"default": DEFAULT_RATE_LIMIT, **self.rate_limits}

    @property
    def is_production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    @property
    def keys_path(self) -> Path:
        return self.signing_keys_file or self.data_dir / "dev-signing-keys.json"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def _embedded_database_in_data_dir(self) -> Settings:
        # Unless named, the embedded database lives with the rest of the hub's files: a data
        # directory moved elsewhere takes it along rather than leaving it in a missing `.hub`.
        if "database_url" not in self.model_fields_set:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"
        return self

    @model_validator(mode="after")
    def _production_refuses_development_defaults(self) -> Settings:
        if not self.is_production:
            return self
        problems = []
        if self.pseudonym_key.get_secret_value() == DEV_PSEUDONYM_KEY:
            problems.append("HUB_PSEUDONYM_KEY is the development default")
        if self.signing_keys_file is None:
            problems.append("HUB_SIGNING_KEYS_FILE must name the production key set")
        if problems:
            raise ValueError("production mode refuses: " + "; ".join(problems))
        return self


@cache
def get_settings() -> Settings:
    return Settings()
