"""escalations: stages past their deadline, raised once

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 08:30:00.000000

One row per (target, record, organisation owing the answer): the unique key is what makes an
escalation raised once across hub processes and restarts.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'escalation',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('target_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column('record_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('owed_by_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('waiting_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('stage_started_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('deadline', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('raised_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['owed_by_code'], ['organisation.code'], name=op.f('fk_escalation_owed_by_code_organisation')),
        sa.ForeignKeyConstraint(['waiting_code'], ['organisation.code'], name=op.f('fk_escalation_waiting_code_organisation')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation')),
        sa.UniqueConstraint('target_id', 'record_type', 'record_id', 'owed_by_code', name=op.f('uq_escalation_target_id_record_type_record_id_owed_by_code')),
    )
    op.create_index('ix_escalation_raised_at', 'escalation', ['raised_at'], unique=False)
    op.create_index(op.f('ix_escalation_owed_by_code'), 'escalation', ['owed_by_code'], unique=False)
    op.create_index(op.f('ix_escalation_waiting_code'), 'escalation', ['waiting_code'], unique=False)


def downgrade() -> None:
    op.drop_table('escalation')
