"""The state machine: concurrent requests on one live server."""

from __future__ import annotations

import atexit
import threading
import unittest
from collections.abc import Mapping
from typing import Any, ClassVar

from hypothesis import settings as Settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from .checks import ClientView, check_isolation, check_request, raise_if
from .live import LiveApp, LiveClient
from .plans import Scenario, machine_scenarios
from .probe import Trace
from .profiles import lifecycle_settings
from .targets import Target


class _LiveTarget:
    """The live server a LifecycleMachine class shares between its runs."""

    def __init__(
        self, app: Any, headers: Mapping[str, str] | None, timeout: float, prefix: str
    ) -> None:
        self.target = Target(app, prefix)
        self.headers = headers
        self.timeout = timeout
        self.live: LiveApp | None = None
        self._lock = threading.Lock()

    def start(self) -> LiveApp:
        with self._lock:
            if self.live is None:
                self.live = LiveApp(self.target, self.headers, self.timeout)
                atexit.register(self.stop)
            return self.live

    def stop(self) -> None:
        with self._lock:
            if self.live is not None:
                self.live.stop()
                self.live = None


class _MachineRequest:
    """A request the machine started: its trace and its raw-socket client."""

    def __init__(self, number: int, trace: Trace, client: LiveClient) -> None:
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
        trace = self.live.probe.register(scenario, "live")
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
        raise_if([(request.trace.scenario, f"{request!r}: {problem}")], "lifecycle broken:")

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
        raise_if(problems, "lifecycle broken:")

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
            raise_if(problems, "lifecycle broken:")
