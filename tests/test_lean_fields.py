"""Plain fields completed by the executor at once behave as graphql-core's whole way would."""

from __future__ import annotations

import asyncio
import dis
import enum
import inspect
from typing import Any

import pytest
import sqlalchemy as sa
import strawberry
from graphql import GraphQLNonNull, GraphQLObjectType
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.schema_converter import CustomGraphQLEnumType

from hub.db import records
from hub.graphql import selections
from hub.graphql.documents import CachedDocuments, ValidDocuments
from hub.graphql.executor import HubExecutor, is_awaitable
from hub.graphql.resolvers import (
    ContextResolver,
    PlainLeaf,
    coercion,
    context_only,
    lean_resolvers,
)
from hub.graphql.schema import build_schema
from hub.settings import Settings


@strawberry.type
class Record:
    id: strawberry.ID
    name: str | None

    @strawberry.field
    def summary(self) -> str | None:
        if self.name == "broken":
            msg = "unreadable"
            raise ValueError(msg)
        return self.name


@strawberry.type
class Query:
    @strawberry.field
    def records(self) -> list[Record | None]:
        return [
            Record(id=strawberry.ID("a"), name="kept"),
            Record(id=None, name="no id"),  # type: ignore[arg-type] - a non-null field read as None
            Record(id=strawberry.ID("c"), name=None),
            Record(id=strawberry.ID("d"), name="broken"),
        ]


def _schema(query: type = Query) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=query,
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(schema._schema)
    return schema


def test_attributes_and_plain_methods_are_read_directly() -> None:
    record = _schema()._schema.type_map["Record"]
    assert isinstance(record, GraphQLObjectType)
    kinds: dict[str, Any] = {name: type(f.resolve) for name, f in record.fields.items()}
    assert kinds == {"id": PlainLeaf, "name": PlainLeaf, "summary": PlainLeaf}


def test_a_missing_non_null_value_and_a_raising_field_fail_as_graphql_core_fails_them() -> None:
    result = _schema().execute_sync("{ records { id name summary } }")
    assert result.data == {
        "records": [
            {"id": "a", "name": "kept", "summary": "kept"},
            None,  # its non-null id was null: the record is nulled, as graphql-core does
            {"id": "c", "name": None, "summary": None},
            {"id": "d", "name": "broken", "summary": None},
        ]
    }
    errors = {tuple(e.path or ()): e.message for e in result.errors or ()}
    assert errors == {
        ("records", 1, "id"): "Cannot return null for non-nullable field Record.id.",
        ("records", 3, "summary"): "unreadable",
    }


# A field without arguments gets its resolve info built only when read (`LazyResolveInfo`): what a
# resolver reads of it, and the errors of nested objects, are what graphql-core's own would be.


@strawberry.type
class Owner:
    name: str | None

    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        # The path, the field's nodes, the operation: all from graphql-core's info.
        nodes = [node.name.value for node in info._raw_info.field_nodes]
        operation = info.operation.name.value if info.operation.name else None
        return f"{'.'.join(str(p) for p in info.path.as_list())} {nodes} {operation}"


@strawberry.type
class Holder:
    label: str | None

    @strawberry.field
    def owner(self, info: strawberry.Info) -> Owner | None:
        if self.label == "broken":
            msg = "no owner"
            raise ValueError(msg)
        return Owner(name=f"of {self.label} for {info.context['caller']}")

    @strawberry.field
    def required(self) -> Owner:
        return None  # type: ignore[return-value] - a non-null object read as None


@strawberry.type
class HolderQuery:
    @strawberry.field
    def holders(self) -> list[Holder | None]:
        return [Holder(label="a"), Holder(label="broken")]


