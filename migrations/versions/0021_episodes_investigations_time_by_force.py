"""missing episodes and investigations newest first by force: an index each

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 00:10:00.000000

A scoped list of missing episodes or investigations reads the newest of each condition its
scope is the OR of from an index of its own (`pagination.Listing`'s branches), as incidents do
since 0020. The single-column indexes on the force's code are prefixes of these, and go.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0021'
down_revision: str | Sequence[str] | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_FORCE = {
    'missing_episode': 'reported_missing_at',
    'investigation': 'status_changed_at',
}


def upgrade() -> None:
    for table, time in _BY_FORCE.items():
        op.create_index(
            f'ix_{table}_force_code_{time}', table, ['force_code', time, 'id'], unique=False
        )
        op.drop_index(f'ix_{table}_force_code', table_name=table)


def downgrade() -> None:
    for table, time in _BY_FORCE.items():
        op.create_index(f'ix_{table}_force_code', table, ['force_code'], unique=False)
        op.drop_index(f'ix_{table}_force_code_{time}', table_name=table)
