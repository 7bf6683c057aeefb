# syntax=docker/dockerfile:1
#
# The safeguarding hub as a container image.
#
#   docker build -t safeguarding-hub .
#   docker run -p 8000:8000 -v hub-data:/data -v /path/to/keys:/run/secrets/hub:ro \
#     -e HUB_SIGNING_KEYS_FILE=/run/secrets/hub/signing-keys.json \
#     -e HUB_PSEUDONYM_KEY=... -e HUB_ISSUER=https://hub.example.gov.uk safeguarding-hub
#
# The image runs in production mode, which refuses the development defaults: it will not start
# without HUB_SIGNING_KEYS_FILE (a JWKS of private keys, mounted read-only and readable by uid
# 10001; `safeguarding-hub keys rotate` creates one) and HUB_PSEUDONYM_KEY (a secret from the
# orchestrator's secret store, never baked into an image). Set HUB_ISSUER to the public URL
# clients see. The database defaults to SQLite in the /data volume; production sets
# HUB_DATABASE_URL=postgresql+asyncpg://...
#
# Both stages use the same base image: the venv built in the first refers to its Python by path.

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Every dependency ships manylinux wheels for CPython 3.11 (asyncpg, argon2-cffi, pydantic-core,
# uvloop, httptools), so no compiler is installed.
RUN python -m venv /opt/venv
WORKDIR /src
# README.md too: pyproject.toml names it as the package's long description.
COPY pyproject.toml README.md ./
COPY hub ./hub
# A wheel rather than `pip install -e`: the runtime image carries the installed package, not the
# source tree (package data such as the reference CSVs travels inside the wheel).
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/*.whl


FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_MODE=production \
    HUB_DATA_DIR=/data \
    HUB_DATABASE_URL=sqlite+aiosqlite:////data/hub.db \
    HUB_MIGRATIONS_DIR=/app/migrations \
    HUB_AGREEMENT_FILE=/app/auth/agreement.toml \
    HUB_TARGETS_FILE=/app/auth/targets.toml

# A fixed uid/gid so that volume ownership and Kubernetes runAsUser policies can name it.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin hub \
    && mkdir -p /data \
    && chown hub:hub /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Migrations are not part of the wheel; `migrate` finds them through HUB_MIGRATIONS_DIR. They stay
# root-owned: the hub reads them, nothing at runtime may change them.
COPY alembic.ini ./
COPY migrations ./migrations
# The sharing agreement the hub enforces; an organisation may mount its own signed-off version
# over it (read-only) and the hub checks it against the schema at start.
COPY auth ./auth

# Numeric, so that Kubernetes' runAsNonRoot can verify it (it refuses a user given by name).
USER 10001:10001
# Declared after the chown so a fresh named volume starts owned by the hub user.
VOLUME ["/data"]
EXPOSE 8000

# Liveness only (/healthz answers without the database; /readyz is for load balancers). Python,
# because the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# Migrate, then serve. `exec` makes uvicorn PID 1 so that `docker stop` (SIGTERM) shuts it down
# gracefully. CMD rather than ENTRYPOINT so that `docker run safeguarding-hub safeguarding-hub
# clients ...` runs other commands. With several replicas on PostgreSQL, run
# `safeguarding-hub migrate` once as a release job and override CMD with the serve command alone.
CMD ["/bin/sh", "-c", "safeguarding-hub migrate && exec safeguarding-hub serve --host 0.0.0.0 --port 8000"]
