"""The per-request context: one `RequestState` per agent request (chat or responses).

The state lives in a context variable, so the hooks, the agent, the stream generator,
tasks they spawn and threads started through the threadpool all see the same object,
and concurrent requests never see each other's.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["RequestState", "current_context", "get_context", "store_owner"]

_current: ContextVar[RequestState | None] = ContextVar("robutler_request_state", default=None)
_record_ids = itertools.count(1)


class RequestState:
    """What robutler knows about one request, and what the code serving it records.

    `data` holds values set with `set()`; `usage` holds the credits charged through
    `track_usage()`; `token_usage` is the token usage the agent reported, if any.
    `owner` names who owns what the request stores and may read (stored responses): a
    `before_request` hook that authenticates users sets it (`current_context().owner =
    user`) so that users are kept apart as API keys are; left None, the API key's owner.
    """

    __slots__ = (
        "agent_data",
        "agent_name",
        "api_key_name",
        "charges",
        "data",
        "error",
        "messages",
        "n",
        "owner",
        "request",
        "request_id",
        "response",
        "spawned",
        "start_time",
        "stream",
        "token_usage",
        "usage",
    )

    def __init__(
        self,
        request: Request | None = None,
        agent_name: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.request = request
        self.agent_name = agent_name
        self.request_id = request_id or uuid.uuid4().hex
        self.start_time = time.perf_counter()
        self.stream = False
        self.n = 1  # the number of choices the request asked for
        self.messages: list[dict[str, Any]] = []
        self.agent_data: Any = None
        self.data: dict[str, Any] = {}
        self.usage: dict[str, Any] = {"total_credits": 0, "records": []}
        self.token_usage: dict[str, Any] | None = None
        self.response: Any = None
        self.error: BaseException | None = None
        self.api_key_name: str | None = None
        self.owner: str | None = None  # set by a hook that authenticates; see store_owner
        self.spawned: list[Any] | None = None  # tasks started while serving it (watch.py)
        self.charges: list[dict[str, Any]] = []  # @pricing configs to settle at the end

    def set(self, key: str, value: Any) -> None:
        """Store a value for the rest of this request."""
        self.data[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        """Read a value stored with `set()`, or `default`."""
        return self.data.get(key, default)

    def track_usage(
        self,
        credits: float,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a charge of `credits` against this request and return the record's id."""
        if isinstance(credits, bool) or not isinstance(credits, (int, float)):
            raise TypeError(f"credits must be a number, got {type(credits).__name__}")
        if credits < 0:
            raise ValueError(f"credits must not be negative, got {credits}")
        record_id = f"usage-{next(_record_ids)}"
        self.usage["records"].append(
            {
                "id": record_id,
                "credits": credits,
                "reason": reason,
                "metadata": dict(metadata or {}),
                "timestamp": time.time(),
            }
        )
        self.usage["total_credits"] += credits
        return record_id

    def get_duration(self) -> float:
        """Seconds since the request began."""
        return time.perf_counter() - self.start_time

    def __repr__(self) -> str:
        return f"<RequestState {self.request_id} agent={self.agent_name!r} stream={self.stream}>"


def store_owner(state: RequestState) -> str | None:
    """Who owns what `state`'s request stores and may read: the `owner` a before hook set,
    else the API key's owner (None on a server without keys: one owner for all)."""
    if state.owner is not None:
        if not isinstance(state.owner, str):
            raise TypeError(
                f"current_context().owner must be a str (the user), got {type(state.owner).__name__}"
            )
        return state.owner
    return state.api_key_name


def get_context() -> RequestState | None:
    """The current request's `RequestState`, or None outside a request."""
    return _current.get()


def current_context() -> RequestState:
    """The current request's `RequestState`; RuntimeError outside a request.

    The typed twin of `get_context()` for code that only runs while serving a request
    (hooks, agents, the tools they call): no None check needed, and mypy agrees.
    """
    state = _current.get()
    if state is None:
        raise RuntimeError(
            "current_context() was called outside a request: it works in before_request "
            "and finalize_request hooks, agents and what they call while serving a "
            "request. Use get_context(), which returns None there, where that can happen."
        )
    return state
