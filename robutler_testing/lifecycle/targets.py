"""Targets: the app, or a factory of apps, with the probe installed."""

from __future__ import annotations

from typing import Any

from .plans import Scenario
from .probe import Probe, Trace


def _is_server(app: Any) -> bool:
    return hasattr(app, "agent") and hasattr(app, "chat_handler")


class Target:
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


def registered(probe: Probe, scenario: Scenario, driver: str) -> Trace:
    """A trace for a driver that does not advance gated agents: every piece is released."""
    trace = probe.register(scenario, driver)
    trace.release(len(scenario.agent.pieces))
    return trace
