"""Hypothesis properties for the request lifecycle of a robutler server.

Point them at your own server (a `ServerBase`, or a function that builds one) and they
check, request by request (Chat Completions and Responses API requests, to each agent's
own routes and through the `/v1` front door), what robutler promises about a request's
life: `finalize_request` runs exactly once, after the last byte, and each finalize hook
once, to its end, also when the request is cancelled; every hook, the agent, its tasks and its stream share one context of
the request's own; finalize is told the truth (completed / disconnected / failed, and the
response the client got); work stops when the client leaves; usage stays with its request;
`@pricing` charges match the outcome; a client that hangs up is not an agent failure::

    from robutler_testing.lifecycle import LifecycleMachine, check_lifecycle

    def test_lifecycle():
        check_lifecycle(make_app)                        # ASGI level, hundreds of scenarios

    TestLiveLifecycle = LifecycleMachine.for_app(make_app)  # concurrent requests, live uvicorn

The checks add probe agents (`/lifecycle-probe...`) and probe hooks to the server; your
own hooks, middleware and settings stay in place (pass `headers=` if the server wants an API
key). A request's plan travels in an `x-lifecycle-probe` header.

- Entry points: `check_lifecycle(app, live=False)` and `LifecycleMachine.for_app(app)`;
  a broken guarantee raises `LifecycleViolation`.
- Strategies to narrow what is drawn (`check_lifecycle(app, batches=...)`): `agent_plans`,
  `hook_plans`, `client_plans`, `scenarios`, `request_batches`, `machine_scenarios`; the
  plans they draw (`robutler_testing.lifecycle.plans`) say in plain words what happens.
- Profiles: `lifecycle_settings()`; `ROBUTLER_LIFECYCLE_PROFILE=deep` selects the long run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import example, given, note
from hypothesis import settings as Settings
from hypothesis import strategies as st

from .asgi import ASGIRunner
from .checks import LifecycleViolation, raise_if
from .live import LiveRunner
from .machine import LifecycleMachine
from .plans import (
    APIS,
    CORNER_CASES,
    FRONT_DOOR_APIS,
    ROUTES,
    RequestBatch,
    Route,
    agent_plans,
    client_plans,
    hook_plans,
    machine_scenarios,
    request_batches,
    scenarios,
)
from .profiles import lifecycle_settings
from .targets import Target

__all__ = [
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
]


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
    target = Target(app, prefix)
    chosen = settings or lifecycle_settings("live" if live else "asgi")
    if max_examples is not None:
        chosen = Settings(chosen, max_examples=max_examples)
    default = batches is None
    if batches is None:
        # a server with resolvers of its own may accept any name: no 404 scenarios then;
        # one without the OpenAI front door gets requests to the agents' own routes only
        probe = target.probe(fresh=True)
        own = len(getattr(probe.server, "dynamic_agents", ())) > 2
        routes: tuple[Route, ...] = ("static", "dynamic") if own else ROUTES
        apis = APIS if probe.front_door else tuple(a for a in APIS if a not in FRONT_DOOR_APIS)
        batches = request_batches(scenarios(routes=routes, apis=apis))
    strategy = batches
    runner: ASGIRunner | LiveRunner
    if live:
        runner = LiveRunner(target, headers, timeout, validate)
    else:
        runner = ASGIRunner(target, headers, timeout, validate)

    @chosen
    @given(batch=strategy)
    def lifecycle_holds(batch: RequestBatch) -> None:
        note(batch.describe())
        raise_if(runner.run(batch), "the request lifecycle is broken:")

    if default and not live:  # the corner cases first (timings of the ASGI driver's clients)
        for corner in reversed(CORNER_CASES):
            lifecycle_holds = example(batch=corner)(lifecycle_holds)

    try:
        lifecycle_holds()
    finally:
        runner.close()
