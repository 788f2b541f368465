"""Hypothesis properties for the request lifecycle of a robutler server (DESIGN.md §Lifecycle).

Point them at your own server (a `ServerBase`, or a function that builds one) and they check,
request by request, that `finalize_request` runs exactly once, after the last byte of the
answer, that every hook, the agent, its stream and finalize share one context of the
request's own, and that finalize reports completed / disconnected / failed truthfully::

    from robutler_testing.lifecycle import LifecycleMachine, check_lifecycle

    def test_lifecycle():
        check_lifecycle(make_app)                        # ASGI level, hundreds of scenarios

    TestLiveLifecycle = LifecycleMachine.for_app(make_app)  # concurrent requests, live uvicorn

The checks add probe agents (`/lifecycle-probe...`) and probe hooks to the server; your
own hooks, middleware and settings stay in place (pass `headers=` if the server wants an API
key). A request's plan travels in an `x-lifecycle-probe` header.

- Strategies: `agent_plans`, `hook_plans`, `client_plans`, `scenarios`, `request_batches`,
  `machine_scenarios` draw `Scenario`s whose `repr` says in plain words what happens.
- Invariants: `check_request` and `check_isolation` list what a finished request broke.
- Entry points: `check_lifecycle(app, live=False)` and `LifecycleMachine.for_app(app)`.
- Profiles: `lifecycle_settings()`; `ROBUTLER_LIFECYCLE_PROFILE=deep` selects the long run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import select
import socket
import threading
import time
import unittest
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import h11
from hypothesis import HealthCheck, Phase, given, note
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)
from starlette.exceptions import HTTPException

from robutler.server import StreamingWrapper, get_context

__all__ = [
    "PROFILE_ENV",
    "AgentPlan",
    "ClientPlan",
    "ClientView",
    "Expectation",
    "HookPlan",
    "LifecycleMachine",
    "LifecycleViolation",
    "Probe",
    "ProbeError",
    "RequestBatch",
    "Scenario",
    "Trace",
    "agent_plans",
    "check_isolation",
    "check_lifecycle",
    "check_request",
    "client_plans",
    "expect",
    "hook_plans",
    "lifecycle_settings",
    "machine_scenarios",
    "request_batches",
    "scenarios",
]

PROFILE_ENV = "ROBUTLER_LIFECYCLE_PROFILE"
HEADER = "x-lifecycle-probe"
MAX_HOOKS = 3
USAGE = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
_UNSUPPORTED_TYPES = {
    "int": "int",
    "none": "NoneType",
    "bytes": "bytes",
    "dict": "dict",
    "object": "object",
    "stream_item": "int",
}


def _pretty(obj: Any, p: Any, cycle: bool) -> None:
    """Hypothesis's printer shows scenarios in plain words, as their repr does."""
    for i, line in enumerate(repr(obj).splitlines()):
        if i:
            p.break_()
        p.text(line)


class ProbeError(Exception):
    """Raised on purpose by a probe agent or a probe hook."""


class LifecycleViolation(AssertionError):
    """A server broke a lifecycle guarantee; the message names the scenario and each problem."""


# --------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class HookPlan:
    """One hook of a scenario: sync or async; it returns, raises, or rejects (HTTPException)."""

    sync: bool = False
    action: Literal["ok", "raise", "reject"] = "ok"
    status: int = 401

    def describe(self) -> str:
        kind = "sync" if self.sync else "async"
        if self.action == "raise":
            return f"{kind} hook that raises"
        if self.action == "reject":
            return f"{kind} hook that rejects with HTTP {self.status}"
        return f"{kind} hook"

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return self.describe()


Route = Literal["static", "dynamic", "unknown"]
AgentKind = Literal[
    "reply", "chunks", "raise_before", "raise_after", "unsupported", "tool_calls", "gated"
]


@dataclass(frozen=True)
class AgentPlan:
    """What the probe agent does.

    `kind`: reply (one text), chunks (`pieces`, `delay` seconds apart), raise_before,
    raise_after (after `pieces`), unsupported (returns a value robutler cannot serve),
    tool_calls (`tools` as (name, JSON arguments)), gated (each piece waits for
    `Trace.release()`). `form` is how the answer is handed over; `usage` makes the agent
    report token usage (forms built on `MockAgent`).
    """

    kind: AgentKind = "reply"
    pieces: tuple[str, ...] = ("hello",)
    form: str = "str"
    delay: float = 0.0
    usage: bool = False
    tools: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        pieces = f"{len(self.pieces)} chunk(s) {list(self.pieces)!r}"
        how = {
            "str": "returns a str",
            "message": "returns a message dict",
            "completion": "returns MockAgent.run()'s result",
            "async_gen": "from an async generator",
            "sync_gen": "from a sync generator",
            "events": "as MockAgent stream events",
            "call": "when called",
            "mock": "through MockAgent",
        }.get(self.form, self.form)
        extra = f", {self.delay:g} s apart" if self.delay else ""
        extra += ", with token usage" if self.usage else ""
        if self.kind == "reply":
            return f"replies {self.pieces[0]!r} ({how}{extra})"
        if self.kind == "chunks":
            return f"yields {pieces} {how}{extra}"
        if self.kind == "gated":
            return f"yields {pieces}, each once the test releases it"
        if self.kind == "raise_before":
            return f"raises before the first chunk ({how})"
        if self.kind == "raise_after":
            return f"yields {pieces} then raises ({how}{extra})"
        if self.kind == "unsupported":
            if self.form == "stream_item":
                return f"yields {pieces} then an unsupported int"
            return f"returns an unsupported {_UNSUPPORTED_TYPES[self.form]}"
        calls = ", ".join(f"{name}({args})" for name, args in self.tools)
        return f"calls tools {calls} ({how}{extra})"

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class ClientPlan:
    """What the client does: reads everything; closes after `frames` body frames (0: as
    soon as the server read the request); never reads (the connection holds `buffer`
    bytes before the server's writes block, then the client gives up); or hangs up before
    the server reads the body ("vanish"); or "steps": a state machine drives it. With `slow_writes` (ASGI driver only) every send
    waits one event-loop turn, as on servers that queue their writes."""

    kind: Literal["read_all", "close_after", "never_read", "vanish", "steps"] = "read_all"
    frames: int = 0
    buffer: int = 0
    slow_writes: bool = False

    def describe(self) -> str:
        slow = " over a connection where each write waits a loop turn" if self.slow_writes else ""
        if self.kind == "close_after":
            if self.frames == 0:
                return f"closes the connection once the server read the request{slow}"
            return f"closes the connection after {self.frames} body frame(s){slow}"
        if self.kind == "never_read":
            return f"never reads (the connection holds {self.buffer} bytes){slow}"
        if self.kind == "vanish":
            return "hangs up before the server reads the body"
        if self.kind == "steps":
            return "reads and hangs up as the machine's steps say"
        return f"reads the whole answer{slow}"

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Scenario:
    """One request: the agent's behaviour, the request, the client, the hooks and the route.

    `route`: "static", "dynamic" (a resolver accepts the name) or "unknown" (no resolver
    does: 404). `sync_handler` serves it through a sync handler (and, when dynamic, a sync
    resolver). `bad_body` sends invalid JSON (422).
    """

    agent: AgentPlan = field(default_factory=AgentPlan)
    stream: bool = False
    include_usage: bool = False
    client: ClientPlan = field(default_factory=ClientPlan)
    before: tuple[HookPlan, ...] = ()
    finalize: tuple[HookPlan, ...] = ()
    route: Route = "static"
    sync_handler: bool = False
    bad_body: bool = False

    def describe(self) -> str:
        kind = "streamed" if self.stream else "non-streamed"
        usage = " with include_usage" if self.include_usage else ""
        sync = "sync" if self.sync_handler else "async"
        if self.route == "static":
            where = f"a static agent ({sync} handler)"
        elif self.route == "dynamic":
            where = f"a dynamic agent ({sync} resolver and handler)"
        else:
            where = "a name no resolver accepts (404)"
        parts = [f"{kind} request{usage} to {where} that {self.agent.describe()}"]
        if self.bad_body:
            parts.append("the body is invalid JSON")
        parts.append(f"client {self.client.describe()}")
        if self.before:
            parts.append("before hooks: " + ", ".join(h.describe() for h in self.before))
        if self.finalize:
            parts.append("finalize hooks: " + ", ".join(h.describe() for h in self.finalize))
        return "; ".join(parts)

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


