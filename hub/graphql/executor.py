"""The served schema's executor: the agreement's field gate and the audit's noting, per selection.

Both used to be schema extensions with a `resolve` hook, which makes strawberry wrap every field
of every record in graphql-core middleware; a page of records cost sixteen empty requests. Here
each is decided where graphql-core already works per selection, not per field:

- The gate: once per selection set in the request (graphql-core collects a selection once per
  request and reuses it for every item of a list), the fields the caller's role does not see.
  Only those are refused, each with its error (FORBIDDEN_FIELD, or for a mutation the change
  refusal) at its own path and null, as a resolver raising it would; the rest resolve untouched.
  Decisions are made from the request's own policy. A selection without directives is kept,
  with its decisions, for the next request made from the same document by the same role under
  the same agreement (`_select`), so a changed agreement or another role cannot meet a stale
  one.
- The audit: each record object completed (`collect_and_execute_subfields`) is noted once, with the
  response keys of its selection and the fields they name; `ServedRecords.released` later keeps
  only the records and fields that reached the final data unredacted.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from types import GeneratorType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson
from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
)
from graphql.execution.collect_fields import FieldDetails
from graphql.pyutils import Path, RefMap, gather_with_cancel
from strawberry.execution.is_awaitable import optimized_is_awaitable

from hub.access.policy import ChangeForbidden, ContractForbidden, FieldForbidden
from hub.changes.fanout import FanoutExecutor
from hub.graphql.audit_trail import AUDITED_TYPES
from hub.graphql.compiled import (
    COMPILED_ROOTS,
    directive_free,
    items_spec,
    spec_of,
    written_children,
)
from hub.graphql.documents import Recent
from hub.graphql.resolvers import ContextInfo, ContextResolver, PlainLeaf
from hub.graphql.selections import PlanStep, Runner, path_of, record_shape, runner
from hub.json_records import Spec

if TYPE_CHECKING:
    from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet

    from hub.graphql.context import HubContext

Refusal = Callable[[], Exception]
Results = TypeVar("Results", dict[str, Any], list[Any])
Execute = Callable[..., Any]

# The types whose values are never awaitable: the plain ones (a completed object is a dict),
# and the rest learnt as they are met (`is_awaitable`).
_NEVER_AWAITABLE: set[type] = {type(None), bool, int, float, str, bytes, list, tuple, dict, set}
_GENERIC_GETATTRIBUTE = object.__getattribute__
SHARED_SELECTIONS = 1024  # a schema's selections kept across requests (`HubExecutor._select`)


def is_awaitable(value: Any) -> bool:
    """strawberry's `optimized_is_awaitable`, its answer for a record's type kept: a record (an
    incident, an organisation, a child) costs one set lookup, where the check tests it against
    two types and looks for an `__await__` it does not have, on every field of every record.

    A type is kept only where an instance cannot say otherwise: one without `__getattr__` or
    its own `__getattribute__` (which could make an `__await__` up), and not a generator (an
    old-style coroutine is one of those, its flags tell)."""
    kind = type(value)
    if kind in _NEVER_AWAITABLE:
        return False
    if optimized_is_awaitable(value):
        return True
    if (
        kind is not GeneratorType
        and getattr(kind, "__getattribute__", None) is _GENERIC_GETATTRIBUTE
        and not hasattr(kind, "__getattr__")
    ):
        _NEVER_AWAITABLE.add(kind)
    return False


def _forbidden(type_name: str, field: str) -> Refusal:
    if type_name == "Mutation":
        return lambda: ChangeForbidden(field)
    return lambda: FieldForbidden(type_name, field)


def _raise_again(error: Exception) -> Refusal:
    def refusal() -> Exception:
        return error

    return refusal


def _directed(field_details_list: FieldDetailsList) -> bool:
    """Whether any node of the field carries a directive (`@stream`, `@include`...): graphql-core
    alone reads them while completing."""
    return any(details.node.directives for details in field_details_list)


def _owns(object_type: GraphQLObjectType, value: Any, info: GraphQLResolveInfo[Any]) -> bool:
    """The object type takes the value without question: it has no `is_type_of`, or that says
    yes at once (strawberry's is an isinstance check). False sends the value graphql-core's way,
    which raises its error (or awaits an asynchronous answer)."""
    is_type_of = object_type.is_type_of
    return is_type_of is None or is_type_of(value, info) is True


def _helpers_of(executor: HubExecutor) -> GraphQLResolveInfoHelpers:
    """graphql-core's helpers for resolvers (`info.async_helpers`), without the reference cycle
    its own make: they are the executor's bound methods, kept on the executor. In that cycle
    the whole request was kept (the executor, the context, its loaders, their futures and rows,
    the audit's notes: six hundred objects a page) until the garbage collector found it, and
    every collection went through them all: the collector's runs of 2.5 ms were a twentieth
    of a page's CPU and the slowest of its requests. Weakly bound, everything a request made
    goes as the request ends; the helpers serve while the executor runs, as before."""
    gather = weakref.WeakMethod(executor.gather_async_work)
    track = weakref.WeakMethod(executor.track_async_work)

    def gathered(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        awaited: Awaitable[list[Any]] = _alive(gather)(values)
        return awaited

    def tracked(values: Sequence[Any]) -> None:
        _alive(track)(values)

    return GraphQLResolveInfoHelpers(gather=gathered, track=tracked)


def _alive(method: weakref.WeakMethod[Callable[..., Any]]) -> Callable[..., Any]:
    bound = method()
    if bound is None:
        msg = "the request's execution has ended: no work can join it"
        raise RuntimeError(msg)
    return bound


@dataclasses.dataclass(slots=True, eq=False)
class _Selection:
    """What completing an object of one type with one selection needs, worked out at its
    first object in a request, or kept from another request made from the same (`shared`):
    its fields (collected by graphql-core, kept alive with its nodes so that their identity,
    the key, is not reused), what it defers, the audit's names for them (None: not a record
    the audit notes), the function running its plan (None: the gate refuses some of it, or
    middleware sees every field), whether that function runs it (`direct`: it has one and
    nothing is deferred), the selections of the records its plan reads in place (`subs`, by
    step, each found at the first record that has it), and whether it serves other requests
    made from the same as well (`shared`: `HubExecutor._select`)."""

    field_details_list: FieldDetailsList
    grouped_field_set: GroupedFieldSet
    new_defer_usages: Any
    noted: Mapping[str, str] | None
    plan: list[PlanStep]
    run: Runner | None
    direct: bool
    subs: list[_Selection | None]
    shared: bool
    # What the database writes for this selection's records, where it can (`compiled`).
    served: Spec | None = None


class LazyResolveInfo:
    """graphql-core's resolve info for one field, built on first use of anything beyond the
    context, the field's name, its parent type and its path (what a page's fields read)."""

    __slots__ = (
        "_built",
        "_executor",
        "_field_def",
        "_field_details_list",
        "context",
        "field_name",
        "parent_type",
        "path",
    )

    def __init__(
        self,
        executor: HubExecutor,
        field_def: GraphQLField,
        field_details_list: FieldDetailsList,
        parent_type: GraphQLObjectType,
        path: Path,
    ) -> None:
        self._built: GraphQLResolveInfo[Any] | None = None
        self._executor = executor
        self._field_def = field_def
        self._field_details_list = field_details_list
        self.context = executor.context_value
        self.field_name = field_details_list[0].node.name.value
        self.parent_type = parent_type
        self.path = path

    def __getattr__(self, name: str) -> Any:
        built = self._built
        if built is None:
            built = self._built = self._executor.build_resolve_info(
                self._field_def,
                [details.node for details in self._field_details_list],
                self.parent_type,
                self.path,
            )
        return getattr(built, name)


class HubExecutor(FanoutExecutor):
    """graphql-core's executor with the agreement's gate and the audit's noting built in.

    `for_schema` makes the subclass a schema runs with; the plain class gates and notes nothing.
    """

    gates: ClassVar[bool] = False  # every field checked against the agreement
    notes_served: ClassVar[bool] = False  # every record noted for the audit
    contract_for_gateway: ClassVar[bool] = False  # production: `_service` for the gateway only
    never_awaitable: ClassVar[set[type]] = _NEVER_AWAITABLE  # for the selections' functions
    # A record's selection run from its parent's function (`selections.kind_of`); off, each
    # record goes the plain way (`_execute_plain_field`), as tests compare.
    inline_records: ClassVar[bool] = True
    # Selections kept across requests (`_select`): each schema's its own (`for_schema`).
    shared_selections: ClassVar[Recent[Hashable, tuple[_Selection, object]]] = Recent(
        maxsize=SHARED_SELECTIONS
    )
    # What lists' item selections compile to (`written_spec`), kept as selections are.
    written_specs: ClassVar[Recent[Hashable, tuple[Spec | None, object]]] = Recent(
        maxsize=SHARED_SELECTIONS
    )

    @classmethod
    def for_schema(cls, *, gates: bool, notes_served: bool, contract: bool) -> type[HubExecutor]:
        return type(
            cls.__name__,
            (cls,),
            {
                "gates": gates,
                "notes_served": notes_served,
                "contract_for_gateway": contract,
                "shared_selections": Recent(maxsize=SHARED_SELECTIONS),
                "written_specs": Recent(maxsize=SHARED_SELECTIONS),
            },
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # type: ignore[assignment]  # graphql-core's TypeGuard
        self.own_memos()
        manager = self.middleware_manager
        self._middleware = manager is not None and bool(manager.middlewares)

    def build_per_event_executor(self, payload: Any) -> Any:
        """A subscription event's executor, with memos of its own.

        graphql-core's is a shallow copy of the subscription's executor, sharing its memos,
        which are keyed by the identity of field lists each event collects anew (its
        subfields', and here the gate's refusals and the selections' plans): every event
        added an entry to each, kept with its fields for the subscription's life, about 2 kB
        an event (`bench-soak`'s four subscribers grew the hub by 10.9 MiB in two minutes).
        An event's memos go with its executor, as a request's do."""
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, HubExecutor):  # not a group's replayed result (`FanoutExecutor`)
            executor.own_memos()
        return executor

    def own_memos(self) -> None:
        """The memos of one request or one subscription event, none shared with another
        executor: graphql-core's, and by the identity of a selection graphql-core collected
        (kept alive with it, so that the identity is not reused) the gate's refusals and what
        completing it needs (`_Selection`); and the resolvers' helpers, bound to this one."""
        self._relevant_sub_fields = {}
        self._stream_usages = RefMap()
        self._refusals: dict[int, tuple[GroupedFieldSet, Mapping[str, Refusal]]] = {}
        self._selections: dict[tuple[GraphQLObjectType, int], _Selection] = {}
        self.async_helpers = _helpers_of(self)
        self.context_info = ContextInfo(self.context_value)  # for `context_only` resolvers
        if hasattr(self.context_value, "executor"):
            # For a list's resolver to ask what its items' selection compiles to (weakly, as
            # the helpers: nothing of the request outlives it).
            self.context_value.executor = weakref.ref(self)

    # The gate.

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        return self._gated(
            super().execute_fields,
            parent_type,
            source_value,
            path,
            grouped_field_set,
            position_context,
        )

    def execute_fields_serially(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        return self._gated(
            super().execute_fields_serially,
            parent_type,
            source_value,
            path,
            grouped_field_set,
            position_context,
        )

    def _gated(  # noqa: PLR0917 - graphql-core's arguments, passed through
        self,
        execute: Execute,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """The fields the caller may have, executed (in parallel or serially, as `execute`
        does); each refused one null with its error, in the order the caller asked for them."""
        refused = self._refused(parent_type, grouped_field_set)
        if not refused:
            return execute(parent_type, source_value, path, grouped_field_set, position_context)
        for key, refusal in refused.items():
            field_details_list = grouped_field_set[key]
            field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            if field_def is None:  # pragma: no cover - a validated document names known fields
                continue
            # Raises for a non-null field, nulling the parent, as a resolver's error would.
            self.handle_field_error(
                refusal(), field_def.type, field_details_list, Path(path, key, parent_type.name)
            )
        allowed = {k: v for k, v in grouped_field_set.items() if k not in refused}
        result = (
            execute(parent_type, source_value, path, allowed, position_context) if allowed else {}
        )

        def ordered(data: dict[str, Any]) -> dict[str, Any]:
            return {
                key: data.get(key) for key in grouped_field_set if key in refused or key in data
            }

        if self.is_awaitable(result):

            async def await_ordered() -> dict[str, Any]:
                return ordered(await result)

            return await_ordered()
        return ordered(result)

    def _refused(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Mapping[str, Refusal]:
        if not self.gates:
            return {}
        known = self._refusals.get(id(grouped_field_set))
        if known is not None:
            return known[1]
        refused = self._decide(parent_type.name, grouped_field_set)
        self._refusals[id(grouped_field_set)] = (grouped_field_set, refused)
        return refused

    def _decide(self, type_name: str, grouped_field_set: GroupedFieldSet) -> dict[str, Refusal]:
        """The response keys of one selection the caller's role may not have, and why."""
        context: HubContext = self.context_value
        refused: dict[str, Refusal] = {}
        try:
            policy = context.policy
        except Exception as error:  # noqa: BLE001 - no caller (no token): every field refused
            return {
                key: _raise_again(error)
                for key, details in grouped_field_set.items()
                if not details[0].node.name.value.startswith("__")
            }
        gateway_only = self.contract_for_gateway and type_name == "Query"
        for key, details in grouped_field_set.items():
            field = details[0].node.name.value
            if field.startswith("__"):
                continue  # the type's name and introspection: never governed
            if (
                gateway_only
                and field == "_service"
                and context.principal.role != context.hub.agreement.gateway_role
            ):
                refused[key] = ContractForbidden
                continue
            if not policy.sees(type_name, field):
                refused[key] = _forbidden(type_name, field)
        return refused

    # Plain fields.

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A record's plain scalar (`def summary(self)`, or an attribute such as `id`) is read
        and completed at once: the resolver takes no info and no arguments, and the value is a
        leaf. Anything else, or
        any middleware on the schema, goes graphql-core's whole way."""
        field_def = parent_type.fields.get(field_details_list[0].node.name.value)
        resolve = field_def.resolve if field_def is not None else None
        if field_def is None or type(resolve) is not PlainLeaf or self._middleware:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        return self._leaf_value(
            parent_type, source, field_details_list, field_def, resolve, path, position_context
        )

    def _leaf_value(  # noqa: PLR0917 - the field, whole
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        field_def: GraphQLField,
        leaf: PlainLeaf,
        path: Path,
        position_context: Any = None,
    ) -> Any:
        """A plain scalar read and completed; an error located and collected (or raised, for
        a non-null field, nulling the parent), as graphql-core's `execute_field` does."""
        try:
            result = leaf.function(source)
            if isinstance(result, Exception):
                raise result  # noqa: TRY301 - as graphql-core's complete_value does
            completed = None if result is None else self.complete_leaf_value(leaf.leaf, result)
        except Exception as raw_error:  # noqa: BLE001 - located and collected, as graphql-core does
            self.handle_field_error(raw_error, field_def.type, field_details_list, path)
            return None
        if completed is None and leaf.non_null:  # graphql-core's own error, at its path
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        return completed

    # An object's selection, completed flat.

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """The audit's note of a record, then its fields.

        Without `@defer` (nothing to deliver later) the fields run in one function made for
        the selection's shape (`selections.runner`) instead of graphql-core's five nested calls
        per object (and this class's gate and leaf overrides in between): a page's deepest
        objects (its children's records) sat past the interpreter's 16 kB frame-stack chunk,
        which was mapped and unmapped for every one of them. What a selection needs is worked
        out once (`_Selection`, `_select`), for every record that has it.
        """
        selection = self._selection(return_type, field_details_list)
        if selection.noted is not None:
            context: HubContext = self.context_value
            context.served.note(path, return_type.name, result.row, selection.noted)
        if selection.new_defer_usages or position_context is not None:
            return self.execute_collected_subfields(
                return_type,
                result,
                path,
                selection.grouped_field_set,
                selection.new_defer_usages,
                position_context,
            )
        if selection.run is None:  # something refused, or middleware: the general, gated way
            return self.execute_fields(return_type, result, path, selection.grouped_field_set, None)
        return selection.run(self, result, path, selection)

    def _selection(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> _Selection:
        """What completing objects of `return_type` with this selection needs, worked out at
        its first object in the request (`_select`)."""
        selection = self._selections.get((return_type, id(field_details_list)))
        return selection or self._select(return_type, field_details_list)

    def _select(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> _Selection:
        """A selection's first object in the request: what completing it needs, as another
        request made from the same worked it out, or worked out now.

        What `_selected` works out depends on the selection's nodes, the object type, the
        executor's kind (its schema, gate, audit and middleware) and, through the gate, on the
        agreement in force and the caller's role (`HubContext.gate_basis`); and through any
        directive (`@skip`, `@include`, `@defer`) on the request's variables. A selection
        without directives is kept for the schema (`shared_selections`, bounded), keyed by all
        of the rest: its nodes by identity (the document cache's, the same objects for every
        request of that text; kept alive with it, so never another's), the agreement by
        identity (kept alive with it too). A changed agreement or another role finds none of
        another's; nor does a request with directives, or without a caller, keep any."""
        shared = self._shared_key(return_type, field_details_list)
        kept = None if shared is None else self.shared_selections.get(shared[0])
        if kept is not None:
            selection = kept[0]
        else:
            selection = self._selected(
                return_type, field_details_list, shareable=shared is not None
            )
            if shared is not None and selection.shared:
                self.shared_selections.keep(shared[0], (selection, shared[1]))
        self._selections[(return_type, id(field_details_list))] = selection
        return selection

    def _shared_key(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[Hashable, object] | None:
        """The key a selection is kept under for the schema, and what must stay alive with it
        for the key to name nothing else; None: not kept."""
        gate: tuple[int, Any] | None = None
        alive: object = None
        if self.gates:
            basis = getattr(self.context_value, "gate_basis", None)
            found = basis() if basis is not None else None
            if found is None:
                return None
            alive, role = found
            gate = (id(alive), role)
        nodes = tuple(id(details.node) for details in field_details_list)
        key = (return_type, nodes, gate, self.inline_records, self._middleware)
        return key, alive

    def _without_directives(self, field_details_list: FieldDetailsList) -> bool:
        """No directive anywhere `collect_subfields` looks for this selection's fields: its
        nodes' selections, their inline fragments and the fragments they spread."""
        return directive_free(self, field_details_list, deep=False)

    def _selected(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        *,
        shareable: bool,
    ) -> _Selection:
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            return_type, field_details_list
        )
        plan = self._plan(return_type, grouped_field_set)
        run = None if plan is None else runner(return_type, plan, inline=self.inline_records)
        served = (
            spec_of(self, return_type, grouped_field_set, new_defer_usages)
            if run is not None
            and return_type.name in COMPILED_ROOTS
            and directive_free(self, field_details_list)
            else None
        )
        if served is not None and run is not None:
            run = _written(run, served)
        return _Selection(
            field_details_list=field_details_list,
            grouped_field_set=grouped_field_set,
            new_defer_usages=new_defer_usages,
            noted=(
                self._fields_of(grouped_field_set)
                if self.notes_served and return_type.name in AUDITED_TYPES
                else None
            ),
            plan=plan or [],
            run=run,
            direct=run is not None and not new_defer_usages,
            subs=[None] * len(plan or ()),
            shared=shareable and self._without_directives(field_details_list),
            served=served,
        )

    def written_spec(
        self, list_type: GraphQLObjectType, field_nodes: list[FieldNode]
    ) -> Spec | None:
        """What the items of a list field (`field_nodes`, of `list_type`) compile to
        (`compiled.items_spec`), kept for other requests as a selection is (`_select`): by
        the nodes' identity, the agreement's and the caller's role."""
        details: Any = [FieldDetails(node, None) for node in field_nodes]
        shared = self._shared_key(list_type, details)
        kept = None if shared is None else self.written_specs.get(shared[0])
        if kept is not None:
            return kept[0]
        spec = items_spec(self, list_type, details)
        if shared is not None:  # what has directives compiles to nothing (`items_spec`)
            self.written_specs.keep(shared[0], (spec, (shared[1], field_nodes)))
        return spec

    def _sub(self, selection: _Selection, index: int, object_type: GraphQLObjectType) -> _Selection:
        """The selection of the records step `index` of `selection` reads in place, kept on it
        for the next record (and, on a shared selection, only a shared one: one worked out
        from this request's variables is not another's)."""
        sub = self._selection(object_type, selection.plan[index][1])
        if sub.shared or not selection.shared:
            selection.subs[index] = sub
        return sub

    def general_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """graphql-core's own `execute_field`, for a field with arguments or directives."""
        return super().execute_field(parent_type, source, field_details_list, path, None)

    def _execute_plain_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        field_def: GraphQLField,
        path: Path,
    ) -> Any:
        """graphql-core's `execute_field` for a field without arguments, directives or
        middleware, its resolve info built only if the resolver or the completion reads more
        than the context and where the field is (a page's items ask their loaders through the
        context only). A `context_only` resolver is handed the request's `ContextInfo`, not an
        `Info` of its own."""
        info: GraphQLResolveInfo[Any] = LazyResolveInfo(  # type: ignore[assignment]  # lazily
            self, field_def, field_details_list, parent_type, path
        )
        resolve = field_def.resolve or self.field_resolver
        try:
            if type(resolve) is ContextResolver:
                result = resolve.function(source, self.context_info)
            else:
                result = resolve(source, info)
        except Exception as raw_error:  # noqa: BLE001 - located and collected, as graphql-core does
            self.handle_field_error(raw_error, field_def.type, field_details_list, path)
            return None
        return self._resolved(parent_type, field_details_list, field_def, path, result, info)

    def _resolved(  # noqa: PLR0917 - the field, whole
        self,
        parent_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        field_def: GraphQLField,
        path: Path,
        result: Any,
        given: GraphQLResolveInfo[Any] | None = None,
    ) -> Any:
        """A field's resolved value completed: awaited, or completed at once (`_complete`);
        an error located at the field and collected (or raised, for a non-null field)."""
        return_type = field_def.type
        info: GraphQLResolveInfo[Any] = (
            given
            if given is not None
            else LazyResolveInfo(  # type: ignore[assignment]  # built lazily
                self, field_def, field_details_list, parent_type, path
            )
        )
        try:
            if type(result) not in _NEVER_AWAITABLE and self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, None
                )
            completed = self._complete(return_type, field_details_list, info, path, result)
        except Exception as raw_error:  # noqa: BLE001 - located and collected, as graphql-core does
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if type(completed) not in _NEVER_AWAITABLE and self.is_awaitable(completed):
            return self._completed_later(completed, return_type, field_details_list, path)
        return completed

    def _complete(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
    ) -> Any:
        """graphql-core's `complete_value`, straight to the selection for what a page is made
        of: a record, or a list of records, of one object type. graphql-core goes through five
        calls per record for it (and checks the type's kind at each); anything else (null, an
        error, an abstract type, a type that disowns the value) goes its whole way, which
        raises and locates its errors as before. A field with a directive (a `@stream`ed list)
        never comes here (`_plan`)."""
        if result is None or isinstance(result, Exception):
            return self.complete_value(return_type, field_details_list, info, path, result, None)
        record, item_type, item = record_shape(return_type)
        if record is not None:
            if _owns(record, result, info):
                return self.collect_and_execute_subfields(
                    record, field_details_list, path, result, None
                )
        elif (
            item is not None
            and item_type is not None
            and type(result) is list
            and self.owns_all(item, result, info)
        ):
            return self._records(item_type, item, field_details_list, path, result)
        return self.complete_value(return_type, field_details_list, info, path, result, None)

    def owns_all(
        self,
        object_type: GraphQLObjectType,
        items: list[Any],
        info: GraphQLResolveInfo[Any] | None,
    ) -> bool:
        """Every item plainly a record of `object_type`: not null, not an error, not awaitable,
        and owned by the type (`info` None: its `is_type_of` reads the value alone)."""
        is_awaitable, never = self.is_awaitable, _NEVER_AWAITABLE
        is_type_of = object_type.is_type_of
        return all(
            item is not None
            and not isinstance(item, Exception)
            and (type(item) in never or not is_awaitable(item))
            and (is_type_of is None or is_type_of(item, info) is True)  # type: ignore[arg-type]
            for item in items
        )

    def _records(  # noqa: PLR0917 - the list, whole
        self,
        item_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        items: list[Any],
        selection: _Selection | None = None,
    ) -> Any:
        """graphql-core's `complete_iterable_value` for a list of records: each item's error
        located at the item (nulling it, or the list for a non-null item), as it does."""
        completed: list[Any] = []
        pending: list[int] = []
        is_awaitable, never = self.is_awaitable, _NEVER_AWAITABLE  # the set: no call for a dict
        collect = self._collector(object_type, field_details_list, selection)
        try:
            for index, item in enumerate(items):
                item_path = path_of((path, index, None))
                try:
                    value = collect(item_path, item)
                except Exception as raw_error:  # noqa: BLE001 - located, as graphql-core does
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    value = None
                if type(value) not in never and is_awaitable(value):
                    value = self._completed_later(value, item_type, field_details_list, item_path)
                    pending.append(index)
                completed.append(value)
        except Exception:
            if pending:  # settled, as graphql-core settles its siblings' work
                self.settle_in_background([completed[index] for index in pending])
            raise
        if not pending:
            return completed
        return self._awaited(completed, pending)

    def _collector(
        self,
        object_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        selection: _Selection | None = None,
    ) -> Callable[[Path, Any], Any]:
        """`collect_and_execute_subfields` for each item of a list of records, what they share
        looked up once for the list (unless given): the selection, the audit's note, the
        function running the plan. A list whose selection defers or goes the general way is
        collected item by item as before."""
        if selection is None:
            selection = self._selection(object_type, field_details_list)
        run = selection.run
        if run is None or not selection.direct:

            def each(item_path: Path, item: Any) -> Any:
                return self.collect_and_execute_subfields(
                    object_type, field_details_list, item_path, item, None
                )

            return each
        noted, type_name = selection.noted, object_type.name
        if noted is None:
            return lambda item_path, item: run(self, item, item_path, selection)
        context: HubContext = self.context_value
        note = context.served.note

        def noted_each(item_path: Path, item: Any) -> Any:
            note(item_path, type_name, item.row, noted)
            return run(self, item, item_path, selection)

        return noted_each

    async def _completed_later(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:  # noqa: BLE001 - located and collected, as graphql-core does
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    @staticmethod
    async def _awaited(results: Results, pending: list[Any]) -> Results:
        """An object's fields (by key) or a list's items (by index), the pending ones awaited
        together in place."""
        if len(pending) == 1:
            results[pending[0]] = await results[pending[0]]
        else:
            awaited = await gather_with_cancel(*(results[key] for key in pending))
            for key, value in zip(pending, awaited, strict=True):
                results[key] = value
        return results

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> list[PlanStep] | None:
        """Per selection: each field with its definition, and its plain scalar read if it has
        one; None when the gate refuses any of it or middleware must see every field."""
        if self._middleware or self._refused(parent_type, grouped_field_set):
            return None
        plan: list[PlanStep] = []
        for key, field_details_list in grouped_field_set.items():
            field_def = parent_type.fields.get(field_details_list[0].node.name.value)
            if field_def is None:
                # `__typename`, or a field the schema lacks: graphql-core's own way.
                plan.append((key, field_details_list, field_def, None, False))
                continue
            resolve = field_def.resolve
            leaf = resolve if type(resolve) is PlainLeaf else None
            plain = not (
                field_def.args
                or field_details_list[0].node.arguments
                or _directed(field_details_list)
            )
            plan.append((key, field_details_list, field_def, leaf, plain))
        return plan

    # The audit.

    def _fields_of(self, grouped_field_set: GroupedFieldSet) -> Mapping[str, str]:
        """A record's selection as the audit names it: response key -> field, without `__`s."""
        return {
            key: details[0].node.name.value
            for key, details in grouped_field_set.items()
            if not details[0].node.name.value.startswith("__")
        }


class WrittenForAnother(RuntimeError):
    """A record read written for one selection was met by another: an internal error."""


def _written(run: Runner, spec: Spec) -> Runner:
    """`run`, except for a record read written as `spec` (`compiled.Served`): that is noted for
    the audit as `run` would note it (the record itself by its caller; its children at their
    own places, with the fields the selection names) and put in the response as it stands."""
    places = written_children(spec)

    def run_or_written(ex: Any, source: Any, path: Path, selection: _Selection) -> Any:
        served = getattr(source, "served", None)
        if served is None:
            return run(ex, source, path, selection)
        if served.spec is not selection.served and served.spec != selection.served:
            # Never so: both sides work the spec out alike (`compiled.spec_of`). A written row
            # carries nothing else to complete it by (`incidents.service.WRITTEN_ROW`).
            raise WrittenForAnother(WrittenForAnother.__doc__)
        context: HubContext = ex.context_value
        context.served.written(source, served, path, places)
        return orjson.Fragment(served.json)

    return run_or_written
