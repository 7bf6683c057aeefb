"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 23:46:37.352752

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('organisation',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('nation', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('ons_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('council_kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_organisation'))
    )
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisation_kind'), ['kind'], unique=False)

    op.create_table('child',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('nhs_number', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('responsible_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('host_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('looked_after', sa.Boolean(), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['host_council_code'], ['organisation.code'], name=op.f('fk_child_host_council_code_organisation')),
    sa.ForeignKeyConstraint(['responsible_council_code'], ['organisation.code'], name=op.f('fk_child_responsible_council_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_child')),
    sa.UniqueConstraint('nhs_number', name=op.f('uq_child_nhs_number'))
    )
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_child_host_council_code'), ['host_council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_child_responsible_council_code'), ['responsible_council_code'], unique=False)

    op.create_table('force_coverage',
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.ForeignKeyConstraint(['council_code'], ['organisation.code'], name=op.f('fk_force_coverage_council_code_organisation')),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_force_coverage_force_code_organisation')),
    sa.PrimaryKeyConstraint('force_code', 'council_code', name=op.f('pk_force_coverage'))
    )
    with op.batch_alter_table('force_coverage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_force_coverage_council_code'), ['council_code'], unique=False)

    op.create_table('incident',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('police_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('occurred_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('location_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('dash_risk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('pushed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_incident_force_code_organisation')),
    sa.ForeignKeyConstraint(['location_council_code'], ['organisation.code'], name=op.f('fk_incident_location_council_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident')),
    sa.UniqueConstraint('force_code', 'idempotency_key', name=op.f('uq_incident_force_code_idempotency_key')),
    sa.UniqueConstraint('force_code', 'police_reference', name=op.f('uq_incident_force_code_police_reference'))
    )
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_location_council_code'), ['location_council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_type'), ['type'], unique=False)

    op.create_table('investigation',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('police_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status_changed_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_investigation_force_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_investigation')),
    sa.UniqueConstraint('force_code', 'police_reference', name=op.f('uq_investigation_force_code_police_reference'))
    )
    with op.batch_alter_table('investigation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investigation_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_investigation_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_investigation_status_changed_at'), ['status_changed_at'], unique=False)

    op.create_table('oauth_client',
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organisation_code'], ['organisation.code'], name=op.f('fk_oauth_client_organisation_code_organisation')),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_oauth_client'))
    )
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_client_organisation_code'), ['organisation_code'], unique=False)

    op.create_table('child_reference',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_child_reference_child_id_child')),
    sa.ForeignKeyConstraint(['organisation_code'], ['organisation.code'], name=op.f('fk_child_reference_organisation_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_child_reference')),
    sa.UniqueConstraint('organisation_code', 'kind', 'value', name=op.f('uq_child_reference_organisation_code_kind_value'))
    )
    with op.batch_alter_table('child_reference', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_child_reference_child_id'), ['child_id'], unique=False)

    op.create_table('incident_child',
    sa.Column('incident_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('household_member', sa.Boolean(), nullable=False),
    sa.Column('victim', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_incident_child_child_id_child')),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_incident_child_incident_id_incident')),
    sa.PrimaryKeyConstraint('incident_id', 'child_id', name=op.f('pk_incident_child'))
    )
    with op.batch_alter_table('incident_child', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_child_child_id'), ['child_id'], unique=False)

    op.create_table('investigation_child',
    sa.Column('investigation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_investigation_child_child_id_child')),
    sa.ForeignKeyConstraint(['investigation_id'], ['investigation.id'], name=op.f('fk_investigation_child_investigation_id_investigation')),
    sa.PrimaryKeyConstraint('investigation_id', 'child_id', name=op.f('pk_investigation_child'))
    )
    with op.batch_alter_table('investigation_child', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investigation_child_child_id'), ['child_id'], unique=False)

    op.create_table('investigation_incident',
    sa.Column('investigation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('incident_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_investigation_incident_incident_id_incident')),
    sa.ForeignKeyConstraint(['investigation_id'], ['investigation.id'], name=op.f('fk_investigation_incident_investigation_id_investigation')),
    sa.PrimaryKeyConstraint('investigation_id', 'incident_id', name=op.f('pk_investigation_incident'))
    )
    with op.batch_alter_table('investigation_incident', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investigation_incident_incident_id'), ['incident_id'], unique=False)

    op.create_table('investigation_transition',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('investigation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('changed_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('pushed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['investigation_id'], ['investigation.id'], name=op.f('fk_investigation_transition_investigation_id_investigation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_investigation_transition')),
    sa.UniqueConstraint('investigation_id', 'idempotency_key', name='uq_investigation_transition_idempotency'),
    sa.UniqueConstraint('investigation_id', 'to_status', 'changed_at', name='uq_investigation_transition_change')
    )
    with op.batch_alter_table('investigation_transition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investigation_transition_investigation_id'), ['investigation_id'], unique=False)

    op.create_table('missing_episode',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('force_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('police_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reported_missing_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shared_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('risk_grade', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('risk_framework', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('last_seen_council_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('missing_from', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('found_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('returned_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('pushed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_missing_episode_child_id_child')),
    sa.ForeignKeyConstraint(['force_code'], ['organisation.code'], name=op.f('fk_missing_episode_force_code_organisation')),
    sa.ForeignKeyConstraint(['last_seen_council_code'], ['organisation.code'], name=op.f('fk_missing_episode_last_seen_council_code_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_missing_episode')),
    sa.UniqueConstraint('force_code', 'idempotency_key', name=op.f('uq_missing_episode_force_code_idempotency_key')),
    sa.UniqueConstraint('force_code', 'police_reference', name=op.f('uq_missing_episode_force_code_police_reference'))
    )
    with op.batch_alter_table('missing_episode', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_missing_episode_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_missing_episode_force_code'), ['force_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_missing_episode_last_seen_council_code'), ['last_seen_council_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_missing_episode_reported_missing_at'), ['reported_missing_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_missing_episode_risk_grade'), ['risk_grade'], unique=False)
        batch_op.create_index(batch_op.f('ix_missing_episode_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('missing_episode', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_missing_episode_status'))
        batch_op.drop_index(batch_op.f('ix_missing_episode_risk_grade'))
        batch_op.drop_index(batch_op.f('ix_missing_episode_reported_missing_at'))
        batch_op.drop_index(batch_op.f('ix_missing_episode_last_seen_council_code'))
        batch_op.drop_index(batch_op.f('ix_missing_episode_force_code'))
        batch_op.drop_index(batch_op.f('ix_missing_episode_child_id'))

    op.drop_table('missing_episode')
    with op.batch_alter_table('investigation_transition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investigation_transition_investigation_id'))

    op.drop_table('investigation_transition')
    with op.batch_alter_table('investigation_incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investigation_incident_incident_id'))

    op.drop_table('investigation_incident')
    with op.batch_alter_table('investigation_child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investigation_child_child_id'))

    op.drop_table('investigation_child')
    with op.batch_alter_table('incident_child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_child_child_id'))

    op.drop_table('incident_child')
    with op.batch_alter_table('child_reference', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_child_reference_child_id'))

    op.drop_table('child_reference')
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_client_organisation_code'))

    op.drop_table('oauth_client')
    with op.batch_alter_table('investigation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investigation_status_changed_at'))
        batch_op.drop_index(batch_op.f('ix_investigation_status'))
        batch_op.drop_index(batch_op.f('ix_investigation_force_code'))

    op.drop_table('investigation')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_type'))
        batch_op.drop_index(batch_op.f('ix_incident_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_incident_location_council_code'))
        batch_op.drop_index(batch_op.f('ix_incident_force_code'))

    op.drop_table('incident')
    with op.batch_alter_table('force_coverage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_force_coverage_council_code'))

    op.drop_table('force_coverage')
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_child_responsible_council_code'))
        batch_op.drop_index(batch_op.f('ix_child_host_council_code'))

    op.drop_table('child')
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisation_kind'))

    op.drop_table('organisation')