@dataclass(frozen=True)
class RequestBatch:
    """Requests run one after the other, or concurrently, against one server."""

    scenarios: tuple[Scenario, ...]
    concurrent: bool = False

    def describe(self) -> str:
        how = "concurrently" if self.concurrent else "one after the other"
        lines = [f"{len(self.scenarios)} request(s) run {how}:"]
        lines += [f"  {i}. {s.describe()}" for i, s in enumerate(self.scenarios, 1)]
        return "\n".join(lines)

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return self.describe()


# --------------------------------------------------------------------------------------
# Strategies

_TEXT = st.text(alphabet="abcxyz é☃", min_size=1, max_size=4)


def _pieces(min_size: int, max_size: int) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(_TEXT, min_size=min_size, max_size=max_size).map(tuple)


_TOOLS = st.lists(
    st.tuples(
        st.sampled_from(["get_weather", "search", "add"]),
        st.dictionaries(st.sampled_from(["city", "q", "n"]), st.integers(0, 9), max_size=2).map(
            lambda d: json.dumps(d, sort_keys=True)
        ),
    ),
    min_size=1,
    max_size=2,
).map(tuple)

_DELAYS = st.sampled_from([0.0, 0.0, 0.001, 0.004])

_ROUTES: tuple[Route, ...] = ("static", "dynamic") * 4 + ("unknown",)
ALL_KINDS: tuple[AgentKind, ...] = (
    "reply",
    "chunks",
    "raise_before",
    "raise_after",
    "unsupported",
    "tool_calls",
)


_WEIGHTS = {"reply": 2, "chunks": 3, "raise_after": 2, "gated": 1}


@st.composite
def agent_plans(draw: st.DrawFn, kinds: Sequence[AgentKind] = ALL_KINDS) -> AgentPlan:
    """An agent behaviour of one of `kinds` (gated needs a driver that releases pieces)."""
    weighted = [k for k in kinds for _ in range(_WEIGHTS.get(k, 1))]
    kind = draw(st.sampled_from(weighted))
    if kind == "reply":
        form = draw(st.sampled_from(["str", "message", "completion"]))
        usage = form == "completion" and draw(st.booleans())
        return AgentPlan(kind, (draw(_TEXT),), form, usage=usage)
    if kind == "chunks":
        form = draw(st.sampled_from(["async_gen", "events", "sync_gen"]))
        delay = 0.0 if form == "sync_gen" else draw(_DELAYS)
        usage = form == "events" and draw(st.booleans())
        return AgentPlan(kind, draw(_pieces(0, 5)), form, delay=delay, usage=usage)
    if kind == "gated":
        return AgentPlan(kind, draw(_pieces(1, 4)), "async_gen")
    if kind == "raise_before":
        return AgentPlan(
            kind, (), draw(st.sampled_from(["call", "async_gen", "sync_gen", "events"]))
        )
    if kind == "raise_after":
        form = draw(st.sampled_from(["async_gen", "events", "sync_gen"]))
        delay = 0.0 if form == "sync_gen" else draw(_DELAYS)
        return AgentPlan(kind, draw(_pieces(1, 4)), form, delay=delay)
    if kind == "unsupported":
        form = draw(st.sampled_from(list(_UNSUPPORTED_TYPES)))
        pieces = draw(_pieces(1, 3)) if form == "stream_item" else ()
        return AgentPlan(kind, pieces, form)
    form = draw(st.sampled_from(["message", "mock"]))
    usage = form == "mock" and draw(st.booleans())
    return AgentPlan("tool_calls", (), form, usage=usage, tools=draw(_TOOLS))


def hook_plans(kind: Literal["before", "finalize"]) -> st.SearchStrategy[HookPlan]:
    """A before hook (returns, raises, or rejects with 401/402/403/429) or a finalize hook
    (returns or raises), sync or async."""
    actions = ["ok"] * 10 + ["raise"] + (["reject"] if kind == "before" else ["raise"])
    return st.builds(
        HookPlan,
        sync=st.booleans(),
        action=st.sampled_from(actions),
        status=st.sampled_from([401, 402, 403, 429]),
    ).map(lambda h: h if h.action == "reject" else HookPlan(h.sync, h.action))


@st.composite
def client_plans(draw: st.DrawFn) -> ClientPlan:
    """What the client does with the answer (mostly reads it all)."""
    kinds = ["read_all"] * 4 + ["close_after"] * 3 + ["never_read"] * 2 + ["vanish"]
    kind = draw(st.sampled_from(kinds))
    if kind == "vanish":
        return ClientPlan("vanish")
    slow = draw(st.booleans())
    if kind == "close_after":
        return ClientPlan("close_after", frames=draw(st.integers(0, 5)), slow_writes=slow)
    if kind == "never_read":
        buffer = draw(st.sampled_from([0, 150, 600, 5000]))
        return ClientPlan("never_read", buffer=buffer, slow_writes=slow)
    return ClientPlan(slow_writes=slow)


@st.composite
def scenarios(
    draw: st.DrawFn,
    agents: st.SearchStrategy[AgentPlan] | None = None,
    clients: st.SearchStrategy[ClientPlan] | None = None,
    routes: Sequence[Route] = _ROUTES,
    max_hooks: int = MAX_HOOKS,
) -> Scenario:
    """A request scenario: agent, stream/include_usage, client, hooks, route, body.

    `routes` are drawn uniformly (repeat one to weight it); at most `max_hooks` (<= 3)
    hooks of each kind.
    """
    if not 0 <= max_hooks <= MAX_HOOKS:
        raise ValueError(f"max_hooks must be between 0 and {MAX_HOOKS}, got {max_hooks}")
    agent = draw(agents if agents is not None else agent_plans())
    stream = draw(st.sampled_from([False, True, True]))
    include_usage = stream and draw(st.booleans())
    client = draw(clients if clients is not None else client_plans())
    before = tuple(draw(st.lists(hook_plans("before"), max_size=max_hooks)))
    final = tuple(draw(st.lists(hook_plans("finalize"), max_size=max_hooks)))
    route = draw(st.sampled_from(list(routes)))
    sync_handler = route != "unknown" and draw(st.sampled_from([False, False, False, True]))
    bad_body = draw(st.sampled_from([False] * 15 + [True]))
    return Scenario(
        agent, stream, include_usage, client, before, final, route, sync_handler, bad_body
    )


