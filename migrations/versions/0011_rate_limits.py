"""per-client rate and in-flight limits shared by every hub process

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 05:30:00.000000

One row per client: its GCRA arrival time and requests in flight. UNLOGGED on PostgreSQL
(no WAL; a crash empties it, which also frees slots a killed process held). SQLite keeps the
state in memory and never reads this table; it exists there for one schema on both.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    op.create_table(
        'rate_limit',
        sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('tat', sa.Float(precision=53), nullable=False),
        sa.Column('in_flight', sa.Integer(), nullable=False),
        sa.Column('touched', sa.Float(precision=53), nullable=False),
        sa.Column('admitted', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('client_id', name=op.f('pk_rate_limit')),
        prefixes=['UNLOGGED'] if postgresql else [],
    )


def downgrade() -> None:
    op.drop_table('rate_limit')
