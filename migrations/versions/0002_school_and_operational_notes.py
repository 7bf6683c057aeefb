"""school and operational notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:59:43.524215

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_child_school_code'), ['school_code'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_child_school_code_organisation'), 'organisation', ['school_code'], ['code'])

    with op.batch_alter_table('incident', schema=None) as batch_op:
        # Existing incidents have no notes: an empty default keeps the column NOT NULL.
        batch_op.add_column(sa.Column('operational_notes', sa.Text(), nullable=False, server_default=''))



def downgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('operational_notes')

    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_child_school_code_organisation'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_child_school_code'))
        batch_op.drop_column('school_code')

