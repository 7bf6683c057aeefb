"""stage facts for every declared record kind: four readings of a kind's own, the force in the key

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 08:30:00.000000

Record kinds are declared by their domains (hub/timeliness/kinds.py); a kind's readings beyond
the police records' sit in `reading_1_at`..`reading_4_at`. A meeting has one fact per invited
force, so the force joins the key, and its kinds need longer names. On PostgreSQL the facts are
derived again, for the kinds whose tables exist (hub/timeliness/facts.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_READINGS = ('reading_1_at', 'reading_2_at', 'reading_3_at', 'reading_4_at')


def upgrade() -> None:
    with op.batch_alter_table('stage_fact', schema=None) as batch_op:
        for name in _READINGS:
            batch_op.add_column(sa.Column(name, hub.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column(
            'kind',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=32),
            type_=sqlmodel.sql.sqltypes.AutoString(length=40),
            existing_nullable=False,
        )
        batch_op.drop_constraint('pk_stage_fact', type_='primary')
        batch_op.create_primary_key(
            'pk_stage_fact', ['record_type', 'record_id', 'council_code', 'force_code']
        )
    if op.get_bind().dialect.name == 'postgresql':
        # The derivation lives with the code that keeps the table up to date: one definition.
        from hub.timeliness import facts

        facts.rebuild(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # Only the police records' facts fit the old key: the others go.
        op.execute(
            "DELETE FROM stage_fact WHERE record_type NOT IN"
            " ('Incident', 'MissingEpisode', 'Investigation')"
        )
    with op.batch_alter_table('stage_fact', schema=None) as batch_op:
        batch_op.drop_constraint('pk_stage_fact', type_='primary')
        batch_op.create_primary_key('pk_stage_fact', ['record_type', 'record_id', 'council_code'])
        batch_op.alter_column(
            'kind',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=40),
            type_=sqlmodel.sql.sqltypes.AutoString(length=32),
            existing_nullable=False,
        )
        for name in reversed(_READINGS):
            batch_op.drop_column(name)
