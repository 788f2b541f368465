"""Scenario plans, the Hypothesis strategies that draw them, and what each should produce."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Literal

from hypothesis import strategies as st

MAX_HOOKS = 3
USAGE = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
# What the probe's priced functions cost, and the reason each one's usage records carry:
# the priced handler per request and per token (capped), the tool it calls per call and
# per request, the generator that produces its stream per call; and the credits the agent
# records itself with track_usage.
HANDLER_PRICE = {"credits_per_request": 7, "credits_per_token": 1, "max_credits": 10}
TOOL_PRICE = {"credits_per_call": 3, "credits_per_request": 1}
STREAM_PRICE = {"credits_per_call": 2}
HANDLER_REASON = "lifecycle probe: handler"
TOOL_REASON = "lifecycle probe: tool"
STREAM_REASON = "lifecycle probe: stream"
TRACKED_REASON = "lifecycle probe: tracked"
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


# --------------------------------------------------------------------------------------
# Scenarios


HookAction = Literal["ok", "await", "raise", "reject"]


@dataclass(frozen=True)
class HookPlan:
    """One hook of a scenario: sync or async; it returns, waits (a finalize hook that waits
    does so until the client has closed its end, as a slow database write would), raises,
    or rejects (HTTPException, before hooks only)."""

    sync: bool = False
    action: HookAction = "ok"
    status: int = 401

    def describe(self) -> str:
        kind = "sync" if self.sync else "async"
        if self.action == "raise":
            return f"{kind} hook that raises"
        if self.action == "reject":
            return f"{kind} hook that rejects with HTTP {self.status}"
        if self.action == "await":
            return f"{kind} hook that waits"
        return f"{kind} hook"

    _repr_pretty_ = _pretty

    def __repr__(self) -> str:
        return self.describe()


Route = Literal["static", "dynamic", "unknown"]
# Which API the request speaks, and where: the agent's own Chat Completions route
# (`/NAME/chat/completions`) or Responses route (`/NAME/responses`), or the OpenAI front
# door (`/v1/chat/completions`, `/v1/responses`), where the body's `model` names the agent.
Api = Literal["chat", "responses", "v1-chat", "v1-responses"]
RESPONSES_APIS: frozenset[Api] = frozenset({"responses", "v1-responses"})
FRONT_DOOR_APIS: frozenset[Api] = frozenset({"v1-chat", "v1-responses"})
_API_WORDS = {
    "chat": "request",
    "responses": "Responses request",
    "v1-chat": "/v1 chat request",
    "v1-responses": "/v1 Responses request",
}
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
    report token usage (forms built on `MockAgent`). Before answering, the agent records
    `track` credits with `track_usage` (the first in the agent, the rest in a task it
    spawns) and calls a priced tool once per entry of `uses` (True: the call returns,
    False: it raises, and the agent carries on). Once its client has left, an async agent
    waits at its next step, so a server that does not cancel it is seen to let it run on.
    With `background` it also starts a task it never awaits, which keeps busy once the
    client has gone until it is cancelled. Form "busy" streams its pieces from an async
    generator that never awaits (it gives the event loop no turn of its own).
    """

    kind: AgentKind = "reply"
    pieces: tuple[str, ...] = ("hello",)
    form: str = "str"
    delay: float = 0.0
    usage: bool = False
    tools: tuple[tuple[str, str], ...] = ()
    track: tuple[float, ...] = ()
    uses: tuple[bool, ...] = ()
    background: bool = False

    def describe(self) -> str:
        pieces = f"{len(self.pieces)} chunk(s) {list(self.pieces)!r}"
        how = {
            "str": "returns a str",
            "message": "returns a message dict",
            "completion": "returns MockAgent.run()'s result",
            "async_gen": "from an async generator",
            "sync_gen": "from a sync generator",
            "events": "as MockAgent stream events",
            "busy": "from an async generator that never awaits",
            "call": "when called",
            "mock": "through MockAgent",
        }.get(self.form, self.form)
        extra = f", {self.delay:g} s apart" if self.delay else ""
        extra += ", with token usage" if self.usage else ""
        return self._what(pieces, how, extra) + self._side_effects()

    def _side_effects(self) -> str:
        parts = []
        if self.track:
            parts.append(f"tracks credits {list(self.track)!r}")
        if self.uses:
            calls = ", ".join("ok" if ok else "raises" for ok in self.uses)
            parts.append(f"calls a priced tool ({calls})")
        if self.background:
            parts.append("starts a task it does not await (busy until cancelled)")
        return f" and {' and '.join(parts)}" if parts else ""

    def _what(self, pieces: str, how: str, extra: str) -> str:
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


