"""What watches a request while its agent works: the client, the clock, silence, spawn.

- `watch_disconnect`: a task that reads `receive` and cancels the request's task when the
  client goes away (started only once the agent has to wait).
- `Later`: runs a coroutine in a task of its own after a delay, unless cancelled first
  (a stream whose agent is slow to give its first item is opened that way).
- `Keepalive`: one timer per open stream that sends an SSE comment (`: keepalive`) when
  nothing was sent for a while, so proxies with idle timeouts keep the stream open during
  a long tool call. Comments are valid SSE that clients ignore.
- `track_spawned` / `cancel_spawned`: tasks an agent starts with `asyncio.create_task`
  while serving a request are noted on its `RequestState` (through the event loop's task
  factory, installed once per loop), so that a client's leaving or a timeout cancels them
  too instead of leaving them running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .context import RequestState, _current

if TYPE_CHECKING:
    from .endpoint import Exchange

__all__ = [
    "KEEPALIVE",
    "Keepalive",
    "Later",
    "cancel_spawned",
    "track_spawned",
    "watch_disconnect",
]

KEEPALIVE = b": keepalive\n\n"


async def watch_disconnect(receive: Any, task: asyncio.Task[Any], exchange: Exchange) -> None:
    """Cancel `task` (the one running the agent) when the client goes away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not exchange.done:
                exchange.disconnected = True
                task.cancel()
            return


class Later:
    """Start `work()` in a task after `delay` seconds, unless `cancel()` came first."""

    __slots__ = ("handle", "task", "work")

    def __init__(self, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        self.work = work
        self.task: asyncio.Task[None] | None = None
        self.handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            delay, self._fire
        )

    def _fire(self) -> None:
        self.handle = None
        self.task = asyncio.ensure_future(self.work())

    def cancel(self) -> None:
        """Do not start it (if it started, `task` is still there to await)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class Keepalive:
    """Sends `: keepalive` on an open stream after `interval` seconds without a byte.

    The timer looks at `sent()` (the stream's byte count) every `interval` seconds: when it
    has not moved since the last look, a comment goes out (so after between one and two
    intervals of silence). The comment is sent by a short task of its own; the stream
    waits for it (`settle`) before sending its next frame, so frames never interleave.
    """

    __slots__ = ("handle", "interval", "last", "loop", "send", "sent", "task")

    def __init__(
        self,
        interval: float,
        send: Callable[[Any], Awaitable[None]],
        sent: Callable[[], int],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.interval = interval
        self.send = send
        self.sent = sent
        self.last = sent()
        self.task: asyncio.Task[None] | None = None
        self.handle: asyncio.TimerHandle | None = self.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        now = self.sent()
        if now == self.last and self.task is None:
            token = _current.set(None)  # the comment is the server's, not the request's
            try:
                self.task = self.loop.create_task(self._comment())
            finally:
                _current.reset(token)
        self.last = now
        self.handle = self.loop.call_later(self.interval, self._tick)

    async def _comment(self) -> None:
        try:
            await self.send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
        finally:
            self.task = None

    async def settle(self) -> None:
        """Wait for a comment being sent, if one is."""
        task = self.task
        if task is not None:
            await asyncio.shield(task)

    def stop(self) -> None:
        """No more comments (the stream is ending); one being sent still goes out."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def abort(self) -> None:
        """No more comments, and none half-sent (the stream was cut)."""
        self.stop()
        if self.task is not None:
            self.task.cancel()
            self.task = None


_last_loop: asyncio.AbstractEventLoop | None = None


def track_spawned(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` note on the current request's state each task created while serving it."""
    global _last_loop
    if loop is _last_loop:
        return
    previous = loop.get_task_factory()
    if not getattr(previous, "robutler_tracks_requests", False):

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            state = _current.get()
            if state is not None:
                if state.spawned is None:
                    state.spawned = []
                state.spawned.append(task)
            return task

        factory.robutler_tracks_requests = True  # type: ignore[attr-defined]
        loop.set_task_factory(factory)
    _last_loop = loop


def cancel_spawned(state: RequestState, current: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks started while serving `state` that are still running."""
    for task in state.spawned or ():
        if task is not current and not task.done():
            task.cancel()
    state.spawned = None
