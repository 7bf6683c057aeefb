"""police checks on prospective carers and adopters: the request and its outcome category

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 08:30:00.000000

One row per check a council's fostering or adoption team asks of a force: the applicant with
only what the check needs, the purpose, and the force's outcome category once it answers (never
the disclosure's content). Keyed by the council's own reference, like a police push.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('vetting_check',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('council_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('applicant_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('postcode', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('previous_postcodes', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('requested_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('completed_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['council_code'], ['organisation.code'], name=op.f('fk_vetting_check_council_code_organisation')),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_vetting_check_force_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vetting_check')),
    sa.UniqueConstraint('council_code', 'council_reference', name=op.f('uq_vetting_check_council_code_council_reference')),
    sa.UniqueConstraint('council_code', 'idempotency_key', name=op.f('uq_vetting_check_council_code_idempotency_key'))
    )
    with op.batch_alter_table('vetting_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vetting_check_council_code'), ['council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_vetting_check_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_vetting_check_requested_at'), ['requested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_vetting_check_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vetting_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vetting_check_status'))
        batch_op.drop_index(batch_op.f('ix_vetting_check_requested_at'))
        batch_op.drop_index(batch_op.f('ix_vetting_check_force_code'))
        batch_op.drop_index(batch_op.f('ix_vetting_check_council_code'))

    op.drop_table('vetting_check')
