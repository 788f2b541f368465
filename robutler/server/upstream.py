"""Failures of the upstream model API, as the OpenAI-shaped errors a client gets.

An agent that calls a model (through the Agents SDK, or the `openai` client itself) can
fail because the upstream did: an error status, a timeout, no connection, or an answer
that breaks the protocol (malformed JSON, garbage SSE, a stream cut short, an `error` or
`response.failed` event). Those are 502 `upstream_error` (504 `upstream_timeout`, 429
when rate limited, 502 `upstream_unreachable`), not the 500 `agent_error` of a bug in the
agent. Nothing here imports `openai` or `agents` unless such a failure is being looked at.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .protocol import RequestError

__all__ = ["from_upstream", "upstream_error"]

# Code that talks to the upstream: a failure raised inside it is the upstream's.
_UPSTREAM_CODE = ("openai.", "httpx.", "httpcore.", "agents.models.")


def from_upstream(exc: BaseException) -> bool:
    """Whether `exc` was raised by an upstream client (`openai`, `httpx`, or the
    Agents SDK's model layer), judged by its class and where it was raised."""
    if type(exc).__module__.startswith(("openai", "httpx", "httpcore")):
        return True
    return _raised_in(exc.__traceback__)


def _raised_in(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith(_UPSTREAM_CODE):
            return True
        tb = tb.tb_next
    return False


def upstream_error(exc: BaseException) -> RequestError | None:
    """The OpenAI-shaped error for a failure of the upstream model API, if it is one."""
    if not (from_upstream(exc) or type(exc).__module__.startswith("agents")):
        return None
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return RequestError(504, "The upstream model API timed out.", code="upstream_timeout")
    if isinstance(exc, openai.APIStatusError):
        status = 429 if exc.status_code == 429 else 502
        message = f"The upstream model API answered {exc.status_code}: {_upstream_message(exc)}"
        return RequestError(status, message, code="upstream_error")
    if isinstance(exc, openai.APIConnectionError):
        return RequestError(
            502, "The upstream model API could not be reached.", code="upstream_unreachable"
        )
    if isinstance(exc, openai.APIError):  # an error event in a stream, an invalid answer
        return RequestError(
            502, f"The upstream model API failed: {_upstream_message(exc)}", code="upstream_error"
        )
    sdk = _sdk_error(exc)
    if sdk is not None:
        return sdk
    if from_upstream(exc):  # the answer could not be read: malformed JSON, a broken stream
        return RequestError(
            502,
            f"The upstream model API sent an answer that could not be read ({type(exc).__name__}).",
            code="upstream_error",
        )
    return None


def _sdk_error(exc: BaseException) -> RequestError | None:
    """The Agents SDK's own names for upstream faults (a stream that ended without a
    response, an `error` or `response.failed` event, a model call past its timeout)."""
    try:
        from agents.exceptions import ModelBehaviorError, ModelTimeoutError
    except ImportError:  # pragma: no cover - the agents extra is not installed
        return None
    if isinstance(exc, ModelTimeoutError):
        return RequestError(504, "The upstream model API timed out.", code="upstream_timeout")
    if isinstance(exc, ModelBehaviorError):
        return RequestError(502, f"The upstream model API failed: {exc}", code="upstream_error")
    return None


def _upstream_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "")) or type(exc).__name__
