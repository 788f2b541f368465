"""Agent handlers: how a decorated function is called, worked out once at registration."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from .context import RequestState
from .protocol import RequestError

__all__ = ["AgentSpec", "check_name", "find_agent"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
RESERVED_NAMES = frozenset(
    {"health", "docs", "redoc", "openapi.json", "favicon.ico", "static", "playground"}
)


def check_name(name: Any, reserved: set[str] | frozenset[str] = RESERVED_NAMES) -> str:
    """Return `name` if it can be an agent's route segment; else raise a helpful error."""
    if not isinstance(name, str):
        raise TypeError(f"agent name must be a str, got {type(name).__name__}")
    if not _NAME_RE.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._~-]", c)})
        slug = re.sub(r"[^A-Za-z0-9._~-]+", "-", name).strip("-._~").lower() or "agent"
        what = f"characters {bad!r}" if bad else "a leading '.', '_', '~' or '-'"
        shown = name if name else "''"
        raise ValueError(
            f"agent name {shown!r} is not URL-safe: it has {what}. Use letters, digits, "
            f"'-', '_', '.' and '~', starting with a letter or digit; for example {slug!r}."
        )
    if name in reserved:
        raise ValueError(
            f"agent name {name!r} collides with the server route /{name}; choose another name"
        )
    return name


class AgentSpec:
    """A registered agent: its handler, how to call it, and what it tells about itself."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        resolver: Callable[[str], Any] | None = None,
        *,
        description: str | None = None,
        model: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"an agent handler must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.resolver = resolver
        self.model = model
        self.description = description if description is not None else _first_line(fn)
        self.pricing: dict[str, Any] | None = getattr(fn, "_robutler_pricing", None)
        self.is_asyncgen = inspect.isasyncgenfunction(fn)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004
        )
        params = _parameters(fn)
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        self.wants = {
            k: (k in params or var_kw) for k in ("stream", "context", "request", "agent_data")
        }
        self.resolver_is_async = resolver is not None and inspect.iscoroutinefunction(resolver)

    async def resolve(self, name: str) -> Any:
        """The resolver's data for `name`; False or None means no such agent."""
        assert self.resolver is not None
        if self.resolver_is_async:
            data = await self.resolver(name)
        else:
            data = await run_in_threadpool(self.resolver, name)
        if inspect.isawaitable(data):
            data = await data
        return data

    async def call(self, messages: list[dict[str, Any]], stream: bool, state: RequestState) -> Any:
        """Run the handler for one request and return what it returned."""
        kwargs: dict[str, Any] = {}
        wants = self.wants
        if wants["stream"]:
            kwargs["stream"] = stream
        if wants["context"]:
            kwargs["context"] = state
        if wants["request"]:
            kwargs["request"] = state.request
        if wants["agent_data"]:
            kwargs["agent_data"] = state.agent_data
        if self.is_async:
            result = await self.fn(messages, **kwargs)
        elif self.is_asyncgen:
            return self.fn(messages, **kwargs)
        else:
            result = await run_in_threadpool(self.fn, messages, **kwargs)
        while inspect.isawaitable(result):
            result = await result
        return result

    def info(self, name: str) -> dict[str, Any]:
        """What `GET /NAME` answers."""
        base = f"/{name}"
        return {
            "name": name,
            "description": self.description,
            "dynamic": self.resolver is not None,
            "endpoints": {
                "chat_completions": f"{base}/chat/completions",
                "models": f"{base}/models",
                "info": base,
            },
            "pricing": self.pricing,
        }


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _first_line(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


async def find_agent(name: str, specs: list[AgentSpec]) -> tuple[AgentSpec, Any]:
    """The spec serving `name` and its resolver's data (None for a static agent).

    A static spec always serves; dynamic ones are asked in order. Raises the 404
    `RequestError` when none accepts the name.
    """
    for spec in specs:
        if spec.resolver is None:
            return spec, None
        data = await spec.resolve(name)
        if data is not False and data is not None:
            return spec, data
    raise RequestError(404, f"Agent {name!r} not found.", param="agent", code="agent_not_found")
