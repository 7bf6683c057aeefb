"""Applying the Alembic history and syncing reference data: what `safeguarding-hub migrate` does."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from hub.db import Database, ensure_sqlite_directory
from hub.reference import service as reference
from hub.reference.service import SyncReport


def migrations_dir() -> Path:
    """`HUB_MIGRATIONS_DIR`, else the checkout's `migrations/` beside the package."""
    configured = os.getenv("HUB_MIGRATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


async def upgrade(database_url: str, revision: str = "head") -> SyncReport:
    """Apply migrations (in a thread: Alembic runs its own loop), then sync reference data."""
    ensure_sqlite_directory(database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)
    db = Database(database_url)
    try:
        async with db.transaction(write=True) as session:
            return await reference.sync(session)
    finally:
        await db.dispose()
