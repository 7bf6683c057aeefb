"""A request's executor, and everything it holds (the context, its loaders and their rows, the
audit's notes), goes when the request ends, without the garbage collector: graphql-core's
resolver helpers are the executor's own bound methods, kept on it, a cycle that held a page's
six hundred objects until a collection, each collection a pause of milliseconds."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from graphql import (
    ExecutionResult,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    parse,
)

from hub.graphql.executor import HubExecutor
from hub.graphql.schema import build_schema
from hub.settings import Settings


@pytest.fixture
def no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _executor(settings: Settings, query: str) -> object:
    schema = build_schema(settings)
    executor_class = schema.execution_context_class
    assert executor_class is not None
    return executor_class.build(schema._schema, parse(query))


@pytest.mark.usefixtures("no_collector")
def test_an_executor_is_freed_without_the_collector() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
    executor = _executor(settings, "{ __typename }")
    gone = weakref.ref(executor)
    del executor
    assert gone() is None


async def test_its_helpers_still_gather_and_track_work() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
    executor = _executor(settings, "{ __typename }")
    helpers = executor.async_helpers  # type: ignore[attr-defined]

    async def answer(value: int) -> int:
        await asyncio.sleep(0)
        return value

    assert await helpers.gather([answer(1), answer(2)]) == [1, 2]
    helpers.track([])  # nothing to track: accepted, as graphql-core's own accepts it
    del executor
    with pytest.raises(RuntimeError, match="execution has ended"):
        helpers.track([])


def _changes_schema() -> GraphQLSchema:
    change = GraphQLObjectType(
        "Change", {"id": GraphQLField(GraphQLString), "kind": GraphQLField(GraphQLString)}
    )
    return GraphQLSchema(
        query=GraphQLObjectType("Query", {"ping": GraphQLField(GraphQLString)}),
        subscription=GraphQLObjectType("Subscription", {"change": GraphQLField(change)}),
    )


def test_a_subscriptions_events_leave_nothing_behind_in_its_executor() -> None:
    """Each event is executed by a copy of the subscription's executor, which collects the
    event's fields anew. graphql-core's copy shares the memos keyed by those fields' identity
    (its subfields', the gate's refusals, the selections' plans): every event added to each,
    kept with its fields for the subscription's life (about 2 kB an event: `bench-soak`'s
    four subscribers grew the hub by 10.9 MiB in two minutes)."""
    executor = HubExecutor.for_schema(gates=False, notes_served=False, contract=False).build(
        _changes_schema(), parse("subscription { change { id kind } }")
    )
    memos = (
        executor._relevant_sub_fields,  # graphql-core's memo, shared by its copies
        executor._selections,  # the hub's own, likewise
        executor._refusals,
    )
    for n in range(50):
        event = executor.build_per_event_executor({"change": {"id": str(n), "kind": "pushed"}})
        result = event.execute_operation(serially=False)
        assert result == ExecutionResult({"change": {"id": str(n), "kind": "pushed"}}, None)
    assert [len(memo) for memo in memos] == [0, 0, 0]
