"""joint visit requests and police protections (issue 13)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 08:06:51.382114

Two new records, each a table of its own: a council's request to a force for a joint visit or
ABE interview (the force's answer and the outcome are columns of the same row), and a police
protection under Children Act 1989 s.46, with whether children's social care was consulted
before. Nothing existing changes.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'  # re-chained after 0012 (meetings) in this merge
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('joint_visit_request',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('council_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('urgency', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('needed_by', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('response', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('response_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('officer_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('responded_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('outcome_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_joint_visit_request_child_id_child')),
    sa.ForeignKeyConstraint(['council_code'], ['organisation.code'], name=op.f('fk_joint_visit_request_council_code_organisation')),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_joint_visit_request_force_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_joint_visit_request')),
    sa.UniqueConstraint('council_code', 'council_reference', name=op.f('uq_joint_visit_request_council_code_council_reference')),
    sa.UniqueConstraint('council_code', 'idempotency_key', name=op.f('uq_joint_visit_request_council_code_idempotency_key'))
    )
    with op.batch_alter_table('joint_visit_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_joint_visit_request_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_joint_visit_request_council_code'), ['council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_joint_visit_request_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_joint_visit_request_recorded_at'), ['recorded_at'], unique=False)

    op.create_table('police_protection',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('police_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('taken_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('placed_in', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('placed_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('consulted_before', sa.Boolean(), nullable=False),
    sa.Column('consulted_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consulted_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('consulted_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('alternatives_considered', sa.Text(), nullable=False),
    sa.Column('pushed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_police_protection_child_id_child')),
    sa.ForeignKeyConstraint(['consulted_council_code'], ['organisation.code'], name=op.f('fk_police_protection_consulted_council_code_organisation')),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_police_protection_force_code_organisation')),
    sa.ForeignKeyConstraint(['placed_council_code'], ['organisation.code'], name=op.f('fk_police_protection_placed_council_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_police_protection')),
    sa.UniqueConstraint('force_code', 'idempotency_key', name=op.f('uq_police_protection_force_code_idempotency_key')),
    sa.UniqueConstraint('force_code', 'police_reference', name=op.f('uq_police_protection_force_code_police_reference'))
    )
    with op.batch_alter_table('police_protection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_police_protection_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_police_protection_consulted_council_code'), ['consulted_council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_police_protection_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_police_protection_placed_council_code'), ['placed_council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_police_protection_taken_at'), ['taken_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('police_protection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_police_protection_taken_at'))
        batch_op.drop_index(batch_op.f('ix_police_protection_placed_council_code'))
        batch_op.drop_index(batch_op.f('ix_police_protection_force_code'))
        batch_op.drop_index(batch_op.f('ix_police_protection_consulted_council_code'))
        batch_op.drop_index(batch_op.f('ix_police_protection_child_id'))

    op.drop_table('police_protection')
    with op.batch_alter_table('joint_visit_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_joint_visit_request_recorded_at'))
        batch_op.drop_index(batch_op.f('ix_joint_visit_request_force_code'))
        batch_op.drop_index(batch_op.f('ix_joint_visit_request_council_code'))
        batch_op.drop_index(batch_op.f('ix_joint_visit_request_child_id'))

    op.drop_table('joint_visit_request')
