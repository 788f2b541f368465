"""Lifecycle properties (robutler_testing.lifecycle) for robutler's own server, and meta-tests:
the same properties catch deliberately broken servers, one (at least) for each kind of bug
they look for, each reported under the kind's name.

The CI profile runs by default; `ROBUTLER_LIFECYCLE_PROFILE=deep` (what `nox -s lifecycle`
sets) runs thousands of scenarios. The meta-tests always use the CI profile.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from robutler.server import ServerBase, StreamingWrapper, context, endpoint, get_context, watch
from robutler.server.context import _current
from robutler.server.endpoint import Exchange
from robutler.server.lifecycle import Hooks
from robutler.server.pricing import apply_request_charges
from robutler.server.responses import ResponsesEncoder
from robutler.server.responses.wire import ResponsesWire
from robutler.server.results import Kind
from robutler.server.store import MemoryStore, SQLiteStore
from robutler.server.wire import CHAT, Parsed
from robutler_testing import lifecycle
from robutler_testing.lifecycle import (
    LifecycleMachine,
    LifecycleViolation,
    agent_plans,
    check_lifecycle,
    lifecycle_settings,
    request_batches,
    scenarios,
)
from robutler_testing.lifecycle.checks import (
    CHARGES,
    CUT_SHORT,
    HANG_UP,
    LAST_BYTE,
    OUTLIVED,
    RUN_TWICE,
)
from robutler_testing.lifecycle.checks import (
    SHARED as SHARED_USAGE,
)
from robutler_testing.lifecycle.plans import (
    AgentPlan,
    ClientPlan,
    HookPlan,
    RequestBatch,
    Scenario,
    expect,
)
from robutler_testing.lifecycle.probe import Probe
from robutler_testing.lifecycle.profiles import PROFILE_ENV

RESPONSES_ONLY = request_batches(scenarios(apis=("responses", "v1-responses")))
META = lifecycle_settings("asgi", profile="ci", max_examples=60)
# meta-tests on the live machine prove detection; shrinking replays would only add minutes
META_MACHINE = lifecycle_settings(
    "machine", profile="ci", phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


def make_app() -> ServerBase:
    # stored responses in memory whatever ROBUTLER_RESPONSES_DB says: the meta-tests'
    # drawn examples must not depend on the environment (SQLite has a test of its own)
    return ServerBase(title="lifecycle properties", response_store=MemoryStore())


# robutler's own server ---------------------------------------------------------------


def test_lifecycle_holds_at_the_asgi_level() -> None:
    check_lifecycle(make_app)


def test_lifecycle_holds_under_uvicorn() -> None:
    check_lifecycle(make_app, live=True)


def test_lifecycle_holds_when_crashing_hooks_fail_closed() -> None:
    check_lifecycle(lambda: ServerBase(hook_errors="reject"), max_examples=60)


def test_lifecycle_holds_with_responses_stored_in_sqlite(tmp_path: Path) -> None:
    # the store is written before the answer's last bytes, on the store's own thread
    store = SQLiteStore(tmp_path / "responses.db")
    try:
        check_lifecycle(
            lambda: ServerBase(title="sqlite", response_store=store),
            batches=RESPONSES_ONLY,
            max_examples=40,
        )
        assert asyncio.run(store.count()) > 0
    finally:
        asyncio.run(store.close())


# concurrent requests started, advanced, read and abandoned in any order, live
TestLifecycleMachine = LifecycleMachine.for_app(make_app)


def make_users_app(finalized: list[str]) -> ServerBase:
    """A user's server: API keys, their own hooks and agents, a catch-all resolver."""
    app = ServerBase(title="my agents", api_keys=["sk-test"])

    @app.agent.before_request
    async def tag_user(request: Any) -> None:
        ctx = get_context()
        assert ctx is not None
        ctx.set("user", request.headers.get("x-user", "anonymous"))

    @app.agent.finalize_request
    def bill(request: Any, response: Any) -> None:
        ctx = get_context()
        assert ctx is not None
        ctx.track_usage(credits=1, reason="request")
        finalized.append(ctx.get("user"))

    @app.agent("assistant")
    async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "hi"

    async def anyone(name: str) -> Any:
        return {"name": name}  # accepts every name: the probe's resolvers go first

    @app.agent(anyone)
    async def persona(messages: list[dict[str, Any]], agent_data: Any = None) -> str:
        return f"I am {agent_data['name']}"

    return app