def request_batches(
    scenario: st.SearchStrategy[Scenario] | None = None, max_requests: int = 3
) -> st.SearchStrategy[RequestBatch]:
    """One to `max_requests` scenarios, run one after the other or concurrently."""
    items = st.lists(
        scenario if scenario is not None else scenarios(), min_size=1, max_size=max_requests
    )
    return st.builds(RequestBatch, items.map(tuple), st.booleans())


def machine_scenarios() -> st.SearchStrategy[Scenario]:
    """Scenarios for `LifecycleMachine`: mostly gated streams the machine advances (no
    404s: the app may have resolvers of its own that accept any name)."""
    agents = st.one_of(
        agent_plans(["gated"]),
        agent_plans(["gated"]),
        agent_plans(["reply", "chunks", "raise_after", "tool_calls", "raise_before"]),
    )
    return scenarios(
        agents=agents,
        clients=st.just(ClientPlan("steps")),
        routes=("static", "dynamic"),
        max_hooks=2,
    )


# --------------------------------------------------------------------------------------
# What a scenario should produce


@dataclass(frozen=True)
class Expectation:
    """What a client that reads the whole answer should get, and which hooks should run."""

    status: int
    streamed: bool  # a 200 SSE answer
    content: str | None = None
    finish_reason: str | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()
    usage: Mapping[str, int] | None = None
    error_event: bool = False  # the stream ends with an error event
    message_has: str | None = None  # text the error message must contain
    final_status: str | None = None  # StreamingWrapper status for a full read
    before_runs: tuple[int, ...] = ()
    resolver_runs: int = 0
    agent_runs: bool = False
    agent_fails: bool = False


def expect(s: Scenario) -> Expectation:
    """The expected outcome of `s` for a client that reads everything."""
    before_runs: list[int] = []
    failing: HookPlan | None = None
    for hook in s.before:
        before_runs.append(0 if failing else 1)
        if failing is None and hook.action != "ok":
            failing = hook
    runs = tuple(before_runs)
    if failing is not None:
        status = 500 if failing.action == "raise" else failing.status
        return Expectation(status, False, before_runs=runs)
    resolver = 0 if s.route == "static" else 1
    if s.route == "unknown":
        return Expectation(404, False, before_runs=runs, resolver_runs=resolver)
    if s.bad_body:
        return Expectation(422, False, before_runs=runs, resolver_runs=resolver)
    a = s.agent
    base: dict[str, Any] = {"before_runs": runs, "resolver_runs": resolver, "agent_runs": True}
    usage = USAGE if a.usage else None
    if a.kind in ("reply", "chunks", "gated", "tool_calls"):
        tools = a.tools if a.kind == "tool_calls" else ()
        content: str | None = "".join(a.pieces) if a.kind != "tool_calls" else None
        finish = "tool_calls" if tools else "stop"
        if s.stream:
            return Expectation(
                200,
                True,
                content or "",
                finish,
                tools,
                usage if s.include_usage else None,
                final_status="completed",
                **base,
            )
        return Expectation(200, False, content, finish, tools, usage, **base)
    unsupported = a.kind == "unsupported"
    message_has = repr(_UNSUPPORTED_TYPES[a.form]) if unsupported else None
    midstream = a.kind == "raise_after" or (unsupported and a.form == "stream_item")
    if s.stream and midstream:
        return Expectation(
            200,
            True,
            "".join(a.pieces),
            None,
            error_event=True,
            message_has=message_has,
            final_status="failed",
            agent_fails=True,
            **base,
        )
    return Expectation(500, False, message_has=message_has, agent_fails=True, **base)


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
        from .mock_agent import MockAgent

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


# --------------------------------------------------------------------------------------
# Invariants


@dataclass
class ClientView:
    """What the client got: status, headers, body bytes; whether it read the whole answer
    (`complete`) or went away before its end (`left`)."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False
    left: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class _Folded:
    content: str = ""
    finish: str | None = None
    tools: dict[int, list[str]] = field(default_factory=dict)
    usage: Any = None
    error: Any = None
    done: bool = False
    ids: set[str] = field(default_factory=set)


def _fold_sse(body: bytes, problems: list[str]) -> _Folded:
    """Fold the complete `data:` events of an SSE body."""
    out = _Folded()
    text = body.decode("utf-8", "replace")
    blocks = text.split("\n\n")[:-1]
    for i, block in enumerate(blocks):
        if out.done:
            problems.append(f"event {i} comes after data: [DONE]")
            break
        if not block.startswith("data: "):
            problems.append(f"event {i} is not a data event: {block[:60]!r}")
            continue
        payload = block[len("data: ") :]
        if payload == "[DONE]":
            out.done = True
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            problems.append(f"event {i} is not JSON: {payload[:60]!r}")
            continue
        if "error" in event:
            out.error = event["error"]
            continue
        if event.get("id"):
            out.ids.add(event["id"])
        if event.get("usage"):
            out.usage = event["usage"]
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.content += delta["content"]
            for call in delta.get("tool_calls") or ():
                slot = out.tools.setdefault(call.get("index", 0), ["", ""])
                fn = call.get("function") or {}
                slot[0] += fn.get("name") or ""
                slot[1] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish = choice["finish_reason"]
    return out


def _ctx_problems(trace: Trace) -> list[str]:
    """Every context the probe saw for `trace` is one RequestState, this request's own."""
    out: list[str] = []
    seen: list[tuple[str, Any]] = []
    groups: tuple[tuple[str, list[Sequence[Mark]]], ...] = (
        ("a before hook", [trace.before, *trace.before_slots]),
        ("the resolver", [trace.resolver]),
        ("the agent", [trace.agent]),
        ("a task the agent spawned", [trace.spawned]),
        ("the agent's stream", [trace.pieces]),
        ("finalize", [trace.finalize, *trace.finalize_slots, trace.finalize_end]),
    )
    for name, marks in groups:
        for group in marks:
            seen.extend((name, m.ctx) for m in group)
    if not seen:
        return out
    for name, ctx in seen:
        if ctx is None:
            out.append(f"{name} ran without a context (get_context() was None)")
    contexts = [c for _, c in seen if c is not None]
    first = contexts[0] if contexts else None
    for name, ctx in seen:
        if ctx is not None and ctx is not first:
            out.append(f"{name} saw a different context than the first hook ({ctx!r} vs {first!r})")
            break
    fin = trace.finalize[0] if trace.finalize else None
    if fin is not None and fin.age is not None and fin.age > fin.request_age + 0.001:
        out.append(
            f"the context began {fin.age - fin.request_age:.3f} s before the request was "
            "sent: it is an earlier request's"
        )
    if first is not None:
        request = getattr(first, "request", None)
        headers = getattr(request, "headers", None)
        token = headers.get(HEADER) if headers is not None else None
        if token != trace.token:
            out.append(f"the context belongs to another request (probe token {token!r})")
        if getattr(first, "agent_name", None) != trace.agent_name:
            out.append(
                f"the context names agent {getattr(first, 'agent_name', None)!r}, "
                f"not {trace.agent_name!r}"
            )
        if trace.agent:
            if getattr(first, "stream", None) is not trace.scenario.stream:
                out.append(f"the context says stream={getattr(first, 'stream', None)!r}")
            messages = getattr(first, "messages", None) or [{}]
            if trace.token not in str(messages[-1].get("content")):
                out.append("the context holds another request's messages")
    return out


