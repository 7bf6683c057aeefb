"""police protections and joint visit requests newest first by organisation: an index each

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 00:40:00.000000

A scoped list of police protections or of joint visit requests reads the newest of each
condition its scope is the OR of from an index of its own (`pagination.Listing`'s branches), as
incidents (0020), missing episodes and investigations (0021) do. The single-column indexes on
the codes are prefixes of these, and go.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0022'
down_revision: str | Sequence[str] | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_CODE = {
    ('police_protection', 'taken_at'): (
        'force_code', 'placed_council_code', 'consulted_council_code'
    ),
    ('joint_visit_request', 'recorded_at'): ('council_code', 'force_code'),
}


def upgrade() -> None:
    for (table, time), codes in _BY_CODE.items():
        for code in codes:
            op.create_index(f'ix_{table}_{code}_{time}', table, [code, time, 'id'], unique=False)
            op.drop_index(f'ix_{table}_{code}', table_name=table)


def downgrade() -> None:
    for (table, time), codes in _BY_CODE.items():
        for code in codes:
            op.create_index(f'ix_{table}_{code}', table, [code], unique=False)
            op.drop_index(f'ix_{table}_{code}_{time}', table_name=table)