def test_lifecycle_holds_for_a_users_own_server_with_keys_hooks_and_a_catch_all() -> None:
    finalized: list[str] = []
    check_lifecycle(
        lambda: make_users_app(finalized),
        headers={"authorization": "Bearer sk-test", "x-user": "ada"},
        max_examples=40,
    )
    # the user's hooks stayed in place (None: a /v1 request ended before the before
    # hooks, as the front door reads the body first and this one was invalid or never came)
    assert "ada" in finalized and set(finalized) <= {"ada", None}


def test_an_app_instance_is_probed_once_and_can_be_checked_again() -> None:
    app = make_app()
    check_lifecycle(app, max_examples=15)
    check_lifecycle(app, max_examples=15)
    assert len(app.static_agents) == 4  # the probe's static agents, installed once


def test_without_the_api_key_the_report_says_what_to_do() -> None:
    with pytest.raises(LifecycleViolation, match="pass headers="):
        check_lifecycle(lambda: make_users_app([]), settings=META)


# deliberately broken servers ---------------------------------------------------------


class FinalizeTwiceOnDisconnect(Exchange):
    """Runs finalize when it notices the disconnect, and then again at the end."""

    async def answer(self, spec: Any, parsed: Any) -> None:
        await super().answer(spec, parsed)
        if isinstance(self.response, StreamingWrapper) and self.response.disconnected:
            await self.endpoint.hooks.run_finalize(self.state, self.response)