def _order_problems(trace: Trace) -> list[str]:
    out: list[str] = []
    fin = trace.finalize[0] if trace.finalize else None
    if fin is not None:
        for record in trace.sends:
            what = record.message.get("type")
            if record.seq_in > fin.seq:
                out.append(f"the server sent {what} after finalize started")
                break
            if record.seq_out is None or record.seq_out > fin.seq:
                out.append(f"finalize started while the server was still sending {what}")
                break
        late = [m for m in (*trace.agent, *trace.pieces, *trace.spawned) if m.seq > fin.seq]
        if late:
            out.append("the agent was still producing after finalize started")
        if any(m.seq < fin.seq for group in trace.finalize_slots for m in group):
            out.append("a finalize hook ran before the first one")
    if trace.before:
        start = trace.before[0].seq
        later = [
            *trace.resolver,
            *trace.agent,
            *trace.pieces,
            *(m for group in trace.before_slots for m in group),
        ]
        if any(m.seq < start for m in later):
            out.append("something ran before the first before hook")
        if trace.sends and trace.sends[0].seq_in < start:
            out.append("the server answered before the before hooks ran")
    if trace.agent:
        agent_at = trace.agent[0].seq
        for group in trace.before_slots:
            if any(m.seq > agent_at for m in group):
                out.append("a before hook ran after the agent started")
                break
        if any(m.seq > agent_at for m in trace.resolver):
            out.append("the resolver ran after the agent started")
    return out


def _truth_problems(trace: Trace, fin: FinalizeMark) -> list[str]:
    """Does what finalize got tell the truth about what was sent?"""
    out: list[str] = []
    sends = trace.sends
    final_ok = any(r.final and r.ok for r in sends)
    error_frames = [r for r in sends if r.is_body and b'data: {"error"' in r.body]
    if isinstance(fin.response, StreamingWrapper):
        status = fin.wrapper_status
        if status not in ("completed", "disconnected", "failed"):
            return [f"finalize ran while the stream was still {status!r}"]
        if status == "completed" and (not final_ok or error_frames):
            what = "sent an error event" if error_frames else "never finished sending"
            out.append(f"finalize was told 'completed' but the server {what}")
        if status == "failed":
            if not error_frames:
                out.append("finalize was told 'failed' but no error event was sent")
            if fin.error is None:
                out.append("finalize was told 'failed' without the error")
        if status == "disconnected" and final_ok:
            out.append("finalize was told 'disconnected' but the whole stream was sent")
        if final_ok and not error_frames and status != "completed":
            out.append(f"the whole stream was sent but finalize was told {status!r}")
        skip = {id(r) for r in error_frames}
        handed = sum(len(r.body) for r in sends if id(r) not in skip)
        if fin.bytes_sent is not None and fin.bytes_sent != handed:
            out.append(
                f"the wrapper counts {fin.bytes_sent} bytes sent, the server was handed {handed}"
            )
        start = trace.handed_start()
        if start is not None and start != fin.status_code:
            out.append(f"the wrapper says status {fin.status_code}, the answer had {start}")
    else:
        start = trace.handed_start()
        expected = start if start is not None else 499
        if fin.status_code != expected:
            out.append(
                f"finalize got a response with status {fin.status_code}, "
                f"but the server was handed {start if start is not None else 'no answer'}"
            )
        if start == 200 and trace.sends and "text/event-stream" in _content_type(trace.sends[0]):
            out.append("a stream was sent but finalize did not get a StreamingWrapper")
    return out


def _content_type(record: SendRecord) -> str:
    for key, value in record.message.get("headers") or ():
        if bytes(key).lower() == b"content-type":
            return bytes(value).decode("latin-1")
    return ""


