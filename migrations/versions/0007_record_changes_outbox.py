"""record changes: the outbox subscriptions are delivered from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 03:30:00.000000

One row per record a push created or changed, written in the push's transaction; subscribers
read it in `seq` order and resume from the last `seq` they were sent.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db


revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'record_change',
        sa.Column(
            'seq',
            sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column('occurred_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('record_type', sa.String(length=32), nullable=False),
        sa.Column('record_id', sa.String(length=36), nullable=False),
        sa.Column('change', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_record_change')),
    )


def downgrade() -> None:
    op.drop_table('record_change')