class FinalizeWhenTheStreamStarts(Exchange):
    """Finalizes as soon as the stream's headers are out, like a naive middleware."""

    async def stream(self, *args: Any) -> None:
        send = self.send

        async def early(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                self.state.set("finalized early", True)
                await self.endpoint.hooks.run_finalize(self.state, self.response)

        self.send = early
        await super().stream(*args)

    async def finalize(self) -> None:
        if not self.state.get("finalized early"):
            await super().finalize()


class SkipFinalizeWhenTheAgentRaises(Exchange):
    """Finalizes in an `else:` instead of a `finally:` around the agent."""

    async def produce(self, spec: Any, parsed: Any) -> None:
        try:
            await super().produce(spec, parsed)
        except Exception:
            self.state.set("agent raised", True)
            raise

    async def finalize(self) -> None:
        if not self.state.get("agent raised"):
            await super().finalize()


class ContextNeverReset(Exchange):
    """Leaves the request's context current after the request (forgets the reset)."""

    async def run(self, specs: Any) -> None:
        await super().run(specs)
        _current.set(self.state)


def broken(exchange: type[Exchange]) -> Callable[[], ServerBase]:
    """A factory of servers whose requests go through `exchange`, a broken Exchange."""

    def factory() -> ServerBase:
        app = make_app()
        app.endpoint.exchange_class = exchange
        return app

    return factory


class _GlobalCurrent:
    """What a server gets with a plain global instead of a ContextVar: one "current
    request" for every task (get/set/reset like the ContextVar it replaces)."""

    def __init__(self) -> None:
        self.value: Any = None

    def get(self, default: Any = None) -> Any:
        return self.value

    def set(self, value: Any) -> Any:
        token, self.value = self.value, value
        return token

    def reset(self, token: Any) -> None:
        self.value = token


@pytest.fixture
def global_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch robutler to keep the current request in a global: concurrent requests mix."""
    current = _GlobalCurrent()
    monkeypatch.setattr(context, "_current", current)
    monkeypatch.setattr(endpoint, "_current", current)
    monkeypatch.setattr(watch, "_current", current)


BROKEN = [
    (FinalizeTwiceOnDisconnect, "finalize ran 2 times"),
    (FinalizeWhenTheStreamStarts, "finalize ran while the stream was still 'streaming'"),
    (SkipFinalizeWhenTheAgentRaises, "finalize never ran"),
    (ContextNeverReset, "context leaked into the code that sent it"),
]


@pytest.mark.parametrize(("handler", "problem"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_the_properties_catch_a_broken_server(handler: type[Exchange], problem: str) -> None:
    with pytest.raises(LifecycleViolation, match=problem) as caught:
        check_lifecycle(broken(handler), settings=META)
    # the shrunk scenario is reported in plain words
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "request(s) run" in notes and "client" in notes
    assert "request to a static agent (async handler)" in str(caught.value)


@pytest.mark.usefixtures("global_context")
def test_the_properties_catch_concurrent_requests_sharing_a_global_context() -> None:
    with pytest.raises(LifecycleViolation, match=SHARED):
        check_lifecycle(make_app, settings=META)


SHARED = (
    r"share one context|another request|a different context|before the request was sent"
    r"|outside any request"
)
LIVE_BROKEN = BROKEN[:3]


@pytest.mark.parametrize(
    ("handler", "problem"), LIVE_BROKEN, ids=[b[0].__name__ for b in LIVE_BROKEN]
)
def test_the_state_machine_catches_a_broken_live_server(
    handler: type[Exchange], problem: str
) -> None:
    machine = LifecycleMachine.bind(broken(handler))
    try:
        with pytest.raises(LifecycleViolation, match=problem) as caught:
            run_state_machine_as_test(machine, settings=META_MACHINE)
    finally:
        machine.close()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "state.start(scenario=<" in notes  # the steps, each scenario in plain words


@pytest.mark.usefixtures("global_context")
def test_the_state_machine_catches_concurrent_requests_sharing_a_global_context() -> None:
    machine = LifecycleMachine.bind(make_app)
    try:
        with pytest.raises(LifecycleViolation, match=SHARED):
            run_state_machine_as_test(machine, settings=META_MACHINE)
    finally:
        machine.close()


def test_the_live_check_catches_a_broken_server() -> None:
    with pytest.raises(LifecycleViolation, match="finalize never ran"):
        check_lifecycle(
            broken(SkipFinalizeWhenTheAgentRaises),
            live=True,
            settings=lifecycle_settings("live", profile="ci", max_examples=30),
        )


class LogHookErrors(Hooks):
    """Before hooks whose errors are logged and the request goes on (only HTTPException
    rejects): the other choice a server may make for a crashing hook."""

    async def run_before(self, state: Any) -> None:
        for hook in self.before:
            try:
                await hook(state, state.request)
            except HTTPException:
                raise
            except Exception:
                logging.getLogger("robutler").exception("before_request hook failed")


def test_the_properties_accept_a_server_whose_hook_errors_are_only_logged() -> None:
    batches = request_batches(
        scenarios(routes=("static", "dynamic")).filter(
            lambda s: any(h.action == "raise" for h in s.before)
        )
    )
    check_lifecycle(with_hooks(LogHookErrors), batches=batches, max_examples=25)


# one deliberately broken server for each kind of bug ----------------------------------
#
# Each is built here, in the test, from the server's public parts: its Hooks object (a
# subclass swapped in), or its ASGI entry point (ServerBase.__call__) wrapped.

logger = logging.getLogger("tests.broken")


class UnshieldedFinalize(Hooks):
    """Runs finalize hooks in the request's own task: a cancellation cuts them short."""

    async def run_finalize(self, state: Any, response: Any) -> None:
        for hook in self.finalize:
            try:
                await hook(state, state.request, response)
            except Exception:
                logger.debug("finalize hook failed", exc_info=True)


class RetryingHooks(Hooks):
    """Gives a hook that raised a second chance: it runs twice."""

    async def run_before(self, state: Any) -> None:
        for hook in self.before:
            try:
                await hook(state, state.request)
            except Exception:
                await hook(state, state.request)

    async def run_finalize(self, state: Any, response: Any) -> None:
        for hook in self.finalize:
            try:
                await hook(state, state.request, response)
            except Exception:
                try:
                    await hook(state, state.request, response)
                except Exception:
                    logger.debug("finalize hook failed twice", exc_info=True)


class ChargesEveryStream(Hooks):
    """Settles @pricing charges for every stream, completed or not."""

    async def run_finalize(self, state: Any, response: Any) -> None:
        if isinstance(response, StreamingWrapper) and not response.completed:
            apply_request_charges(state, True)
        await super().run_finalize(state, response)


class PlaceholderForJSON(Hooks):
    """Hands finalize an empty 200 instead of the JSON answer the client got."""

    async def run_finalize(self, state: Any, response: Any) -> None:
        if not isinstance(response, StreamingWrapper) and response.status_code == 200:
            response = Response(status_code=200)
        await super().run_finalize(state, response)


def with_hooks(hooks: type[Hooks]) -> Callable[[], ServerBase]:
    """A factory of servers whose hooks behave like `hooks`."""

    def factory() -> ServerBase:
        app = make_app()
        app.hooks.__class__ = hooks
        return app

    return factory


class _Wrapped(ServerBase):
    """A server whose chat requests go through `wrap(receive, send)` first."""

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        return receive, send

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            receive, send = self.wrap(receive, send)
        await super().__call__(scope, receive, send)


class NeverHearsTheClientLeave(_Wrapped):
    """Hides http.disconnect from robutler: the agent works on for a client that left."""

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        read = False

        async def deaf() -> Message:
            nonlocal read
            if read:
                await asyncio.Event().wait()  # only a cancellation ends this
            message = await receive()
            read = message["type"] == "http.request" and not message.get("more_body", False)
            return message

        return deaf, send


_final_given: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "final_given", default=None
)


