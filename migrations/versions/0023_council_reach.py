"""council reach: what each council reaches through a child or a linked incident, by time

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 10:00:00.000000

A council's page of a list read, through its "via a child" branch, every record of every child
of the council to find the newest (and an investigation's branch through an incident, every
incident in the council's area): a page's cost grew with the council's own history
(`bench-listing --ours`: 50 ms at 16,000 records). `council_reach` holds one row for each
(list, record, council reaching it that way) with the record's time, so the branch reads the
council's newest from one index (`hub.access.models.CouncilReach`), and rows for the records
already held are built here.

On PostgreSQL, triggers keep it; the hub never writes it. Whatever changes which councils reach
a record, or its time, recomputes that record's rows from the tables
(`council_reach_of_<list>`): a link to a child or an incident made, changed or removed; a
child's responsible or host council changed; an incident's area changed; a record's child or
time changed; a record deleted. SQLite's lists never read it (they are one statement): there it
is an empty table, so that the schema is the same on both.

Concurrent changes must not leave a stale row: a row naming a council that no longer reaches a
record takes a place in that council's branch, and its page could then hold fewer records than
it should. So a record's rows are recomputed under its row's lock (`FOR NO KEY UPDATE`, which
conflicts with itself), and the paths that read a child's or an incident's council lock that row
first (`FOR SHARE`, which waits for a change of its council to commit). Locks are taken child or
incident first, then record, on every path, so two of these never wait on each other in a
circle. The one exception: a missing episode's, protection's or visit request's child or time
changed while that child's council changes in another transaction (the record is held by its
UPDATE before its trigger locks the child), which PostgreSQL breaks as a deadlock, a refusal the
hub answers as retryable (503).
In READ COMMITTED each statement of a trigger sees what committed before it, so whichever of two
such transactions waits recomputes from what the other wrote.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0023'
down_revision: str | Sequence[str] | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The councils of a child `c` (responsible and host), as rows of `council`.
_COUNCILS_OF_CHILD = (
    "CROSS JOIN LATERAL (VALUES (c.responsible_council_code), (c.host_council_code)) "
    "AS x(council)"
)
# Each list: its record's time, and the councils reaching a record (a SELECT of `council`,
# correlated with the record's row as `r`).
_OF_CHILD = f"SELECT x.council FROM child c {_COUNCILS_OF_CHILD} WHERE c.id = r.child_id"
_LINKED_CHILDREN = (
    "SELECT x.council FROM {link} l JOIN child c ON c.id = l.child_id "
    f"{_COUNCILS_OF_CHILD} WHERE l.{{record}} = r.id"
)
_LISTS = {
    'incident': (
        'occurred_at',
        _LINKED_CHILDREN.format(link='incident_child', record='incident_id'),
    ),
    'missing_episode': ('reported_missing_at', _OF_CHILD),
    'investigation': (
        'status_changed_at',
        _LINKED_CHILDREN.format(link='investigation_child', record='investigation_id')
        + " UNION SELECT i.location_council_code FROM investigation_incident l "
        "JOIN incident i ON i.id = l.incident_id WHERE l.investigation_id = r.id",
    ),
    'police_protection': ('taken_at', _OF_CHILD),
    'joint_visit_request': ('recorded_at', _OF_CHILD),
}
# (link table, the list it links, its record column, what else it names: (table, column))
_LINKS = (
    ('incident_child', 'incident', 'incident_id', ('child', 'child_id')),
    ('investigation_child', 'investigation', 'investigation_id', ('child', 'child_id')),
    ('investigation_incident', 'investigation', 'investigation_id', ('incident', 'incident_id')),
)
# The lists whose record names its child itself.
_WITH_CHILD = ('missing_episode', 'police_protection', 'joint_visit_request')
# What a change of a child's or an incident's council recomputes: (list, column naming the
# record, table, column naming the child or incident).
_NAMING = {
    'child': (
        ('incident', 'incident_id', 'incident_child', 'child_id'),
        ('investigation', 'investigation_id', 'investigation_child', 'child_id'),
        *((name, 'id', name, 'child_id') for name in _WITH_CHILD),
    ),
    'incident': (('investigation', 'investigation_id', 'investigation_incident', 'incident_id'),),
}
_COUNCIL_COLUMNS = {
    'child': ('responsible_council_code', 'host_council_code'),
    'incident': ('location_council_code',),
}


# Each function's statements read one record's rows, and their links, by index. PL/pgSQL plans
# a statement once for its session and keeps the plan: planned while a table is small (a young
# hub, or before a bulk insert of its first rows), a plan that read it whole was kept as it grew,
# and a statement inserting 32,000 links took 60 s, not 4 (each row's trigger read every link
# before it). Without a sequential scan to choose, the plan is the index's at any size.
_BY_INDEX = "SET enable_seqscan = off"


def _reached(name: str) -> str:
    """The councils reaching each record of the list `r` ranges over (its FROM is the caller's),
    with the record's time: `r.id, y.council, r.<time>`."""
    time, reached = _LISTS[name]
    return (
        f"SELECT r.id, y.council, r.{time} AS at FROM {name} r "
        f"CROSS JOIN LATERAL ({reached}) AS y WHERE y.council IS NOT NULL"
    )


def _recompute(name: str) -> str:
    return f"""
CREATE FUNCTION council_reach_of_{name}(record text) RETURNS void LANGUAGE plpgsql {_BY_INDEX} AS $$
BEGIN
    PERFORM 1 FROM {name} WHERE id = record FOR NO KEY UPDATE;
    WITH reached AS ({_reached(name)} AND r.id = record),
    gone AS (
        DELETE FROM council_reach
        WHERE kind = '{name}' AND record_id = record
            AND council_code NOT IN (SELECT council FROM reached)
    )
    INSERT INTO council_reach (kind, record_id, council_code, at)
    SELECT DISTINCT '{name}', record, council, at FROM reached
    ON CONFLICT (kind, record_id, council_code) DO UPDATE SET at = EXCLUDED.at
    WHERE council_reach.at IS DISTINCT FROM EXCLUDED.at;
END $$"""


def _link_trigger(link: str, name: str, record: str, other: tuple[str, str]) -> list[str]:
    table, column = other
    function = f"""
CREATE FUNCTION council_reach_{link}() RETURNS trigger LANGUAGE plpgsql {_BY_INDEX} AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM 1 FROM {table} WHERE id = NEW.{column} FOR SHARE;
        PERFORM council_reach_of_{name}(NEW.{record});
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM council_reach_of_{name}(OLD.{record});
    END IF;
    RETURN NULL;
END $$"""
    trigger = (
        f"CREATE TRIGGER council_reach AFTER INSERT OR DELETE OR UPDATE OF {record}, {column} "
        f"ON {link} FOR EACH ROW EXECUTE FUNCTION council_reach_{link}()"
    )
    return [function, trigger]


def _record_triggers(name: str) -> list[str]:
    time, _ = _LISTS[name]
    changed = [time, *(['child_id'] if name in _WITH_CHILD else [])]
    lock = (
        "PERFORM 1 FROM child WHERE id = NEW.child_id FOR SHARE;" if name in _WITH_CHILD else ''
    )
    function = f"""
CREATE FUNCTION council_reach_{name}() RETURNS trigger LANGUAGE plpgsql {_BY_INDEX} AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM council_reach WHERE kind = '{name}' AND record_id = OLD.id;
        RETURN NULL;
    END IF;
    {lock}
    PERFORM council_reach_of_{name}(NEW.id);
    RETURN NULL;
END $$"""
    distinct = ' OR '.join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in changed)
    statements = [
        function,
        f"CREATE TRIGGER council_reach_changed AFTER UPDATE OF {', '.join(changed)} ON {name} "
        f"FOR EACH ROW WHEN ({distinct}) EXECUTE FUNCTION council_reach_{name}()",
        f"CREATE TRIGGER council_reach_gone AFTER DELETE ON {name} "
        f"FOR EACH ROW EXECUTE FUNCTION council_reach_{name}()",
    ]
    if name in _WITH_CHILD:  # a linked list's new record names no child yet
        statements.append(
            f"CREATE TRIGGER council_reach_new AFTER INSERT ON {name} "
            f"FOR EACH ROW EXECUTE FUNCTION council_reach_{name}()"
        )
    return statements