def _answer_problems(trace: Trace, e: Expectation, client: ClientView, validate: bool) -> list[str]:
    """The whole answer the client read matches the scenario."""
    out: list[str] = []
    if client.status != e.status:
        return [f"expected HTTP {e.status}, got {client.status}: {client.body[:200]!r}"]
    ctx = trace.finalize[0].ctx if trace.finalize else None
    rid = client.headers.get("x-request-id")
    if ctx is not None and rid != getattr(ctx, "request_id", None):
        out.append(f"x-request-id {rid!r} is not the request id of finalize's context")
    if e.status != 200:
        try:
            err = json.loads(client.body)["error"]
            assert isinstance(err["message"], str) and "type" in err and "code" in err
        except (ValueError, KeyError, TypeError, AssertionError):
            return [*out, f"the error body is not OpenAI-shaped: {client.body[:200]!r}"]
        if e.message_has and e.message_has not in err["message"]:
            out.append(f"the error message does not name {e.message_has}: {err['message']!r}")
        failing = next((h for h in trace.scenario.before if h.action != "ok"), None)
        if failing is not None and failing.action == "reject":
            want = f"rejected by before hook {trace.scenario.before.index(failing) + 1}"
            if err["message"] != want:
                out.append(f"the rejection message is {err['message']!r}, not {want!r}")
        return out
    if not e.streamed:
        try:
            body = json.loads(client.body)
            message = body["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return [*out, f"not a chat.completion: {client.body[:200]!r}"]
        if message.get("content") != e.content:
            out.append(f"content {message.get('content')!r}, expected {e.content!r}")
        finish = body["choices"][0].get("finish_reason")
        if finish != e.finish_reason:
            out.append(f"finish_reason {finish!r}, expected {e.finish_reason!r}")
        calls = tuple(
            (c["function"]["name"], c["function"]["arguments"])
            for c in message.get("tool_calls") or ()
        )
        if calls != e.tool_calls:
            out.append(f"tool calls {calls!r}, expected {e.tool_calls!r}")
        if body.get("usage") != e.usage:
            out.append(f"usage {body.get('usage')!r}, expected {e.usage!r}")
        if validate and not out:
            from .validators import ConformanceError, validate_completion

            try:
                validate_completion(client.body)
            except ConformanceError as exc:
                out.append(str(exc))
        return out
    problems: list[str] = []
    folded = _fold_sse(client.body, problems)
    out += problems
    if not folded.done:
        out.append("the stream does not end with data: [DONE]")
    if folded.content != e.content:
        out.append(f"streamed content {folded.content!r}, expected {e.content!r}")
    if e.error_event:
        if folded.error is None:
            out.append("the stream failed but sent no error event")
        elif e.message_has and e.message_has not in str(folded.error.get("message")):
            out.append(f"the error event does not name {e.message_has}: {folded.error!r}")
        return out
    if folded.error is not None:
        out.append(f"unexpected error event {folded.error!r}")
    if folded.finish != e.finish_reason:
        out.append(f"finish_reason {folded.finish!r}, expected {e.finish_reason!r}")
    calls = tuple((v[0], v[1]) for _, v in sorted(folded.tools.items()))
    if calls != e.tool_calls:
        out.append(f"streamed tool calls {calls!r}, expected {e.tool_calls!r}")
    if folded.usage != e.usage:
        out.append(f"usage chunk {folded.usage!r}, expected {e.usage!r}")
    if len(folded.ids) > 1:
        out.append(f"the chunks carry {len(folded.ids)} different ids")
    if validate and not out:
        from .validators import ConformanceError, validate_stream

        try:
            validate_stream(client.body, expect_usage=e.usage is not None)
        except ConformanceError as exc:
            out.append(str(exc))
    return out


def check_request(
    trace: Trace,
    client: ClientView | None = None,
    *,
    finished: bool = True,
    validate: bool = True,
) -> list[str]:
    """The lifecycle problems of one request, as sentences (empty: all good).

    `finished`: the request is over (the app returned), so finalize must have run once.
    `client`: what the client got; with `client.complete` the answer must match the
    scenario exactly, otherwise it must be a prefix of what the server sent.
    """
    with trace.probe.lock:
        return _check_locked(trace, client, finished, validate)


def _check_locked(
    trace: Trace, client: ClientView | None, finished: bool, validate: bool
) -> list[str]:
    s = trace.scenario
    e = expect(s)
    out: list[str] = []
    n = len(trace.finalize)
    if n > 1 or len(trace.finalize_end) > 1:
        out.append(f"finalize ran {max(n, len(trace.finalize_end))} times")
    if finished:
        if trace.app_calls != 1:
            out.append(f"the server saw the request {trace.app_calls} times")
        if n == 0:
            out.append("finalize never ran")
        elif not trace.finalize_end:
            out.append("the last finalize hook never ran")
    if trace.app_error is not None and not isinstance(trace.app_error, asyncio.CancelledError):
        out.append(f"the app raised {trace.app_error!r}")
    client_stayed = client is not None and client.complete and not client.left
    # before hooks
    if finished or trace.agent or trace.finalize:
        if len(trace.before) != 1:
            out.append(
                f"the first before hook ran {len(trace.before)} times (if 0: did the app reject "
                "the request before the probe's hooks? pass headers=)"
            )
        for i, (want, got) in enumerate(zip(e.before_runs, trace.before_slots, strict=True)):
            if len(got) != want:
                out.append(f"before hook {i + 1} ran {len(got)} times, expected {want}")
    # finalize hooks
    if trace.finalize_end:
        for i, got in enumerate(trace.finalize_slots):
            if len(got) != 1:
                out.append(f"finalize hook {i + 1} ran {len(got)} times, expected once")
    # resolver and agent
    if len(trace.resolver) > 1 or len(trace.resolver) > e.resolver_runs:
        out.append(f"the resolver ran {len(trace.resolver)} times, expected {e.resolver_runs}")
    if len(trace.agent) > 1:
        out.append(f"the agent ran {len(trace.agent)} times")
    if trace.agent and not e.agent_runs:
        out.append("the agent ran although the request should have stopped before it")
    if finished and client_stayed and e.agent_runs and not trace.agent:
        out.append("the agent never ran")
    if finished and client_stayed and e.resolver_runs and not trace.resolver:
        out.append("the resolver never ran")
    if trace.agent and s.route == "dynamic" and trace.agent_data != [{"token": trace.token}]:
        out.append(f"the agent got agent_data {trace.agent_data!r}")
    out += _ctx_problems(trace)
    out += _order_problems(trace)
    if trace.finalize:
        fin = trace.finalize[0]
        out += _truth_problems(trace, fin)
        ctx = fin.ctx
        if finished and client_stayed and ctx is not None:
            if e.status == 200 and not e.agent_fails and getattr(ctx, "error", None) is not None:
                out.append(f"the request succeeded but its context holds error {ctx.error!r}")
            if e.status != 200 and getattr(ctx, "error", None) is None:
                out.append(f"the request failed with {e.status} but its context has no error")
        if (
            finished
            and client_stayed
            and e.final_status is not None
            and fin.wrapper_status != e.final_status
        ):
            out.append(f"finalize was told {fin.wrapper_status!r}, expected {e.final_status!r}")
    # the client's view
    if client is not None:
        out += client.problems
        accepted = trace.accepted_body()
        if not accepted.startswith(client.body):
            out.append("the client received bytes the server never sent")
        start = trace.handed_start()
        if client.status is not None and client.status != start:
            out.append(f"the client got HTTP {client.status}, the server sent {start}")
        if client.complete and finished:
            out += _answer_problems(trace, e, client, validate)
        elif client.status == 200 and e.streamed and client.body:
            problems: list[str] = []
            folded = _fold_sse(client.body, problems)
            if e.content is not None and not e.content.startswith(folded.content):
                out.append(f"streamed {folded.content!r}, not a prefix of {e.content!r}")
    return out


def check_isolation(traces: Sequence[Trace]) -> list[str]:
    """Requests never share a context, nor a request id."""
    out: list[str] = []
    owners: dict[int, int] = {}
    ids: dict[str, int] = {}
    for i, trace in enumerate(traces, 1):
        with trace.probe.lock:
            marks = [*trace.before, *trace.agent, *trace.finalize]
        contexts = {id(m.ctx): m.ctx for m in marks if m.ctx is not None}
        for key, ctx in contexts.items():
            if key in owners and owners[key] != i:
                out.append(f"requests {owners[key]} and {i} share one context {ctx!r}")
            owners.setdefault(key, i)
            rid = getattr(ctx, "request_id", None)
            if isinstance(rid, str):
                if rid in ids and ids[rid] != i:
                    out.append(f"requests {ids[rid]} and {i} share request id {rid}")
                ids.setdefault(rid, i)
    return out


def _raise_if(problems: Sequence[tuple[Scenario | None, str]], title: str) -> None:
    if not problems:
        return
    lines = [title]
    last: Scenario | None = None
    for scenario, problem in problems:
        if scenario is not None and scenario is not last:
            lines.append(f"- {scenario.describe()}:")
            last = scenario
        lines.append(f"    * {problem}")
    raise LifecycleViolation("\n".join(lines))


# --------------------------------------------------------------------------------------
# Targets: the app, or a factory of apps, with the probe installed


def _is_server(app: Any) -> bool:
    return hasattr(app, "agent") and hasattr(app, "chat_handler")


class _Target:
    """A user's server, or a factory of servers, with a probe on each one."""

    def __init__(self, app: Any, prefix: str) -> None:
        if not _is_server(app) and not callable(app):
            raise TypeError(
                f"expected a robutler ServerBase or a function returning one, got {app!r}"
            )
        self.app = app
        self.prefix = prefix
        self._probe: Probe | None = None

    def probe(self, fresh: bool = True) -> Probe:
        """A probe on the server: a new server from the factory when `fresh`."""
        if _is_server(self.app):
            return _probe_of(self.app, self.prefix)
        if self._probe is None or fresh:
            server = self.app()
            if not _is_server(server):
                raise TypeError(f"the app factory returned {server!r}, not a robutler ServerBase")
            self._probe = _probe_of(server, self.prefix)
        return self._probe


def _probe_of(server: Any, prefix: str) -> Probe:
    """The server's probe, installed on first use (a server gets one probe only)."""
    probe = server.__dict__.get("_robutler_lifecycle_probe")
    if probe is None:
        probe = Probe(server, prefix=prefix)
        server.__dict__["_robutler_lifecycle_probe"] = probe
    return probe


# --------------------------------------------------------------------------------------
# The ASGI driver


class _Exchange:
    """One request driven by hand through an ASGI app by a client following a ClientPlan.

    Like uvicorn: once the client has gone, sends are dropped and `receive()` says
    http.disconnect; it also says so once the response is complete.
    """

    def __init__(self, trace: Trace, headers: Mapping[str, str] | None) -> None:
        body = trace.body
        self.plan = trace.scenario.client
        self.body = body
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": trace.path,
            "raw_path": trace.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in trace.headers(headers)
            ]
            + [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        self.delivered: list[dict[str, Any]] = []
        self.gone = self.plan.kind == "vanish"
        self.complete = False
        self.frames = 0
        self.buffered = 0
        self.ended = asyncio.Event()
        self.stuck = asyncio.Event()
        self.body_read = False
        self.problems: list[str] = []
        if self.gone:
            self.ended.set()

    def leave(self) -> None:
        if not self.complete:
            self.gone = True
        self.ended.set()

    async def receive(self) -> dict[str, Any]:
        if not self.body_read and not self.gone:
            self.body_read = True
            if self.plan.kind == "close_after" and self.plan.frames == 0:
                self.leave()
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.plan.slow_writes:
            await asyncio.sleep(0)  # one loop turn, as on a server that queues its writes
        kind = message.get("type")
        body = bytes(message.get("body", b"")) if kind == "http.response.body" else b""
        full = body and self.buffered + len(body) > self.plan.buffer
        if self.plan.kind == "never_read" and not self.gone and full:
            self.stuck.set()
            await self.ended.wait()  # like uvicorn's drain(): until the client goes
        if self.gone:
            return
        if self.complete:
            self.problems.append(f"the app sent {kind} after the response was complete")
            raise RuntimeError(f"Unexpected ASGI message {kind!r} after the response completed")
        started = bool(self.delivered)
        if (kind == "http.response.start") == started:
            self.problems.append(f"the app sent {kind} out of order")
            raise RuntimeError(f"Unexpected ASGI message {kind!r}")
        self.delivered.append(message)
        if kind != "http.response.body":
            return
        self.buffered += len(body)
        if body:
            self.frames += 1
        if not message.get("more_body", False):
            self.complete = True
            self.ended.set()
        elif self.plan.kind == "close_after" and self.frames >= self.plan.frames:
            self.leave()

    def view(self) -> ClientView:
        view = ClientView(complete=self.complete, left=self.gone, problems=self.problems)
        if self.delivered:
            start = self.delivered[0]
            view.status = int(start["status"])
            view.headers = {
                bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
                for k, v in start.get("headers") or ()
            }
            view.body = b"".join(bytes(m.get("body", b"")) for m in self.delivered[1:])
        return view


def _registered(probe: Probe, scenario: Scenario) -> Trace:
    """A trace for a driver that does not advance gated agents: every piece is released."""
    trace = probe.register(scenario)
    trace.release(len(scenario.agent.pieces))
    return trace


async def _bounded(awaitable: Awaitable[None], seconds: float) -> bool:
    """Await in this very task (context changes stay visible); False after `seconds`."""
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        await awaitable
    except asyncio.CancelledError:
        if not fired:
            raise
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return False
    finally:
        handle.cancel()
    return True


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


class _ASGIRunner:
    """Runs RequestBatches through the app in one event loop of its own."""

    def __init__(
        self, target: _Target, headers: Mapping[str, str] | None, timeout: float, validate: bool
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
            traces = [_registered(probe, s) for s in batch.scenarios]
            if batch.concurrent:
                views = await asyncio.gather(*(self._one(t) for t in traces))
            else:
                views = [await self._one(t) for t in traces]
            leftover = asyncio.all_tasks() - baseline
            if leftover:
                await asyncio.wait(leftover, timeout=self.timeout)
                running = [t for t in leftover if not t.done()]
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
        exchange = _Exchange(trace, self.headers)
        was = get_context()

        async def give_up_when_stuck() -> None:
            await exchange.stuck.wait()
            exchange.leave()

        helper = asyncio.ensure_future(give_up_when_stuck())
        try:
            finished = await _bounded(
                trace.probe.asgi(exchange.scope, exchange.receive, exchange.send), self.timeout
            )
        except Exception as exc:  # the wrapper recorded it; the checks report it
            finished = True
            exchange.problems.append(f"the app raised {exc!r}")
        finally:
            helper.cancel()
            await asyncio.wait((helper,))
        exchange.leave()  # the client closes its end now, whatever it did
        view = exchange.view()
        if not finished:
            view.problems.append(f"the request did not finish within {self.timeout} s")
        if get_context() is not was:
            view.problems.append("the request's context leaked into the code that sent it")
        if not exchange.gone and exchange.delivered and not exchange.complete:
            view.problems.append("the app returned without completing its answer")
        if not exchange.gone and not exchange.delivered and finished:
            view.problems.append("the app returned without answering")
        return view


# --------------------------------------------------------------------------------------
# A live server and a raw-socket HTTP/1.1 client


class _LiveClient:
    """One request over a raw socket to 127.0.0.1, parsed by h11 as it arrives."""

    def __init__(
        self, port: int, trace: Trace, headers: Mapping[str, str] | None, timeout: float
    ) -> None:
        self.trace = trace
        self.timeout = timeout
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.frames = 0
        self.complete = False
        self.eof = False
        self.closed = False
        self.problems: list[str] = []
        body = trace.body
        self.conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="POST",
            target=trace.path,
            headers=[
                ("host", f"127.0.0.1:{port}"),
                ("content-length", str(len(body))),
                ("connection", "close"),
                *trace.headers(headers),
            ],
        )
        data = (
            self.conn.send(request)
            + self.conn.send(h11.Data(data=body))
            + self.conn.send(h11.EndOfMessage())
        )
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(data)

    @property
    def active(self) -> bool:
        return not (self.closed or self.complete or self.eof)

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        if not ready:
            return
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        try:
            self.conn.receive_data(data)
            for _ in range(10_000):
                event = self.conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    self.headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                    }
                elif isinstance(event, h11.Data):
                    self.body += event.data
                    if event.chunk_end:
                        self.frames += 1
                elif isinstance(event, h11.EndOfMessage):
                    self.complete = True
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    self.eof = True
                    break
        except h11.RemoteProtocolError as exc:
            self.eof = True
            self.problems.append(f"the server broke the HTTP stream: {exc}")
        if not data:
            self.eof = True

    def read_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Read until `done()` or the answer ends, for at most `timeout` s."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for _ in range(100_000):
            if done() or not self.active:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
        return done()

    def read_available(self) -> None:
        """Read what has arrived, without waiting."""
        for _ in range(1000):
            if not self.active:
                return
            before = (len(self.body), self.status, self.complete)
            self._pump(0.0)
            if (len(self.body), self.status, self.complete) == before:
                return

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def view(self) -> ClientView:
        return ClientView(
            self.status,
            dict(self.headers),
            bytes(self.body),
            self.complete,
            left=not self.complete,
            problems=list(self.problems),
        )


