"""meetings: strategy discussions and conferences, invitations, attendance

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 08:02:38.558793

Councils convene meetings with the police (issue 13): one row per meeting, naturally keyed by
the council's own reference; the children it is about (an unborn child only by the expected
date of delivery and the mother's council); one invitation row per invited force, holding its
answer, its written report and, after the meeting, its attendance.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('meeting',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('council_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('scheduled_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('strategy_discussion_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('pre_birth', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('held_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['council_code'], ['organisation.code'], name=op.f('fk_meeting_council_code_organisation')),
    sa.ForeignKeyConstraint(['strategy_discussion_id'], ['meeting.id'], name=op.f('fk_meeting_strategy_discussion_id_meeting')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting')),
    sa.UniqueConstraint('council_code', 'council_reference', name=op.f('uq_meeting_council_code_council_reference')),
    sa.UniqueConstraint('council_code', 'idempotency_key', name=op.f('uq_meeting_council_code_idempotency_key'))
    )
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_council_code'), ['council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_scheduled_at'), ['scheduled_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_strategy_discussion_id'), ['strategy_discussion_id'], unique=False)

    op.create_table('meeting_child',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('meeting_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('expected_delivery_date', sa.Date(), nullable=True),
    sa.Column('mother_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_meeting_child_child_id_child')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_meeting_child_meeting_id_meeting')),
    sa.ForeignKeyConstraint(['mother_council_code'], ['organisation.code'], name=op.f('fk_meeting_child_mother_council_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_child'))
    )
    with op.batch_alter_table('meeting_child', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_child_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_child_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_child_mother_council_code'), ['mother_council_code'], unique=False)

    op.create_table('meeting_invitation',
    sa.Column('meeting_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('invited_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('response', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('response_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('responded_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('report_submitted_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('report_text', sa.Text(), nullable=True),
    sa.Column('attendance', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('attendee_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('attendance_recorded_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_meeting_invitation_force_code_organisation')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_meeting_invitation_meeting_id_meeting')),
    sa.PrimaryKeyConstraint('meeting_id', 'force_code', name=op.f('pk_meeting_invitation'))
    )
    with op.batch_alter_table('meeting_invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_invitation_force_code'), ['force_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('meeting_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_invitation_force_code'))

    op.drop_table('meeting_invitation')
    with op.batch_alter_table('meeting_child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_child_mother_council_code'))
        batch_op.drop_index(batch_op.f('ix_meeting_child_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_child_child_id'))

    op.drop_table('meeting_child')
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_strategy_discussion_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_scheduled_at'))
        batch_op.drop_index(batch_op.f('ix_meeting_kind'))
        batch_op.drop_index(batch_op.f('ix_meeting_council_code'))

    op.drop_table('meeting')
