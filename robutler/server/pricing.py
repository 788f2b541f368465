"""`@pricing`: declare what an agent (or a tool it calls) costs, and charge it per request.

The decorator keeps the function's name, docstring, signature and behaviour and stores
its configuration as `fn._robutler_pricing` (shown by `GET /NAME`). Called while serving
a request it records charges in that request's usage:

- `credits_per_call`: on each call that returns (or, for a sync or async generator, is
  exhausted) normally — never for one that raises or is closed early;
- `credits_per_request` and `credits_per_token` (from the real token usage of the answer,
  capped with the whole charge by `max_credits`): once, when the request completed — none
  when it failed or the client left.

Called outside a request it just runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .calls import around
from .context import RequestState, get_context

__all__ = ["apply_request_charges", "pricing"]

F = TypeVar("F", bound=Callable[..., Any])


def pricing(
    credits_per_request: float = 0,
    credits_per_call: float = 0,
    credits_per_token: float = 0,
    max_credits: float | None = None,
    reason: str | None = None,
) -> Callable[[F], F]:
    """Price a function; see the module docstring for when each charge is recorded."""
    for key, value in (
        ("credits_per_request", credits_per_request),
        ("credits_per_call", credits_per_call),
        ("credits_per_token", credits_per_token),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"@pricing({key}=...) must be a number >= 0, got {value!r}")
    if max_credits is not None and (not isinstance(max_credits, (int, float)) or max_credits < 0):
        raise ValueError(
            f"@pricing(max_credits=...) must be a number >= 0 or None, got {max_credits!r}"
        )

    def decorate(fn: F) -> F:
        config: dict[str, Any] = {
            "credits_per_request": credits_per_request,
            "credits_per_call": credits_per_call,
            "credits_per_token": credits_per_token,
            "max_credits": max_credits,
            "reason": reason or f"{getattr(fn, '__name__', 'agent')} usage",
        }

        def enlist() -> RequestState | None:
            state = get_context()
            wanted = state is not None and (credits_per_request or credits_per_token)
            if wanted and not any(c is config for c in state.charges):  # type: ignore[union-attr]
                state.charges.append(config)  # type: ignore[union-attr]
            return state

        def charge_call(state: RequestState | None) -> None:
            if state is not None and credits_per_call:
                state.track_usage(credits_per_call, config["reason"], {"pricing": "per_call"})

        wrapper: Any = around(fn, enlist, charge_call)
        wrapper._robutler_pricing = config
        return wrapper

    return decorate


def apply_request_charges(state: RequestState, completed: bool) -> None:
    """Record per-request and per-token charges of priced functions that served `state`."""
    if not completed:
        return
    usage = state.token_usage or {}
    tokens = usage.get("total_tokens")
    if tokens is None:
        tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    for config in state.charges:
        credits = config["credits_per_request"] + config["credits_per_token"] * tokens
        if config["max_credits"] is not None:
            credits = min(credits, config["max_credits"])
        if credits:
            state.track_usage(
                credits,
                config["reason"],
                {
                    "pricing": "per_request",
                    "tokens": tokens,
                    "capped": credits == config["max_credits"],
                },
            )
