"""incidents newest first by force and by location council: an index each

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 22:00:00.000000

A scoped list of incidents reads the newest of each condition its scope is the OR of (the force,
the location council, ...) from an index of its own (`pagination.Listing`'s branches). The
single-column indexes on the two codes are prefixes of these, and go.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0020'
down_revision: str | Sequence[str] | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_CODE = {
    'force_code': 'ix_incident_force_code_occurred_at',
    'location_council_code': 'ix_incident_location_council_code_occurred_at',
}


def upgrade() -> None:
    for code, name in _BY_CODE.items():
        op.create_index(name, 'incident', [code, 'occurred_at', 'id'], unique=False)
        op.drop_index(f'ix_incident_{code}', table_name='incident')


def downgrade() -> None:
    for code, name in _BY_CODE.items():
        op.create_index(f'ix_incident_{code}', 'incident', [code], unique=False)
        op.drop_index(name, table_name='incident')