class TrustsTheLastSend(_Wrapped):
    """Calls a stream completed once its last frame was given to the server, even when
    the client was gone before it got there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        run = self.hooks.run_finalize

        async def run_finalize(state: Any, response: Any) -> None:
            given = _final_given.get()
            if isinstance(response, StreamingWrapper) and response.disconnected and given:
                response.status = "completed"
            await run(state, response)

        self.hooks.run_finalize = run_finalize  # type: ignore[method-assign]

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        given: list[bool] = []
        _final_given.set(given)

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                given.append(True)
            await send(message)

        return receive, noting


class OneUsageForAll(ServerBase):
    """Keeps every request's usage in one dict (a cache that was meant to be per user)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shared: dict[str, Any] = {"total_credits": 0, "records": []}

        @self.agent.before_request
        def one_usage(request: Any, context: Any = None) -> None:
            context.usage = shared


class HangUpIsAFailure(_Wrapped):
    """Reads the request like a strict body parser: a client that left is an error."""

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        async def strict() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RuntimeError("the connection was lost")
            return message

        return strict, send


class _PlainAsyncFor:
    """An agent's run whose events are read with a plain `async for`, which does not close
    what it iterates: cut short, the run's own event stream waits for the collector."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def stream_events(self) -> Any:
        async def events() -> Any:
            async for event in self.run.stream_events():
                yield event

        return events()


class LeavesEventStreamsOpen(Exchange):
    """Reads an agent's `stream_events()` without closing it when the stream is cut."""

    async def stream(self, result: Any, kind: Any, value: Any, *args: Any) -> None:
        if kind == Kind.EVENTS:
            value = _PlainAsyncFor(value)
        await super().stream(result, kind, value, *args)


def _server(cls: type[ServerBase]) -> Callable[[], ServerBase]:
    return lambda: cls(title="broken", response_store=MemoryStore())


