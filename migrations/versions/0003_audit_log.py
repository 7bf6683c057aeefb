"""audit log: hash-chained access events, a child index, the chain head, append-only on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:05:41.154293

On PostgreSQL the database itself refuses UPDATE, DELETE and TRUNCATE of audit rows (statement
triggers, so a refused statement changes nothing and a lawful erasure costs no per-row call).
The one exception is retention: a DELETE runs only in a transaction that has said
`SET LOCAL hub.audit_erasure = 'on'`, which only `hub.audit.retention.erase_before` does, and that
erasure is itself logged as an `erasure` event recording the range and the anchor hash. The
setting is no secret: anyone able to set it could delete rows, which is why the triggers are not
the evidence, the chain is. `audit verify` starts from a lawful erasure's anchor and still reports
any deletion no erasure event covers. The chain head may be updated (every append moves it) but
never deleted or truncated.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.create_table('audit_event',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('occurred_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('organisation_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('operation_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('operation_kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('record_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('record_owner', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.Column('child_ids', sa.Text(), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('trace_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('agreement_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_event')),
    sa.UniqueConstraint('id', name=op.f('uq_audit_event_id'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_erasure', ['seq'], unique=False, postgresql_where=sa.text("operation = 'erasure'"), sqlite_where=sa.text("operation = 'erasure'"))
        batch_op.create_index(batch_op.f('ix_audit_event_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index('ix_audit_event_organisation', ['organisation_code', 'seq'], unique=False)
        batch_op.create_index('ix_audit_event_owner', ['record_owner', 'seq'], unique=False)
        batch_op.create_index('ix_audit_event_record', ['record_type', 'record_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_event_user', ['user', 'seq'], unique=False)

    op.create_table('audit_event_child',
    sa.Column('child_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('child_id', 'seq', name=op.f('pk_audit_event_child'))
    )
    with op.batch_alter_table('audit_event_child', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_child_seq'), ['seq'], unique=False)

    # The chain starts empty: the first event links to 64 zeros.
    head = sa.table(
        'audit_chain_head',
        sa.column('id', sa.Integer()),
        sa.column('last_seq', sa.BigInteger()),
        sa.column('last_hash', sa.String()),
    )
    op.bulk_insert(head, [{'id': 1, 'last_seq': 0, 'last_hash': '0' * 64}])
    if op.get_bind().dialect.name == 'postgresql':
        _refuse_changes()


APPEND_ONLY_FUNCTION = """
CREATE FUNCTION hub_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME IN ('audit_event', 'audit_event_child')
       AND current_setting('hub.audit_erasure', true) = 'on' THEN
        RETURN NULL;  -- a lawful erasure: retention logs it as an `erasure` event
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'retention erases through `safeguarding-hub audit erase`, which logs it';
END
$$
"""

# table -> what its trigger refuses (the head must move, so only DELETE and TRUNCATE there)
GUARDED = {
    'audit_event': 'UPDATE OR DELETE OR TRUNCATE',
    'audit_event_child': 'UPDATE OR DELETE OR TRUNCATE',
    'audit_chain_head': 'DELETE OR TRUNCATE',
}


def _refuse_changes() -> None:
    op.execute(APPEND_ONLY_FUNCTION)
    for table, events in GUARDED.items():
        op.execute(
            f'CREATE TRIGGER {table}_append_only BEFORE {events} ON {table} '
            'FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only()'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in GUARDED:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_append_only ON {table}')
        op.execute('DROP FUNCTION IF EXISTS hub_audit_append_only()')
    with op.batch_alter_table('audit_event_child', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_child_seq'))

    op.drop_table('audit_event_child')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_user')
        batch_op.drop_index('ix_audit_event_record')
        batch_op.drop_index('ix_audit_event_owner')
        batch_op.drop_index('ix_audit_event_organisation')
        batch_op.drop_index(batch_op.f('ix_audit_event_occurred_at'))
        batch_op.drop_index('ix_audit_event_erasure', postgresql_where=sa.text("operation = 'erasure'"), sqlite_where=sa.text("operation = 'erasure'"))

    op.drop_table('audit_event')
    op.drop_table('audit_chain_head')
