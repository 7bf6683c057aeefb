"""stage facts: each record's times per receiving council, for the PostgreSQL report

Revision ID: 0005r
Revises: 0004
Create Date: 2026-11-29 03:00:00.000000

`stage_fact` is derived data (hub/timeliness/facts.py): on PostgreSQL it is filled here from the
records, children, links and receipts already held, and kept up to date on write afterwards
(receipts through a trigger on record_receipt). On SQLite the report takes the Python path and
the table stays empty.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0005r'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stage_fact',
    sa.Column('record_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('event_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_seen_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('returned_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('interview_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('share_stages', sa.Boolean(), nullable=False),
    sa.Column('receipt_stages', sa.Boolean(), nullable=False),
    sa.Column('first_council', sa.Boolean(), nullable=False),
    sa.Column('event_local', sa.DateTime(), nullable=False),
    sa.Column('recorded_local', sa.DateTime(), nullable=True),
    sa.Column('shared_local', sa.DateTime(), nullable=False),
    sa.Column('returned_local', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('record_type', 'record_id', 'council_code', name=op.f('pk_stage_fact'))
    )
    with op.batch_alter_table('stage_fact', schema=None) as batch_op:
        batch_op.create_index('ix_stage_fact_council_event_at', ['council_code', 'event_at'], unique=False)
        batch_op.create_index('ix_stage_fact_event_at', ['event_at'], unique=False)
        batch_op.create_index('ix_stage_fact_force_event_at', ['force_code', 'event_at'], unique=False)
        batch_op.create_index('ix_stage_fact_subject', ['record_type', 'subject_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        from hub.timeliness import facts

        for statement in facts.RECEIPT_TRIGGER:
            op.execute(statement)
        # The rows are derived by the latest migration that changes the table's columns (0014,
        # `facts.rebuild`): today's derivation fills today's columns, which this one lacks.


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        from hub.timeliness import facts

        for statement in facts.DROP_RECEIPT_TRIGGER:
            op.execute(statement)
    with op.batch_alter_table('stage_fact', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_fact_subject')
        batch_op.drop_index('ix_stage_fact_force_event_at')
        batch_op.drop_index('ix_stage_fact_event_at')
        batch_op.drop_index('ix_stage_fact_council_event_at')

    op.drop_table('stage_fact')
