"""The ASGI driver: requests driven by hand through the app in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from robutler.server import get_context

from ..asgi import ASGIExchange
from .checks import ClientView, check_isolation, check_request
from .plans import RequestBatch, Scenario
from .probe import GRACE_TURNS, Trace
from .targets import Target, registered


def _exchange(trace: Trace, headers: Mapping[str, str] | None) -> ASGIExchange:
    """The request of `trace`, with a client that follows its scenario's ClientPlan."""
    plan = trace.scenario.client
    return ASGIExchange(
        trace.probe.asgi,
        trace.path,
        trace.body,
        headers=trace.headers(headers),
        leave_after=plan.frames if plan.kind == "close_after" else None,
        vanish=plan.kind == "vanish",
        buffer=plan.buffer if plan.kind == "never_read" else None,
        lost_at_end=plan.kind == "lost_at_end",
        grace_turns=GRACE_TURNS,
        slow_writes=plan.slow_writes,
        on_close=trace.client_closes,
    )


def _view(exchange: ASGIExchange) -> ClientView:
    return ClientView(
        exchange.status,
        exchange.headers,
        exchange.body,
        exchange.complete,
        left=exchange.gone,
        problems=exchange.problems,
    )


class _Cancel:
    """Cancels the task that runs the app, once, for a reason: "timeout" or "host"."""

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.reason: str | None = None
        self.active = True

    def __call__(self, reason: str) -> None:
        if self.active and self.reason is None:
            self.reason = reason
            self.task.cancel()

    def settle(self) -> None:
        """Forget the cancellation this driver asked for (Python 3.11+ counts them)."""
        uncancel = getattr(self.task, "uncancel", None)
        cancelling = getattr(self.task, "cancelling", None)
        while uncancel is not None and cancelling is not None and cancelling():
            uncancel()


async def _bounded(awaitable: Awaitable[object], seconds: float, cancel: _Cancel) -> bool:
    """Await in this very task (context changes stay visible); False after `seconds`.

    A cancellation ends the wait: one this driver asked for (`cancel`), or one the app
    raised; the trace tells them apart.
    """
    handle = asyncio.get_running_loop().call_later(seconds, cancel, "timeout")
    try:
        await awaitable
    except asyncio.CancelledError:
        # ours (timeout, host), or the app's own: a cancellation it caused and let escape
        # (the app runs in this task); the checks report one nobody asked for
        pass
    finally:
        cancel.active = False
        handle.cancel()
        if cancel.reason is not None:
            # A cancellation asked for while the app was on its way out (the host cancels
            # as the last frame is sent) may not have reached an await of the app's: it
            # would hit this task's next one. Take it here.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        cancel.settle()
    return cancel.reason != "timeout"


class _Lifespan:
    """Runs an app's lifespan startup and shutdown by hand."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception:  # an app without lifespan support
            await self.outbox.put({"type": "lifespan.unsupported"})

    async def _step(self, what: str, timeout: float) -> None:
        await self.inbox.put({"type": f"lifespan.{what}"})
        reply = await asyncio.wait_for(self.outbox.get(), timeout)
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"the app's lifespan {what} failed: {reply.get('message')}")

    async def start(self, timeout: float) -> None:
        self.task = asyncio.ensure_future(self._run())
        await self._step("startup", timeout)

    async def stop(self, timeout: float) -> None:
        if self.task is None:
            return
        if not self.task.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await self._step("shutdown", timeout)
        await asyncio.wait((self.task,), timeout=timeout)
        if not self.task.done():
            self.task.cancel()


class ASGIRunner:
    """Runs RequestBatches through the app in one event loop of its own."""

    def __init__(
        self, target: Target, headers: Mapping[str, str] | None, timeout: float, validate: bool
    ) -> None:
        self.target = target
        self.headers = headers
        self.timeout = timeout
        self.validate = validate
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        loop = self.loop
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def run(self, batch: RequestBatch) -> list[tuple[Scenario | None, str]]:
        leaked = get_context()
        if leaked is not None:
            return [(None, f"get_context() returns {leaked!r} outside any request")]
        return self.loop.run_until_complete(self._batch(batch))

    async def _batch(self, batch: RequestBatch) -> list[tuple[Scenario | None, str]]:
        probe = self.target.probe(fresh=True)
        lifespan = _Lifespan(probe.asgi)
        await lifespan.start(self.timeout)
        out: list[tuple[Scenario | None, str]] = []
        try:
            baseline = asyncio.all_tasks()
            traces = [registered(probe, s, "asgi") for s in batch.scenarios]
            if batch.concurrent:
                views = await asyncio.gather(*(self._one(t) for t in traces))
            else:
                views = [await self._one(t) for t in traces]
            running = await _settle(baseline, self.timeout)
            if running:
                names = ", ".join(repr(t.get_coro()) for t in running)
                out.append((None, f"tasks left running after the requests ended: {names}"))
            if get_context() is not None:
                out.append((None, "a request's context is still current after the requests"))
            for trace, view in zip(traces, views, strict=True):
                problems = check_request(trace, view, validate=self.validate)
                out.extend((trace.scenario, p) for p in problems)
            out.extend((None, p) for p in check_isolation(traces))
            for trace in traces:
                probe.forget(trace)
        finally:
            await lifespan.stop(self.timeout)
        return out

    async def _one(self, trace: Trace) -> ClientView:
        exchange = _exchange(trace, self.headers)
        was = get_context()
        cancel = _Cancel()

        async def give_up_when_stuck() -> None:
            await exchange.stuck.wait()
            exchange.leave()

        def closes(complete: bool) -> None:
            # The host cancels the request as the connection closes, before the app's own
            # waits on the client (its disconnect watcher, a blocked write) hear of it.
            trace.client_closes(complete)
            if cancel.active:
                trace.host_cancelled = True
                cancel("host")

        async def host_at_once() -> None:  # a client that vanished closed before the app ran
            closes(False)

        helpers = [asyncio.ensure_future(give_up_when_stuck())]
        if trace.scenario.client.host_cancels:
            exchange.on_close = closes
            if exchange.gone:
                helpers.append(asyncio.ensure_future(host_at_once()))
        try:
            finished = await _bounded(exchange.run(), self.timeout, cancel)
        except Exception as exc:  # the wrapper recorded it; the checks report it
            finished = True
            exchange.problems.append(f"the app raised {exc!r}")
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.wait(helpers)
        exchange.leave()  # the client closes its end now, whatever it did
        view = _view(exchange)
        if not finished:
            view.problems.append(f"the request did not finish within {self.timeout} s")
        if get_context() is not was:
            view.problems.append("the request's context leaked into the code that sent it")
        if not exchange.gone and exchange.sent and not exchange.complete:
            view.problems.append("the app returned without completing its answer")
        if not exchange.gone and not exchange.sent and finished:
            view.problems.append("the app returned without answering")
        return view


async def _settle(baseline: set[asyncio.Task[Any]], timeout: float) -> list[asyncio.Task[Any]]:
    """Wait (bounded) for the tasks started since `baseline`, and for those they start
    (closing an abandoned async generator takes a task per generator); return the ones
    still running."""
    deadline = asyncio.get_running_loop().time() + timeout
    running: list[asyncio.Task[Any]] = []
    for _ in range(8):
        running = [t for t in asyncio.all_tasks() - baseline if not t.done()]
        left = deadline - asyncio.get_running_loop().time()
        if not running or left <= 0:
            break
        await asyncio.wait(running, timeout=left)
    return [t for t in running if not t.done()]