ClientKind = Literal["read_all", "close_after", "never_read", "vanish", "lost_at_end", "steps"]


@dataclass(frozen=True)
class ClientPlan:
    """What the client does: reads everything; closes after `frames` body frames (0: as
    soon as the server read the request); never reads (the connection holds `buffer`
    bytes before the server's writes block, then the client gives up); hangs up before
    the server reads the body ("vanish"); reads everything but hangs up while the last
    frame is being sent ("lost_at_end"); or "steps": a state machine drives it. With
    `slow_writes` (ASGI driver only) every send waits one event-loop turn, as on servers
    that queue their writes. With `host_cancels` the server hosting the app cancels the
    request's task once the client has closed its end (as some ASGI servers do).
    """

    kind: ClientKind = "read_all"
    frames: int = 0
    buffer: int = 0
    slow_writes: bool = False
    host_cancels: bool = False

    def describe(self) -> str:
        slow = " over a connection where each write waits a loop turn" if self.slow_writes else ""
        host = "; the host then cancels the request" if self.host_cancels else ""
        return self._what(slow) + host

    def _what(self, slow: str) -> str:
        if self.kind == "close_after":
            if self.frames == 0:
                return f"closes the connection once the server read the request{slow}"
            return f"closes the connection after {self.frames} body frame(s){slow}"
        if self.kind == "never_read":
            return f"never reads (the connection holds {self.buffer} bytes){slow}"
        if self.kind == "vanish":
            return "hangs up before the server reads the body"
        if self.kind == "lost_at_end":
            return f"reads all but the last frame and hangs up while it is sent{slow}"
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
    resolver). `bad_body` sends invalid JSON (422). `priced` serves a static agent whose
    handler is priced with `@pricing` per request and per token. `api` is the API and
    route the request goes to (see `Api`; `include_usage` exists in Chat Completions only).
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
    priced: bool = False
    api: Api = "chat"

    @property
    def responses(self) -> bool:
        """The request speaks the Responses API."""
        return self.api in RESPONSES_APIS

    @property
    def front_door(self) -> bool:
        """The request goes through the OpenAI front door, its agent named by `model`."""
        return self.api in FRONT_DOOR_APIS

    def describe(self) -> str:
        kind = "streamed" if self.stream else "non-streamed"
        usage = " with include_usage" if self.include_usage else ""
        sync = "sync" if self.sync_handler else "async"
        if self.route == "static":
            price = "priced " if self.priced else ""
            where = f"a {price}static agent ({sync} handler)"
        elif self.route == "dynamic":
            where = f"a dynamic agent ({sync} resolver and handler)"
        else:
            where = "a name no resolver accepts (404)"
        request = _API_WORDS[self.api]
        parts = [f"{kind} {request}{usage} to {where} that {self.agent.describe()}"]
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

# Strategies are built once and reused: building one inside every draw costs more than
# the draw itself (Hypothesis validates each new strategy).


