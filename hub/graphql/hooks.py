"""The schema extensions' hooks, each wrapped once per extension class, not once per request.

strawberry makes each request's extensions afresh and then, for each of its five stages
(operation, parsing, validation, execution, a streamed result), asks every extension for its
hook: it inspects the hook's function (a generator? a coroutine?) and wraps it in a new context
manager, through `functools.wraps`. With the hub's nine extensions that is forty-five look-ups
and a dozen new wrappers a request, the same every time, a tenth of an empty request's Python
calls. Here each (stage, extension class) is looked at once and its context manager's factory
kept; a request only binds its extension to it. What runs, in what order, and the errors a hook
of the wrong kind raises are strawberry's own (`strawberry.extensions.context`): strawberry
looks a hook up on the extension's class too, so the class decides it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from asyncio import iscoroutinefunction
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    OperationContextManager,
    ParsingContextManager,
    StreamResultContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import StreamExecutionResult

# (hook name, extension class) -> how to wrap an extension of that class, or None (no hook).
_Wrap = Callable[[SchemaExtension], WrappedHook]
_WRAPS: dict[tuple[str, type[SchemaExtension]], _Wrap | None] = {}


def _wrapping(name: str, kind: type[SchemaExtension]) -> _Wrap | None:
    """How strawberry's `get_hook` wraps `kind`'s hook `name`, decided once."""
    hook: Any = getattr(kind, name)
    if hook is getattr(SchemaExtension, name):
        return None  # the extension does not hook this stage
    if inspect.isgeneratorfunction(hook):
        return _bound(contextlib.contextmanager(hook), is_async=False)
    if inspect.isasyncgenfunction(hook):
        return _bound(contextlib.asynccontextmanager(hook), is_async=True)
    if callable(hook):
        return _from_callable(hook)
    msg = f"Hook {name} on {kind} must be callable, received {hook!r}"
    raise ValueError(msg)


def _from_callable(hook: Callable[..., Any]) -> _Wrap:
    """A plain (or coroutine) hook run on entering, as strawberry's `from_callable` runs it; a
    streamed result's hook is given the result too."""
    if iscoroutinefunction(hook):

        @contextlib.asynccontextmanager
        async def run_async(extension: SchemaExtension, *result: Any) -> AsyncIterator[None]:
            await hook(extension, *result)
            yield

        return _bound(run_async, is_async=True)

    @contextlib.contextmanager
    def run(extension: SchemaExtension, *result: Any) -> Iterator[None]:
        hook(extension, *result)
        yield

    return _bound(run, is_async=False)


def _bound(manager: Callable[..., Any], *, is_async: bool) -> _Wrap:
    def wrap(extension: SchemaExtension) -> WrappedHook:
        return WrappedHook(
            extension=extension, hook=functools.partial(manager, extension), is_async=is_async
        )

    return wrap


class _OnceWrapped:
    """`get_hook` from the wrappings kept for each extension class."""

    HOOK_NAME: str

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        key = (self.HOOK_NAME, type(extension))
        try:
            wrap = _WRAPS[key]
        except KeyError:
            wrap = _WRAPS[key] = _wrapping(*key)
        return None if wrap is None else wrap(extension)


class _Operation(_OnceWrapped, OperationContextManager):
    pass


class _Validation(_OnceWrapped, ValidationContextManager):
    pass


class _Parsing(_OnceWrapped, ParsingContextManager):
    pass


class _Executing(_OnceWrapped, ExecutingContextManager):
    pass


class _StreamResult(_OnceWrapped, StreamResultContextManager):
    pass


class OnceWrappedRunner(SchemaExtensionsRunner):
    """strawberry's runner, its stages' hooks wrapped once per extension class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)

    def on_stream_result(self, result: StreamExecutionResult) -> StreamResultContextManager:
        return _StreamResult(self.extensions, result)
