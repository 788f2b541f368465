"""Request lifecycle hooks: before_request, finalize_request, and the StreamingWrapper.

Hooks are plain functions or coroutines. A before hook gets `(request)`, a finalize hook
`(request, response)`; either also gets `context=` when it names that parameter. Sync
hooks run in the threadpool, like FastAPI's sync endpoints.

A hook's bug never breaks a request: its exception is logged once, naming the hook, and
the other hooks and the agent still run. A before hook rejects a request only by raising
`HTTPException` (401, 402, 429, ...); servers that want a crashing before hook to fail
closed say `hook_errors="reject"` and get a 500 with code `hook_error`. Finalize hooks
all run, and they finish even when the request's task is cancelled.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from .calls import Call
from .context import RequestState
from .eager import finish
from .protocol import RequestError

__all__ = ["HOOK_ERRORS", "Hook", "Hooks", "StreamingWrapper"]

logger = logging.getLogger("robutler")

HOOK_ERRORS = ("log", "reject")


class StreamingWrapper:
    """What finalize hooks get for a streamed response.

    `original_response` is what the agent returned; `status` is "streaming" until the
    stream ends, then "completed", "disconnected" (the client left), "failed" (then
    `error` holds the exception) or "timeout" (the agent ran past `request_timeout`;
    `error` is a `TimeoutError`).
    """

    __slots__ = (
        "bytes_sent",
        "chunks_sent",
        "error",
        "headers",
        "media_type",
        "original_response",
        "status",
        "status_code",
    )

    def __init__(self, original_response: Any, status_code: int = 200) -> None:
        self.original_response = original_response
        self.status_code = status_code
        self.media_type = "text/event-stream"
        self.headers: dict[str, str] = {}
        self.status = "streaming"
        self.error: BaseException | None = None
        self.chunks_sent = 0
        self.bytes_sent = 0

    @property
    def completed(self) -> bool:
        """The whole stream, up to [DONE], was handed to the server."""
        return self.status == "completed"

    @property
    def disconnected(self) -> bool:
        """The client went away before the stream ended."""
        return self.status == "disconnected"

    @property
    def failed(self) -> bool:
        """The agent raised while streaming; `error` says what."""
        return self.status == "failed"

    def __repr__(self) -> str:
        return f"<StreamingWrapper {self.status} chunks={self.chunks_sent} bytes={self.bytes_sent}>"


class Hook:
    """A registered callback, with how to call it worked out once."""

    __slots__ = ("call", "fn", "label", "npos", "wants_context")

    def __init__(self, fn: Callable[..., Any], max_positional: int, kind: str) -> None:
        self.fn = fn
        self.call = Call(fn)
        self.label = f"{kind} hook {getattr(fn, '__qualname__', None) or fn!r}"
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            self.npos = max_positional
        else:
            self.npos = min(len([p for p in positional if p.name != "context"]), max_positional)
        self.wants_context = "context" in sig.parameters or any(
            p.kind == p.VAR_KEYWORD for p in params
        )

    async def __call__(self, state: RequestState, *args: Any) -> Any:
        args = args[: self.npos]
        kwargs = {"context": state} if self.wants_context else {}
        return await self.call(*args, **kwargs)


class Hooks:
    """The before_request and finalize_request callbacks of one server.

    `hook_errors` says what a before hook's exception other than `HTTPException` does:
    "log" (the default) logs it and goes on with the request; "reject" answers 500
    `hook_error`.
    """

    def __init__(self, hook_errors: str = "log") -> None:
        if hook_errors not in HOOK_ERRORS:
            raise ValueError(
                f"hook_errors must be 'log' (a crashing hook is logged and the request goes "
                f"on) or 'reject' (it answers 500 hook_error), got {hook_errors!r}"
            )
        self.reject_on_error = hook_errors == "reject"
        self.before: list[Hook] = []
        self.finalize: list[Hook] = []
        # applied to every hook as it is added (tracing puts each hook in a span)
        self.wrap: Callable[[Hook], None] | None = None

    def add_before(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.before.append(
            self._made(Hook(_check_callable(fn, "before_request"), 1, "before_request"))
        )
        return fn

    def add_finalize(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.finalize.append(
            self._made(Hook(_check_callable(fn, "finalize_request"), 2, "finalize_request"))
        )
        return fn

    def _made(self, hook: Hook) -> Hook:
        if self.wrap is not None:
            self.wrap(hook)
        return hook

    async def run_before(self, state: RequestState) -> None:
        """Run before hooks in order. `HTTPException` rejects the request; other
        exceptions are logged and skipped, or (with `hook_errors="reject"`) reject it with
        a 500 `hook_error`."""
        for hook in self.before:
            try:
                await hook(state, state.request)
            except (HTTPException, RequestError):
                raise
            except Exception as exc:
                _log_hook_failure(hook, state)
                if self.reject_on_error:
                    raise RequestError(
                        500,
                        f"A before_request hook failed (request id {state.request_id}).",
                        code="hook_error",
                        logged=True,
                    ) from exc

    async def _run_finalize(self, state: RequestState, response: Any) -> None:
        for hook in self.finalize:
            try:
                await hook(state, state.request, response)
            except Exception:
                _log_hook_failure(hook, state)

    async def run_finalize(self, state: RequestState, response: Any) -> None:
        """Run every finalize hook once, shielded from the caller's cancellation.

        Hooks that never wait finish right here; the rest goes on in a task of its own,
        which a cancellation of the caller does not reach.
        """
        if not self.finalize:
            return
        coro = self._run_finalize(state, response)
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        task = asyncio.ensure_future(finish(coro, pending))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError


def _log_hook_failure(hook: Hook, state: RequestState) -> None:
    """Log the exception being handled once, with its traceback, as the hook's failure."""
    logger.exception("%s failed (request %s)", hook.label, state.request_id)


def _check_callable(fn: Any, what: str) -> Callable[..., Any]:
    if not callable(fn):
        raise TypeError(f"@app.agent.{what} expects a function, got {type(fn).__name__}")
    return fn