def test_a_field_without_arguments_reads_the_same_info_and_fails_the_same_way() -> None:
    schema = _schema(HolderQuery)
    result = schema.execute_sync(
        "query Q { holders { label owner { name where } } }", context_value={"caller": "c1"}
    )
    assert result.data == {
        "holders": [
            {
                "label": "a",
                "owner": {"name": "of a for c1", "where": "holders.0.owner.where ['where'] Q"},
            },
            {"label": "broken", "owner": None},
        ]
    }
    assert [(tuple(e.path or ()), e.message) for e in result.errors or ()] == [
        (("holders", 1, "owner"), "no owner")
    ]
    nulled = schema.execute_sync("{ holders { label required { name } } }")
    assert nulled.data == {"holders": [None, None]}
    assert {tuple(e.path or ()) for e in nulled.errors or ()} == {
        ("holders", 0, "required"),
        ("holders", 1, "required"),
    }


# A record, or a list of records, below the root is completed straight from the executor's loop
# (`HubExecutor._complete`): the same data and errors as graphql-core's own executor gives.


@strawberry.interface
class Tagged:
    tag: str | None


@strawberry.type
class Label(Tagged):  # an interface's type: strawberry gives it an `is_type_of`
    @strawberry.field
    def text(self) -> str:
        return None if self.tag == "blank" else self.tag  # type: ignore[return-value]


@strawberry.type
class Shelf:
    @strawberry.field
    def loose(self) -> list[Record | None]:
        return Query().records()

    @strawberry.field
    def strict(self) -> list[Record] | None:
        return [Record(id=strawberry.ID("a"), name="kept"), Record(id=None, name="no id")]  # type: ignore[arg-type]

    @strawberry.field
    def labels(self) -> list[Label | None]:
        return [Label(tag="x"), Label(tag="blank"), None]

    @strawberry.field
    def label(self) -> Label:
        return Label(tag="blank")

    @strawberry.field
    def wrong(self) -> Label | None:
        return Record(id=strawberry.ID("a"), name="not a label")  # type: ignore[return-value]


@strawberry.type
class ShelfQuery:
    @strawberry.field
    def shelves(self) -> list[Shelf]:
        return [Shelf()]