# stop at the first counterexample: these tests show detection, not the smallest case
FIRST = {"phases": [Phase.explicit, Phase.generate], "report_multiple_bugs": False}
# drawn batches only: the corner cases, tried first otherwise, may meet another kind first
DRAWN = {"phases": [Phase.generate], "report_multiple_bugs": False}
KINDS = [
    (with_hooks(UnshieldedFinalize), CUT_SHORT),
    (with_hooks(RetryingHooks), RUN_TWICE),
    (_server(NeverHearsTheClientLeave), OUTLIVED),
    (_server(OneUsageForAll), SHARED_USAGE),
    (with_hooks(ChargesEveryStream), CHARGES),
    (_server(TrustsTheLastSend), LAST_BYTE),
    (with_hooks(PlaceholderForJSON), LAST_BYTE),
    (_server(HangUpIsAFailure), HANG_UP),
]
KIND_IDS = [
    "finalize-cut-short",
    "hook-run-twice",
    "work-outlives-client",
    "usage-shared",
    "charges",
    "last-byte-stream",
    "last-byte-json",
    "hang-up",
]


@pytest.mark.parametrize(("factory", "kind"), KINDS, ids=KIND_IDS)
def test_each_kind_of_bug_is_caught_and_named(factory: Callable[[], ServerBase], kind: str) -> None:
    settings = lifecycle_settings("asgi", profile="ci", max_examples=150, **DRAWN)
    with pytest.raises(LifecycleViolation) as caught:
        check_lifecycle(factory, settings=settings)
    assert f"* {kind}: " in str(caught.value)


def test_the_corner_cases_catch_an_event_stream_left_to_the_garbage_collector() -> None:
    # A random draw seldom lands the host's cancellation while a write blocks and the
    # agent's event stream waits at a `yield`: one of the corner cases does, every time.
    settings = lifecycle_settings("asgi", profile="ci", phases=[Phase.explicit])
    with pytest.raises(LifecycleViolation) as caught:
        check_lifecycle(broken(LeavesEventStreamsOpen), settings=settings)
    assert f"* {OUTLIVED}: the agent's stream was closed only after finalize" in str(caught.value)


def _live(**kwargs: Any) -> st.SearchStrategy[RequestBatch]:
    return request_batches(scenarios(routes=("static",), **kwargs), max_requests=1)


_WAITING_FINALIZE = st.just((HookPlan(action="await"),))
LIVE_KINDS = [
    # the host cancels while an awaiting finalize hook runs
    (
        with_hooks(UnshieldedFinalize),
        CUT_SHORT,
        _live(clients=st.just(ClientPlan("read_all", host_cancels=True))).map(
            lambda b: RequestBatch(
                tuple(replace(s, finalize=(HookPlan(action="await"),)) for s in b.scenarios)
            )
        ),
    ),
    # the client leaves mid-stream: a stream that goes on outlives it
    (
        _server(NeverHearsTheClientLeave),
        OUTLIVED,
        _live(
            agents=agent_plans(["chunks"]).filter(
                lambda a: a.form != "sync_gen" and len(a.pieces) > 2
            ),
            clients=st.just(ClientPlan("close_after", frames=1)),
        ).map(lambda b: RequestBatch(tuple(replace(s, stream=True) for s in b.scenarios))),
    ),
    # the client is lost while the last frame is sent
    (
        _server(TrustsTheLastSend),
        LAST_BYTE,
        _live(agents=agent_plans(["chunks"]), clients=st.just(ClientPlan("lost_at_end"))).map(
            lambda b: RequestBatch(tuple(replace(s, stream=True) for s in b.scenarios))
        ),
    ),
]


@pytest.mark.parametrize(
    ("factory", "kind", "batches"),
    LIVE_KINDS,
    ids=["finalize-cut-short", "work-outlives-client", "last-byte-stream"],
)
def test_the_live_driver_reaches_the_kinds_a_real_disconnect_causes(
    factory: Callable[[], ServerBase], kind: str, batches: st.SearchStrategy[RequestBatch]
) -> None:
    settings = lifecycle_settings("live", profile="ci", max_examples=10, **FIRST)
    with pytest.raises(LifecycleViolation) as caught:
        check_lifecycle(factory, live=True, settings=settings, batches=batches)
    assert f"* {kind}: " in str(caught.value)


