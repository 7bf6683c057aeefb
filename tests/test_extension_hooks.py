"""The extensions' hooks wrapped once per class (`hub.graphql.hooks`) run as strawberry runs them:
the same hooks, in the same order, entered and left the same way, the same refusals."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from hub.graphql.hooks import OnceWrappedRunner

STAGES = ("operation", "parsing", "validation", "executing")
CONTEXT = cast("ExecutionContext", object())  # the runners keep it and read nothing of it


class Noted(SchemaExtension):
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen


class Generators(Noted):
    def on_operation(self) -> Iterator[None]:
        self.seen.append(f"{self.name} operation in")
        yield
        self.seen.append(f"{self.name} operation out")

    async def on_execute(self) -> AsyncIterator[None]:
        self.seen.append(f"{self.name} execute in")
        yield
        self.seen.append(f"{self.name} execute out")

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        self.seen.append(f"{self.name} stream {result} in")
        yield
        self.seen.append(f"{self.name} stream {result} out")


class Callables(Noted):
    def on_parse(self) -> None:
        self.seen.append(f"{self.name} parse")

    async def on_validate(self) -> None:  # type: ignore[override]
        self.seen.append(f"{self.name} validate")

    async def on_execute(self) -> None:  # type: ignore[override]
        self.seen.append(f"{self.name} execute")

    def on_stream_result(self, result: Any) -> None:  # type: ignore[override]
        self.seen.append(f"{self.name} stream {result}")


class Quiet(Noted):
    """Hooks no stage."""


class Broken(Noted):
    on_operation = 7  # type: ignore[assignment]


async def _run(runner_class: type[SchemaExtensionsRunner], names: list[str]) -> list[str]:
    seen: list[str] = []
    kinds = {"g": Generators, "c": Callables, "q": Quiet}
    extensions: list[SchemaExtension] = [kinds[n[0]](n, seen) for n in names]
    runner = runner_class(CONTEXT, extensions)
    async with runner.operation():
        for stage in STAGES[1:]:
            async with getattr(runner, stage)():
                seen.append(f"inside {stage}")
        async with runner.on_stream_result("R"):  # type: ignore[arg-type]
            seen.append("inside stream")
    with runner.parsing():  # the synchronous way in, as strawberry's execute_sync takes it
        seen.append("inside sync parsing")
    return seen


@pytest.mark.parametrize("names", [["g1", "c1", "q1", "g2"], ["c1", "g1", "c2"], ["q1"]])
async def test_the_hooks_run_as_strawberrys_runner_runs_them(names: list[str]) -> None:
    ours = await _run(OnceWrappedRunner, names)
    assert ours == await _run(SchemaExtensionsRunner, names)
    assert await _run(OnceWrappedRunner, names) == ours  # the second request, from the cache


async def test_an_async_hook_is_refused_on_the_synchronous_way_as_strawberry_refuses_it() -> None:
    messages = []
    for runner_class in (SchemaExtensionsRunner, OnceWrappedRunner):
        runner = runner_class(
            CONTEXT,
            [Callables("c1", [])],
        )
        with pytest.raises(RuntimeError) as refused, runner.validation():
            pass
        # The message names the extension object: the same but for its address.
        messages.append(re.sub(r" at 0x[0-9a-f]+", "", str(refused.value)))
    assert messages[0] == messages[1]
    assert "failed to complete synchronously" in messages[0]


def test_a_hook_that_is_not_callable_is_refused_as_strawberry_refuses_it() -> None:
    messages = []
    for runner_class in (SchemaExtensionsRunner, OnceWrappedRunner):
        runner = runner_class(
            CONTEXT,
            [Broken("b1", [])],
        )
        with pytest.raises(ValueError, match="must be callable") as refused:
            runner.operation()
        messages.append(str(refused.value).rsplit(" must ", 1)[1])
    assert messages[0] == messages[1] == "be callable, received 7"
