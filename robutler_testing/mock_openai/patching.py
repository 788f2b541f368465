"""Pointing the process at the mock, and putting everything back.

Inside the block: `OPENAI_BASE_URL`/`OPENAI_API_KEY` name the mock and
`OPENAI_AGENTS_DISABLE_TRACING` is set; the `openai` module-level client is reset so it is
rebuilt from them; with `configure_agents`, the Agents SDK's default client is an
`AsyncOpenAI` on the mock (through its public `set_default_openai_client`) and tracing is
off (`set_tracing_disabled`). `restore()` undoes each step that was taken, in reverse.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from . import compat

__all__ = ["MOCK_API_KEY", "Patches"]

MOCK_API_KEY = "sk-mock"
_ENV_KEYS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_AGENTS_DISABLE_TRACING")


class Patches:
    """The changes one active mock made to the process, each with its undo."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self.agents_client: Any = None  # the AsyncOpenAI the Agents SDK was given

    def apply(self, base_url: str, make_client: Callable[..., Any], configure_agents: bool) -> None:
        """Make every change; on a failure the ones made so far stay listed for `restore`."""
        agents = _agents_sdk() if configure_agents else None
        if agents is not None:
            self._tracing(agents)  # restored last, once the environment is back
        self._environment(base_url)
        self._openai_module()
        if agents is not None:
            self._agents(agents, make_client)

    def restore(self) -> None:
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()

    def _environment(self, base_url: str) -> None:
        saved = {key: os.environ.get(key) for key in _ENV_KEYS}

        def undo() -> None:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

        self._undo.append(undo)
        os.environ.update(
            OPENAI_BASE_URL=base_url,
            OPENAI_API_KEY=MOCK_API_KEY,
            OPENAI_AGENTS_DISABLE_TRACING="1",
        )

    def _openai_module(self) -> None:
        if "openai" not in sys.modules:
            return  # imported later, it reads the environment anyway
        saved = compat.openai_module_client()

        def undo() -> None:
            ours = compat.openai_module_client()
            if ours is not None and ours is not saved:
                ours.close()
            compat.set_openai_module_client(saved)

        self._undo.append(undo)
        compat.set_openai_module_client(None)

    def _tracing(self, agents: Any) -> None:
        tracing = compat.TracingFlags.save()
        self._undo.append(tracing.restore)
        agents.set_tracing_disabled(True)

    def _agents(self, agents: Any, make_client: Callable[..., Any]) -> None:
        import httpx2
        import openai

        defaults = compat.AgentsDefaults.save()
        self._undo.append(self._forget_client)
        self._undo.append(defaults.restore)
        # No keep-alive: the client may be used from several event loops (pytest-asyncio,
        # Runner.run_sync, a server thread), and pooled connections are bound to one loop.
        http_client = openai.DefaultAsyncHttpx2Client(
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=0)
        )
        self.agents_client = make_client(http_client=http_client)
        agents.set_default_openai_key(MOCK_API_KEY, use_for_tracing=False)
        agents.set_default_openai_client(self.agents_client, use_for_tracing=False)

    def _forget_client(self) -> None:
        self.agents_client = None


def _agents_sdk() -> Any:
    """The `agents` package, or None when it is not installed."""
    try:
        import agents
    except ImportError:
        return None
    return agents
