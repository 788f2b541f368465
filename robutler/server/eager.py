"""Run a coroutine's first step at once, and pay for a task only if it has to wait.

Most requests finish their finalize hooks, and many agents their whole answer, without
ever waiting. Starting a task (and a disconnect watcher) for each costs allocations that
outlive the request and, under load, make the garbage collector run many times as often
(measured with `nox -s bench -- --profile c`). So the hot path steps the coroutine by hand
once; only a coroutine that yields is resumed, exactly as `await` would have continued it.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["finish", "resume"]


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Await `coro`, already stepped once by hand (`pending = coro.send(None)`).

    What `coro` yields goes to the running task; what the task sends or throws in (a
    cancellation) goes back into `coro`, as with `await coro` from its second step on.
    """
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    """`resume` as a real coroutine, for `asyncio.ensure_future` (tasks want one on 3.12+)."""
    return await resume(coro, pending)
