"""robutler.server.calls: how user code is called, decided once per callable."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from robutler.server.calls import Call, CallKind, aiter_of, around, call_kind


def plain(x: int) -> int:
    return x + 1


async def coro(x: int) -> int:
    return x + 2


async def agen(x: int) -> AsyncIterator[int]:
    yield x


def gen(x: int) -> Iterator[int]:
    yield x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x + 3


class SyncCallable:
    def __call__(self, x: int) -> int:
        return x + 4


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (plain, CallKind.SYNC),
        (coro, CallKind.ASYNC),
        (agen, CallKind.ASYNC_GEN),
        (gen, CallKind.GEN),
        (AsyncCallable(), CallKind.ASYNC),
        (SyncCallable(), CallKind.SYNC),
        (functools.partial(coro, 1), CallKind.ASYNC),
        (functools.partial(gen, 1), CallKind.GEN),
        (len, CallKind.SYNC),
    ],
)
def test_call_kind(fn: Any, kind: CallKind) -> None:
    assert call_kind(fn) == kind


async def test_sync_functions_run_in_the_threadpool_and_coroutines_are_awaited() -> None:
    threads: list[Any] = []

    def where(x: int) -> int:
        threads.append(threading.current_thread())
        return x

    assert await Call(where)(5) == 5
    assert threads[0] is not threading.main_thread()
    assert await Call(coro)(1) == 3
    assert await Call(AsyncCallable())(1) == 4

    def returns_awaitable() -> Any:
        return coro(0)

    assert await Call(returns_awaitable)() == 2


async def test_generators_are_returned_unstarted() -> None:
    started: list[str] = []

    def lazy() -> Iterator[int]:
        started.append("yes")
        yield 1

    result = await Call(lazy)()
    assert started == [] and [x async for x in aiter_of(result)] == [1]
    assert [x async for x in await Call(agen)(7)] == [7]


async def test_aiter_of_keeps_an_async_iterator_and_iterates_others() -> None:
    source = agen(1)
    assert aiter_of(source) is source
    assert [x async for x in aiter_of([1, 2])] == [1, 2]
    assert [x async for x in aiter_of(iter((3, 4)))] == [3, 4]


@pytest.mark.parametrize("fn_kind", ["sync", "async", "gen", "agen"])
@pytest.mark.parametrize("fails", [False, True])
async def test_around_reaches_after_only_on_success(fn_kind: str, fails: bool) -> None:
    events: list[Any] = []

    def body() -> None:
        if fails:
            raise ValueError("no")

    def f_sync() -> int:
        body()
        return 1

    async def f_async() -> int:
        body()
        return 1

    def f_gen() -> Iterator[int]:
        yield 1
        body()

    async def f_agen() -> AsyncIterator[int]:
        yield 1
        body()

    fn = {"sync": f_sync, "async": f_async, "gen": f_gen, "agen": f_agen}[fn_kind]
    wrapped = around(fn, lambda: "token", events.append)
    assert call_kind(wrapped) == call_kind(fn)
    try:
        result = await Call(wrapped)()
        if fn_kind in ("gen", "agen"):
            result = [x async for x in aiter_of(result)]
    except ValueError:
        assert fails
    assert events == ([] if fails else ["token"])
    assert wrapped.__name__ == fn.__name__


def test_around_a_generator_closed_early_is_not_a_success() -> None:
    events: list[Any] = []

    def f() -> Iterator[int]:
        yield 1
        yield 2

    g = around(f, lambda: None, events.append)()
    next(g)
    g.close()
    assert events == []
    asyncio.run(asyncio.sleep(0))
