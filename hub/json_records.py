"""Records written by the database as the JSON a response holds of them.

A `Spec` is a selection as the database writes it (`hub.graphql.compiled` works it out from a
GraphQL selection): its response keys in order, each a leaf (how the database writes the
column: the text `datetime.isoformat` gives of a UTC time, an enum's GraphQL name, a boolean
as JSON's), the type's name, or a nested record and its own `Spec`. `Writer` writes one in
PostgreSQL's JSON functions or SQLite's; a record service places it in its statement
(`hub.incidents.service`), reading its columns where its statement has them (`Source`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import sqlalchemy as sa

LeafKind = Literal["text", "bool", "date", "datetime", "enum"]
# A leaf: how it is written, its column, and an enum's (stored value, GraphQL name) pairs.
Leaf = tuple[Literal["leaf"], LeafKind, str, tuple[tuple[str, str], ...]]
TypeName = tuple[Literal["typename"], str]
# A record within the record: how it is carried, its selection, and (an audited type) the
# fields it is noted with, (response key, field) pairs.
Nested = tuple[Literal["nested"], str, "Spec", tuple[tuple[str, str], ...] | None]
Spec = tuple[tuple[str, Leaf | TypeName | Nested], ...]

# The columns a compiled page's rows carry: the record's JSON, its children's (id, owner) pairs.
SERVED, SERVED_CHILDREN = "served__", "served_children__"


Source = Callable[[str], Any]  # a column of the record, by name


def _no_children(_: Spec) -> Any:
    msg = "children are written only within an incident"
    raise ValueError(msg)


@dataclasses.dataclass(frozen=True)
class Writer:
    """One dialect's way of writing a spec's JSON; `children(spec)` writes an incident's
    children from its involved rows (`incident_child`, `child`): a writer of the children
    themselves has none to write."""

    dialect: str
    children: Callable[[Spec], Any] = _no_children

    def record(self, spec: Spec, source: Source) -> Any:
        pairs: list[Any] = []
        for key, item in spec:
            pairs += [sa.literal_column(_quoted(key)), self._value(item, source)]
        if self.dialect == "postgresql":
            return sa.func.json_build_object(*pairs, type_=sa.Text())
        return sa.func.json_object(*pairs, type_=sa.Text())

    def _value(self, item: Leaf | TypeName | Nested, source: Source) -> Any:
        if item[0] == "typename":
            return sa.literal_column(_quoted(item[1]))
        if item[0] == "leaf":
            return self._leaf(item[1], source(item[2]), item[3])
        _, how, spec, _ = item
        if how == "children":
            return self._json(self.children(spec))
        if how == "child":
            return self.record(spec, lambda name: source(f"child:{name}"))
        code = source(f"{how}code")
        organisation = self.record(spec, lambda name: source(how + name))
        return self._json(sa.case((code.is_(None), sa.null()), else_=organisation))

    def _json(self, value: Any) -> Any:
        # SQLite passes a JSON value on as JSON only straight from a JSON function.
        return value if self.dialect == "postgresql" else sa.func.json(value)

    def _leaf(self, kind: LeafKind, column: Any, names: tuple[tuple[str, str], ...]) -> Any:
        if kind == "enum":
            return sa.case(*((column == stored, name) for stored, name in names), else_=sa.null())
        if kind == "datetime":
            return self._isoformat(column)
        if kind == "bool" and self.dialect != "postgresql":
            true, false, null = (_text(f"'{word}'") for word in ("true", "false", "null"))
            return sa.func.json(
                sa.case((column.is_(None), null), (column == sa.true(), true), else_=false)
            )
        if kind == "date" and self.dialect != "postgresql":
            return sa.cast(column, sa.Text)
        return column

    def _isoformat(self, column: Any) -> Any:
        """`datetime.isoformat`'s text of a UTC time: its fraction only if not 0."""
        if self.dialect == "postgresql":
            utc = sa.func.timezone(sa.literal_column("'UTC'"), column)
            whole = sa.func.to_char(utc, sa.literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'"))
            fraction = sa.case(
                (
                    sa.cast(
                        sa.func.date_part(sa.literal_column("'microseconds'"), column), sa.Integer
                    )
                    % 1000000
                    == 0,
                    sa.literal_column("''"),
                ),
                else_=sa.func.to_char(utc, sa.literal_column("'.US'")),
            )
            return _concat_pg(whole, fraction)
        # SQLite holds `YYYY-MM-DD HH:MM:SS.ffffff` (SQLAlchemy's form, always six digits).
        text = sa.cast(column, sa.Text)
        date = sa.func.substr(text, 1, 10)
        plus, t = _text("'+00:00'"), _text("'T'")
        return sa.case(
            (column.is_(None), sa.null()),
            (
                sa.func.substr(text, 20) == sa.literal_column("'.000000'"),
                date.op("||")(t).op("||")(sa.func.substr(text, 12, 8)).op("||")(plus),
            ),
            else_=date.op("||")(t).op("||")(sa.func.substr(text, 12)).op("||")(plus),
        )


def _concat_pg(whole: Any, fraction: Any) -> Any:
    # `||` keeps a null time null (`concat` would make it "+00:00").
    return whole.op("||")(fraction).op("||")(sa.literal_column("'+00:00'"))


def _quoted(name: str) -> str:
    """A response key or type name as an SQL string literal: GraphQL names are `[_A-Za-z0-9]`."""
    if not name.replace("_", "a").isalnum() or not name.isascii():
        msg = f"not a GraphQL name: {name!r}"
        raise ValueError(msg)
    return f"'{name}'"


def _text(literal: str) -> sa.ColumnElement[str]:
    return sa.literal_column(literal, sa.Text)
