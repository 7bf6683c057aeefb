"""webhooks: a client's endpoint, and each delivery with its retry state

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 08:30:00.000000

One endpoint per client (where its changes are POSTed, signed with its secret, for the purpose
and person it named), and one row per change per endpoint: attempts, when the next is due, the
last status. The dispatcher derives all it does from these rows, so restarts resume.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'webhook_endpoint',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            'organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False
        ),
        sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('on_behalf_of', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('seen', sa.BigInteger(), nullable=False),
        sa.Column('lease_token', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column('lease_until', hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['organisation_code'],
            ['organisation.code'],
            name=op.f('fk_webhook_endpoint_organisation_code_organisation'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoint')),
        sa.UniqueConstraint('client_id', name=op.f('uq_webhook_endpoint_client_id')),
    )
    op.create_index(
        op.f('ix_webhook_endpoint_organisation_code'),
        'webhook_endpoint',
        ['organisation_code'],
        unique=False,
    )
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('endpoint_id', sa.String(length=36), nullable=False),
        sa.Column('change_seq', sa.BigInteger(), nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['endpoint_id'],
            ['webhook_endpoint.id'],
            name=op.f('fk_webhook_delivery_endpoint_id_webhook_endpoint'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
        sa.UniqueConstraint(
            'endpoint_id', 'change_seq', name=op.f('uq_webhook_delivery_endpoint_id_change_seq')
        ),
    )
    op.create_index(
        op.f('ix_webhook_delivery_endpoint_id'), 'webhook_delivery', ['endpoint_id'], unique=False
    )
    op.create_index(
        'ix_webhook_delivery_due', 'webhook_delivery', ['state', 'next_attempt_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_webhook_delivery_due', table_name='webhook_delivery')
    op.drop_index(op.f('ix_webhook_delivery_endpoint_id'), table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_index(op.f('ix_webhook_endpoint_organisation_code'), table_name='webhook_endpoint')
    op.drop_table('webhook_endpoint')
