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
# `demo` records the issuer it serves under here, in the data directory.
RECORDED_ISSUER = "issuer"
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
    # How old each process's list of revoked clients may get: a revoked client's live tokens
    # are refused on every process within this time (one query per process per period).
    client_status_ttl_seconds: float = Field(default=5.0, ge=0, le=60)
    # How often a subscription looks at the outbox when no notification woke it.
    change_poll_seconds: float = Field(default=5.0, gt=0)
    # Subscribers that would be sent the same message share one resolution and one audit event
    # per change (`hub.changes.fanout`), its recipients listed in the event and indexed
    # (`audit_event_recipient`), so `accessEvents(user:)` finds each person's deliveries; off,
    # each subscriber reads and is audited on its own (one transaction per subscriber and change).
    subscription_fanout: bool = True
    # A page of records whose whole selection the hub knows how to write in SQL (today: the
    # incidents page's plain fields, organisations and children) is read as the response's JSON,
    # built by the database, instead of a Python object for every record and field
    # (`hub.graphql.compiled`); off, every page goes the executor's way.
    compiled_reads: bool = True
    # How often each process looks for stages past their deadline to escalate (targets with
    # `escalate = true`); 0 turns the scanner off (`safeguarding-hub escalations scan` still
    # runs it once). Stages that started longer ago than the horizon are left to the report.
    escalation_scan_seconds: float = Field(default=60.0, ge=0)
    escalation_horizon_days: int = Field(default=30, ge=1, le=400)
    # How long the audit indexer gathers appended events before indexing them in one go
    # (readers see unindexed events all the same).
    audit_index_delay_seconds: float = Field(default=0.5, ge=0, le=60)
    # How long the interpreter lets a thread hold the GIL while another waits for it
    # (`sys.setswitchinterval`); None: 0.0005 on SQLite, Python's own 0.005 on PostgreSQL.
    # On SQLite each statement runs in aiosqlite's thread, which then waits for the GIL back
    # from the event loop's thread, busy with other requests: at 0.0005 a council page ran
    # 1.13x as fast at 8 in flight, 1.09x at 1 (`bench-read --database-url
    # sqlite+aiosqlite:///x.db --baseline 3c0c0a1`, the commit before this setting). On
    # PostgreSQL, where no statement waits on a thread, three runs of 0.0005 (`bench-read
    # --baseline HEAD --new-env HUB_SWITCH_INTERVAL_SECONDS=0.0005`) gave 1.10x, 1.18x and
    # 0.96x at 8 in flight, 0.90x, 1.07x and 0.92x at 1: no gain to be sure of, so Python's own.
    switch_interval_seconds: float | None = Field(default=None, gt=0, le=0.1)
    # PostgreSQL reports copy the stage facts on this many connections at once, a slice of the
    # table each, in one snapshot: numpy reads one slice while the database sends the next.
    report_connections: int = Field(default=2, ge=1, le=8)
    # The HTTP server (hub/server.py): a request head must arrive whole within the header
    # timeout of the connection opening or of its previous response; a connection with no
    # request in flight that sends nothing for the idle timeout is closed; a peer address holds
    # at most so many open connections (WebSockets too), more are refused with 503.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    idle_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_connections_per_client: int = Field(default=100, ge=1)
    # How long an audit append waits for the chain head (PostgreSQL: the `audit_chain_head` row
    # lock; SQLite: the write lock of a read's audit) before the response fails AUDIT_UNAVAILABLE.
    audit_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Clients (ids) that may report a federated gateway's responses to the audit: the gateway's
    # own OAuth client(s). Empty: no gateway is trusted (`POST /federation/audit` refuses all).
    federation_gateway_clients: list[str] = Field(default_factory=list)
    # A gateway's fetch from the hub is audited with its response's report, in one append
    # (`hub.federation.deferred`); one whose report has not come within this many seconds is
    # written by the hub itself. At most `federation_held_fetches` are held per process; past
    # that, a fetch is audited on its own before it leaves, as a direct read is.
    federation_report_wait_seconds: float = Field(default=5.0, gt=0, le=300)
    federation_held_fetches: int = Field(default=10000, ge=0)
    # The most records one batch push (`reportIncidents`) may carry: a batch is one transaction
    # and one response, held in memory whole. (The body limit bounds it too: about 400 records.)
    max_push_batch: int = Field(default=200, ge=1, le=1000)
    # Per-client limits by role (JSON: {"police_officer": {"rate": 50, "burst": 100,
    # "in_flight": 16}}); a role not named gets "default". Settings, not the agreement: they
    # are the capacity of this deployment, tuned by its operators, not what may be shared.
    rate_limits: dict[str, RoleLimit] = Field(default_factory=dict)
    # Webhooks (hub/webhooks): each client's changes POSTed, signed, to the HTTPS endpoint it
    # registered. The dispatcher runs in every hub process unless turned off here; processes on
    # one PostgreSQL share the work without delivering any attempt twice.
    webhook_dispatch: bool = True
    # A CA bundle (PEM) endpoints' certificates are verified against instead of the system's:
    # a private CA, or a test's self-signed one. Verification is never turned off.
    webhook_ca_file: Path | None = None
    # Development only (production refuses it): http:// endpoints on a loopback address.
    webhook_allow_http_loopback: bool = False
    # A delivery is parked in the dead letters after this many failed attempts; retries wait
    # backoff * 2^(attempt-1) seconds (at most the maximum), less a random part of up to half.
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=10.0, gt=0, le=3600)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=86400)
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Deliveries in flight at once in one process (one per endpoint at most).
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    # How often the dispatcher looks for due retries when no change woke it.
    webhook_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    # Woken by a change, the dispatcher waits this long first, so that one look for work covers
    # every change committed meanwhile (under load, one per push cost each push a transaction).
    webhook_wake_delay_seconds: float = Field(default=0.05, ge=0, le=5)
    # Delivered (and refused) deliveries are forgotten this many days after their last attempt;
    # dead letters stay until replayed. The dispatcher prunes about hourly; `webhooks prune` too.
    webhook_keep_days: int = Field(default=30, ge=1, le=3650)

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
    def _issuer_recorded_by_the_demo(self) -> Settings:
        # `demo --port 8001` serves under its own issuer: `token` (and `serve`) in the same
        # folder read it back, so their tokens agree whatever the port. HUB_ISSUER still wins.
        recorded = self.data_dir / RECORDED_ISSUER
        if not self.is_production and "issuer" not in self.model_fields_set and recorded.is_file():
            self.issuer = recorded.read_text(encoding="utf-8").strip()
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
        if self.webhook_allow_http_loopback:
            problems.append("HUB_WEBHOOK_ALLOW_HTTP_LOOPBACK is for development only")
        if problems:
            raise ValueError("production mode refuses: " + "; ".join(problems))
        return self


@cache
def get_settings() -> Settings:
    return Settings()