def _council_trigger(table: str) -> list[str]:
    recomputed = '\n    '.join(
        f"PERFORM council_reach_of_{name}(x.id) FROM (SELECT DISTINCT {record} AS id "
        f"FROM {naming} WHERE {column} = NEW.id ORDER BY 1) AS x;"
        for name, record, naming, column in _NAMING[table]
    )
    columns = _COUNCIL_COLUMNS[table]
    distinct = ' OR '.join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
    return [
        f"""
CREATE FUNCTION council_reach_{table}_council() RETURNS trigger LANGUAGE plpgsql {_BY_INDEX} AS $$
BEGIN
    {recomputed}
    RETURN NULL;
END $$""",
        f"CREATE TRIGGER council_reach AFTER UPDATE OF {', '.join(columns)} ON {table} "
        f"FOR EACH ROW WHEN ({distinct}) EXECUTE FUNCTION council_reach_{table}_council()",
    ]


def _backfill(name: str) -> str:
    return (
        "INSERT INTO council_reach (kind, record_id, council_code, at) "
        f"SELECT DISTINCT '{name}', id, council, at FROM ({_reached(name)}) AS reached"
    )


def upgrade() -> None:
    op.create_table(
        'council_reach',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('record_id', sa.String(length=36), nullable=False),
        sa.Column('council_code', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'record_id', 'council_code', name=op.f('pk_council_reach')),
    )
    op.create_index(
        'ix_council_reach_kind_council_code_at',
        'council_reach',
        ['kind', 'council_code', 'at', 'record_id'],
        unique=False,
    )
    if op.get_bind().dialect.name != 'postgresql':
        return
    statements = [_recompute(name) for name in _LISTS]
    for link in _LINKS:
        statements += _link_trigger(*link)
    for name in _LISTS:
        statements += _record_triggers(name)
    for table in _NAMING:
        statements += _council_trigger(table)
    statements += [_backfill(name) for name in _LISTS]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in _NAMING:
            op.execute(f"DROP TRIGGER council_reach ON {table}")
            op.execute(f"DROP FUNCTION council_reach_{table}_council()")
        for name in _LISTS:
            for trigger in ('changed', 'gone', *(['new'] if name in _WITH_CHILD else [])):
                op.execute(f"DROP TRIGGER council_reach_{trigger} ON {name}")
            op.execute(f"DROP FUNCTION council_reach_{name}()")
        for link, *_ in _LINKS:
            op.execute(f"DROP TRIGGER council_reach ON {link}")
            op.execute(f"DROP FUNCTION council_reach_{link}()")
        for name in _LISTS:
            op.execute(f"DROP FUNCTION council_reach_of_{name}(text)")
    op.drop_index('ix_council_reach_kind_council_code_at', table_name='council_reach')
    op.drop_table('council_reach')
