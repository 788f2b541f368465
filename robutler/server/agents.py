"""Agent handlers: how a decorated function is called, worked out once at registration."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from .calls import Call
from .context import RequestState
from .protocol import RequestError

__all__ = [
    "MAX_NAME_LENGTH",
    "AgentSpec",
    "check_handler",
    "check_name",
    "find_agent",
    "is_agent_name",
    "looks_like_handler",
]

MAX_NAME_LENGTH = 128
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")
RESERVED_NAMES = frozenset(
    {"health", "docs", "redoc", "openapi.json", "favicon.ico", "static", "playground"}
)
OPTIONAL = ("stream", "context", "request", "agent_data")  # passed only when the handler names them


def is_agent_name(name: str) -> bool:
    """Whether `name` can be an agent's route segment: URL-safe and at most 128 characters.

    Dynamic names are checked with this before any resolver or hook sees them, so `..`,
    control characters or a 60,000-character name never reach user code or the logs.
    """
    return len(name) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None


def check_name(name: Any, reserved: set[str] | frozenset[str] = RESERVED_NAMES) -> str:
    """Return `name` if it can be an agent's route segment; else raise a helpful error."""
    if not isinstance(name, str):
        raise TypeError(f"agent name must be a str, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"agent name {name[:40]!r}... is {len(name)} characters long; agent names have "
            f"at most {MAX_NAME_LENGTH}"
        )
    if not _NAME_RE.fullmatch(name):
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


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return str(name)
    empty = inspect.Parameter.empty
    plain = [p.replace(annotation=empty) for p in sig.parameters.values()]
    return f"{name}{sig.replace(parameters=plain, return_annotation=empty)}"


def check_handler(fn: Any, extra: tuple[str, ...] = ()) -> None:
    """Raise TypeError at registration when `fn` cannot be called as `fn(messages, ...)`.

    The handler gets `messages` as its first positional argument and, by keyword, only the
    optional parameters it names (`stream`, `context`, `request`, `agent_data`, and `extra`).
    A signature that needs anything else would fail on every request instead.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # no signature to check (some builtins): trust it
    known = (*OPTIONAL, *extra)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    problem = None
    if not positional and not any(p.kind == p.VAR_POSITIONAL for p in params):
        problem = "it takes no positional parameter for the messages"
    elif positional and positional[0].name in known:
        problem = f"its first parameter {positional[0].name!r} would receive the messages"
    else:
        rest = [p for p in params if p is not (positional[0] if positional else None)]
        for p in rest:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
                continue
            if p.name not in known or p.kind == p.POSITIONAL_ONLY:
                problem = f"its required parameter {p.name!r} would never be given"
                break
    if problem is not None:
        optional = ", ".join(known)
        raise TypeError(
            f"agent handler {_describe(fn)} cannot be served: {problem}. A handler is called "
            f"as handler(messages) plus, by keyword, whichever of {optional} it names; "
            "define it like `async def agent(messages, stream=False): ...`"
        )


def looks_like_handler(fn: Any) -> bool:
    """True for a function written as an agent handler rather than a resolver `(name)`.

    Used to tell `@app.agent` (no parentheses) on a handler from `@app.agent(resolver)`.
    """
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        return True
    try:
        names = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(names & {"messages", *OPTIONAL})


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
        choices: bool = False,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"an agent handler must be callable, got {type(fn).__name__}")
        check_handler(fn, ("n",) if choices else ())
        self.fn = fn
        self.choices = choices
        self.name = name
        self.resolver = resolver
        self.model = model
        self.description = description if description is not None else first_line(fn)
        self.pricing: dict[str, Any] | None = getattr(fn, "_robutler_pricing", None)
        self.handler = Call(fn)
        params = _parameters(fn)
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        self.wants = {
            k: (k in params or var_kw) for k in ("stream", "context", "request", "agent_data")
        }
        if choices and not ("n" in params or var_kw):
            raise TypeError(
                f"agent handler {_describe(fn)} is registered with choices=True, so it is "
                "called with n=NUMBER_OF_CHOICES: add a parameter `n: int = 1`"
            )
        # await spec.resolve(name): the resolver's data; False or None means no such agent
        self.resolve = Call(resolver) if resolver is not None else None

    async def call(self, messages: list[dict[str, Any]], stream: bool, state: RequestState) -> Any:
        """Run the handler for one request and return what it returned."""
        kwargs: dict[str, Any] = {"n": state.n} if self.choices else {}
        wants = self.wants
        if wants["stream"]:
            kwargs["stream"] = stream
        if wants["context"]:
            kwargs["context"] = state
        if wants["request"]:
            kwargs["request"] = state.request
        if wants["agent_data"]:
            kwargs["agent_data"] = state.agent_data
        return await self.handler(messages, **kwargs)

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


def first_line(fn: Any) -> str:
    """The first line of `fn`'s docstring, or "" (an agent's default description)."""
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


async def find_agent(name: str, specs: list[AgentSpec]) -> tuple[AgentSpec, Any]:
    """The spec serving `name` and its resolver's data (None for a static agent).

    A static spec always serves; dynamic ones are asked in order. Raises the 404
    `RequestError` when none accepts the name.
    """
    for spec in specs:
        if spec.resolve is None:
            return spec, None
        data = await spec.resolve(name)
        if data is not False and data is not None:
            return spec, data
    raise RequestError(404, f"Agent {name!r} not found.", param="agent", code="agent_not_found")