# servers broken for the Responses API only --------------------------------------------


class FinalizesResponsesBeforeTheirLastEvent(Exchange):
    """Finalizes a Responses stream once its terminal event is encoded, before it is sent
    (as a server that settles at `response.completed` would); chat streams are right."""

    async def stream(self, *args: Any) -> None:
        if self.wire is CHAT:
            await super().stream(*args)
            return
        send = self.send

        async def early(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.state.set("finalized early", True)
                await self.endpoint.hooks.run_finalize(self.state, self.response)
            await send(message)

        self.send = early
        await super().stream(*args)

    async def finalize(self) -> None:
        if not self.state.get("finalized early"):
            await super().finalize()


class ChargesCutResponsesStreams(Hooks):
    """Settles @pricing charges for a Responses stream that was cut or failed, as if it
    had completed (chat streams are charged right)."""

    async def run_finalize(self, state: Any, response: Any) -> None:
        cut = isinstance(response, StreamingWrapper) and not response.completed
        if cut and state.request.url.path.endswith("/responses"):
            apply_request_charges(state, True)
        await super().run_finalize(state, response)


class _DoneAtTheEnd(ResponsesEncoder):
    __slots__ = ()

    def finish(self) -> bytes:
        return super().finish() + b"data: [DONE]\n\n"


class EndsResponsesStreamsWithDone(ResponsesWire):
    """Ends a Responses stream the Chat Completions way, with `data: [DONE]`."""

    def encoder(
        self, answer_id: str, created: int, model: str, parsed: Parsed, exchange: Any
    ) -> ResponsesEncoder:
        call = parsed.request
        call.encoder = _DoneAtTheEnd(call.response_id, created, model, call.request)
        return call.encoder


def with_responses_wire(wire: type[ResponsesWire]) -> Callable[[], ServerBase]:
    """A factory of servers whose Responses API is `wire`."""

    def factory() -> ServerBase:
        app = make_app()
        app.responses_wire.__class__ = wire
        return app

    return factory


RESPONSES_BROKEN = [
    (
        broken(FinalizesResponsesBeforeTheirLastEvent),
        "sent http.response.body after finalize started|still 'streaming'",
    ),
    (with_hooks(ChargesCutResponsesStreams), f"{CHARGES}: the priced handler's per-request"),
    (with_responses_wire(EndsResponsesStreamsWithDone), "sends data: \\[DONE\\]"),
]
CHAT_ONLY = request_batches(scenarios(apis=("chat", "v1-chat")))


@pytest.mark.parametrize(
    ("factory", "problem"),
    RESPONSES_BROKEN,
    ids=["finalize-before-the-last-event", "charges-a-cut-stream", "done-after-the-stream"],
)
def test_a_server_broken_for_the_responses_api_only_is_caught_through_it(
    factory: Callable[[], ServerBase], problem: str
) -> None:
    check_lifecycle(factory, batches=CHAT_ONLY, max_examples=20)  # its chat answers are right
    settings = lifecycle_settings("asgi", profile="ci", max_examples=150, **DRAWN)
    with pytest.raises(LifecycleViolation, match=problem) as caught:
        check_lifecycle(factory, settings=settings, batches=RESPONSES_ONLY)
    assert "Responses request to " in str(caught.value)


def test_the_corner_cases_catch_a_cut_responses_stream_that_is_charged() -> None:
    settings = lifecycle_settings("asgi", profile="ci", phases=[Phase.explicit])
    with pytest.raises(LifecycleViolation) as caught:
        check_lifecycle(with_hooks(ChargesCutResponsesStreams), settings=settings)
    report = str(caught.value)
    assert f"* {CHARGES}: the priced handler's per-request charge" in report
    assert "streamed Responses request to a priced static agent" in report


@pytest.mark.parametrize("prefix", [None, "/api/v1"], ids=["no-front-door", "another-prefix"])
def test_front_door_scenarios_follow_the_servers_prefix(prefix: str | None) -> None:
    # without a front door they go to the agents' own routes; else to the server's prefix
    front_door = request_batches(scenarios(apis=("v1-chat", "v1-responses")))
    check_lifecycle(
        lambda: ServerBase(title="prefix", openai_prefix=prefix),
        batches=front_door,
        max_examples=15,
    )
    probe = Probe(ServerBase(openai_prefix=prefix))
    trace = probe.register(Scenario(api="v1-responses"))
    expected = "/lifecycle-probe/responses" if prefix is None else f"{prefix}/responses"
    assert (trace.path, trace.scenario.api) == (
        expected,
        "responses" if prefix is None else "v1-responses",
    )


def test_the_strategies_are_public_and_compose() -> None:
    assert set(lifecycle.__all__) == {
        "LifecycleMachine",
        "LifecycleViolation",
        "agent_plans",
        "check_lifecycle",
        "client_plans",
        "hook_plans",
        "lifecycle_settings",
        "machine_scenarios",
        "request_batches",
        "scenarios",
    }
    # a user narrows the scenarios: priced streams whose client leaves after one frame
    batches = request_batches(
        scenarios(agents=agent_plans(["chunks"]), clients=st.just(ClientPlan("close_after", 1)))
    )
    check_lifecycle(make_app, batches=batches, max_examples=10)


# the pieces --------------------------------------------------------------------------


def test_scenarios_read_as_plain_words() -> None:
    scenario = Scenario(
        AgentPlan("raise_after", ("a", "b"), "async_gen", delay=0.004),
        stream=True,
        include_usage=True,
        client=ClientPlan("close_after", frames=1, slow_writes=True),
        before=(HookPlan(sync=True), HookPlan(action="reject", status=402)),
        finalize=(HookPlan(action="raise"),),
        route="dynamic",
    )
    assert repr(scenario) == (
        "<streamed request with include_usage to a dynamic agent (async resolver and handler) "
        "that yields 2 chunk(s) ['a', 'b'] then raises (from an async generator, 0.004 s apart); "
        "client closes the connection after 1 body frame(s) over a connection where each write "
        "waits a loop turn; before hooks: sync hook, async hook that rejects with HTTP 402; "
        "finalize hooks: async hook that raises>"
    )
    assert repr(replace(scenario, include_usage=False, api="v1-responses")).startswith(
        "<streamed /v1 Responses request to a dynamic agent"
    )
    assert repr(Scenario(api="responses")).startswith("<non-streamed Responses request to a")
    batch = RequestBatch((scenario, Scenario()), concurrent=True)
    assert repr(batch).splitlines()[0] == "2 request(s) run concurrently:"
    assert repr(batch).splitlines()[2] == (
        "  2. non-streamed request to a static agent (async handler) that replies 'hello' "
        "(returns a str); client reads the whole answer"
    )


@pytest.mark.parametrize(
    ("scenario", "status", "streamed", "final", "before_runs"),
    [
        (Scenario(), 200, False, None, ()),
        (Scenario(stream=True), 200, True, "completed", ()),
        (
            Scenario(AgentPlan("raise_after", ("a",), "async_gen"), stream=True),
            200,
            True,
            "failed",
            (),
        ),
        (Scenario(AgentPlan("raise_after", ("a",), "async_gen")), 500, False, None, ()),
        (Scenario(AgentPlan("unsupported", (), "int"), stream=True), 500, False, None, ()),
        (
            Scenario(before=(HookPlan(), HookPlan(action="raise"), HookPlan())),
            500,
            False,
            None,
            (1, 1, 0),
        ),
        (
            Scenario(before=(HookPlan(), HookPlan(action="raise"), HookPlan())),
            200,
            False,
            "continue",
            (1, 1, 1),
        ),
        (Scenario(before=(HookPlan(action="reject", status=429),)), 429, False, None, (1,)),
        (Scenario(route="unknown"), 404, False, None, ()),
        (Scenario(bad_body=True, stream=True), 422, False, None, ()),
        (Scenario(stream=True, api="responses"), 200, True, "completed", ()),
        (
            Scenario(AgentPlan("raise_after", ("a",), "events"), stream=True, api="v1-responses"),
            200,
            True,
            "failed",
            (),
        ),
        # the front door reads the body first: an invalid one stops the request before hooks
        (Scenario(bad_body=True, before=(HookPlan(),), api="v1-chat"), 422, False, None, (0,)),
        (Scenario(bad_body=True, before=(HookPlan(),), api="responses"), 422, False, None, (1,)),
    ],
)
def test_what_a_scenario_should_produce(
    scenario: Scenario, status: int, streamed: bool, final: str | None, before_runs: tuple[int, ...]
) -> None:
    if final == "continue":  # a server whose before hook errors are only logged
        e = expect(scenario, "continue")
        final = None
    else:
        e = expect(scenario)
    assert (e.status, e.streamed, e.final_status, e.before_runs) == (
        status,
        streamed,
        final,
        before_runs,
    )


def test_what_a_responses_or_front_door_scenario_should_produce() -> None:
    usage = AgentPlan("chunks", ("a", "b"), "events", usage=True)
    # usage: on the final response of a Responses stream, on a chat stream only when asked
    assert expect(Scenario(usage, stream=True, api="responses")).usage is not None
    assert expect(Scenario(usage, stream=True, api="v1-chat")).usage is None
    assert expect(Scenario(route="unknown", api="v1-responses")).error_code == "model_not_found"
    assert expect(Scenario(route="unknown", api="responses")).error_code == "agent_not_found"


def test_a_crashing_before_hook_stops_the_request_only_when_the_server_rejects() -> None:
    scenario = Scenario(before=(HookPlan(), HookPlan(action="raise"), HookPlan()))
    e = expect(scenario, "reject")
    assert (e.status, e.before_runs, e.agent_runs) == (500, (1, 1, 0), False)
    e = expect(scenario, "continue")
    assert (e.status, e.before_runs, e.agent_runs) == (200, (1, 1, 1), True)


def test_profiles_ci_by_default_deep_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    ci = lifecycle_settings()
    assert ci.derandomize and ci.database is None and Phase.explain not in ci.phases
    assert 100 <= ci.max_examples <= 500
    monkeypatch.setenv(PROFILE_ENV, "deep")
    deep = lifecycle_settings()
    assert deep.max_examples >= 1000 and not deep.derandomize
    machine = lifecycle_settings("machine")
    assert machine.max_examples >= 100 and machine.stateful_step_count >= 40
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(ValueError, match="ROBUTLER_LIFECYCLE_PROFILE"):
        lifecycle_settings()


# work that never waits of its own accord ------------------------------------------------


def test_the_corner_cases_catch_tasks_left_running_and_streams_that_never_yield(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = lifecycle_settings("asgi", profile="ci", phases=[Phase.explicit])
    # a server that forgets the tasks an agent started without awaiting them
    with monkeypatch.context() as patched:
        patched.setattr(endpoint, "cancel_spawned", lambda state, task: None)
        with pytest.raises(LifecycleViolation) as caught:
            check_lifecycle(make_app, settings=settings)
    assert "a task the agent started and never awaited ran on" in str(caught.value)
    # a server whose stream loop never gives the event loop a turn of its own
    with monkeypatch.context() as patched:
        patched.setattr(endpoint, "YIELD_EVERY", 10**9)
        with pytest.raises(LifecycleViolation) as caught:
            check_lifecycle(make_app, settings=settings)
    assert "an agent that never awaits was read for" in str(caught.value)
