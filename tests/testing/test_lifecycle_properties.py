"""Lifecycle properties (robutler_testing.lifecycle) for robutler's own server, and meta-tests:
the same properties catch deliberately broken servers.

The CI profile runs by default; `ROBUTLER_LIFECYCLE_PROFILE=deep` (what `nox -s lifecycle`
sets) runs thousands of scenarios. The meta-tests always use the CI profile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import Phase
from hypothesis.stateful import run_state_machine_as_test

from robutler.server import ServerBase, StreamingWrapper, context, endpoint, get_context
from robutler.server.context import _current
from robutler.server.endpoint import Exchange
from robutler_testing.lifecycle import (
    PROFILE_ENV,
    AgentPlan,
    ClientPlan,
    HookPlan,
    LifecycleMachine,
    LifecycleViolation,
    RequestBatch,
    Scenario,
    check_lifecycle,
    expect,
    lifecycle_settings,
)

META = lifecycle_settings("asgi", profile="ci", max_examples=60)
# meta-tests on the live machine prove detection; shrinking replays would only add minutes
META_MACHINE = lifecycle_settings(
    "machine", profile="ci", phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


def make_app() -> ServerBase:
    return ServerBase(title="lifecycle properties")


# robutler's own server ---------------------------------------------------------------


def test_lifecycle_holds_at_the_asgi_level() -> None:
    check_lifecycle(make_app)


def test_lifecycle_holds_under_uvicorn() -> None:
    check_lifecycle(make_app, live=True)


def test_lifecycle_holds_when_crashing_hooks_fail_closed() -> None:
    check_lifecycle(lambda: ServerBase(hook_errors="reject"), max_examples=60)


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
    assert finalized and set(finalized) == {"ada"}  # the user's hooks stayed in place


def test_an_app_instance_is_probed_once_and_can_be_checked_again() -> None:
    app = make_app()
    check_lifecycle(app, max_examples=15)
    check_lifecycle(app, max_examples=15)
    assert len(app.static_agents) == 2  # the probe's static agents, installed once


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
            200,
            False,
            None,
            (1, 1, 1),
        ),
        (Scenario(before=(HookPlan(action="reject", status=429),)), 429, False, None, (1,)),
        (Scenario(route="unknown"), 404, False, None, ()),
        (Scenario(bad_body=True, stream=True), 422, False, None, ()),
    ],
)
def test_what_a_scenario_should_produce(
    scenario: Scenario, status: int, streamed: bool, final: str | None, before_runs: tuple[int, ...]
) -> None:
    e = expect(scenario)
    assert (e.status, e.streamed, e.final_status, e.before_runs) == (
        status,
        streamed,
        final,
        before_runs,
    )


def test_a_crashing_before_hook_stops_the_request_only_when_the_server_rejects() -> None:
    scenario = Scenario(before=(HookPlan(), HookPlan(action="raise"), HookPlan()))
    e = expect(scenario, reject_hook_errors=True)
    assert (e.status, e.before_runs, e.agent_runs) == (500, (1, 1, 0), False)


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
