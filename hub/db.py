"""Engines and sessions: one transaction per request, owned by the caller, never by services.

SQLite is the embedded default and PostgreSQL production. The differences live here and nowhere
else: SQLite write transactions start with BEGIN IMMEDIATE so that concurrent pushes queue on the
write lock instead of failing on a lock upgrade; PostgreSQL read transactions are READ ONLY.
A GraphQL query runs each statement as a transaction of its own (`Database.query_session`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import operator
import sqlite3
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_WRITE = "hub_write"
_BY_STATEMENT = "hub_statement_by_statement"  # SQLite: no BEGIN (`Database.query_session`)
_LOCK_WAIT_MS = "hub_write_lock_wait_ms"
_TURN = "hub_write_turn"  # the asyncio lock a SQLite connection holds while it writes
# SQLite: how long a writer's BEGIN IMMEDIATE queues for the write lock unless its transaction
# asks for less (`write_lock_wait`): concurrent pushes queue rather than fail.
SQLITE_WRITE_LOCK_WAIT_SECONDS = 30


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which keeps no zone) too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetimes are not stored: give a timezone"
            raise ValueError(msg)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """None for asyncpg, which gives a timestamptz as an aware datetime in UTC whatever the
        server's time zone: a page read two calls a value to get it back unchanged."""
        if dialect.driver == "asyncpg":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(
        self,
        value: dt.datetime | None,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is dt.UTC:  # as asyncpg gives a timestamptz: already what it should be
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def among(
    column: sa.ColumnElement[Any], name: str, *, dialect: str | None
) -> sa.ColumnElement[bool]:
    """`column` among the values of the list parameter `name`, for a statement that `dialect`
    runs. On PostgreSQL the list goes as one array (`= ANY($1)`), on SQLite as one JSON
    array (`json_each`): one statement text whatever the list's length, nothing rendered per
    value at each execution as an expanding IN renders a placeholder for each, and the
    statement can go straight to the driver (`SerialSession.rows`). For a statement built for
    one request, whatever runs it (None), an expanding IN."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    if dialect == "sqlite":
        values = sa.func.json_each(sa.bindparam(name, type_=sa.JSON())).table_valued("value")
        return column.in_(sa.select(values.c.value))
    return column.in_(sa.bindparam(name, expanding=True))


def dialect_of(session: AsyncSession) -> str | None:
    bind = session.bind
    return None if bind is None else bind.dialect.name


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=256)
def record_class(fields: tuple[str, ...]) -> Callable[[Any], Any]:
    """A named tuple of these fields, made from an iterable of their values: the tuple made
    in C (`tuple.__new__`), not through `_make`, a Python call a row that checks a length a
    statement's rows always have."""
    # Its columns are known only at run time: typing.NamedTuple needs them written out.
    named: Any = collections.namedtuple  # noqa: PYI024
    return functools.partial(tuple.__new__, named("Record", fields))


def _utc_from_json(text: str) -> dt.datetime:
    # PostgreSQL writes a timestamptz in JSON as ISO 8601 in the session's time zone.
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _from_postgres_json(type_: sa.types.TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """What turns a column's value, as PostgreSQL writes it in JSON, into what asyncpg would
    have given: a date or an aware UTC datetime from its text, the rest (text, booleans,
    integers, null) as JSON has them. Any other type is refused where the statement is
    built, not decoded wrongly later."""
    impl = _impl(type_)
    if isinstance(impl, sa.DateTime):
        return _utc_from_json
    if isinstance(impl, sa.Date):
        return dt.date.fromisoformat
    if isinstance(impl, (sa.String, sa.Boolean, sa.Integer)):
        return None
    msg = f"JSON cannot carry a {type_!r} column faithfully on PostgreSQL"
    raise TypeError(msg)


@dataclasses.dataclass(frozen=True)
class GivenRows:
    """A table's rows given to a PostgreSQL statement as one JSON parameter (named as the
    table), read there as rows of the table's own type (`json_populate_recordset`): each
    value through its column type's input function, as a bound value of that type would be.

    An array a column, the way a statement was given rows of any number before, cost more
    than the rest of the statement: asyncpg checks every value of an array parameter against
    three abstract classes before it encodes it, and the push's INSERT had forty arrays.
    Each value here goes through its column type's bind processor first, as SQLAlchemy binds
    it; a column type JSON would not carry faithfully is refused when the text is built."""

    table: sa.Table

    @functools.cached_property
    def sql(self) -> str:
        """`SELECT <columns> FROM json_populate_recordset(...)`, the columns in the table's
        order, for `INSERT INTO <table> (<columns>)` (`self.columns`)."""
        for column in self.table.c:
            _from_postgres_json(column.type)
        name = self.table.name
        rows = f"json_populate_recordset(NULL::{_QUOTE(name)}, CAST(:{name} AS JSON))"
        return f"SELECT {self.columns} FROM {rows} AS given"  # noqa: S608 - constant names

    @functools.cached_property
    def columns(self) -> str:
        return ", ".join(_QUOTE(column.name) for column in self.table.c)

    def value(self, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> str:
        """`rows` (by column name; a column a row lacks is NULL) as the JSON text to bind."""
        keys = self.table.c.keys()
        processed = _bind_processors(self.table, dialect)
        given = []
        for row in rows:
            values = {key: row.get(key) for key in keys}
            for key, process in processed:
                if values[key] is not None:
                    values[key] = process(values[key])
            given.append(values)
        return orjson.dumps(given).decode()


@functools.lru_cache(maxsize=64)
def _bind_processors(
    table: sa.Table, dialect: Dialect
) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The table's columns whose types process a value before it is bound, with each one's."""
    found = (
        (column.name, column.type.dialect_impl(dialect).bind_processor(dialect))
        for column in table.c
    )
    return tuple((name, process) for name, process in found if process is not None)


_QUOTE: Callable[[str], str] = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]


@dataclasses.dataclass(frozen=True)
class Nested:
    """The rows of a correlated SELECT, carried in one column of each row of an outer
    statement: a page and what each of its records has (an incident's children) in one round
    trip, not two.

    The column is a JSON array of arrays, one a row, in no set order (sorted here by the
    column `order` names); each value as the database writes it in JSON. SQLite's are what
    its driver would give (text, integer, real or null), each then through its column type's
    result processor, as `rows` does; PostgreSQL's are turned back into what asyncpg gives
    (`_from_postgres_json`). Each row becomes a tuple of `statement`'s columns.

    (PostgreSQL's column was an array of anonymous records: asyncpg looks each field's codec
    up by the type the record names, two thousand instructions a value, a tenth of a page.)"""

    statement: sa.Select[Any]
    order: str  # the column the rows are in order of (`statement`'s ORDER BY)
    _by_dialect: dict[str, Callable[[Any], tuple[Any, ...]]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def column(self, dialect: str | None) -> sa.ColumnElement[Any]:
        grouped = self._grouped(dialect)
        return self.statement.with_only_columns(grouped).order_by(None).scalar_subquery()

    def grouped_by(
        self, key: sa.ColumnElement[Any], statement: sa.Select[Any], dialect: str | None
    ) -> sa.Subquery:
        """`statement` (this one's rows, for many outer rows at once) as one row per `key`:
        the key as `key`, its rows in the column `rows`, as `column` carries them. For a page,
        one aggregate over the page's rows instead of a correlated SELECT run for each."""
        grouped = self._grouped(dialect).label("rows")
        return (
            statement.with_only_columns(key.label("key"), grouped)
            .order_by(None)
            .group_by(key)
            .subquery("grouped")
        )

    def _grouped(self, dialect: str | None) -> sa.ColumnElement[Any]:
        columns = list(self.statement.selected_columns)
        if dialect == "postgresql":
            for column in columns:
                _from_postgres_json(column.type)  # refused now, not when read
            return sa.func.json_agg(sa.func.json_build_array(*columns))
        # Typed as text: its statement's rows can then be read packed (`_packed`).
        return sa.func.json_group_array(sa.func.json_array(*columns), type_=sa.String())

    def rows(self, value: str | list[Any] | None, dialect: Dialect) -> list[tuple[Any, ...]]:
        if value is None:  # PostgreSQL's json_agg of no rows
            return []
        # SQLite's text; PostgreSQL's json, parsed by the codec SQLAlchemy gives asyncpg.
        found = orjson.loads(value) if isinstance(value, str) else value
        found.sort(key=operator.itemgetter(self._order_index))
        return list(map(self._processing(dialect), found))

    @functools.cached_property
    def _order_index(self) -> int:
        return list(self.statement.selected_columns.keys()).index(self.order)

    def _processing(self, dialect: Dialect) -> Callable[[Any], tuple[Any, ...]]:
        known = self._by_dialect.get(dialect.name)
        if known is None:
            columns = self.statement.selected_columns
            known = self._by_dialect[dialect.name] = processing(
                tuple(
                    _from_postgres_json(column.type)
                    if dialect.name == "postgresql"
                    else column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in columns
                )
            )
        return known


def records(result: sa.Result[Any]) -> list[Any]:
    """A result's rows as named tuples, read by attribute as SQLAlchemy's rows are
    (`row.summary`), for what a request reads many times over (a page's records).

    SQLAlchemy's compiled row looks an attribute up on its class first, which fails, and in
    Python 3.11 formats an AttributeError's message each time before falling back to the
    column: a council's page read its rows' attributes 1,300 times, 7.5% of its instructions.
    A named tuple's attribute is an index. Columns whose names a named tuple cannot take (a
    keyword, a leading underscore) keep SQLAlchemy's rows."""
    try:
        make = record_class(tuple(result.keys()))
    except ValueError:
        return list(result.all())
    return [make(row) for row in result.all()]


async def rows(
    session: AsyncSession, statement: Selecting, params: Mapping[str, Any] | None = None
) -> list[Any]:
    """A SELECT's rows as named tuples (`records`): straight to the driver where the session
    can (`SerialSession.rows`). For statements built once: each is compiled once and kept."""
    if isinstance(session, SerialSession):
        return await session.rows(statement, params)
    return records(await session.execute(statement, params))


class HubSession(Session):
    """The synchronous side of every session the hub opens.

    A feature that keeps derived rows in step with writes listens on this class
    (`sqlalchemy.event`), not on every SQLAlchemy `Session` in the process, and registers
    itself: this module, the ground floor, knows none of them (the stage facts register from
    `hub.timeliness.facts`, imported by the domains whose writes they follow).
    """


# What `rows` reads: a SELECT, text with its columns named, or text that returns none.
Selecting = sa.Select[*tuple[Any, ...]] | sa.TextualSelect | sa.TextClause
_DIRECT = frozenset({"postgresql", "sqlite"})  # the dialects whose drivers `rows` knows
_ONE = False  # a statement listener's `executemany`: one set of parameters


@dataclasses.dataclass(frozen=True, slots=True)
class _Direct:
    """A SELECT compiled once for the driver (asyncpg, aiosqlite): its text, its parameters in
    order (with the values it binds itself, such as a scope's organisation codes, and each
    one's bind processor), and how a row becomes a record (each column's result processor,
    where its type has one).

    On SQLite a statement whose columns JSON carries exactly is sent `packed`: its rows come
    back as one row holding them all (`_packed`)."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]
    binds: tuple[Callable[[Any], Any] | None, ...]
    process: Callable[[Any], tuple[Any, ...]] | None  # None: every value as the driver gave it
    make: Callable[[Any], Any]
    packed: bool = False

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        given = self.fixed if not params else {**self.fixed, **params}
        values = [given[name] for name in self.names]
        return [
            value if bind is None or value is None else bind(value)
            for value, bind in zip(values, self.binds, strict=True)
        ]

    def records(self, fetched: Sequence[Any]) -> list[Any]:
        """The driver's rows (the one row of a packed statement's) as records."""
        rows = orjson.loads(fetched[0][0]) if self.packed else fetched
        make, process = self.make, self.process
        if process is None:
            return list(map(make, rows))
        return [make(process(row)) for row in rows]


def processing(
    results: tuple[Callable[[Any], Any] | None, ...],
) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values as a tuple, each through its column's result processor where its type
    has one (`results`, by position), the others as the driver gave them.

    One function per statement, `(row[0], p1(row[1]), ...)`, its source written here; the
    caller keeps it (`_direct`'s cache, `Nested`'s per dialect). The loop over a list of the
    row's values it replaces took as long as the processors themselves, and a page's nested
    children go through it forty times (tests/test_nested_rows.py)."""
    values = []
    processors: dict[str, Callable[[Any], Any]] = {}
    for index, result in enumerate(results):
        if result is None:
            values.append(f"row[{index}]")
        else:
            processors[f"p{index}"] = result
            values.append(f"p{index}(row[{index}])")
    source = f"def process(row):\n    return ({''.join(f'{value}, ' for value in values)})\n"
    namespace: dict[str, Any] = dict(processors)
    exec(compile(source, "<a row's processing>", "exec"), namespace)  # noqa: S102 - built above
    process: Callable[[Any], tuple[Any, ...]] = namespace["process"]
    return process


@functools.lru_cache(maxsize=2048)
def _direct(statement: Selecting, dialect: Dialect) -> _Direct | None:
    """`statement` compiled for `dialect`, or None when it cannot go straight to the driver:
    a list given at each execution as an expanding IN (one text per length), or rows that
    cannot be named tuples."""
    compiled = statement.compile(dialect=dialect)
    given = compiled.binds.values()
    if any(bind.expanding and bind.required for bind in given):
        return None
    # The values the statement holds (a scope's codes, as many as it has) are rendered in;
    # those given at each execution are left unset until then.
    unset = {bind.key: None for bind in given if bind.required}
    expanded = compiled.construct_expanded_state(unset, escape_names=False)
    columns = compiled._result_columns  # noqa: SLF001 - the compiled statement's own columns
    try:
        make = record_class(tuple(column.keyname for column in columns))
    except ValueError:
        return None
    names = tuple(expanded.positiontup or ())
    single = compiled._bind_processors  # noqa: SLF001 - the compiled statement's own processors
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    packed = dialect.name == "sqlite" and _packable(statement, columns)
    return _Direct(
        sql=_packed(expanded.statement, columns) if packed else expanded.statement,
        names=names,
        fixed={name: value for name, value in expanded.parameters.items() if name not in unset},
        # The expanded lists' processors, and the other parameters' (the compiled statement's).
        binds=tuple(
            expanded.processors.get(name) or single.get(name)  # type: ignore[misc]
            for name in names
        ),
        process=None if all(result is None for result in results) else processing(results),
        make=make,
        packed=packed,
    )


# The column types whose values SQLite's JSON carries exactly: text (times and dates are text
# in SQLite), integers and booleans (integers there). Not reals (JSON keeps 15 digits of
# them), blobs (JSON refuses them), or a type unknown.
_PACKABLE = (sa.String, sa.Integer, sa.Boolean, sa.DateTime, sa.Date)


def _packable(statement: Selecting, columns: Sequence[Any]) -> bool:
    names = [column.keyname.lower() for column in columns]  # SQLite's names know no case
    return (
        isinstance(statement, (sa.Select, sa.TextualSelect))
        and bool(columns)
        and len(set(names)) == len(names)
        and all(isinstance(_impl(column.type), _PACKABLE) for column in columns)
    )


_PACKED_HEAD = "SELECT json_group_array(json_array("
_PACKED_FROM = ")) FROM ("
_PACKED_TAIL = ") AS packed"


def _packed(sql: str, columns: Sequence[Any]) -> str:
    """SQLite: the rows of the statement `sql` as one row, a JSON array of arrays.

    pysqlite gives the interpreter's lock up around each step of a statement, one step a row,
    and waits to have it back from the event loop's thread, busy with other requests: a
    council page's twenty rows were twenty-one such waits (at 8 in flight, 57 context switches
    a page; 28 packed: perf stat on one hub, a scratch measurement). Packed, the statement is
    one step, and its rows one text that orjson reads at once.

    - The statement is the same text, its parameters the same: the packing only wraps it,
      naming its columns as SQLite names them (a bare column by its own name; the rest
      SQLAlchemy labels).
    - Order: SQLite keeps a FROM subquery's ORDER BY when the outer query is an aggregate
      other than count(), min() or max(), and does not flatten it into one; the rows are
      aggregated in the statement's own order (tests/test_direct_reads.py holds it to that).
    - Values: each as SQLite has it, by JSON: text, integers, null (`_PACKABLE`). A text
      column is appended '' so that a JSON function's result (a page's nested rows) arrives
      as its text, as unpacked, not as the JSON it would otherwise be nested as."""
    values = []
    for column in columns:
        name = 'packed."' + column.keyname.replace('"', '""') + '"'
        values.append(name + " || ''" if isinstance(_impl(column.type), sa.String) else name)
    return _PACKED_HEAD + ", ".join(values) + _PACKED_FROM + sql + _PACKED_TAIL


def unpacked(sql: str) -> str:
    """The statement a packed one's text carries (`_packed`), as sent unpacked; any other
    text as it is."""
    if not (sql.startswith(_PACKED_HEAD) and sql.endswith(_PACKED_TAIL)):
        return sql
    return sql[sql.index(_PACKED_FROM) + len(_PACKED_FROM) : -len(_PACKED_TAIL)]


def _impl(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    return type_.impl_instance if isinstance(type_, sa.types.TypeDecorator) else type_


def _translated(
    error: Exception, adapter: Any, sql: str, arguments: Sequence[Any], dialect: Dialect
) -> sa.exc.StatementError:
    """A driver's error as SQLAlchemy raises it (`OperationalError`, `DataError` ...), with
    the driver's own error (and its SQLSTATE) as `orig`, and no parameters in its text."""
    try:
        adapter._handle_exception(error)  # noqa: SLF001 - raises the DB-API's translation
    except Exception as translated:  # noqa: BLE001 - whatever it is, it is wrapped below
        return sa.exc.DBAPIError.instance(
            sql,
            arguments,
            translated,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
            connection_invalidated=dialect.is_disconnect(translated, adapter, None),  # type: ignore[arg-type]
        )
    raise AssertionError  # pragma: no cover - _handle_exception always raises


async def _on_driver(
    adapter: Any, engine: sa.Engine, direct: _Direct, params: Mapping[str, Any] | None
) -> list[Any]:
    """`direct` run on SQLAlchemy's adapter of the driver's connection as SQLAlchemy's cursor
    runs a statement (the adapter's lock; on asyncpg its transaction begun if it has none,
    and its prepared statements), with `engine`'s statement listeners told before and after.
    On aiosqlite the statement and the fetch of its rows are one trip to its thread, not two."""
    arguments = direct.arguments(params)
    async with adapter._execute_mutex:  # noqa: SLF001 - as SQLAlchemy's cursor does
        with _told(engine, adapter, direct.sql, arguments, many=_ONE):
            if engine.dialect.name == "sqlite":
                found = await adapter._connection.execute_fetchall(direct.sql, arguments)  # noqa: SLF001
            else:
                if adapter._transaction is None:  # noqa: SLF001
                    await adapter._start_transaction()  # noqa: SLF001
                prepared, _ = await adapter._prepare(direct.sql, 0)  # noqa: SLF001
                found = await prepared.fetch(*arguments)
    return direct.records(found)


@contextlib.contextmanager
def _told(
    engine: sa.Engine, adapter: Any, sql: str, arguments: Any, *, many: bool
) -> Iterator[None]:
    """A statement sent to the driver outside SQLAlchemy's cursor, as the cursor sends one:
    `engine`'s statement listeners told before and after, a driver's error raised as
    SQLAlchemy raises it (`_translated`)."""
    listeners = engine.dispatch
    context = types.SimpleNamespace()
    if listeners.before_cursor_execute:
        listeners.before_cursor_execute(None, None, sql, arguments, context, many)
    try:
        yield
    except Exception as error:
        raise _translated(error, adapter, sql, arguments, engine.dialect) from error
    if listeners.after_cursor_execute:
        listeners.after_cursor_execute(None, None, sql, arguments, context, many)


async def fetch(
    engine: AsyncEngine, statement: Selecting, params: Mapping[str, Any] | None = None
) -> list[Any]:
    """`rows`, outside any session, on a connection of an AUTOCOMMIT engine's pool taken for
    this one statement, which commits as it runs (the rate limiter's admission).

    The connection is taken bare, with no `AsyncConnection` around it (its greenlet, its
    reset): every request's admission is one such statement. Against `engine.connect()`
    (`bench-read --baseline 606fc5d`), callgrind counted 1% fewer instructions for the empty
    request and 3% fewer for a council page, and one timed run gave the empty request 1.05x
    the rate at 1 in flight, 1.14x at 8. A driver error saying the connection is gone
    discards the pool's connections, as SQLAlchemy's own connection does (after a database
    restart they are all dead), so the next statement opens a fresh one.
    """
    direct = _direct(statement, engine.dialect) if engine.dialect.name in _DIRECT else None
    if direct is None:
        async with engine.connect() as connection:
            return records(await connection.execute(statement, params))
    raw = await engine.raw_connection()
    adapter: Any = raw.dbapi_connection
    try:
        if not adapter.autocommit:
            # A transaction begun here would be left open on a pooled connection.
            msg = "fetch needs an engine made with isolation_level='AUTOCOMMIT'"
            raise ValueError(msg)
        return await _on_driver(adapter, engine.sync_engine, direct, params)
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raw.invalidate(error)  # closed, never back in the pool
            await engine.dispose(close=False)
        raise
    finally:
        raw.close()


Worked = TypeVar("Worked")


class OnSQLiteThread:
    """A SQLite connection's statements, run synchronously in aiosqlite's thread (`together`).

    Each statement is one compiled once (`_direct`): its parameters bound with their types'
    processors as SQLAlchemy binds them, its rows made records, the engine's statement
    listeners told of it, a driver's error raised as SQLAlchemy raises it."""

    def __init__(self, connection: sqlite3.Connection, adapter: Any, engine: sa.Engine) -> None:
        self._connection = connection
        self._adapter = adapter
        self._engine = engine

    def rows(self, statement: Selecting, params: Mapping[str, Any] | None = None) -> list[Any]:
        direct = self._compiled(statement)
        arguments = direct.arguments(params)
        found = self._run(direct.sql, arguments, many=False)
        return direct.records(found)

    def execute_many(
        self, statement: sa.Insert | sa.Update | sa.TextClause, params: Sequence[Mapping[str, Any]]
    ) -> None:
        """`statement` once for each set of parameters (one `executemany`)."""
        if not params:
            return
        direct = self._compiled(statement)
        self._run(direct.sql, [direct.arguments(each) for each in params], many=True)

    def plain(self, sql: str) -> None:
        """A statement of the driver's own, with no parameters (BEGIN, COMMIT, a PRAGMA)."""
        self._run(sql, (), many=False)

    def _compiled(self, statement: Any) -> _Direct:
        direct = _direct(statement, self._engine.dialect)
        if direct is None:
            msg = "a statement run in one trip is compiled once: no expanding IN"
            raise TypeError(msg)
        return direct

    def _run(self, sql: str, arguments: Any, *, many: bool) -> list[Any]:
        with _told(self._engine, self._adapter, sql, arguments, many=many):
            if many:
                self._connection.executemany(sql, arguments)
                return []
            return self._connection.execute(sql, arguments).fetchall()


async def together(session: AsyncSession, work: Callable[[OnSQLiteThread], Worked]) -> Worked:
    """`work`'s statements in one trip to aiosqlite's thread, in `session`'s transaction.

    Each trip to the thread is a wake-up of each side and a resumption of the request's whole
    chain of coroutines; the audit's append on SQLite was eight of them, each through
    SQLAlchemy's execution. `work` runs in the thread (holding the connection: keep it to
    statements and the little computing between them), in a copy of the caller's context, so
    that a statement's span has the request's trace."""
    if not isinstance(session, SerialSession) or dialect_of(session) != "sqlite":
        msg = "together() runs on a SQLite session of the hub's"
        raise TypeError(msg)
    return await session.together(work)


async def _in_thread(
    adapter: Any,
    engine: sa.Engine,
    work: Callable[[OnSQLiteThread], Worked],
    *,
    transaction: bool = False,
    settings: Sequence[str] = (),
) -> Worked:
    """`work` in one trip to the thread of `adapter`'s aiosqlite connection. With
    `transaction`, in a write transaction of its own (BEGIN IMMEDIATE, after the connection's
    `settings`, which the statement listeners are not told of), committed in the same trip,
    or rolled back if anything in it fails."""
    connection = adapter._connection  # noqa: SLF001 - aiosqlite's, as SQLAlchemy's own
    context = contextvars.copy_context()

    def run() -> Worked:
        raw: sqlite3.Connection = connection._conn  # noqa: SLF001
        thread = OnSQLiteThread(raw, adapter, engine)
        if not transaction:
            return context.run(work, thread)
        try:
            for setting in settings:
                raw.execute(setting)
            context.run(thread.plain, "BEGIN IMMEDIATE")
            worked = context.run(work, thread)
            context.run(thread.plain, "COMMIT")
        except BaseException:
            if raw.in_transaction:
                # If even this fails, the pool's reset rolls back when the connection returns.
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
            raise
        return worked

    async with adapter._execute_mutex:  # noqa: SLF001 - as SQLAlchemy's cursor does
        worked: Worked = await _to_the_end(connection._execute(run))  # noqa: SLF001 - its thread
    return worked


async def _to_the_end(trip: Awaitable[Worked]) -> Worked:
    """A trip to aiosqlite's thread, waited for until the thread has done it, even when the
    caller is cancelled meanwhile (the cancellation is raised then).

    The thread runs what it was sent whether or not anyone still waits. A writer cancelled
    while its BEGIN IMMEDIATE waited in the thread (a subscription's socket closed, a hub
    shutting down) went on to hand its connection back to the pool, whose reset saw no
    transaction yet and rolled nothing back; the BEGIN then ran, leaving a write transaction
    open on a pooled connection: SQLite's write lock held by nobody, and the next BEGIN on that
    connection failing "cannot start a transaction within a transaction" (INTERNAL). Waited
    for, the BEGIN has run when the cancellation unwinds the session, and its reset rolls it
    back (`tests/test_sqlite_write_turns.py`). The wait is the statement's own: at most the
    busy timeout for a BEGIN IMMEDIATE that finds another process (a CLI command) writing."""
    sent = asyncio.ensure_future(trip)
    cancelled = False
    while not sent.done():
        try:
            await asyncio.wait((sent,))  # a cancelled wait leaves `sent` as it is
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not sent.cancelled():
            sent.exception()  # looked at: what the caller is told is its cancellation
        raise asyncio.CancelledError
    return sent.result()


class SerialSession(AsyncSession):
    """An AsyncSession that queues its statements.

    GraphQL resolves sibling fields concurrently, and DataLoaders of different kinds dispatch
    together; one request's session must still send one statement at a time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = asyncio.Lock()
        self._driver: tuple[Any, Any] | None = None  # (transaction, asyncpg adapter)

    async def rows(
        self, statement: Selecting, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """A SELECT's rows as named tuples (`records`), in this session's transaction.

        A statement built once (a module's, or a cached one: it is compiled once per statement
        object) goes straight to the driver (asyncpg, aiosqlite), on the connection and in the
        transaction SQLAlchemy opened for this session: SQLAlchemy's execution of a page's
        SELECTs (its cache key, its execution context, its result) cost about four times
        asyncpg's own work. The engine's statement listeners (tracing, the tests' counters)
        still see each statement. What cannot go that way (an expanding IN, rows that cannot
        be named tuples, another dialect) SQLAlchemy runs."""
        bind = self.bind
        if bind is None or bind.dialect.name not in _DIRECT:
            return records(await self.execute(statement, params))
        dialect = bind.dialect
        direct = _direct(statement, dialect)
        if direct is None:
            return records(await self.execute(statement, params))
        async with self._lock:
            return await _on_driver(await self._adapter(), bind.sync_engine, direct, params)

    async def together(self, work: Callable[[OnSQLiteThread], Worked]) -> Worked:
        """See the module's `together`."""
        bind = self.bind
        assert bind is not None  # noqa: S101 - the hub's sessions are bound
        async with self._lock:
            return await _in_thread(await self._adapter(), bind.sync_engine, work)

    async def _adapter(self) -> Any:
        """SQLAlchemy's asyncpg adapter for this session's connection, checked out and in its
        transaction (READ ONLY where the session's engine says so) as for any statement."""
        transaction = self._innermost()
        if self._driver is None or transaction is None or self._driver[0] is not transaction:
            # Through the session, which begins its transaction (or a SAVEPOINT for a nested
            # one: `begin_nested` emits it only when the connection is first asked for).
            connection = await self.connection()
            raw = await connection.get_raw_connection()
            self._driver = (self._innermost(), raw.dbapi_connection)
        return self._driver[1]

    def _innermost(self) -> Any:
        sync = self.sync_session
        return sync.get_nested_transaction() or sync.get_transaction()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().execute(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().get(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._lock:
            await super().flush(*args, **kwargs)


class QuerySession(SerialSession):
    """A GraphQL query's session (`Database.query_session`): each statement committed as it
    runs, so there is never anything to commit."""


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory an embedded database file goes in (SQLite creates only the file):
    a fresh checkout or a new `HUB_DATA_DIR` then works from the first command."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return
    if name.startswith("file:"):
        return  # a URI filename: SQLite's own syntax, left to the caller
    Path(name).parent.mkdir(parents=True, exist_ok=True)


NO_DATABASE_HINT = (
    "run `safeguarding-hub demo` (demo data) or `safeguarding-hub migrate` (an empty hub) "
    "in this folder, or set HUB_DATABASE_URL"
)


def sqlite_file_missing(url: str) -> Path | None:
    """The embedded database's file when it does not exist (SQLite would create it on connect:
    a read-only command must not leave an empty database behind); None otherwise."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    if name.startswith("file:"):
        return None
    path = Path(name)
    return None if path.exists() else path


class RollbackOnClose(sqlite3.Connection):
    """A SQLite connection that rolls back its open transaction when it is closed.

    Python's `close` is SQLite's `sqlite3_close_v2`, which, while a statement of the connection
    is not finalized (a cursor still referenced, say by a cancelled request's traceback), leaves
    the connection open as a "zombie" until that statement goes, with its transaction and its
    locks. A write transaction cancelled mid-statement on SQLite is closed so (SQLAlchemy
    invalidates the connection): its write lock then stayed held, by nobody, until the
    collector found the cursor, and every writer waited its busy timeout and failed "database
    is locked" (`tests/test_query_sessions.py`). A ROLLBACK first ends the transaction whatever
    statements remain. aiosqlite closes the connection in its own thread, as this runs."""

    def close(self) -> None:
        if self.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.rollback()
        super().close()


class Database:
    """The engine and the two kinds of transaction a request can ask for."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self.is_sqlite = url.startswith("sqlite")
        ensure_sqlite_directory(url)
        # Statement parameters are what callers sent: kept out of exception text and echo.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        # JSON read from the database (a page's nested rows) parsed by orjson: one C call,
        # where json.loads is three Python calls before its scanner.
        kwargs["json_deserializer"] = orjson.loads
        # As many connections kept as a busy process uses: one returned to a full pool is
        # closed, and on SQLite the next one opened costs a thread and a connection's set-up.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        if self.is_sqlite:
            kwargs["connect_args"] = {
                "timeout": SQLITE_WRITE_LOCK_WAIT_SECONDS,
                "factory": RollbackOnClose,
            }
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._turns: _WriteTurns | None = None
        if self.is_sqlite:
            self._turns = _configure_sqlite(self.engine)
            read_engine = self.engine
        else:
            replace_closed_connections(self.engine)
            read_engine = self.engine.execution_options(postgresql_readonly=True)
        write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write_engine = write_engine
        self._reader = async_sessionmaker(
            read_engine,
            class_=SerialSession,
            sync_session_class=HubSession,
            expire_on_commit=False,
            autoflush=False,
        )
        self._writer = async_sessionmaker(
            write_engine,
            class_=SerialSession,
            sync_session_class=HubSession,
            expire_on_commit=False,
            autoflush=False,
        )
        by_statement = (
            self.engine.execution_options(**{_BY_STATEMENT: True})
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._querier = async_sessionmaker(
            _statement_by_statement(by_statement),
            class_=QuerySession,
            sync_session_class=HubSession,
            expire_on_commit=False,
            autoflush=False,
        )

    @property
    def audits_reads_in_place(self) -> bool:
        """Whether a read's audit events go in the read's own transaction.

        On PostgreSQL they do (one more statement, and the commit), so such reads are not READ
        ONLY. On SQLite a writer holds the database's one write lock from BEGIN, so a read
        reads in a read transaction and its audit is written in a write transaction after.
        """
        return not self.is_sqlite

    def session(self, *, write: bool) -> AsyncSession:
        return (self._writer if write else self._reader)()

    def query_session(self) -> AsyncSession:
        """A GraphQL query's session: each of its statements a transaction of its own, no
        BEGIN, no COMMIT.

        Those were two round trips of a council page's six on PostgreSQL, and on SQLite two
        trips to a connection's thread of four, each waiting for the event loop under load.
        On PostgreSQL the read's audit goes in place (`audits_reads_in_place`): its append is
        one statement, whole or not at all, and holds the chain head's lock while it runs, not
        across the round trip to a COMMIT while every other audited request waits. The reads
        lose nothing by it on PostgreSQL, where under READ COMMITTED each statement of a
        transaction reads a snapshot of its own anyway; on SQLite a page's children are read
        as committed when they are read, not when its incidents were (a push between the two
        shows with its incident, or not at all). What needs a transaction around it (writes,
        a `SET LOCAL`, a snapshot across statements) is refused (`NeedsATransaction`): it
        opens one of its own, as the sharing report's extract does.
        """
        return self._querier()

    @asynccontextmanager
    async def transaction(
        self, *, write: bool, write_lock_wait: float | None = None
    ) -> AsyncIterator[AsyncSession]:
        """Commit when the block ends cleanly, roll back when it raises.

        `write_lock_wait`: on SQLite, the most seconds a writer's BEGIN waits for the database's
        write lock (else `SQLITE_WRITE_LOCK_WAIT_SECONDS`); PostgreSQL has no such lock.
        """
        session = self.session(write=write)
        if write and write_lock_wait is not None and self.is_sqlite:
            waiting = {_LOCK_WAIT_MS: round(write_lock_wait * 1000)}
            session = self._writer(bind=self._write_engine.execution_options(**waiting))
        async with session, session.begin():
            yield session

    async def write_together(
        self, work: Callable[[OnSQLiteThread], Worked], *, write_lock_wait: float | None = None
    ) -> Worked:
        """SQLite: `work` in a write transaction of its own, begun, run and committed in one
        trip to a connection's thread (`together`), this process's write turn held for that
        trip alone. A write transaction through a session holds the turn from its BEGIN
        IMMEDIATE to its connection's return to the pool: four trips to the thread, each
        waiting for the event loop, while every other writer waits. `write_lock_wait` is as
        for `transaction`."""
        if self._turns is None:
            msg = "write_together() is SQLite's"
            raise TypeError(msg)
        wait_ms = None if write_lock_wait is None else round(write_lock_wait * 1000)
        engine = self.engine.sync_engine
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            # As a session's BEGIN takes it: after the connection is checked out.
            async with self._turn(wait_ms):
                settings = _busy_timeout(connection.info, wait_ms)
                return await _in_thread(
                    raw.dbapi_connection, engine, work, transaction=True, settings=settings
                )

    @asynccontextmanager
    async def _turn(self, wait_ms: int | None) -> AsyncIterator[None]:
        assert self._turns is not None  # noqa: S101 - SQLite's, checked by the caller
        try:
            lock = await self._turns.acquire(wait_ms)
        except sqlite3.OperationalError as busy:
            # As SQLAlchemy raises a busy BEGIN: retryable (`hub.limits.unavailable`).
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, busy) from None
        try:
            yield
        finally:
            lock.release()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# What would not be what it says without a transaction around it: a `SET LOCAL` (lost with
# its statement) and writes (each committed apart, one kept if another fails).
_NEEDS_A_TRANSACTION = ("SET", "INSERT", "UPDATE", "DELETE")


class NeedsATransaction(RuntimeError):
    """A statement sent through `Database.query_session` that needs a transaction around it."""


def _statement_by_statement(engine: AsyncEngine) -> AsyncEngine:
    """`engine`, each statement its own transaction, refusing what needs one around it
    (`query_session`). The audit's append is one statement (a WITH whose parts write) and
    passes."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _refuse(*arguments: Any) -> None:
        statement: str = arguments[2]
        if statement.lstrip()[:6].upper().startswith(_NEEDS_A_TRANSACTION):
            msg = (
                "a statement that needs a transaction, in a query's session (each statement "
                "its own): open a transaction for it"
            )
            raise NeedsATransaction(msg)

    return engine


def replace_closed_connections(engine: AsyncEngine) -> None:
    """A pooled PostgreSQL connection the server closed (a restart, a terminated backend) is
    replaced when it is checked out, as `pool_pre_ping` would, without a round trip.

    SQLAlchemy's pre-ping on asyncpg costs three (BEGIN, an empty statement, ROLLBACK), a
    quarter of a council page's. asyncpg learns of the server's close as the socket does;
    a connection lost without a word fails its request's first statement instead, which is
    answered as retryable (`hub.limits.unavailable`) and discards the pool's connections.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        if dbapi_connection._connection.is_closed():  # noqa: SLF001 - the driver's connection
            # The pool discards it and checks out another (a new one if need be).
            raise sa.exc.DisconnectionError


def _configure_sqlite(engine: AsyncEngine) -> _WriteTurns:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver so that BEGIN can be IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_WRITE_LOCK_WAIT_SECONDS * 1000}")
        cursor.close()

    # A transaction's end where none was begun (a query's session, `_BY_STATEMENT`) is nothing
    # for SQLite to do: no trip to the connection's thread for it.
    dialect = engine.sync_engine.dialect
    for name in ("do_rollback", "do_commit"):
        setattr(dialect, name, _if_begun(getattr(dialect, name)))

    turns = _WriteTurns()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_BY_STATEMENT, False):
            return  # each statement its own transaction, as the driver runs it
        immediate = options.get(_WRITE, False)
        if not immediate:
            _begin(connection, "BEGIN")
            return
        info = connection.connection.info
        turns.take(info, options.get(_LOCK_WAIT_MS))
        try:
            _wait_for_write_lock(connection, options.get(_LOCK_WAIT_MS))
            _begin(connection, "BEGIN IMMEDIATE")
        except BaseException:
            turns.end(info)
            raise

    # The turn ends when the connection is back in the pool, its transaction over (or lost).
    pool = engine.sync_engine.pool
    event.listen(pool, "checkin", lambda _c, record: turns.end(record.info))
    event.listen(pool, "invalidate", lambda _c, record, _e: turns.end(record.info))
    return turns


def _if_begun(end: Callable[[Any], None]) -> Callable[[Any], None]:
    """`end` (the dialect's COMMIT or ROLLBACK of an aiosqlite connection) when SQLite has a
    transaction open on it, or the connection is closed (as `end` itself handles)."""

    def ended(adapter: Any) -> None:
        connection = adapter._connection  # noqa: SLF001 - aiosqlite's, under SQLAlchemy's adapter
        if connection._connection is None or connection.in_transaction:  # noqa: SLF001
            end(adapter)

    return ended


def _begin(connection: sa.Connection, statement: str) -> None:
    """A SQLite transaction's BEGIN in one trip to aiosqlite's thread (SQLAlchemy's cursor
    takes three: one to open it, one to execute, one to close it), told to the statement
    listeners and failing as SQLAlchemy's own would. Called in SQLAlchemy's greenlet."""
    adapter = connection.connection.dbapi_connection
    await_(_in_thread(adapter, connection.engine, lambda thread: thread.plain(statement)))


class _WriteTurns:
    """This process's SQLite write transactions, one at a time, in the order they asked.

    SQLite has one write lock; a writer that finds it taken sleeps in SQLite's busy handler
    (1, 2, 5, 10 ... 100 ms) and tries again, so under load a writer could sleep on long after
    the lock was free, or lose it to a newcomer again and again: at 8 council pages in flight
    the audit's write transactions gave a p99 near a second. Here a writer first waits its
    turn on an asyncio lock (woken the moment the one before ends), then takes SQLite's lock
    with BEGIN IMMEDIATE, which another process (a CLI command) may still hold: SQLite's busy
    timeout covers that. A turn not had within the writer's wait fails as a busy SQLite does
    ("database is locked": retryable, HTTP 503).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def take(self, info: dict[Any, Any], wait_ms: int | None) -> None:
        """Wait for this connection's turn (called in SQLAlchemy's greenlet, at BEGIN)."""
        info[_TURN] = await_(self.acquire(wait_ms))

    async def acquire(self, wait_ms: int | None) -> asyncio.Lock:
        """Wait for a turn; the lock returned is released when it ends."""
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        wait = (SQLITE_WRITE_LOCK_WAIT_SECONDS * 1000 if wait_ms is None else wait_ms) / 1000
        try:
            await asyncio.wait_for(lock.acquire(), timeout=wait)
        except TimeoutError:
            msg = "database is locked"
            raise sqlite3.OperationalError(msg) from None
        return lock

    @staticmethod
    def end(info: dict[Any, Any]) -> None:
        lock: asyncio.Lock | None = info.pop(_TURN, None)
        if lock is not None:
            lock.release()


def _wait_for_write_lock(connection: sa.Connection, wait_ms: int | None) -> None:
    """Set how long this connection's BEGIN IMMEDIATE may wait, when it is not so already.

    The busy timeout belongs to the connection, which the pool lends to the next transaction:
    each write transaction says what it wants, and only a change costs a statement (sent to the
    driver directly, so that it is not among the transaction's statements).
    """
    for statement in _busy_timeout(connection.info, wait_ms):
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(statement)
        cursor.close()


def _busy_timeout(info: dict[Any, Any], wait_ms: int | None) -> list[str]:
    """The statement that sets a connection's busy timeout to `wait_ms`, if it is not so
    already (noted in the pool's `info` for the connection, as if it had run)."""
    wanted = SQLITE_WRITE_LOCK_WAIT_SECONDS * 1000 if wait_ms is None else wait_ms
    if info.get(_LOCK_WAIT_MS, SQLITE_WRITE_LOCK_WAIT_SECONDS * 1000) == wanted:
        return []
    info[_LOCK_WAIT_MS] = wanted
    return [f"PRAGMA busy_timeout={int(wanted)}"]
