"""The probe: agents, hooks and an ASGI wrapper that record one Trace per request.

Everything the probe sees gets a number from one counter (`Mark.seq`), so the checks can
tell what happened before what: hooks starting and ending, the agent, the tasks it spawns
and its stream, every `send()` the app makes, the client leaving, the app returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.exceptions import HTTPException

from robutler.server import StreamingWrapper, get_context, pricing

from .plans import (
    HANDLER_PRICE,
    HANDLER_REASON,
    MAX_HOOKS,
    STREAM_PRICE,
    STREAM_REASON,
    TOOL_PRICE,
    TOOL_REASON,
    TRACKED_REASON,
    USAGE,
    Scenario,
)

HEADER = "x-lifecycle-probe"
# How long work that goes on after its client left is given before the probe calls it a
# leak: event-loop turns when the driver runs the app by hand (a disconnect is seen in
# one or two), seconds when it is served by uvicorn (the socket's end has to arrive).
GRACE_TURNS = 50
LIVE_GRACE = 1.0
# How long a waiting finalize hook waits at most for the client to close its end.
WAIT_BOUND = 2.0


class ProbeError(Exception):
    """Raised on purpose by a probe agent, tool or hook."""


@dataclass
class Mark:
    """Something the probe saw: when (a global sequence number) and in which context."""

    seq: int
    ctx: Any


@dataclass
class FinalizeMark(Mark):
    """The first probe finalize hook's view of the response, taken when it ran."""

    response: Any = None
    age: float | None = None  # the context's get_duration(), and the request's own age
    request_age: float = 0.0
    wrapper_status: str | None = None
    status_code: int | None = None
    bytes_sent: int | None = None
    error: BaseException | None = None
    body: bytes | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class SendRecord:
    """One `send()` the app made: when it was called and returned, whether it raised, and
    whether its client had already left when it returned (`lost`)."""

    seq_in: int
    message: dict[str, Any]
    seq_out: int | None = None
    ok: bool = False
    lost: bool = False

    @property
    def body(self) -> bytes:
        return bytes(self.message.get("body", b"")) if self.is_body else b""

    @property
    def is_body(self) -> bool:
        return self.message.get("type") == "http.response.body"

    @property
    def final(self) -> bool:
        return self.is_body and not self.message.get("more_body", False)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """Resolve `future` on its loop, from any thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _resolve(future)
        return
    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Signal:
    """Something that happens once (the client left, closed its end), from any thread;
    `seq` says when. Coroutines on any loop can wait for it, threads too (`probe.lock`)."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self.seq: int | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        return self.seq is not None

    def set(self) -> None:
        with self._probe.lock:
            if self.seq is not None:
                return
            self.seq = self._probe.next_seq()
            waiters, self._waiters = self._waiters, []
            self._probe.lock.notify_all()
        for loop, future in waiters:
            _wake(loop, future)

    def subscribe(self, future: asyncio.Future[None]) -> bool:
        """Resolve `future` when the signal comes; False when it came already."""
        with self._probe.lock:
            if self.seq is not None:
                return False
            self._waiters.append((future.get_loop(), future))
            return True

    async def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` s; True when the signal came."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.subscribe(future):
            return True
        try:
            await asyncio.wait((future,), timeout=timeout)
        finally:
            future.cancel()
        return self.is_set()


class Gate:
    """Lets a gated agent produce piece n only after `release()` was called n times.

    `waiting` is the piece the agent is parked on (0: none); `changed` (a Condition) is
    notified when it parks, so a test can wait for the server to be quiescent. A parked
    agent also wakes when its client leaves (`left`).
    """

    def __init__(self, changed: threading.Condition, left: Signal) -> None:
        self._lock = threading.Lock()
        self._changed = changed
        self._left = left
        self.released = 0
        self.waiting = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    async def wait(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.released >= n:
                return
            future: asyncio.Future[None] = loop.create_future()
            waiter = (n, loop, future)
            self._waiters.append(waiter)
            self.waiting = n
        self._left.subscribe(future)
        with self._changed:
            self._changed.notify_all()
        try:
            await future
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self.waiting = 0

    def parked(self) -> bool:
        """The agent waits for a piece that was not released yet."""
        with self._lock:
            return self.waiting > self.released

    def release(self, count: int = 1) -> None:
        with self._lock:
            self.released += count
            ready = [w for w in self._waiters if w[0] <= self.released]
            self._waiters = [w for w in self._waiters if w[0] > self.released]
        for _, loop, future in ready:
            _wake(loop, future)


class Trace:
    """Everything the probe recorded about one request (read it under `probe.lock`).

    `driver` ("asgi" or "live") says how the request is driven; `hold_final` (live) makes
    the probe hold the app's last send until the client has hung up.
    """

    def __init__(self, probe: Probe, scenario: Scenario, driver: str = "asgi") -> None:
        self.probe = probe
        self.scenario = scenario
        self.driver = driver
        self.token = uuid.uuid4().hex
        self.created = time.perf_counter()
        self.left = Signal(probe)  # the client went away before its answer was complete
        self.closed = Signal(probe)  # the client closed its end (done or not)
        self.gate = Gate(probe.lock, self.left) if scenario.agent.kind == "gated" else None
        self.hold_final = False
        self.final_held = False
        self.host_cancelled = False
        self.body_read: int | None = None
        self.receiving = 0  # receive() calls of the app still waiting
        self.heard_disconnect = Signal(probe)  # a receive() of the app said http.disconnect
        self.before: list[Mark] = []
        self.before_slots: list[list[Mark]] = [[] for _ in scenario.before]
        self.before_ends: list[list[Mark]] = [[] for _ in scenario.before]
        self.resolver: list[Mark] = []
        self.agent: list[Mark] = []
        self.agent_exit: list[Mark] = []
        self.agent_data: list[Any] = []
        self.spawned: list[Mark] = []
        self.spawned_exit: list[Mark] = []
        self.pieces: list[Mark] = []
        self.stream_started: list[Mark] = []
        self.stream_exit: list[Mark] = []
        self.stream_done: list[Mark] = []
        self.stalls: list[Mark] = []
        self.background: list[asyncio.Task[None]] = []  # tasks the agent did not await
        self.background_end: str | None = None  # "cancelled", or "finished" on its own
        self.outlived: list[str] = []
        self.tracked: list[tuple[str, float]] = []
        self.tool_ok = 0
        self.tool_calls = 0
        self.finalize: list[FinalizeMark] = []
        self.finalize_slots: list[list[Mark]] = [[] for _ in scenario.finalize]
        self.finalize_ends: list[list[Mark]] = [[] for _ in scenario.finalize]
        self.finalize_end: list[Mark] = []
        self.usage_at_end: dict[str, Any] | None = None
        self.logs: list[tuple[str, BaseException | None]] = []
        self.sends: list[SendRecord] = []
        self.app_calls = 0
        self.app_task: asyncio.Task[Any] | None = None
        self.app_done: int | None = None
        self.app_error: BaseException | None = None

    @property
    def agent_name(self) -> str:
        prefix = self.probe.prefix
        s = self.scenario
        sync = "-sync" if s.sync_handler else ""
        if s.route == "static":
            return f"{prefix}-priced{sync}" if s.priced else f"{prefix}{sync}"
        if s.route == "unknown":
            return f"{prefix}-unknown-{self.token}"
        return f"{prefix}-{'dsync' if s.sync_handler else 'dyn'}-{self.token}"

    @property
    def path(self) -> str:
        """Where the scenario's request goes: the agent's own route, or the front door."""
        s = self.scenario
        what = "responses" if s.responses else "chat/completions"
        if s.front_door:
            return f"{self.probe.front_door}/{what}"
        return f"/{self.agent_name}/{what}"

    @property
    def body(self) -> bytes:
        """The request body the scenario sends (the front door's `model` is the agent)."""
        s = self.scenario
        model = self.agent_name if s.front_door else "probe"
        text = f"probe {self.token}"
        if s.bad_body:
            if s.responses:
                return b'{"model": "%s", "input": ' % model.encode()
            return b'{"messages": [{"role": "user", "content": '
        data: dict[str, Any] = {"model": model}
        if s.responses:
            data["input"] = text
        else:
            data["messages"] = [{"role": "user", "content": text}]
        if s.stream:
            data["stream"] = True
            if s.include_usage:
                data["stream_options"] = {"include_usage": True}
        return json.dumps(data).encode()

    def headers(self, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """Request headers: JSON, the probe token, and `extra` (e.g. authorization)."""
        return [
            ("content-type", "application/json"),
            (HEADER, self.token),
            *((k.lower(), v) for k, v in (extra or {}).items()),
        ]

    def release(self, count: int = 1) -> None:
        """Let a gated agent produce `count` more pieces."""
        if self.gate is not None:
            self.gate.release(count)

    @property
    def released(self) -> int:
        return self.gate.released if self.gate is not None else len(self.scenario.agent.pieces)

    def client_closes(self, complete: bool) -> None:
        """The driver's client closed its end; before the whole answer unless `complete`."""
        if not complete:
            self.left.set()
        self.closed.set()

    def cancel_from_host(self) -> None:
        """Cancel the request's task on the server's loop, as a host would (any thread)."""
        loop = self.probe.loop

        def cancel() -> None:
            task = self.app_task
            if self.app_done is None and task is not None and not task.done():
                self.host_cancelled = True
                task.cancel()

        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)

    # facts -------------------------------------------------------------------------

    def accepted_body(self) -> bytes:
        """The body bytes of every send() that returned normally."""
        return b"".join(r.body for r in self.sends if r.ok)

    def handed_start(self) -> int | None:
        """The status of the http.response.start the app handed to the server, if any."""
        for record in self.sends:
            if record.message.get("type") == "http.response.start":
                return int(record.message["status"])
        return None

    @property
    def finished(self) -> bool:
        """The ASGI app returned for this request."""
        return self.app_done is not None

    @property
    def quiescent(self) -> bool:
        """Nothing more happens on the server until the test acts: the app returned, or
        the gated agent waits for a piece the test has not released."""
        return self.app_done is not None or (self.gate is not None and self.gate.parked())

    def __repr__(self) -> str:
        return f"<Trace {self.token[:8]} {self.scenario.describe()}>"


# Every live trace by token, for the log handler (records name no probe).
_TRACES: weakref.WeakValueDictionary[str, Trace] = weakref.WeakValueDictionary()


class _ErrorLog(logging.Handler):
    """Files robutler's error records under the request they were logged in."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        ctx = get_context()
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        token = headers.get(HEADER) if headers is not None else None
        trace = _TRACES.get(token) if token else None
        if trace is None:
            return
        exc = record.exc_info[1] if record.exc_info else None
        with trace.probe.lock:
            trace.logs.append((record.getMessage(), exc))


_ERROR_LOG = _ErrorLog()


class Probe:
    """Probe agents and hooks installed on a server, and `asgi`, the server wrapped so that
    every send of a probe request is logged. `register(scenario)` makes a Trace whose
    `path`, `headers()` and `body` make up the request."""

    def __init__(self, server: Any, *, prefix: str = "lifecycle-probe") -> None:
        self.server = server
        self.prefix = prefix
        self.lock = threading.Condition()
        self._seq = itertools.count(1)
        self.traces: dict[str, Trace] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        robutler_log = logging.getLogger("robutler")
        if _ERROR_LOG not in robutler_log.handlers:
            robutler_log.addHandler(_ERROR_LOG)
        self._install(server)

    # registry ----------------------------------------------------------------------

    @property
    def front_door(self) -> str | None:
        """The server's OpenAI front door (`openai_prefix`, e.g. `/v1`), None when it is off."""
        prefix = getattr(self.server, "openai_prefix", None)
        return prefix if isinstance(prefix, str) else None

    def register(self, scenario: Scenario, driver: str = "asgi") -> Trace:
        """A trace for `scenario`; on a server without a front door, a front-door scenario
        goes to the agent's own route of the same API instead."""
        if scenario.front_door and self.front_door is None:
            scenario = replace(scenario, api="responses" if scenario.responses else "chat")
        trace = Trace(self, scenario, driver)
        with self.lock:
            self.traces[trace.token] = trace
            _TRACES[trace.token] = trace
        return trace

    def forget(self, trace: Trace) -> None:
        with self.lock:
            self.traces.pop(trace.token, None)
            _TRACES.pop(trace.token, None)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (at most `timeout` s) until `predicate()` holds; it is evaluated under the lock."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def next_seq(self) -> int:
        """The next number of the probe's one counter (call it under the lock)."""
        return next(self._seq)

    def mark(self, where: list[Any], ctx: Any) -> None:
        """Note that something happened now, in context `ctx`."""
        with self.lock:
            where.append(Mark(self.next_seq(), ctx))
            self.lock.notify_all()

    def _trace_of(self, request: Any) -> Trace | None:
        headers = getattr(request, "headers", None)
        token = headers.get(HEADER) if headers is not None else None
        return self.traces.get(token) if token else None

    # installation ------------------------------------------------------------------

    def _install(self, server: Any) -> None:
        agent = server.agent
        agent.before_request(self._before_observer)
        for pos in range(MAX_HOOKS):
            for sync in (False, True):
                agent.before_request(self._before_slot(pos, sync))
        agent.finalize_request(self._finalize_observer)
        for pos in range(MAX_HOOKS):
            for sync in (False, True):
                agent.finalize_request(self._finalize_slot(pos, sync))
        agent.finalize_request(self._finalize_end)
        priced = pricing(**HANDLER_PRICE, reason=HANDLER_REASON)
        agent(self.prefix)(self._agent_async)
        agent(f"{self.prefix}-sync")(self._agent_sync)
        agent(f"{self.prefix}-priced")(priced(self._agent_async))
        agent(f"{self.prefix}-priced-sync")(priced(self._agent_sync))
        agent(self._resolve_async)(self._agent_async)
        agent(self._resolve_sync)(self._agent_sync)
        dynamic = getattr(server, "dynamic_agents", None)
        if isinstance(dynamic, list) and len(dynamic) >= 2:
            # the probe's resolvers go first, so a catch-all resolver of the app cannot take
            # the probe's names
            dynamic[:] = dynamic[-2:] + dynamic[:-2]

    # hooks -------------------------------------------------------------------------

    async def _before_observer(self, request: Any) -> None:
        trace = self._trace_of(request)
        if trace is not None:
            self.mark(trace.before, get_context())

    def _before_slot(self, pos: int, sync: bool) -> Callable[[Any], Any]:
        def plan_of(request: Any) -> tuple[Trace, Any] | None:
            trace = self._trace_of(request)
            if trace is None or pos >= len(trace.scenario.before):
                return None
            plan = trace.scenario.before[pos]
            return (trace, plan) if plan.sync == sync else None

        def end(trace: Trace, plan: Any) -> None:
            self.mark(trace.before_ends[pos], get_context())
            if plan.action == "raise":
                raise ProbeError(f"before hook {pos + 1} failed on purpose")
            if plan.action == "reject":
                raise HTTPException(plan.status, f"rejected by before hook {pos + 1}")

        if sync:

            def sync_slot(request: Any) -> None:
                found = plan_of(request)
                if found is not None:
                    self.mark(found[0].before_slots[pos], get_context())
                    end(*found)

            return sync_slot

        async def async_slot(request: Any) -> None:
            found = plan_of(request)
            if found is None:
                return
            self.mark(found[0].before_slots[pos], get_context())
            if found[1].action == "await":
                for _ in range(2):
                    await asyncio.sleep(0)
            end(*found)

        return async_slot

    async def _finalize_observer(self, request: Any, response: Any) -> None:
        trace = self._trace_of(request)
        if trace is None:
            return
        mark = FinalizeMark(0, get_context(), response)
        duration = getattr(mark.ctx, "get_duration", None)
        mark.age = duration() if callable(duration) else None
        mark.request_age = time.perf_counter() - trace.created
        if isinstance(response, StreamingWrapper):
            mark.wrapper_status = response.status
            mark.bytes_sent = response.bytes_sent
            mark.error = response.error
        else:
            body = getattr(response, "body", None)
            mark.body = bytes(body) if isinstance(body, (bytes, bytearray, memoryview)) else None
            mark.headers = list(getattr(response, "raw_headers", None) or ())
        mark.status_code = getattr(response, "status_code", None)
        with self.lock:
            mark.seq = self.next_seq()
            trace.finalize.append(mark)
            self.lock.notify_all()

    def _finalize_slot(self, pos: int, sync: bool) -> Callable[[Any, Any], Any]:
        def plan_of(request: Any) -> tuple[Trace, Any] | None:
            trace = self._trace_of(request)
            if trace is None or pos >= len(trace.scenario.finalize):
                return None
            plan = trace.scenario.finalize[pos]
            return (trace, plan) if plan.sync == sync else None

        def end(trace: Trace, plan: Any) -> None:
            self.mark(trace.finalize_ends[pos], get_context())
            if plan.action == "raise":
                raise ProbeError(f"finalize hook {pos + 1} failed on purpose")

        if sync:

            def sync_slot(request: Any, response: Any) -> None:
                found = plan_of(request)
                if found is None:
                    return
                trace, plan = found
                self.mark(trace.finalize_slots[pos], get_context())
                if plan.action == "await" and trace.scenario.client.kind != "steps":
                    self.wait_until(trace.closed.is_set, WAIT_BOUND)
                end(trace, plan)

            return sync_slot

        async def async_slot(request: Any, response: Any) -> None:
            found = plan_of(request)
            if found is None:
                return
            trace, plan = found
            self.mark(trace.finalize_slots[pos], get_context())
            if plan.action == "await":
                # like a write to a database that takes as long as the client takes to go
                if trace.scenario.client.kind != "steps":
                    await trace.closed.wait(WAIT_BOUND)
                for _ in range(3):
                    await asyncio.sleep(0)
            end(trace, plan)

        return async_slot

    async def _finalize_end(self, request: Any, response: Any) -> None:
        trace = self._trace_of(request)
        if trace is None:
            return
        ctx = get_context()
        usage = copy.deepcopy(getattr(ctx, "usage", None))
        with self.lock:
            trace.usage_at_end = usage if isinstance(usage, dict) else None
        self.mark(trace.finalize_end, ctx)

    # resolvers ---------------------------------------------------------------------

    def _resolver(self, kind: str, name: str) -> Any:
        trace = self.traces.get(name.rsplit("-", 1)[-1])
        if trace is None or name != trace.agent_name:
            return False
        s = trace.scenario
        owner = "dsync" if s.route == "dynamic" and s.sync_handler else "dyn"
        if owner != kind:
            return False
        self.mark(trace.resolver, get_context())
        return False if s.route == "unknown" else {"token": trace.token}

    async def _resolve_async(self, name: str) -> Any:
        return self._resolver("dyn", name)

    def _resolve_sync(self, name: str) -> Any:
        return self._resolver("dsync", name)

    # agents ------------------------------------------------------------------------

    def _agent_trace(self, messages: Any, request: Any, agent_data: Any) -> Trace | None:
        trace = self._trace_of(request)
        if trace is None:
            text = str(messages[-1].get("content")) if messages else ""
            trace = self.traces.get(text.rsplit(" ", 1)[-1])
        if trace is not None:
            self.mark(trace.agent, get_context())
            with self.lock:
                trace.agent_data.append(agent_data)
        return trace

    async def _agent_async(
        self,
        messages: list[dict[str, Any]],
        stream: bool = False,
        request: Any = None,
        agent_data: Any = None,
    ) -> Any:
        trace = self._agent_trace(messages, request, agent_data)
        if trace is None:
            return "lifecycle probe"
        try:
            self._track(trace, trace.scenario.agent.track[:1])
            if trace.scenario.agent.background:
                trace.background.append(asyncio.create_task(self._background(trace)))
            await asyncio.create_task(self._spawned(trace))
            for ok in trace.scenario.agent.uses:
                with contextlib.suppress(ProbeError):
                    await self._tool(trace, ok)
            return self._answer(trace, messages, stream)
        finally:
            self.mark(trace.agent_exit, None)

    def _agent_sync(
        self,
        messages: list[dict[str, Any]],
        stream: bool = False,
        request: Any = None,
        agent_data: Any = None,
    ) -> Any:
        trace = self._agent_trace(messages, request, agent_data)
        if trace is None:
            return "lifecycle probe"
        try:
            self._track(trace, trace.scenario.agent.track)
            for ok in trace.scenario.agent.uses:
                with contextlib.suppress(ProbeError):
                    self._tool_sync(trace, ok)
            return self._answer(trace, messages, stream)
        finally:
            self.mark(trace.agent_exit, None)

    async def _spawned(self, trace: Trace) -> None:
        """A task the agent spawns and awaits: it notes its context and tracks credits."""
        self.mark(trace.spawned, get_context())
        try:
            await self._stall(trace, "a task the agent spawned")
            await asyncio.sleep(0)  # let concurrent requests interleave their usage
            self._track(trace, trace.scenario.agent.track[1:])
        finally:
            self.mark(trace.spawned_exit, None)

    async def _background(self, trace: Trace) -> None:
        """A task the agent starts and never awaits: once its client has gone before the
        answer was complete, it keeps busy for a grace period unless it is cancelled."""
        try:
            await trace.closed.wait(10.0)
            if trace.left.is_set():
                if trace.driver == "live":
                    await asyncio.sleep(LIVE_GRACE)
                else:
                    for _ in range(GRACE_TURNS):
                        await asyncio.sleep(0)
            trace.background_end = "finished"
        except asyncio.CancelledError:
            trace.background_end = "cancelled"
            raise

    async def _busy(self, trace: Trace) -> Any:
        """The pieces from an async generator that never awaits."""
        self.mark(trace.stream_started, None)
        try:
            for piece in trace.scenario.agent.pieces:
                self.mark(trace.pieces, get_context())
                yield piece
            self.mark(trace.stream_done, None)
        finally:
            self.mark(trace.stream_exit, None)

    def _track(self, trace: Trace, credits: tuple[float, ...]) -> None:
        ctx = get_context()
        if ctx is None:
            return
        for amount in credits:
            rid = ctx.track_usage(amount, TRACKED_REASON, {"probe": trace.token})
            with self.lock:
                trace.tracked.append((rid, amount))

    @pricing(**TOOL_PRICE, reason=TOOL_REASON)
    async def _tool(self, trace: Trace, ok: bool) -> None:
        self._tool_call(trace, ok)

    @pricing(**TOOL_PRICE, reason=TOOL_REASON)
    def _tool_sync(self, trace: Trace, ok: bool) -> None:
        self._tool_call(trace, ok)

    def _tool_call(self, trace: Trace, ok: bool) -> None:
        with self.lock:
            trace.tool_calls += 1
            if ok:
                trace.tool_ok += 1
        if not ok:
            raise ProbeError("the priced tool failed on purpose")

    async def _stall(self, trace: Trace, who: str) -> None:
        """Once the client has left, wait as busy work would; a server that cancels the
        work ends the wait, otherwise the work is noted as having outlived its client."""
        if not trace.left.is_set() or trace.outlived:
            return  # (work seen to outlive its client once is not waited for again)
        self.mark(trace.stalls, None)
        if trace.driver == "live":
            await asyncio.sleep(LIVE_GRACE)
            grace = f"{LIVE_GRACE:g} s"
        else:
            for _ in range(GRACE_TURNS):
                await asyncio.sleep(0)
            grace = f"{GRACE_TURNS} event-loop turns"
        with self.lock:
            trace.outlived.append(f"{who} was still running {grace} after its client left")

    def _answer(self, trace: Trace, messages: list[dict[str, Any]], stream: bool) -> Any:
        """Build what the agent returns for its plan (raising for 'raise_before/call')."""
        from ..mock_agent import MockAgent

        a = trace.scenario.agent
        usage = dict(USAGE) if a.usage else None
        if a.kind == "reply":
            text = a.pieces[0]
            if a.form == "message":
                return {"role": "assistant", "content": text}
            if a.form == "completion":
                return MockAgent("probe", text, usage=usage).run(messages)
            return text
        if a.kind == "tool_calls":
            if a.form == "message":
                calls = [
                    {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": x}}
                    for i, (n, x) in enumerate(a.tools)
                ]
                return {"role": "assistant", "content": None, "tool_calls": calls}
            mock = MockAgent(
                "probe", tool_calls=[{"name": n, "arguments": x} for n, x in a.tools], usage=usage
            )
            if stream:
                return _ObservedEvents(self, trace, mock.run_streamed(messages))
            return mock.run(messages)
        if a.kind == "unsupported":
            if a.form == "stream_item":
                return self._agen(trace, None, tail=42)
            return {"int": 42, "none": None, "bytes": b"bytes", "dict": {"unexpected": True}}.get(
                a.form, object()
            )
        return self._stream_answer(trace, messages)

    def _stream_answer(self, trace: Trace, messages: list[dict[str, Any]]) -> Any:
        from ..mock_agent import MockAgent

        a = trace.scenario.agent
        failure = ProbeError("the probe agent failed on purpose")
        fail = failure if a.kind in ("raise_before", "raise_after") else None
        if a.kind == "raise_before" and a.form == "call":
            raise failure
        if a.form == "events":
            mock = MockAgent(
                "probe",
                chunks=list(a.pieces) or ([] if fail is None else ["x"]),
                usage=dict(USAGE) if a.usage else None,
                delay=a.delay,
                fail_after=None if fail is None else len(a.pieces),
            )
            return _ObservedEvents(self, trace, mock.run_streamed(messages))
        if a.form == "sync_gen":
            return self._gen(trace, fail)
        if a.form == "busy":
            return self._busy(trace)
        return self._agen(trace, fail)

    async def _agen(self, trace: Trace, fail: BaseException | None, tail: Any = None) -> Any:
        self.mark(trace.stream_started, None)
        try:
            async with contextlib.aclosing(self._produce(trace)) as pieces:
                async for piece in pieces:
                    yield piece
            if fail is not None:
                raise fail
            if tail is not None:
                yield tail
        finally:
            self.mark(trace.stream_exit, None)

    @pricing(**STREAM_PRICE, reason=STREAM_REASON)
    async def _produce(self, trace: Trace) -> Any:
        """The pieces of an async stream (priced per call: charged once it is exhausted)."""
        a = trace.scenario.agent
        for i, piece in enumerate(a.pieces):
            await self._stall(trace, "the agent's stream")
            if trace.gate is not None:
                await trace.gate.wait(i + 1)
                await self._stall(trace, "the agent's stream")
            if a.delay:
                await asyncio.sleep(a.delay)
            self.mark(trace.pieces, get_context())
            yield piece
        self.mark(trace.stream_done, None)

    def _gen(self, trace: Trace, fail: BaseException | None) -> Any:
        self.mark(trace.stream_started, None)
        try:
            for piece in trace.scenario.agent.pieces:
                self.mark(trace.pieces, get_context())
                yield piece
            if fail is not None:
                raise fail
        finally:
            self.mark(trace.stream_exit, None)

    # the ASGI wrapper --------------------------------------------------------------

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        """The server, with every send of a probe request logged in its Trace."""
        self.loop = asyncio.get_running_loop()
        trace = None
        if scope.get("type") == "http":
            for key, value in scope.get("headers") or ():
                if key == HEADER.encode():
                    trace = self.traces.get(value.decode("latin-1"))
                    break
        if trace is None:
            await self.server(scope, receive, send)
            return
        found = trace

        async def logged_receive() -> Any:
            with self.lock:
                found.receiving += 1
            try:
                message = await receive()
            finally:
                with self.lock:
                    found.receiving -= 1
            if message.get("type") == "http.request" and not message.get("more_body", False):
                with self.lock:
                    if found.body_read is None:
                        found.body_read = self.next_seq()
            elif message.get("type") == "http.disconnect":
                found.heard_disconnect.set()
            return message

        async def logged_send(message: Any) -> None:
            record = SendRecord(0, dict(message))
            with self.lock:
                record.seq_in = self.next_seq()
                found.sends.append(record)
                self.lock.notify_all()
            ok = False
            try:
                if found.hold_final and record.final:
                    await self._hold(found)
                await send(message)
                ok = True
            finally:
                with self.lock:
                    record.seq_out = self.next_seq()
                    record.ok = ok
                    record.lost = found.left.is_set()
                    self.lock.notify_all()

        with self.lock:
            trace.app_calls += 1
            trace.app_task = asyncio.current_task()
        try:
            await self.server(scope, logged_receive, logged_send)
        except asyncio.CancelledError as exc:
            trace.app_error = exc
            if trace.driver != "live" or not trace.host_cancelled:
                raise
            # the "host" that cancelled is the live driver: uvicorn need not hear of it
            uncancel = getattr(trace.app_task, "uncancel", None)
            if uncancel is not None:
                uncancel()
        except BaseException as exc:
            trace.app_error = exc
            raise
        finally:
            with self.lock:
                trace.app_done = self.next_seq()
                self.lock.notify_all()

    async def _hold(self, trace: Trace) -> None:
        """Hold the last send until the client has hung up and a server that listens for
        that (a receive() is waiting) was told; one that notices cancels this wait."""
        with self.lock:
            trace.final_held = True
            self.lock.notify_all()
        await trace.closed.wait(WAIT_BOUND)
        for _ in range(3):
            await asyncio.sleep(0)
        if trace.receiving or trace.heard_disconnect.is_set():
            await trace.heard_disconnect.wait(LIVE_GRACE)
            for _ in range(GRACE_TURNS):
                await asyncio.sleep(0)


class _ObservedEvents:
    """A MockAgent stream run whose events record the context they are produced in."""

    def __init__(self, probe: Probe, trace: Trace, run: Any) -> None:
        self._probe = probe
        self._trace = trace
        self._run = run

    async def stream_events(self) -> Any:
        trace = self._trace
        self._probe.mark(trace.stream_started, None)
        try:
            async for event in self._run.stream_events():
                await self._probe._stall(trace, "the agent's stream")
                self._probe.mark(trace.pieces, get_context())
                yield event
        finally:
            self._probe.mark(trace.stream_exit, None)
