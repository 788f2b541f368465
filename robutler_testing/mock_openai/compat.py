"""The other libraries' private names the mock still needs, in one place.

The Agents SDK has public setters for its defaults (`set_default_openai_client`,
`set_tracing_disabled`, ...) and the mock uses them; it has no getters, so saving what to
restore on exit reads private ones, and restoring "tracing as the environment says" needs
the trace provider's private flags. The `openai` module-level client (`openai.chat...`
without a client) has no public reset. `PRIVATE_NAMES` lists every such name;
`missing()` says which of them the installed versions lack, and the test suite fails
naming them when a release moves one. Using a missing one raises `CompatError` naming it.
"""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PRIVATE_NAMES",
    "AgentsDefaults",
    "CompatError",
    "TracingFlags",
    "missing",
    "openai_module_client",
    "set_openai_module_client",
]

_SHARED = "agents.models._openai_shared"
_AGENTS_GETTERS = (
    "get_default_openai_key",
    "get_default_openai_client",
    "get_use_responses_by_default",
    "get_default_openai_responses_transport",
)
_TRACING_FLAGS = ("_env_disabled", "_manual_disabled", "_refresh_disabled_flag")

PRIVATE_NAMES: tuple[str, ...] = (
    "openai._client",
    *(f"{_SHARED}.{name}" for name in _AGENTS_GETTERS),
    *(f"agents.tracing.get_trace_provider().{name}" for name in _TRACING_FLAGS),
)


class CompatError(RuntimeError):
    """A private name the mock relies on is not where it was."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"mock_openai relies on {name}, which the installed version does not have; "
            "update robutler_testing.mock_openai.compat for this release "
            "(or pass configure_agents=False)"
        )
        self.name = name


def _has_openai_client() -> bool:
    import openai

    # `openai._client` is also the name of a submodule: the client slot must shadow it.
    return hasattr(openai, "_client") and not isinstance(openai._client, types.ModuleType)


def missing() -> list[str]:
    """The names of `PRIVATE_NAMES` the installed `openai` and `agents` lack (those that
    are not installed count as having them)."""
    out = [] if _has_openai_client() else ["openai._client"]
    try:
        shared = importlib.import_module(_SHARED)
        from agents.tracing import get_trace_provider
    except ImportError:
        return out
    out += [f"{_SHARED}.{n}" for n in _AGENTS_GETTERS if not hasattr(shared, n)]
    provider = get_trace_provider()
    out += [
        f"agents.tracing.get_trace_provider().{n}"
        for n in _TRACING_FLAGS
        if not hasattr(provider, n)
    ]
    return out


def openai_module_client() -> Any:
    """The `openai` module-level client (None until something used it)."""
    if not _has_openai_client():
        raise CompatError("openai._client")
    import openai

    return openai._client


def set_openai_module_client(client: Any) -> None:
    if not _has_openai_client():
        raise CompatError("openai._client")
    import openai

    openai._client = client


@dataclass(frozen=True)
class AgentsDefaults:
    """The Agents SDK defaults the mock changes, as they were."""

    key: str | None
    client: Any
    use_responses: bool
    transport: str

    @classmethod
    def save(cls) -> AgentsDefaults:
        shared = importlib.import_module(_SHARED)
        for name in _AGENTS_GETTERS:
            if not hasattr(shared, name):
                raise CompatError(f"{_SHARED}.{name}")
        return cls(
            shared.get_default_openai_key(),
            shared.get_default_openai_client(),
            shared.get_use_responses_by_default(),
            shared.get_default_openai_responses_transport(),
        )

    def restore(self) -> None:
        """Put them back through the SDK's public setters."""
        import agents

        set_key: Any = agents.set_default_openai_key  # the setters are typed without None
        set_client: Any = agents.set_default_openai_client
        set_key(self.key, use_for_tracing=False)
        set_client(self.client, use_for_tracing=False)
        agents.set_default_openai_api("responses" if self.use_responses else "chat_completions")
        agents.set_default_openai_responses_transport(self.transport)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TracingFlags:
    """The trace provider's disabled flags, as they were (None for a provider without them)."""

    provider: Any
    flags: tuple[Any, Any] | None

    @classmethod
    def save(cls) -> TracingFlags:
        from agents.tracing import get_trace_provider

        provider: Any = get_trace_provider()
        if not all(hasattr(provider, n) for n in _TRACING_FLAGS):
            return cls(provider, None)  # a provider of the user's own: public API only
        return cls(provider, (provider._env_disabled, provider._manual_disabled))

    def restore(self) -> None:
        if self.flags is None:
            self.provider.set_disabled(False)
            return
        self.provider._env_disabled, self.provider._manual_disabled = self.flags
        self.provider._refresh_disabled_flag()