def test_records_below_the_root_complete_as_graphql_cores_executor_completes_them() -> None:
    query = """{ shelves {
        loose { id name summary } strict { id name } labels { tag text }
        wrong { tag } } }"""
    hub = strawberry.Schema(
        query=ShelfQuery,
        types=[Label],
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(hub._schema)
    plain = strawberry.Schema(query=ShelfQuery, types=[Label])  # graphql-core's own executor
    ours, theirs = hub.execute_sync(query), plain.execute_sync(query)
    assert ours.data == theirs.data
    assert ours.data is not None
    shelf = ours.data["shelves"][0]
    assert shelf["strict"] is None  # a non-null record failed: the list is nulled
    assert shelf["labels"] == [{"tag": "x", "text": "x"}, None, None]
    assert shelf["wrong"] is None  # not a Label: graphql-core's own error

    def located(result: Any) -> list[tuple[tuple[Any, ...], str]]:
        return sorted((tuple(e.path or ()), e.message) for e in result.errors or ())

    assert located(ours) == located(theirs)
    assert len(located(ours)) == 5
    nulled = hub.execute_sync("{ shelves { label { text } } }")
    assert nulled.data is None  # a non-null record's non-null field failed, up to the root
    assert located(nulled) == located(plain.execute_sync("{ shelves { label { text } } }"))


def test_rows_read_many_times_are_named_tuples_unless_a_column_name_cannot_be_one() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        plain = records(connection.execute(sa.text("SELECT 1 AS id, 'x' AS summary")))
        keyword = records(connection.execute(sa.text('SELECT 1 AS id, 2 AS "from"')))
    assert plain == [(1, "x")]
    assert (plain[0].id, plain[0].summary) == (1, "x")
    assert type(plain[0]).__name__ == "Record"
    assert isinstance(keyword[0], sa.Row)  # SQLAlchemy's own row, read by key as before
    assert keyword[0]._mapping["from"] == 2


@strawberry.type
class Leaf:
    name: str


@strawberry.type
class Branch:
    @strawberry.field
    def leaf(self) -> Leaf:
        return Leaf(name="kept")

    @strawberry.field
    def leaves(self, first: int = 2) -> list[Leaf]:
        return [Leaf(name=str(number)) for number in range(first)]


@strawberry.type
class Tree:
    @strawberry.field
    def branches(self) -> list[Branch]:
        return [Branch(), Branch()]


def test_object_fields_with_directives_or_arguments_complete_as_graphql_core_does() -> None:
    """A record's object field with a directive or an argument takes graphql-core's own way;
    without, the executor's plain one: the data and errors are the same either way."""
    document = """{ branches {
        plain: leaf { name }
        included: leaf @include(if: true) { name }
        skipped: leaf @skip(if: true) { name }
        argued: leaves(first: 1) { name }
        defaulted: leaves { name }
    } }"""
    hub = strawberry.Schema(
        query=Tree,
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(hub._schema)
    ours = hub.execute_sync(document)
    theirs = strawberry.Schema(query=Tree).execute_sync(document)
    assert ours.errors is None
    assert ours.data == theirs.data
    assert ours.data is not None
    assert ours.data["branches"][0] == {
        "plain": {"name": "kept"},
        "included": {"name": "kept"},
        "argued": [{"name": "0"}],
        "defaulted": [{"name": "0"}, {"name": "1"}],
    }


class _Proxy:
    """Claims any attribute, `__await__` included, as some proxies do."""

    def __getattr__(self, name: str) -> Any:
        return lambda: iter(())


async def _coroutine() -> None:
    return None


def test_is_awaitable_answers_as_strawberry_does_and_keeps_only_what_cannot_change() -> None:
    loop = asyncio.new_event_loop()
    coroutine = _coroutine()
    try:
        values: list[Any] = [
            None, 1, "x", {}, [], Leaf(name="a"), Branch(), _Proxy(), coroutine,
            loop.create_future(), (number for number in range(1)),
        ]  # fmt: skip
        for _ in range(2):  # the second time from what the first one kept
            assert [is_awaitable(v) for v in values] == [optimized_is_awaitable(v) for v in values]
        assert is_awaitable(_Proxy()) is True
        assert is_awaitable(Leaf(name="b")) is False
    finally:
        coroutine.close()
        loop.close()


@strawberry.enum
class Kind(enum.StrEnum):  # a str subclass: not text handed back as it is
    FIRST = "first"


@strawberry.type
class Plain:
    name: str
    ident: strawberry.ID
    flag: bool
    kind: Kind
    count: int


@strawberry.type
class Plains:
    @strawberry.field
    def plains(self) -> list[Plain]:
        return [Plain(name="n", ident=strawberry.ID("i"), flag=False, kind=Kind.FIRST, count=3)]


def test_text_and_booleans_handed_back_as_they_are_and_the_rest_coerced() -> None:
    document = "{ plains { name ident flag kind count } }"
    hub = strawberry.Schema(
        query=Plains,
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(hub._schema)
    fields = hub._schema.type_map["Plain"].fields  # type: ignore[union-attr]
    assert {n: f.resolve.as_is for n, f in fields.items()} == {
        "name": str, "ident": str, "flag": bool, "kind": None, "count": None,
    }  # fmt: skip
    ours = hub.execute_sync(document)
    assert ours.errors is None
    assert ours.data == strawberry.Schema(query=Plains).execute_sync(document).data
    assert ours.data == {
        "plains": [{"name": "n", "ident": "i", "flag": False, "kind": "FIRST", "count": 3}]
    }


# A selection's fields run by a function made once per shape (`selections.runner`): aliases, a
# field asked twice, `__typename`, fragments and enums complete as graphql-core's own do, and the
# next request with that selection (another caller's, other values) runs the same function.


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Painted:
    id: strawberry.ID
    colour: Colour | None
    shade: Colour

    @strawberry.field
    def count(self) -> int | None:
        return len(self.id) if self.id != "none" else None

    @strawberry.field
    def mixed(self) -> Colour | None:
        return "not a colour" if self.id == "odd" else self.colour  # type: ignore[return-value]


@strawberry.type
class PaintQuery:
    @strawberry.field
    def painted(self) -> list[Painted | None]:
        return [
            Painted(id=strawberry.ID("a"), colour=Colour.RED, shade=Colour.BLUE),
            Painted(id=strawberry.ID("none"), colour=None, shade=Colour.RED),
            Painted(id=strawberry.ID("odd"), colour=Colour.BLUE, shade=None),  # type: ignore[arg-type]
        ]


def test_a_selection_runs_by_a_function_made_once_for_its_shape_as_graphql_core_runs_it() -> None:
    document = """query Q { painted {
        __typename ident: id id colour again: colour mixed shade count ...More
    } }
    fragment More on Painted { tone: shade count }"""
    hub = strawberry.Schema(
        query=PaintQuery,
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(hub._schema)
    plain = strawberry.Schema(query=PaintQuery)  # graphql-core's own executor
    made = selections._runner.cache_info().misses
    ours, theirs = hub.execute_sync(document), plain.execute_sync(document)
    assert ours.data == theirs.data
    assert ours.data is not None
    assert ours.data["painted"][0] == {
        "__typename": "Painted",
        "ident": "a",
        "id": "a",
        "colour": "RED",
        "again": "RED",
        "mixed": "RED",
        "shade": "BLUE",
        "count": 1,
        "tone": "BLUE",
    }
    assert list(ours.data["painted"][0]) == list(theirs.data["painted"][0])  # the same order
    assert ours.data["painted"][2] is None  # its non-null shade was null: the record is nulled

    def located(result: Any) -> list[tuple[tuple[Any, ...], str]]:
        return sorted((tuple(e.path or ()), e.message) for e in result.errors or ())

    assert located(ours) == located(theirs)
    assert {path for path, _ in located(ours)} == {("painted", 2, "mixed"), ("painted", 2, "shade")}
    assert selections._runner.cache_info().misses == made + 1  # one selection, one function
    again = hub.execute_sync(document)
    assert again.data == ours.data
    assert selections._runner.cache_info().misses == made + 1  # the next request reuses it


# --- context-only resolvers: the request's `ContextInfo`, not an `Info` per field -----------------


def _reads_only_the_context(function: Any, seen: set[Any]) -> list[str]:
    """What `function` does with its `info` parameter (the first one named `info`, or its
    first parameter for a helper handed `info`) beyond reading `.context`, or handing it as
    first argument to a module function that itself reads only that: [] if nothing."""
    if function in seen:
        return []
    seen.add(function)
    code = function.__code__
    names = code.co_varnames[: code.co_argcount]
    name = "info" if "info" in names else names[0]
    found: list[str] = []
    instructions = [i for i in dis.get_instructions(function) if i.opname not in {"CACHE", "NOP"}]
    for index, instruction in enumerate(instructions):
        if instruction.opname != "LOAD_FAST" or instruction.argval != name:
            continue
        after = instructions[index + 1]
        if after.opname == "LOAD_ATTR" and after.argval == "context":
            continue
        before = instructions[index - 1] if index else None
        if before is not None and before.opname == "LOAD_GLOBAL":
            callee = function.__globals__.get(before.argval)
            if inspect.isfunction(callee):
                found += _reads_only_the_context(callee, seen)
                continue
        found.append(f"{function.__qualname__}: {name} then {after.opname} {after.argval}")
    return found


def _context_only_fields() -> dict[str, ContextResolver]:
    schema = build_schema(Settings())._schema
    return {
        f"{type_.name}.{name}": field.resolve
        for type_ in schema.type_map.values()
        if isinstance(type_, GraphQLObjectType)
        for name, field in type_.fields.items()
        if isinstance(field.resolve, ContextResolver)
    }


def test_the_page_s_object_fields_are_context_only_and_read_nothing_else() -> None:
    fields = _context_only_fields()
    for wanted in ("Incident.force", "Incident.locationCouncil", "Incident.children"):
        assert wanted in fields, sorted(fields)
    assert "IncidentChild.child" in fields
    for name, resolver in fields.items():
        assert _reads_only_the_context(resolver.function, set()) == [], name


def test_the_check_finds_a_resolver_that_reads_more_than_the_context() -> None:
    def path_of_it(self: Any, info: Any) -> Any:
        return info.path

    def handed_on(self: Any, info: Any) -> Any:
        return path_of_it(self, info)  # `info` handed on, not first: not followed

    assert _reads_only_the_context(path_of_it, set()) != []
    assert _reads_only_the_context(handed_on, set()) != []


@strawberry.type
class Shop:
    name: str

    @strawberry.field
    @context_only
    def owner(self, info: strawberry.Info) -> Record | None:
        owner: Record | None = info.context["owners"].get(self.name)
        return owner

    @strawberry.field
    @context_only
    def nosy(self, info: strawberry.Info) -> str | None:
        return str(info.path.key)  # not the context: marked wrongly, so it fails


@strawberry.type
class ShopQuery:
    @strawberry.field
    def shops(self) -> list[Shop]:
        return [Shop(name="a"), Shop(name="b")]


def test_a_context_only_resolver_is_handed_the_context_and_nothing_more() -> None:
    schema = _schema(ShopQuery)
    shop = schema._schema.type_map["Shop"]
    assert isinstance(shop, GraphQLObjectType)
    assert isinstance(shop.fields["owner"].resolve, ContextResolver)
    owners = {"a": Record(id=strawberry.ID("r"), name="kept")}
    result = schema.execute_sync(
        "{ shops { name owner { id name } } }", context_value={"owners": owners}
    )
    assert result.errors is None
    assert result.data == {
        "shops": [{"name": "a", "owner": {"id": "r", "name": "kept"}}, {"name": "b", "owner": None}]
    }
    nosy = schema.execute_sync("{ shops { nosy } }", context_value={"owners": owners})
    assert nosy.data == {"shops": [{"nosy": None}, {"nosy": None}]}
    assert nosy.errors is not None
    assert [e.path for e in nosy.errors] == [["shops", 0, "nosy"], ["shops", 1, "nosy"]]


# --- records read in place: a record's selection run from its parent's function -------------


@strawberry.interface
class Named:
    text: str


@strawberry.type
class Tag(Named):
    pass


@strawberry.type
class Box:
    name: str
    tag: Tag | None  # an object attribute
    must: Tag  # a non-null one
    loose: list[Tag | None] | None  # a list of them, its items nullable

    @strawberry.field
    @context_only
    def kept(self, info: strawberry.Info) -> Tag | None:
        tag: Tag | None = info.context["tags"].get(self.name)
        return tag

    @strawberry.field
    @context_only
    def required(self, info: strawberry.Info) -> Tag:
        tag: Tag = info.context["tags"].get(self.name)
        return tag

    @strawberry.field
    @context_only
    def failing(self, info: strawberry.Info) -> Tag | None:
        if self.name == "broken":
            msg = "unreadable"
            raise ValueError(msg)
        tag: Tag | None = info.context["tags"].get(self.name)
        return tag

    @strawberry.field
    @context_only
    def later(self, info: strawberry.Info) -> Tag | None:
        async def loaded() -> Tag | None:
            await asyncio.sleep(0)
            tag: Tag | None = info.context["tags"].get(self.name)
            return tag

        return loaded()  # type: ignore[return-value]  # an awaitable, as a pending load is

    @strawberry.field
    @context_only
    def wrong(self, info: strawberry.Info) -> Tag | None:
        return info.context["boxes"][0]  # type: ignore[no-any-return]  # not a Tag

    @strawberry.field
    @context_only
    def many(self, info: strawberry.Info) -> list[Tag] | None:
        return [Tag(text=self.name), *info.context["extra"].get(self.name, [])]


@strawberry.type
class BoxQuery:
    @strawberry.field
    def boxes(self, info: strawberry.Info) -> list[Box | None]:
        return info.context["boxes"]  # type: ignore[no-any-return]


def _boxes() -> dict[str, Any]:
    blank = Tag(text=None)  # type: ignore[arg-type] - a non-null field read as None
    boxes = [
        Box(name="a", tag=Tag(text="t"), must=Tag(text="m"), loose=[Tag(text="l"), None]),
        Box(name="broken", tag=None, must=blank, loose=[blank]),
        Box(name="c", tag=blank, must=Tag(text="m"), loose=None),
    ]
    tags = {"a": Tag(text="kept a"), "broken": blank}
    return {"boxes": boxes, "tags": tags, "extra": {"c": [blank]}}


async def test_records_read_in_place_complete_and_fail_as_graphql_core_completes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Object fields read as attributes or by `context_only` resolvers, their records' own
    selections run from the parent's function: the same data, and the same errors at the same
    paths, as graphql-core's own executor gives, for a record, a null one, a non-null null, an
    error, an awaitable, a value of another type, and lists of them."""
    hub = _schema(BoxQuery)
    plain = strawberry.Schema(query=BoxQuery, types=[Tag])  # graphql-core's own executor
    plain_fields = 0
    execute_plain_field = HubExecutor._execute_plain_field

    def counted(self: HubExecutor, *args: Any) -> Any:
        nonlocal plain_fields
        plain_fields += 1
        return execute_plain_field(self, *args)

    monkeypatch.setattr(HubExecutor, "_execute_plain_field", counted)

    def located(result: Any) -> list[tuple[tuple[Any, ...], str]]:
        return sorted((tuple(e.path or ()), e.message) for e in result.errors or ())

    for selection in (
        "tag { text } kept { text } failing { text } later { text } wrong { text }",
        "name loose { text } many { text }",
        "name must { text }",
        "name required { text }",
    ):
        query = f"{{ boxes {{ {selection} }} }}"
        for inline in (True, False):
            monkeypatch.setattr(HubExecutor, "inline_records", inline)
            plain_fields = 0
            ours = await hub.execute(query, context_value=_boxes())
            theirs = await plain.execute(query, context_value=_boxes())
            assert ours.data == theirs.data, (inline, selection)
            assert located(ours) == located(theirs), (inline, selection)
            assert ours.errors, selection  # each selection fails somewhere
            # In place, no record field goes the plain way (the root's goes graphql-core's).
            assert (plain_fields == 0) is inline, (inline, plain_fields, selection)
    monkeypatch.undo()
    found = await hub.execute(
        "{ boxes { tag { text } failing { text } wrong { text } } }", context_value=_boxes()
    )
    assert found.data is not None
    assert found.data["boxes"][0] == {
        "tag": {"text": "t"},
        "failing": {"text": "kept a"},
        "wrong": None,
    }
    assert found.data["boxes"][1] == {"tag": None, "failing": None, "wrong": None}
    assert {tuple(e.path or ()) for e in found.errors or ()} >= {
        ("boxes", 1, "failing"),  # raised: the field nulled, at its path
        ("boxes", 0, "wrong"),  # not a Tag: graphql-core's own error
        ("boxes", 2, "tag", "text"),  # a non-null field of a record read in place
    }


async def test_selections_are_kept_across_requests_only_where_no_variable_can_change_them() -> None:
    """A selection without directives is worked out once for the schema and serves the next
    request made from the same document (the same nodes, from the document cache); one whose
    fields `@include`, `@skip` or a fragment's directive choose by the request's variables is
    worked out for each request."""
    documents = ValidDocuments()
    hub = strawberry.Schema(
        query=BoxQuery,
        extensions=[lambda: CachedDocuments(documents)],
        execution_context_class=HubExecutor.for_schema(
            gates=False, notes_served=False, contract=False
        ),
    )
    lean_resolvers(hub._schema)
    kept = hub.execution_context_class.shared_selections  # type: ignore[attr-defined]
    plain = "{ boxes { name tag { text } } }"
    first = await hub.execute(plain, context_value=_boxes())
    shared = len(kept)
    assert shared >= 2  # the boxes' selection and their tags'
    again = await hub.execute(plain, context_value=_boxes())
    assert again.data == first.data
    assert len(kept) == shared  # nothing worked out anew
    chosen = """query($show: Boolean!, $hide: Boolean!) { boxes {
        name tag @include(if: $show) { text } ...Must } }
        fragment Must on Box { must @skip(if: $hide) { text } }"""
    for show, hide in ((True, False), (False, True), (True, True), (False, False)):
        result = await hub.execute(
            chosen, variable_values={"show": show, "hide": hide}, context_value=_boxes()
        )
        assert result.data is not None
        box = result.data["boxes"][0]
        assert ("tag" in box) is show, (show, hide)
        assert ("must" in box) is not hide, (show, hide)


def test_an_enum_is_named_as_strawberry_names_it() -> None:
    """Each member of each of the hub's enums, and values that are not members, coerced for
    the response as strawberry's own enum type coerces them (its error for what it refuses)."""
    schema = build_schema(Settings())._schema
    enums = [t for t in schema.type_map.values() if isinstance(t, CustomGraphQLEnumType)]
    assert len(enums) >= 5
    for enum_type in enums:
        ours = coercion(enum_type)
        for member in enum_type.wrapped_cls:
            assert ours(member) == enum_type.coerce_output_value(member)
        for other in (next(iter(enum_type.wrapped_cls)).value, "NOT_A_MEMBER", 3):
            try:
                expected: Any = enum_type.coerce_output_value(other)
            except Exception as error:  # noqa: BLE001 - compared below
                expected = type(error)
            try:
                found: Any = ours(other)
            except Exception as error:  # noqa: BLE001 - compared below
                found = type(error)
            assert found == expected, (enum_type.name, other)
    painted = _schema(PaintQuery)._schema.type_map["Painted"]
    assert isinstance(painted, GraphQLObjectType)
    shade = painted.fields["shade"].type
    assert isinstance(shade, GraphQLNonNull)
    assert coercion(shade.of_type)(Colour.RED) == "RED"


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_entity_types_are_made_of_a_row_and_its_id() -> None:
    """`Entity.of` and the incident's child links set their attributes themselves, without
    strawberry's `__init__`: that is right only while that `__init__` takes exactly them and
    sets nothing else. A field added to such a type must fail here, not leave it unset."""
    from types import SimpleNamespace  # noqa: PLC0415

    from hub.graphql.entity import Entity  # noqa: PLC0415
    from hub.incidents import types as incident_types  # noqa: PLC0415

    build_schema(Settings())  # every entity type's module imported
    entities = [cls for cls in _subclasses(Entity) if hasattr(cls, "__strawberry_definition__")]
    assert {"Incident", "Child", "MissingEpisode", "Investigation"} <= {
        cls.__name__ for cls in entities
    }
    row = SimpleNamespace(id="r-1")
    for cls in entities:
        parameters = inspect.signature(cls.__init__).parameters
        assert list(parameters) == ["self", "row", "id"], cls
        assert not hasattr(cls, "__post_init__"), cls
        made = cls.of(row)
        assert type(made) is cls
        assert vars(made) == vars(cls(row=row, id=row.id)), cls
    link = incident_types.IncidentChild
    assert list(inspect.signature(link.__init__).parameters) == ["self", "row"]
    assert not hasattr(link, "__post_init__")
    [made_link] = incident_types._involved([row])  # type: ignore[list-item]
    assert type(made_link) is link
    assert vars(made_link) == vars(link(row=row))
