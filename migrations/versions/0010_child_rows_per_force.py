"""a child row per organisation: NHS number no longer unique, matches kept as links

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00.000000

A push whose NHS number matched a child another force recorded used to take over that child
(read it back, change its placement). Now the pushing force gets a row of its own and the hub
links the two (`child_link`). Rows merged before this revision stay as they are: no data is
moved or lost here. Downgrading restores the unique constraint, so it fails (changing nothing)
once two rows share an NHS number.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_child_nhs_number'), type_='unique')
        batch_op.create_index(batch_op.f('ix_child_nhs_number'), ['nhs_number'], unique=False)

    op.create_table('child_link',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('matched_child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('matched_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('linked_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_child_link_child_id_child')),
    sa.ForeignKeyConstraint(['matched_child_id'], ['child.id'], name=op.f('fk_child_link_matched_child_id_child')),
    sa.ForeignKeyConstraint(['organisation_code'], ['organisation.code'], name=op.f('fk_child_link_organisation_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_child_link')),
    sa.UniqueConstraint('child_id', 'matched_child_id', name=op.f('uq_child_link_child_id_matched_child_id'))
    )
    with op.batch_alter_table('child_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_child_link_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_child_link_matched_child_id'), ['matched_child_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('child_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_child_link_matched_child_id'))
        batch_op.drop_index(batch_op.f('ix_child_link_child_id'))

    op.drop_table('child_link')
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_child_nhs_number'))
        batch_op.create_unique_constraint(batch_op.f('uq_child_nhs_number'), ['nhs_number'])
