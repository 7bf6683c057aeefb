"""audit event recipients: the subscribers a fanned-out delivery went to, indexed beside the chain

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 15:00:00.000000

A fanned-out subscription delivery is one event listing its recipients in its hashed
`detail.recipients`; `audit_event_recipient` indexes that list, one row per recipient, so that
"what was this person sent" finds a delivery made to a group as it finds one made to one
subscriber. Written by the append on SQLite and by the indexer (`chain.catch_up`) on PostgreSQL,
like the record and child indexes; rows for the events already written are built here from
their details. Append-only on PostgreSQL like the other audit tables; retention erases from it.
"""
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0019'
down_revision: str | Sequence[str] | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0006's function, with this table among those a lawful erasure may delete from.
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
ERASABLE_0006 = ('audit_event', 'audit_event_child', 'audit_event_record')
ERASABLE = (*ERASABLE_0006, 'audit_event_recipient')
_BACKFILL_BATCH = 1000


def _append_only_function(tables: Sequence[str]) -> str:
    return APPEND_ONLY_FUNCTION.format(tables=', '.join(f"'{table}'" for table in tables))


def _backfill() -> None:
    """Index the recipients of the events already written (those fan-out wrote, if any)."""
    bind = op.get_bind()
    events = bind.execute(
        sa.text(
            "SELECT seq, detail FROM audit_event WHERE detail LIKE '%\"recipients\"%' "
            # The indexer (PostgreSQL) indexes the events after its progress row itself.
            'AND seq <= (SELECT coalesce(max(indexed_seq), 0) FROM audit_index_progress) '
            'ORDER BY seq'
        )
    )
    rows = []
    for seq, detail in events:
        listed = json.loads(detail).get('recipients') or []
        rows += [
            {
                'seq': seq,
                'ordinal': ordinal,
                'user': entry.get('user'),
                'client_id': entry.get('client_id'),
                'request_id': entry.get('request_id'),
            }
            for ordinal, entry in enumerate(listed)
        ]
    insert = sa.text(
        'INSERT INTO audit_event_recipient (seq, ordinal, "user", client_id, request_id) '
        'VALUES (:seq, :ordinal, :user, :client_id, :request_id)'
    )
    for start in range(0, len(rows), _BACKFILL_BATCH):
        bind.execute(insert, rows[start : start + _BACKFILL_BATCH])


def upgrade() -> None:
    op.create_table(
        'audit_event_recipient',
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('ordinal', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('user', sa.String(length=128), nullable=True),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('seq', 'ordinal', name=op.f('pk_audit_event_recipient')),
    )
    _backfill()
    with op.batch_alter_table('audit_event_recipient', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_recipient_user', ['user', 'seq'], unique=False)
        batch_op.create_index(
            'ix_audit_event_recipient_seq', ['seq'], unique=False, postgresql_using='brin'
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_append_only_function(ERASABLE))
        op.execute(
            'CREATE TRIGGER audit_event_recipient_append_only BEFORE UPDATE OR DELETE OR TRUNCATE '
            'ON audit_event_recipient FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only()'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            'DROP TRIGGER IF EXISTS audit_event_recipient_append_only ON audit_event_recipient'
        )
        op.execute(_append_only_function(ERASABLE_0006))
    op.drop_table('audit_event_recipient')