class _Live:
    """A probed server under uvicorn on 127.0.0.1."""

    def __init__(self, target: _Target, headers: Mapping[str, str] | None, timeout: float) -> None:
        from .live import LiveServer

        self.probe = target.probe(fresh=False)
        self.headers = headers
        self.timeout = timeout
        self.server = LiveServer(self.probe.asgi, interface="asgi3").start()
        if self.probe.loop is None:
            # no lifespan event reached the app: a request tells us the loop
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                s.recv(65536)

    @property
    def port(self) -> int:
        return self.server.port

    def open(self, trace: Trace) -> _LiveClient:
        return _LiveClient(self.port, trace, self.headers, self.timeout)

    def tasks(self) -> set[asyncio.Task[Any]]:
        """The tasks pending on the server's loop."""

        async def snapshot() -> set[asyncio.Task[Any]]:
            me = asyncio.current_task()
            return {t for t in asyncio.all_tasks() if t is not me}

        return self._on_loop(snapshot())

    def settle(self, baseline: set[asyncio.Task[Any]]) -> list[str]:
        """Wait (bounded) for tasks started since `baseline`; describe those still running."""
        timeout = self.timeout

        async def wait() -> list[str]:
            me = asyncio.current_task()
            new = {t for t in asyncio.all_tasks() if t is not me and t not in baseline}
            if new:
                await asyncio.wait(new, timeout=timeout)
            return [repr(t.get_coro()) for t in new if not t.done()]

        left = self._on_loop(wait())
        return [f"tasks left running on the server: {', '.join(left)}"] if left else []

    def _on_loop(self, coro: Any) -> Any:
        assert self.probe.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.probe.loop)
        return future.result(self.timeout * 2)

    def finished(self, trace: Trace) -> bool:
        """Wait (bounded) until the server is done with `trace`'s request."""
        return self.probe.wait_until(lambda: trace.app_done is not None, self.timeout)

    def stop(self) -> None:
        self.server.stop()