def _pick(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """`st.sampled_from(values)`, built once (keyed by type too: (0, 1) is not (False, True))."""
    return _sampled(values, tuple(type(v) for v in values))


@cache
def _sampled(values: tuple[Any, ...], types: tuple[type, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


@cache
def _up_to(strategy: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=max_size)


_TEXT = st.text(alphabet="abcxyz é☃", min_size=1, max_size=4)


@cache
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

ROUTES: tuple[Route, ...] = ("static", "dynamic") * 4 + ("unknown",)
# Chat Completions on the agent's route most often, then Responses, then the front door.
APIS: tuple[Api, ...] = ("chat",) * 4 + ("responses",) * 2 + ("v1-chat", "v1-responses")
ALL_KINDS: tuple[AgentKind, ...] = (
    "reply",
    "chunks",
    "raise_before",
    "raise_after",
    "unsupported",
    "tool_calls",
)


_WEIGHTS = {"reply": 2, "chunks": 3, "raise_after": 2, "gated": 1}
_CREDITS = st.sampled_from([0.5, 1, 2.25])


@st.composite
def agent_plans(draw: st.DrawFn, kinds: Sequence[AgentKind] = ALL_KINDS) -> AgentPlan:
    """An agent behaviour of one of `kinds` (gated needs a driver that releases pieces),
    with credits it tracks and priced tool calls it makes on the way."""
    weighted = [k for k in kinds for _ in range(_WEIGHTS.get(k, 1))]
    plan = _answer_plan(draw, draw(_pick(tuple(weighted))))
    track = tuple(draw(_up_to(_CREDITS, 2)))
    uses = tuple(draw(_up_to(_pick((True, True, False)), 2)))
    return replace(plan, track=track, uses=uses)


def _answer_plan(draw: st.DrawFn, kind: AgentKind) -> AgentPlan:
    if kind == "reply":
        form = draw(_pick(("str", "message", "completion")))
        usage = form == "completion" and draw(st.booleans())
        return AgentPlan(kind, (draw(_TEXT),), form, usage=usage)
    if kind in ("chunks", "raise_after"):
        form = draw(_pick(("async_gen", "events", "sync_gen")))
        delay = 0.0 if form == "sync_gen" else draw(_DELAYS)
        usage = kind == "chunks" and form == "events" and draw(st.booleans())
        low = 0 if kind == "chunks" else 1
        return AgentPlan(kind, draw(_pieces(low, 5)), form, delay=delay, usage=usage)
    if kind == "gated":
        return AgentPlan(kind, draw(_pieces(1, 4)), "async_gen")
    if kind == "raise_before":
        return AgentPlan(kind, (), draw(_pick(("call", "async_gen", "sync_gen", "events"))))
    if kind == "unsupported":
        form = draw(_pick(tuple(_UNSUPPORTED_TYPES)))
        pieces = draw(_pieces(1, 3)) if form == "stream_item" else ()
        return AgentPlan(kind, pieces, form)
    form = draw(_pick(("message", "mock")))
    usage = form == "mock" and draw(st.booleans())
    return AgentPlan("tool_calls", (), form, usage=usage, tools=draw(_TOOLS))


@cache
def hook_plans(kind: Literal["before", "finalize"]) -> st.SearchStrategy[HookPlan]:
    """A before hook (returns, waits, raises, or rejects with 401/402/403/429) or a
    finalize hook (returns, waits or raises), sync or async."""
    actions = ["ok"] * 7 + ["await"] * 3 + ["raise"]
    actions += ["reject"] if kind == "before" else ["raise"]
    return st.builds(
        HookPlan,
        sync=st.booleans(),
        action=st.sampled_from(actions),
        status=st.sampled_from([401, 402, 403, 429]),
    ).map(lambda h: h if h.action == "reject" else HookPlan(h.sync, h.action))


_CLIENT_KINDS: tuple[ClientKind, ...] = (
    *("read_all", "read_all", "read_all", "read_all"),
    *("close_after", "close_after", "close_after"),
    *("never_read", "never_read"),
    *("vanish", "lost_at_end"),
)


@st.composite
def client_plans(draw: st.DrawFn) -> ClientPlan:
    """What the client does with the answer (mostly reads it all); now and then the host
    cancels the request once the client has closed its end."""
    kind = draw(_pick(_CLIENT_KINDS))
    host = draw(_pick((False, False, False, True)))
    if kind == "vanish":
        return ClientPlan("vanish", host_cancels=host)
    slow = draw(st.booleans())
    if kind == "close_after":
        frames = draw(st.integers(0, 5))
        return ClientPlan("close_after", frames=frames, slow_writes=slow, host_cancels=host)
    if kind == "never_read":
        buffer = draw(_pick((0, 150, 600, 5000)))
        return ClientPlan("never_read", buffer=buffer, slow_writes=slow, host_cancels=host)
    return ClientPlan(kind, slow_writes=slow, host_cancels=host)


_AGENTS = agent_plans()
_CLIENTS = client_plans()


@st.composite
def scenarios(
    draw: st.DrawFn,
    agents: st.SearchStrategy[AgentPlan] | None = None,
    clients: st.SearchStrategy[ClientPlan] | None = None,
    routes: Sequence[Route] = ROUTES,
    max_hooks: int = MAX_HOOKS,
    apis: Sequence[Api] = APIS,
) -> Scenario:
    """A request scenario: API, agent, stream/include_usage, client, hooks, route, body.

    `routes` and `apis` are drawn uniformly (repeat one to weight it; by default Chat
    Completions on the agent's route half the time); at most `max_hooks` (<= 3) hooks of
    each kind; a static agent is priced one time in three.
    """
    if not 0 <= max_hooks <= MAX_HOOKS:
        raise ValueError(f"max_hooks must be between 0 and {MAX_HOOKS}, got {max_hooks}")
    agent = draw(agents if agents is not None else _AGENTS)
    stream = draw(_pick((False, True, True)))
    include_usage = stream and draw(st.booleans())
    client = draw(clients if clients is not None else _CLIENTS)
    before = tuple(draw(_up_to(hook_plans("before"), max_hooks)))
    final = tuple(draw(_up_to(hook_plans("finalize"), max_hooks)))
    route = draw(_pick(tuple(routes)))
    sync_handler = route != "unknown" and draw(_pick((False, False, False, True)))
    bad_body = draw(_pick((False,) * 15 + (True,)))
    priced = route == "static" and draw(_pick((False, False, True)))
    # drawn last, so that the draws before it are those of a Chat Completions scenario
    api = draw(_pick(tuple(apis)))
    if api in RESPONSES_APIS:
        include_usage = False  # Responses always report usage on the response object
    return Scenario(
        agent,
        stream,
        include_usage,
        client,
        before,
        final,
        route,
        sync_handler,
        bad_body,
        priced,
        api,
    )


def request_batches(
    scenario: st.SearchStrategy[Scenario] | None = None, max_requests: int = 3
) -> st.SearchStrategy[RequestBatch]:
    """One to `max_requests` scenarios, run one after the other or concurrently."""
    items = st.lists(
        scenario if scenario is not None else scenarios(), min_size=1, max_size=max_requests
    )
    return st.builds(RequestBatch, items.map(tuple), st.booleans())


def _streamed(agent: AgentPlan, client: ClientPlan) -> Scenario:
    return Scenario(agent, stream=True, client=client)


def _corner(*scenarios: Scenario, concurrent: bool = False) -> RequestBatch:
    return RequestBatch(scenarios, concurrent)


_THREE = ("a", "b", "c")
_MANY = tuple("abcdefghij") * 20  # 200 pieces: more than a server reads between loop turns
_LOST = ClientPlan("lost_at_end")
# never reads, so the server's first write blocks; the host cancels as the client gives up
_BLOCKED = ClientPlan("never_read", buffer=0, host_cancels=True)
_WAITS = (HookPlan(action="await"),)

# Batches tried before any drawn one: timings a random draw seldom hits, each of which
# has hidden a real bug in some server (the comment says which kind it reaches).
CORNER_CASES: tuple[RequestBatch, ...] = (
    # work outlived: the host cancels while a write blocks and the agent's event stream
    # waits at a `yield`; the server must close that stream itself, before it returns
    _corner(_streamed(AgentPlan("chunks", _THREE, "events"), _BLOCKED)),
    _corner(_streamed(AgentPlan("chunks", _THREE, "async_gen"), _BLOCKED)),
    # work outlived: a task the agent started and never awaited, when the client leaves
    # mid-stream, and when the host cancels while a write blocks
    _corner(
        _streamed(
            AgentPlan("chunks", _THREE, "async_gen", delay=0.001, background=True),
            ClientPlan("close_after", frames=1),
        )
    ),
    _corner(_streamed(AgentPlan("chunks", _THREE, "async_gen", background=True), _BLOCKED)),
    # work outlived: an agent that never awaits streams on for a client that left, unless
    # the server gives the event loop a turn now and then (and so hears the disconnect)
    _corner(_streamed(AgentPlan("chunks", _MANY, "busy"), ClientPlan("close_after", frames=2))),
    # finalize cut short: the client leaves mid-stream while a finalize hook waits
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "async_gen", delay=0.001),
            stream=True,
            client=ClientPlan("close_after", frames=1, slow_writes=True),
            finalize=_WAITS * 2,
        )
    ),
    # a hang-up taken for a failure: a JSON client that leaves before the agent answers
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "events", delay=0.004),
            client=ClientPlan("close_after", frames=0),
            finalize=_WAITS,
        )
    ),
    # charges: a priced stream whose client leaves after its first frame
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "async_gen", track=(1,), uses=(True,)),
            stream=True,
            client=ClientPlan("close_after", frames=1),
            priced=True,
        )
    ),
    # the last byte: the client is lost while the final frame is sent, stream and JSON
    _corner(
        Scenario(AgentPlan("chunks", _THREE, "events"), stream=True, client=_LOST),
        Scenario(AgentPlan("reply", ("hi",), "str"), client=_LOST, priced=True),
    ),
    # usage shared: concurrent requests each tracking credits, one in a spawned task
    _corner(
        Scenario(AgentPlan("reply", ("x",), "str", track=(0.5, 2.25)), priced=True),
        Scenario(AgentPlan("chunks", _THREE, "events", track=(1, 2)), stream=True),
        concurrent=True,
    ),
    # a Responses stream cut mid-way: priced, its client leaves after two frames (the
    # response is created, its text has begun); nothing per request may be charged
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "events", usage=True, track=(1,), uses=(True,)),
            stream=True,
            client=ClientPlan("close_after", frames=2, slow_writes=True),
            finalize=_WAITS,
            priced=True,
            api="responses",
        )
    ),
    # the front door's Responses streams: one lost while its terminal event is sent, one
    # the host cancels while a write blocks and the agent waits at a `yield`
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "async_gen"), stream=True, client=_LOST, api="v1-responses"
        ),
        Scenario(
            AgentPlan("chunks", _THREE, "events"),
            stream=True,
            client=_BLOCKED,
            api="v1-responses",
        ),
    ),
    # usage, which a draw seldom combines with a full read: priced answers whose agent
    # reports token usage (charged per token), on a Responses stream's final response, in
    # a /v1 chat stream's usage chunk, in a /v1 Responses JSON answer
    _corner(
        Scenario(
            AgentPlan("chunks", _THREE, "events", usage=True),
            stream=True,
            priced=True,
            api="responses",
        ),
        Scenario(
            AgentPlan("tool_calls", (), "mock", usage=True, tools=(("add", '{"n": 1}'),)),
            stream=True,
            include_usage=True,
            priced=True,
            api="v1-chat",
        ),
        Scenario(
            AgentPlan("reply", ("hi",), "completion", usage=True), priced=True, api="v1-responses"
        ),
    ),
    # a hook run twice: hooks that wait and raise around one another
    _corner(
        Scenario(
            AgentPlan("reply", ("x",), "str"),
            before=(HookPlan(action="await"), HookPlan(True, "raise")),
            finalize=(HookPlan(action="raise"), HookPlan(action="await"), HookPlan(True, "raise")),
        )
    ),
)


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
    # JSON: in the body; Chat Completions streams: with include_usage; Responses streams:
    # on the final response
    usage: Mapping[str, int] | None = None
    error_event: bool = False  # the stream ends with an error event
    message_has: str | None = None  # text the error message must contain
    error_code: str | None = None  # the code the error answer must carry
    final_status: str | None = None  # StreamingWrapper status for a full read
    before_runs: tuple[int, ...] = ()
    resolver_runs: int = 0
    agent_runs: bool = False
    agent_fails: bool = False
    agent_usage: Mapping[str, int] | None = None  # the token usage the agent reports


