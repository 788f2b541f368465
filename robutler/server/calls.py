"""Calling user code: decided once per callable, the same way everywhere.

Agents, resolvers, hooks, adapted agent objects and `@pricing` all call functions a user
wrote, which may be coroutine functions, async generator functions, generator functions
or plain functions (or objects whose `__call__` is one of those). `Call` looks at a
callable once, at registration, and then calls it the one right way: a coroutine is
awaited, a plain function runs in the threadpool (so it cannot block the event loop), a
generator function is called directly (that runs none of its code) and its generator is
returned. `aiter_of` iterates what an agent returned, a sync iterator in the threadpool.
`around` wraps a callable of any kind so that code runs when a call succeeds — for a
generator, when it is exhausted, never when it raises.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable
from enum import IntEnum
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

__all__ = ["Call", "CallKind", "aclose", "aiter_of", "around", "call_kind"]


class CallKind(IntEnum):
    """How a callable wants to be called."""

    SYNC = 0  # a plain function: run in the threadpool
    ASYNC = 1  # a coroutine function: awaited
    ASYNC_GEN = 2  # an async generator function: called, its generator returned
    GEN = 3  # a generator function: called, its generator returned


def call_kind(fn: Callable[..., Any]) -> CallKind:
    """The kind of `fn`, looking through `functools.partial` and `__call__` methods."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    for candidate in (target, getattr(target, "__call__", None)):  # noqa: B004
        if candidate is None:
            continue
        if inspect.iscoroutinefunction(candidate):
            return CallKind.ASYNC
        if inspect.isasyncgenfunction(candidate):
            return CallKind.ASYNC_GEN
        if inspect.isgeneratorfunction(candidate):
            return CallKind.GEN
        if inspect.isfunction(candidate) or inspect.ismethod(candidate):
            return CallKind.SYNC
    return CallKind.SYNC


class Call:
    """`fn`, with how to call it worked out once; `await call(*args, **kwargs)`."""

    __slots__ = ("fn", "kind")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.kind = call_kind(fn)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """What `fn` returned, awaited until it is not awaitable (a generator as it is)."""
        kind = self.kind
        if kind == CallKind.ASYNC:
            result = await self.fn(*args, **kwargs)
        elif kind == CallKind.SYNC:
            result = await run_in_threadpool(self.fn, *args, **kwargs)
        else:
            return self.fn(*args, **kwargs)
        if type(result) in _PLAIN:
            return result  # the usual answers: no awaitable check (an ABC check) needed
        while inspect.isawaitable(result):
            result = await result
        return result


_PLAIN = frozenset({type(None), str, dict, list, tuple, bytes, int, float, bool})


def aiter_of(source: Any) -> AsyncIterator[Any]:
    """Iterate `source` asynchronously: an async iterable as it is, a list or tuple in
    place, any other iterable in the threadpool (its `next` may block)."""
    if isinstance(source, AsyncIterator):
        return source  # the agent's own async iterator: no wrapper generator per item
    return _aiter(source)


async def _aiter(source: Any) -> AsyncIterator[Any]:
    if isinstance(source, AsyncIterable):
        inner = source.__aiter__()
        try:
            async for item in inner:
                yield item
        finally:
            await aclose(inner)  # `async for` would leave it open until collected
    elif isinstance(source, (list, tuple)):
        for item in source:
            yield item
    else:
        iterator = iter(source)
        try:
            async for item in iterate_in_threadpool(iterator):
                yield item
        finally:
            # Closing the wrapper must close a sync generator too, so that its `finally`
            # runs now (a stream cut short), not when it is garbage collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(ValueError):  # still running in a worker thread
                    close()
            # What the agent returned, when it is not its own iterator (the `openai`
            # client's `Stream`): closing it lets go of what it reads from, now.
            close = getattr(source, "close", None) if source is not iterator else None
            if close is not None:
                close()


async def aclose(iterator: Any) -> None:
    """Close an async iterator now (its `finally` runs), if it can be closed."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def around(
    fn: Callable[..., Any],
    before: Callable[[], Any],
    after: Callable[[Any], None],
) -> Callable[..., Any]:
    """A wrapper of `fn`'s own kind that calls `before()` first and `after(state)` (with
    what `before` returned) once the call succeeded: when a coroutine or function returned,
    when a generator was exhausted. A call that raises, or a generator that raises or is
    closed early, never reaches `after`."""
    kind = call_kind(fn)
    wrapper: Any
    if kind == CallKind.ASYNC_GEN:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = before()
            async for item in fn(*args, **kwargs):
                yield item
            after(state)

    elif kind == CallKind.GEN:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = before()
            yield from fn(*args, **kwargs)
            after(state)

    elif kind == CallKind.ASYNC:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = before()
            result = await fn(*args, **kwargs)
            after(state)
            return result

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = before()
            result = fn(*args, **kwargs)
            after(state)
            return result

    functools.update_wrapper(wrapper, fn)
    return wrapper