class _LiveRunner:
    """Runs RequestBatches against the app under uvicorn, the client on raw sockets."""

    def __init__(
        self, target: _Target, headers: Mapping[str, str] | None, timeout: float, validate: bool
    ) -> None:
        self.live = _Live(target, headers, timeout)
        self.validate = validate

    def close(self) -> None:
        self.live.stop()

    def run(self, batch: RequestBatch) -> list[tuple[Scenario | None, str]]:
        live = self.live
        probe = live.probe
        baseline = live.tasks()
        traces = [_registered(probe, s) for s in batch.scenarios]
        clients: list[_LiveClient] = []
        out: list[tuple[Scenario | None, str]] = []
        try:
            if batch.concurrent:
                clients = [live.open(t) for t in traces]
                for client in clients:
                    self._act(client)
            else:
                for trace in traces:
                    clients.append(live.open(trace))
                    self._act(clients[-1])
            for trace, client in zip(traces, clients, strict=True):
                client.close()
                if not live.finished(trace):
                    out.append(
                        (trace.scenario, f"the request did not finish within {live.timeout} s")
                    )
            out.extend((None, p) for p in live.settle(baseline))
            for trace, client in zip(traces, clients, strict=True):
                view = client.view()
                out.extend(
                    (trace.scenario, p) for p in check_request(trace, view, validate=self.validate)
                )
            out.extend((None, p) for p in check_isolation(traces))
        finally:
            for client in clients:
                client.close()
            for trace in traces:
                probe.forget(trace)
        return out

    def _act(self, client: _LiveClient) -> None:
        plan = client.trace.scenario.client
        if plan.kind == "read_all":
            if not client.read_until(lambda: client.complete):
                client.problems.append("the answer did not end in time")
        elif plan.kind == "close_after":
            if plan.frames:
                client.read_until(lambda: client.frames >= plan.frames)
            client.close()
        elif plan.kind == "never_read":
            self.live.finished(client.trace)  # small answers fit in the socket buffers
            client.close()
        else:
            client.close()


# --------------------------------------------------------------------------------------
# Profiles and the entry point

_SIZES: dict[str, dict[str, int]] = {
    "ci": {"asgi": 300, "live": 50, "machine": 30, "steps": 25},
    "deep": {"asgi": 4000, "live": 1000, "machine": 300, "steps": 40},
}
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
Settings.register_profile(
    "robutler-lifecycle-ci",
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=_HEALTH,
)
Settings.register_profile(
    "robutler-lifecycle-deep",
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_HEALTH,
)


def lifecycle_settings(
    kind: Literal["asgi", "live", "machine"] = "asgi", profile: str | None = None, **overrides: Any
) -> Settings:
    """Hypothesis settings for a lifecycle check of `kind`.

    `profile` is "ci" (derandomized, a few hundred scenarios, the default) or "deep"
    (thousands, random); by default it comes from the `ROBUTLER_LIFECYCLE_PROFILE`
    environment variable. `overrides` go to `hypothesis.settings`.
    """
    name = profile or os.environ.get(PROFILE_ENV) or "ci"
    if name not in _SIZES:
        raise ValueError(f"{PROFILE_ENV} must be one of {sorted(_SIZES)}, got {name!r}")
    sizes = _SIZES[name]
    values: dict[str, Any] = {"max_examples": sizes[kind]}
    if kind == "machine":
        values["stateful_step_count"] = sizes["steps"]
    values.update(overrides)
    return Settings(Settings.get_profile(f"robutler-lifecycle-{name}"), **values)


def check_lifecycle(
    app: Any,
    *,
    max_examples: int | None = None,
    settings: Settings | None = None,
    live: bool = False,
    headers: Mapping[str, str] | None = None,
    batches: st.SearchStrategy[RequestBatch] | None = None,
    timeout: float = 10.0,
    validate: bool = True,
    prefix: str = "lifecycle-probe",
) -> None:
    """Check the §Lifecycle guarantees of `app` on Hypothesis-drawn request batches.

    `app` is a robutler `ServerBase` or a zero-argument function returning a new one (then
    each example gets a fresh server). By default the requests are driven through the ASGI
    app by hand; `live=True` serves it with uvicorn on 127.0.0.1 and talks over sockets.
    `headers` go with every request (e.g. `{"authorization": "Bearer KEY"}`). Unknown-agent
    (404) scenarios are left out when the server has resolvers of its own. Raises
    `LifecycleViolation` describing the smallest failing batch. Call it from a sync test.
    """
    target = _Target(app, prefix)
    chosen = settings or lifecycle_settings("live" if live else "asgi")
    if max_examples is not None:
        chosen = Settings(chosen, max_examples=max_examples)
    if batches is None:
        # a server with resolvers of its own may accept any name: no 404 scenarios then
        own = len(getattr(target.probe(fresh=True).server, "dynamic_agents", ())) > 2
        routes: tuple[Route, ...] = ("static", "dynamic") if own else _ROUTES
        batches = request_batches(scenarios(routes=routes))
    strategy = batches
    runner: _ASGIRunner | _LiveRunner
    if live:
        runner = _LiveRunner(target, headers, timeout, validate)
    else:
        runner = _ASGIRunner(target, headers, timeout, validate)

    @chosen
    @given(batch=strategy)
    def lifecycle_holds(batch: RequestBatch) -> None:
        note(batch.describe())
        _raise_if(runner.run(batch), "the request lifecycle is broken:")

    try:
        lifecycle_holds()
    finally:
        runner.close()


# --------------------------------------------------------------------------------------
# The state machine


class _LiveTarget:
    """The live server a LifecycleMachine class shares between its runs."""

    def __init__(
        self, app: Any, headers: Mapping[str, str] | None, timeout: float, prefix: str
    ) -> None:
        self.target = _Target(app, prefix)
        self.headers = headers
        self.timeout = timeout
        self.live: _Live | None = None
        self._lock = threading.Lock()

    def start(self) -> _Live:
        with self._lock:
            if self.live is None:
                self.live = _Live(self.target, self.headers, self.timeout)
                atexit.register(self.stop)
            return self.live

    def stop(self) -> None:
        with self._lock:
            if self.live is not None:
                self.live.stop()
                self.live = None