HookErrors = Literal["reject", "continue"]


def expect(s: Scenario, hook_errors: HookErrors = "reject") -> Expectation:
    """The expected outcome of `s` for a client that reads everything.

    `hook_errors` says what a before hook that raises (not an HTTPException) does: "reject"
    the request with a 500, or "continue" it (the error is only logged).
    """
    if s.front_door and s.bad_body:
        # the front door reads the body first (it names the agent): no hook runs
        return Expectation(422, False, before_runs=(0,) * len(s.before))
    runs, failing = _before_runs(s.before, hook_errors)
    if failing is not None:
        status = 500 if failing.action == "raise" else failing.status
        return Expectation(status, False, before_runs=runs)
    resolver = 0 if s.route == "static" else 1
    if s.route == "unknown":
        code = "model_not_found" if s.front_door else "agent_not_found"
        return Expectation(404, False, error_code=code, before_runs=runs, resolver_runs=resolver)
    if s.bad_body:
        return Expectation(422, False, before_runs=runs, resolver_runs=resolver)
    a = s.agent
    usage = USAGE if a.usage else None
    base: dict[str, Any] = {
        "before_runs": runs,
        "resolver_runs": resolver,
        "agent_runs": True,
        "agent_usage": usage,
    }
    if a.kind in ("reply", "chunks", "gated", "tool_calls"):
        tools = a.tools if a.kind == "tool_calls" else ()
        content: str | None = "".join(a.pieces) if a.kind != "tool_calls" else None
        finish = "tool_calls" if tools else "stop"
        if s.stream:
            asked = usage if s.include_usage or s.responses else None
            return Expectation(
                200, True, content or "", finish, tools, asked, final_status="completed", **base
            )
        return Expectation(200, False, content, finish, tools, usage, **base)
    return _failure(s, base)


def _before_runs(
    hooks: Sequence[HookPlan], hook_errors: HookErrors
) -> tuple[tuple[int, ...], HookPlan | None]:
    """How often each before hook runs, and the hook that stops the request (if any)."""
    runs: list[int] = []
    failing: HookPlan | None = None
    for hook in hooks:
        runs.append(0 if failing else 1)
        stops = hook.action == "reject" or (hook.action == "raise" and hook_errors == "reject")
        if failing is None and stops:
            failing = hook
    return tuple(runs), failing


def _failure(s: Scenario, base: dict[str, Any]) -> Expectation:
    """An agent that raises or returns something robutler cannot serve."""
    a = s.agent
    unsupported = a.kind == "unsupported"
    message_has = repr(_UNSUPPORTED_TYPES[a.form]) if unsupported else None
    midstream = a.kind == "raise_after" or (unsupported and a.form == "stream_item")
    base = {**base, "agent_fails": True, "message_has": message_has}
    if s.stream and midstream:
        content = "".join(a.pieces)
        return Expectation(
            200, True, content, None, error_event=True, final_status="failed", **base
        )
    return Expectation(500, False, **base)
