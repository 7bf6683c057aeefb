"""audit log: one chained event per response, its records listed inside it and indexed beside it

Revision ID: 0006
Revises: 0005r
Create Date: 2026-11-29 03:30:00.000000

An event used to be one record served: a response of sixty records cost sixty wide rows, each
with eight indexes, and sixty hashes. Now an event lists its records in `records` (hashed, chain
version 2) and the narrow `audit_event_record` rows index them. Version 1 events stay as they
were, and still verify; each gets its record index row here (ordinal 0), so that "who has seen
this record" reads one index for old and new events alike. `audit_event_record` is append-only
on PostgreSQL like the other audit tables, and retention may erase from it.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005r'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION hub_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND TG_TABLE_NAME IN ({tables})
       AND current_setting('hub.audit_erasure', true) = 'on' THEN
        RETURN NULL;  -- a lawful erasure: retention logs it as an `erasure` event
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'retention erases through `safeguarding-hub audit erase`, which logs it';
END
$$
"""
ERASABLE_V1 = ('audit_event', 'audit_event_child')
ERASABLE = (*ERASABLE_V1, 'audit_event_record')


def _append_only_function(tables: Sequence[str]) -> str:
    return APPEND_ONLY_FUNCTION.format(tables=', '.join(f"'{table}'" for table in tables))


def upgrade() -> None:
    op.create_table(
        'audit_event_record',
        sa.Column('record_type', sa.String(length=32), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('ordinal', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('record_owner', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint(
            'record_type', 'record_id', 'seq', 'ordinal', name=op.f('pk_audit_event_record')
        ),
    )
    op.execute(
        'INSERT INTO audit_event_record (seq, ordinal, record_type, record_id, record_owner) '
        'SELECT seq, 0, record_type, record_id, record_owner FROM audit_event '
        'WHERE record_type IS NOT NULL'
    )
    with op.batch_alter_table('audit_event_record', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_record_owner', ['record_owner', 'seq'], unique=False)
        batch_op.create_index(
            'ix_audit_event_record_seq', ['seq'], unique=False, postgresql_using='brin'
        )
    # Ranges of seq (verify, retention) on PostgreSQL: BRIN, nearly free to keep as seqs grow.
    with op.batch_alter_table('audit_event_child', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_child_seq')
        batch_op.create_index(
            'ix_audit_event_child_seq', ['seq'], unique=False, postgresql_using='brin'
        )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('records', sa.Text(), nullable=True))
        batch_op.drop_index('ix_audit_event_record')
        batch_op.drop_index('ix_audit_event_owner')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_append_only_function(ERASABLE))
        op.execute(
            'CREATE TRIGGER audit_event_record_append_only BEFORE UPDATE OR DELETE OR TRUNCATE '
            'ON audit_event_record FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only()'
        )


def downgrade() -> None:
    grouped = op.get_bind().execute(
        sa.text('SELECT count(*) FROM audit_event WHERE records IS NOT NULL')
    ).scalar_one()
    if grouped:
        msg = (
            f'{grouped} audit events list their records (chain version 2): version 1 cannot '
            'hold them, and the log must not lose them'
        )
        raise RuntimeError(msg)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_event_record_append_only ON audit_event_record')
        op.execute(_append_only_function(ERASABLE_V1))
    with op.batch_alter_table('audit_event_child', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_child_seq')
        batch_op.create_index('ix_audit_event_child_seq', ['seq'], unique=False)
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_owner', ['record_owner', 'seq'], unique=False)
        batch_op.create_index(
            'ix_audit_event_record', ['record_type', 'record_id', 'seq'], unique=False
        )
        batch_op.drop_column('records')
    op.drop_table('audit_event_record')
