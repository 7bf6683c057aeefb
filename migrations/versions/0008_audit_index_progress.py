"""audit index progress: the record and child indexes are built after the append

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 08:20:00.000000

One row: every event up to `indexed_seq` has its record and child index rows. Every event
already written was indexed by its append, so it starts at the chain's head.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'audit_index_progress',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('indexed_seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_index_progress')),
    )
    op.execute(
        'INSERT INTO audit_index_progress (id, indexed_seq) '
        'SELECT 1, coalesce((SELECT last_seq FROM audit_chain_head WHERE id = 1), 0)'
    )
    if op.get_bind().dialect.name == 'postgresql':
        # Like the chain head: it must move, and nothing may delete it (the function is 0003's).
        op.execute(
            'CREATE TRIGGER audit_index_progress_append_only BEFORE DELETE OR TRUNCATE '
            'ON audit_index_progress FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only()'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            'DROP TRIGGER IF EXISTS audit_index_progress_append_only ON audit_index_progress'
        )
    op.drop_table('audit_index_progress')
