"""record receipts (first seen, acknowledged) and return home interviews

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:51:25.268584

A receipt is one organisation's first sight of a record (from the audit) and its acknowledgement;
the two new missing_episode columns are nullable, so existing rows need no default.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('record_receipt',
    sa.Column('record_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('first_seen_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.PrimaryKeyConstraint('record_type', 'record_id', 'organisation_code', name=op.f('pk_record_receipt'))
    )
    with op.batch_alter_table('record_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_receipt_organisation_code'), ['organisation_code'], unique=False)

    with op.batch_alter_table('missing_episode', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_interview_at', hub.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('return_interview_by_council', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('missing_episode', schema=None) as batch_op:
        batch_op.drop_column('return_interview_by_council')
        batch_op.drop_column('return_interview_at')

    with op.batch_alter_table('record_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_receipt_organisation_code'))

    op.drop_table('record_receipt')
