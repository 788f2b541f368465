"""Agent objects -> handler functions that `ServerBase` serves.

`adapt(agent)` recognises an OpenAI Agents SDK `Agent` (without importing the SDK unless
it is already imported), an object with `run(messages)` (and optionally
`run_streamed(messages)`), or a plain callable. The Agents SDK adapter lives in
`agents_sdk.py` and is imported only for such agents.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from .calls import Call

__all__ = ["Adapted", "adapt", "is_agents_sdk_agent", "route_name", "suggest_name"]


class Adapted:
    """A handler for one agent object, with what the server shows about it."""

    __slots__ = ("description", "handler", "model", "pricing", "problem")

    def __init__(
        self,
        handler: Callable[..., Any],
        *,
        description: str | None = None,
        model: str | None = None,
        pricing: dict[str, Any] | None = None,
        problem: Callable[[], str | None] | None = None,
    ) -> None:
        self.handler = handler
        self.description = description
        self.model = model
        self.pricing = pricing
        self.problem = problem  # what keeps the agent from answering (e.g. no API key), if any


def is_agents_sdk_agent(obj: Any) -> bool:
    """True for an `agents.Agent`; False without importing the SDK when it is not loaded."""
    sdk = sys.modules.get("agents")
    agent_cls = getattr(sdk, "Agent", None) if sdk is not None else None
    return agent_cls is not None and isinstance(obj, agent_cls)


def route_name(agent: Any) -> str:
    """`agent.name`, a function's `__name__`, else `str(agent)`."""
    name = getattr(agent, "name", None)
    if isinstance(name, str) and name:
        return name
    if inspect.isfunction(agent) or inspect.ismethod(agent):
        return agent.__name__
    return str(agent)


def suggest_name(agent: Any) -> str:
    """A URL-safe route name for `agent`: from its name if that has letters, else its class."""
    name = getattr(agent, "name", None)
    if inspect.isfunction(agent) or inspect.ismethod(agent):
        name = agent.__name__
    if isinstance(name, str):
        slug = re.sub(r"[^A-Za-z0-9._~-]+", "-", name).strip("-._~").lower()
        if slug and any(c.isalpha() for c in slug):
            return slug
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", type(agent).__name__)
    return re.sub(r"[^A-Za-z0-9-]+", "-", kebab).strip("-").lower() or "agent"


def _duck(agent: Any) -> Adapted:
    pricing = getattr(agent.run, "_robutler_pricing", None)
    run = Call(agent.run)
    streamed = getattr(agent, "run_streamed", None)
    if callable(streamed) and pricing is not None and not hasattr(streamed, "_robutler_pricing"):
        streamed = _priced(streamed, pricing)  # @pricing on run prices the whole agent
    run_streamed = Call(streamed) if callable(streamed) else None

    async def handler(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        if stream and run_streamed is not None:
            return await run_streamed(messages)
        return await run(messages)

    handler.__doc__ = inspect.getdoc(agent) or ""
    model = getattr(agent, "model", None)
    return Adapted(handler, model=model if isinstance(model, str) else None, pricing=pricing)


def _priced(handler: Callable[..., Any], config: dict[str, Any]) -> Callable[..., Any]:
    from .pricing import pricing

    keys = ("credits_per_request", "credits_per_call", "credits_per_token", "max_credits", "reason")
    return pricing(**{k: config[k] for k in keys})(handler)


def adapt(agent: Any) -> Adapted:
    """A handler for `agent`, or TypeError saying what robutler can serve."""
    if is_agents_sdk_agent(agent):
        from .agents_sdk import adapt_sdk_agent

        return adapt_sdk_agent(agent)
    if callable(getattr(agent, "run", None)):
        return _duck(agent)
    if callable(agent) and not isinstance(agent, type):
        return Adapted(agent, pricing=getattr(agent, "_robutler_pricing", None))
    raise TypeError(
        f"cannot serve {agent!r} (type {type(agent).__name__}): pass an OpenAI Agents SDK "
        "Agent, an object with run(messages) (and optionally run_streamed(messages)), or a "
        "function(messages, stream=False)"
    )