class _MachineRequest:
    """A request the machine started: its trace and its raw-socket client."""

    def __init__(self, number: int, trace: Trace, client: _LiveClient) -> None:
        self.number = number
        self.trace = trace
        self.client = client
        self.abandoned = False
        self.consumed = False

    def __repr__(self) -> str:
        return f"requests_{self.number - 1}"  # the name Hypothesis prints for it


class LifecycleMachine(RuleBasedStateMachine):
    """Starts, advances, reads from and abandons concurrent requests on one live server.

    Don't use it directly: `LifecycleMachine.for_app(app)` returns a unittest TestCase
    to collect, and `LifecycleMachine.bind(app)` a machine class for
    `hypothesis.stateful.run_state_machine_as_test`. Every step checks that no request
    was finalized twice or early, that contexts stay apart, and that what each client
    read is what its server sent; each finished or abandoned request is checked in full
    once the server is done with it (a bounded wait).
    """

    target: ClassVar[_LiveTarget | None] = None
    max_open: ClassVar[int] = 4
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        target = type(self).target
        if target is None:
            raise TypeError("use LifecycleMachine.for_app(app) or LifecycleMachine.bind(app)")
        self.live = target.start()
        self.timeout = target.timeout
        self.all: list[_MachineRequest] = []
        self.failed = False
        self.baseline = self.live.tasks()

    @classmethod
    def bind(
        cls,
        app: Any,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        prefix: str = "lifecycle-probe",
    ) -> type[LifecycleMachine]:
        """A machine class for `app` (a ServerBase, or a function making one, called once)."""
        target = _LiveTarget(app, headers, timeout, prefix)
        return type(f"{cls.__name__}ForApp", (cls,), {"target": target})

    @classmethod
    def for_app(
        cls,
        app: Any,
        *,
        settings: Settings | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        prefix: str = "lifecycle-probe",
    ) -> type[unittest.TestCase]:
        """A TestCase running the machine against `app` under uvicorn on 127.0.0.1.

        Assign it to a module-level `Test...` name for pytest or unittest to collect; the
        server stops when the class's tests are done.
        """
        machine = cls.bind(app, headers=headers, timeout=timeout, prefix=prefix)
        base: Any = machine.TestCase

        class LifecycleTest(base):
            @classmethod
            def tearDownClass(klass) -> None:
                machine.close()
                super().tearDownClass()

        LifecycleTest.settings = settings or lifecycle_settings("machine")
        LifecycleTest.__name__ = LifecycleTest.__qualname__ = f"{machine.__name__}Test"
        return LifecycleTest

    @classmethod
    def close(cls) -> None:
        """Stop the live server of a bound machine class."""
        if cls.target is not None:
            cls.target.stop()

    # rules ---------------------------------------------------------------------------

    def _in_play(self) -> int:
        # only what the rules decided, never timing: Hypothesis replays steps exactly
        return sum(1 for r in self.all if not r.consumed)

    @precondition(lambda self: self._in_play() < self.max_open)
    @rule(target=requests, scenario=machine_scenarios())
    def start(self, scenario: Scenario) -> _MachineRequest:
        """Open a connection, send a request, and wait until the server is quiescent."""
        trace = self.live.probe.register(scenario)
        request = _MachineRequest(len(self.all) + 1, trace, self.live.open(trace))
        self.all.append(request)
        self._quiesce(request)
        return request

    @rule(request=requests)
    def advance(self, request: _MachineRequest) -> None:
        """Let a gated agent produce its next piece, and wait until the server sent it."""
        trace = request.trace
        if trace.gate is None or trace.released >= len(trace.scenario.agent.pieces):
            return
        trace.release()
        self._quiesce(request)

    @rule(request=requests)
    def read(self, request: _MachineRequest) -> None:
        """Read everything the server has sent on this connection so far."""
        client = request.client
        if client.closed:
            return
        with self.live.probe.lock:
            due = len(request.trace.accepted_body())
            started = request.trace.handed_start() is not None
            ended = any(r.final and r.ok for r in request.trace.sends)

        def caught_up() -> bool:
            return (
                (client.status is not None or not started)
                and len(client.body) >= due
                and (client.complete or not ended)
            )

        if not client.read_until(caught_up):
            self._fail(request, f"the client got {len(client.body)} of {due} bytes in time")

    @rule(request=consumes(requests))
    def abandon(self, request: _MachineRequest) -> None:
        """Close the connection, whatever state the answer is in."""
        request.consumed = True
        request.abandoned = not request.client.complete
        request.client.close()
        self._settle(request)

    @rule(request=consumes(requests))
    def finish(self, request: _MachineRequest) -> None:
        """Release every piece and read the whole answer."""
        client = request.client
        request.consumed = True
        request.trace.release(len(request.trace.scenario.agent.pieces))
        if not client.closed and not client.read_until(lambda: client.complete):
            self._fail(request, f"the answer did not end within {self.timeout} s")
        client.close()
        self._settle(request)

    def _quiesce(self, request: _MachineRequest) -> None:
        trace = request.trace
        if not self.live.probe.wait_until(lambda: trace.quiescent, self.timeout):
            self._fail(request, f"the server did not settle within {self.timeout} s")

    def _settle(self, request: _MachineRequest) -> None:
        if not self.live.finished(request.trace):
            self._fail(request, f"the server did not finish within {self.timeout} s")

    def _fail(self, request: _MachineRequest, problem: str) -> None:
        self.failed = True
        _raise_if([(request.trace.scenario, f"{request!r}: {problem}")], "lifecycle broken:")

    def _view(self, request: _MachineRequest) -> ClientView:
        view = request.client.view()
        view.left = request.abandoned or (request.client.closed and not request.client.complete)
        return view

    # invariants ------------------------------------------------------------------------

    @invariant()
    def lifecycle_so_far(self) -> None:
        """Every request, checked in full once its server is done, the rest so far; no
        finalize while a gated agent still has pieces to produce; contexts apart."""
        problems: list[tuple[Scenario | None, str]] = []
        for request in self.all:
            trace = request.trace
            with self.live.probe.lock:
                finalized = bool(trace.finalize)
                pending = (
                    trace.gate is not None
                    and bool(trace.agent)
                    and trace.released < len(trace.scenario.agent.pieces)
                    and not request.client.closed
                )
            if finalized and pending:
                problems.append(
                    (
                        trace.scenario,
                        f"{request!r}: finalize ran while the agent still had pieces to produce "
                        "and the client was connected",
                    )
                )
            for p in check_request(trace, self._view(request), finished=trace.finished):
                problems.append((trace.scenario, f"{request!r}: {p}"))
        problems.extend((None, p) for p in check_isolation([r.trace for r in self.all]))
        if problems:
            self.failed = True
        _raise_if(problems, "lifecycle broken:")

    def teardown(self) -> None:
        """Close every connection, wait for the server, check every request and the tasks."""
        problems: list[tuple[Scenario | None, str]] = []
        try:
            for request in self.all:
                if not request.client.closed:
                    request.abandoned = not request.client.complete
                    request.client.close()
            for request in self.all:
                if not self.live.finished(request.trace):
                    problems.append((request.trace.scenario, f"{request!r} never finished"))
                    continue
                for p in check_request(request.trace, self._view(request)):
                    problems.append((request.trace.scenario, f"{request!r}: {p}"))
            problems.extend((None, p) for p in self.live.settle(self.baseline))
        finally:
            for request in self.all:
                self.live.probe.forget(request.trace)
        if not self.failed:  # a step already reported the first problem
            _raise_if(problems, "lifecycle broken:")
