"""The probe: agents, hooks and an ASGI wrapper that record one Trace per request."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from robutler.server import StreamingWrapper, get_context

from .plans import MAX_HOOKS, USAGE, Scenario

HEADER = "x-lifecycle-probe"


class ProbeError(Exception):
    """Raised on purpose by a probe agent or a probe hook."""


# --------------------------------------------------------------------------------------
# The probe: agents, hooks and an ASGI wrapper that record one Trace per request


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


@dataclass
class SendRecord:
    """One `send()` the app made: when it was called and returned, and whether it raised."""

    seq_in: int
    message: dict[str, Any]
    seq_out: int | None = None
    ok: bool = False

    @property
    def body(self) -> bytes:
        return bytes(self.message.get("body", b"")) if self.is_body else b""

    @property
    def is_body(self) -> bool:
        return self.message.get("type") == "http.response.body"

    @property
    def final(self) -> bool:
        return self.is_body and not self.message.get("more_body", False)


class Gate:
    """Lets a gated agent produce piece n only after `release()` was called n times.

    `waiting` is the piece the agent is parked on (0: none); `changed` (a Condition) is
    notified when it parks, so a test can wait for the server to be quiescent.
    """

    def __init__(self, changed: threading.Condition) -> None:
        self._lock = threading.Lock()
        self._changed = changed
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
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Trace:
    """Everything the probe recorded about one request (read it under `probe.lock`)."""

    def __init__(self, probe: Probe, scenario: Scenario) -> None:
        self.probe = probe
        self.scenario = scenario
        self.token = uuid.uuid4().hex
        self.created = time.perf_counter()
        self.gate = Gate(probe.lock) if scenario.agent.kind == "gated" else None
        self.before: list[Mark] = []
        self.before_slots: list[list[Mark]] = [[] for _ in scenario.before]
        self.resolver: list[Mark] = []
        self.agent: list[Mark] = []
        self.agent_data: list[Any] = []
        self.spawned: list[Mark] = []
        self.pieces: list[Mark] = []
        self.finalize: list[FinalizeMark] = []
        self.finalize_slots: list[list[Mark]] = [[] for _ in scenario.finalize]
        self.finalize_end: list[Mark] = []
        self.sends: list[SendRecord] = []
        self.app_calls = 0
        self.app_done: int | None = None
        self.app_error: BaseException | None = None

    @property
    def agent_name(self) -> str:
        prefix = self.probe.prefix
        s = self.scenario
        if s.route == "static":
            return f"{prefix}-sync" if s.sync_handler else prefix
        if s.route == "unknown":
            return f"{prefix}-unknown-{self.token}"
        return f"{prefix}-{'dsync' if s.sync_handler else 'dyn'}-{self.token}"

    @property
    def path(self) -> str:
        return f"/{self.agent_name}/chat/completions"

    @property
    def body(self) -> bytes:
        """The request body the scenario sends."""
        s = self.scenario
        if s.bad_body:
            return b'{"messages": [{"role": "user", "content": '
        data: dict[str, Any] = {
            "model": "probe",
            "messages": [{"role": "user", "content": f"probe {self.token}"}],
        }
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
        self._install(server)

    # registry ----------------------------------------------------------------------

    def register(self, scenario: Scenario) -> Trace:
        trace = Trace(self, scenario)
        with self.lock:
            self.traces[trace.token] = trace
        return trace

    def forget(self, trace: Trace) -> None:
        with self.lock:
            self.traces.pop(trace.token, None)

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

    def _mark(self, trace: Trace, where: list[Any], ctx: Any) -> None:
        with self.lock:
            where.append(Mark(next(self._seq), ctx))
            self.lock.notify_all()

    def _next(self) -> int:
        return next(self._seq)

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
        agent(self.prefix)(self._agent_async)
        agent(f"{self.prefix}-sync")(self._agent_sync)
        agent(self._resolve_async)(self._agent_async)
        agent(self._resolve_sync)(self._agent_sync)
        dynamic = getattr(server, "dynamic_agents", None)
        if isinstance(dynamic, list) and len(dynamic) >= 2:
            # the probe's resolvers go first, so a catch-all resolver of the app cannot take
            # the probe's names
            dynamic[:] = dynamic[-2:] + dynamic[:-2]

    async def _before_observer(self, request: Any) -> None:
        trace = self._trace_of(request)
        if trace is not None:
            self._mark(trace, trace.before, get_context())

    def _before_slot(self, pos: int, sync: bool) -> Callable[[Any], Any]:
        def act(request: Any) -> None:
            trace = self._trace_of(request)
            if trace is None or pos >= len(trace.scenario.before):
                return
            plan = trace.scenario.before[pos]
            if plan.sync != sync:
                return
            self._mark(trace, trace.before_slots[pos], get_context())
            if plan.action == "raise":
                raise ProbeError(f"before hook {pos + 1} failed on purpose")
            if plan.action == "reject":
                raise HTTPException(plan.status, f"rejected by before hook {pos + 1}")

        if sync:

            def sync_slot(request: Any) -> None:
                act(request)

            return sync_slot

        async def async_slot(request: Any) -> None:
            act(request)

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
        mark.status_code = getattr(response, "status_code", None)
        with self.lock:
            mark.seq = self._next()
            trace.finalize.append(mark)
            self.lock.notify_all()

    def _finalize_slot(self, pos: int, sync: bool) -> Callable[[Any, Any], Any]:
        def act(request: Any) -> None:
            trace = self._trace_of(request)
            if trace is None or pos >= len(trace.scenario.finalize):
                return
            plan = trace.scenario.finalize[pos]
            if plan.sync != sync:
                return
            self._mark(trace, trace.finalize_slots[pos], get_context())
            if plan.action != "ok":
                raise ProbeError(f"finalize hook {pos + 1} failed on purpose")

        if sync:

            def sync_slot(request: Any, response: Any) -> None:
                act(request)

            return sync_slot

        async def async_slot(request: Any, response: Any) -> None:
            act(request)

        return async_slot

    async def _finalize_end(self, request: Any, response: Any) -> None:
        trace = self._trace_of(request)
        if trace is not None:
            self._mark(trace, trace.finalize_end, get_context())

    def _resolver(self, kind: str, name: str) -> Any:
        trace = self.traces.get(name.rsplit("-", 1)[-1])
        if trace is None or name != trace.agent_name:
            return False
        s = trace.scenario
        owner = "dsync" if s.route == "dynamic" and s.sync_handler else "dyn"
        if owner != kind:
            return False
        self._mark(trace, trace.resolver, get_context())
        return False if s.route == "unknown" else {"token": trace.token}

    async def _resolve_async(self, name: str) -> Any:
        return self._resolver("dyn", name)

    def _resolve_sync(self, name: str) -> Any:
        return self._resolver("dsync", name)

    def _agent_trace(self, messages: Any, request: Any, agent_data: Any) -> Trace | None:
        trace = self._trace_of(request)
        if trace is None:
            text = str(messages[-1].get("content")) if messages else ""
            trace = self.traces.get(text.rsplit(" ", 1)[-1])
        if trace is not None:
            self._mark(trace, trace.agent, get_context())
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
        self._mark(trace, trace.spawned, await asyncio.create_task(_spawned_context()))
        return self._answer(trace, messages, stream)

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
        return self._answer(trace, messages, stream)

    def _answer(self, trace: Trace, messages: list[dict[str, Any]], stream: bool) -> Any:
        """Build what the agent returns for its plan (raising for 'raise_before/call')."""
        from ..mock_agent import MockAgent

        a = trace.scenario.agent
        usage = dict(USAGE) if a.usage else None
        failure = ProbeError("the probe agent failed on purpose")
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
                return self._agen(trace, a.pieces, 0.0, None, tail=42)
            return {"int": 42, "none": None, "bytes": b"bytes", "dict": {"unexpected": True}}.get(
                a.form, object()
            )
        fail = failure if a.kind in ("raise_before", "raise_after") else None
        if a.kind == "raise_before" and a.form == "call":
            raise failure
        if a.form == "events":
            mock = MockAgent(
                "probe",
                chunks=list(a.pieces) or ([] if fail is None else ["x"]),
                usage=usage,
                delay=a.delay,
                fail_after=None if fail is None else len(a.pieces),
            )
            return _ObservedEvents(self, trace, mock.run_streamed(messages))
        if a.form == "sync_gen":
            return self._gen(trace, a.pieces, fail)
        return self._agen(trace, a.pieces, a.delay, fail, gate=trace.gate)

    async def _agen(
        self,
        trace: Trace,
        pieces: tuple[str, ...],
        delay: float,
        fail: BaseException | None,
        gate: Gate | None = None,
        tail: Any = None,
    ) -> Any:
        for i, piece in enumerate(pieces):
            if gate is not None:
                await gate.wait(i + 1)
            if delay:
                await asyncio.sleep(delay)
            self._mark(trace, trace.pieces, get_context())
            yield piece
        if fail is not None:
            raise fail
        if tail is not None:
            yield tail

    def _gen(self, trace: Trace, pieces: tuple[str, ...], fail: BaseException | None) -> Any:
        for piece in pieces:
            self._mark(trace, trace.pieces, get_context())
            yield piece
        if fail is not None:
            raise fail

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

        async def logged_send(message: Any) -> None:
            record = SendRecord(0, dict(message))
            with self.lock:
                record.seq_in = self._next()
                found.sends.append(record)
                self.lock.notify_all()
            ok = False
            try:
                await send(message)
                ok = True
            finally:
                with self.lock:
                    record.seq_out = self._next()
                    record.ok = ok
                    self.lock.notify_all()

        with self.lock:
            trace.app_calls += 1
        try:
            await self.server(scope, receive, logged_send)
        except BaseException as exc:
            trace.app_error = exc
            raise
        finally:
            with self.lock:
                trace.app_done = self._next()
                self.lock.notify_all()


async def _spawned_context() -> Any:
    return get_context()


class _ObservedEvents:
    """A MockAgent stream run whose events record the context they are produced in."""

    def __init__(self, probe: Probe, trace: Trace, run: Any) -> None:
        self._probe = probe
        self._trace = trace
        self._run = run

    async def stream_events(self) -> Any:
        async for event in self._run.stream_events():
            self._probe._mark(self._trace, self._trace.pieces, get_context())
            yield event
