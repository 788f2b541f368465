"""Serving one chat-completion request, as plain ASGI.

The lifecycle of DESIGN.md §Lifecycle lives here, in one function with one `finally`:
context, before hooks, resolution, validation, the agent, the response or stream, then
finalize exactly once. While the agent runs, a watcher reads `receive` so that a client
who leaves cancels the agent instead of leaving it running.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .agents import find_agent
from .context import RequestState, _current
from .eager import resume
from .lifecycle import Hooks, StreamingWrapper
from .pricing import apply_request_charges
from .protocol import RequestError, encode, error_body, now, parse_request
from .results import (
    COMPLETION,
    MESSAGE,
    RESPONSE,
    TEXT,
    ChunkEncoder,
    UnsupportedResult,
    assemble,
    classify,
    completion_chunks,
    completion_from_dict,
    is_substantial,
    iter_items,
    n_choices,
    one_choice,
)

if TYPE_CHECKING:
    from .agents import AgentSpec
    from .auth import ApiKeys

__all__ = ["ChatHandler", "error_response"]

logger = logging.getLogger("robutler")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON_TYPE = (b"content-type", b"application/json")
DISCONNECTED = 499  # nginx's "client closed request": no answer was sent
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def incoming_request_id(scope: Scope) -> str | None:
    """The client's `X-Request-ID` when it is a safe token (letters, digits, `-_.:`, at
    most 128 characters); None otherwise, so that a fresh id is made."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode() if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


class AgentRequest(Request):
    """A Request whose body is read at most `max_body_size` bytes, never buffered past it."""

    max_body_size: int = DEFAULT_MAX_BODY_SIZE

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = self.max_body_size
            length = self.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise _too_large(limit)
            if self._stream_consumed:
                raise RuntimeError("Stream consumed")
            # Read `receive` directly: Request.stream() costs an async generator per request.
            parts = []
            size = 0
            while not self._stream_consumed:
                message = await self._receive()
                if message["type"] == "http.request":
                    part = message.get("body", b"")
                    if not message.get("more_body", False):
                        self._stream_consumed = True
                    size += len(part)
                    if size > limit:
                        raise _too_large(limit)
                    parts.append(part)
                elif message["type"] == "http.disconnect":
                    self._is_disconnected = True
                    raise ClientDisconnect()
            self._body = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._body


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"The request body is larger than the limit of {limit} bytes.",
        code="request_too_large",
    )


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> Response:
    """A JSON error in OpenAI's shape."""
    hdrs = dict(headers or {})
    if request_id:
        hdrs["x-request-id"] = request_id
    return Response(
        encode(error_body(status, message, param=param, code=code)),
        status_code=status,
        headers=hdrs,
        media_type="application/json",
    )


class _Failure:
    """What a client is told about an exception: status, message, param, code, headers."""

    __slots__ = ("code", "headers", "message", "param", "status")

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, param=self.param, code=self.code)

    def response(self, request_id: str) -> Response:
        return error_response(
            self.status,
            self.message,
            param=self.param,
            code=self.code,
            headers=self.headers,
            request_id=request_id,
        )


def _from_http_exception(exc: HTTPException) -> _Failure:
    detail = exc.detail
    if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
        err = detail["error"]
        message = str(err.get("message", ""))
        return _Failure(exc.status_code, message, err.get("param"), err.get("code"), exc.headers)
    message = detail if isinstance(detail, str) else encode(detail).decode()
    return _Failure(exc.status_code, message, headers=exc.headers)


class _Watch:
    """Shared by a request's task and its disconnect watcher."""

    __slots__ = ("disconnected", "done")

    def __init__(self) -> None:
        self.disconnected = False
        self.done = False


async def _watch_disconnect(receive: Receive, task: asyncio.Task[Any], watch: _Watch) -> None:
    """Cancel `task` (the one running the agent) when the client goes away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not watch.done:
                watch.disconnected = True
                task.cancel()
            return


async def _send_last(send: Send, message: Any) -> None:
    """Send the last body message outside the request's context.

    The server may schedule work as the response ends (uvicorn: the keep-alive timer),
    and a callback copies the current context: with the request's state in it, the state,
    the request and its scope would live on until the next request on that connection.
    Under load those survivors make the garbage collector run many times as often.
    """
    token = _current.set(None)
    try:
        await send(message)
    finally:
        _current.reset(token)


class _Outcome:
    """What serving the request leaves for finalize, even when it is cancelled."""

    __slots__ = ("response", "started")

    def __init__(self) -> None:
        self.response: Any = None
        self.started = False


class ChatHandler:
    """Serves `POST /NAME/chat/completions` for a server's agents."""

    def __init__(
        self,
        hooks: Hooks,
        *,
        max_body_size: int,
        max_messages: int = 10_000,
        max_depth: int = 64,
        auth: ApiKeys | None = None,
        debug: bool = False,
    ) -> None:
        self.hooks = hooks
        self.max_body_size = max_body_size
        self.max_messages = max_messages
        self.max_depth = max_depth
        self.auth = auth
        self.debug = debug

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        specs: list[AgentSpec],
    ) -> None:
        request = AgentRequest(scope, receive)
        request.max_body_size = self.max_body_size
        state = RequestState(request, name, incoming_request_id(scope))
        token = _current.set(state)
        outcome = _Outcome()
        try:
            await self._serve(state, specs, scope, receive, send, outcome)
        finally:
            response = outcome.response
            if response is None:
                response = Response(status_code=DISCONNECTED)
            state.response = response
            if state.charges:
                apply_request_charges(state, _completed(response))
            try:
                await self.hooks.run_finalize(state, response)
            finally:
                _current.reset(token)

    async def _serve(
        self,
        state: RequestState,
        specs: list[AgentSpec],
        scope: Scope,
        receive: Receive,
        send: Send,
        outcome: _Outcome,
    ) -> None:
        rid = state.request_id
        try:
            if self.auth is not None:
                state.api_key_name = self.auth.check(scope)
            if self.hooks.before:
                await self.hooks.run_before(state)
            spec, state.agent_data = await find_agent(state.agent_name or "", specs)
            assert state.request is not None
            body = await state.request.body()
            data, req = parse_request(
                body, max_messages=self.max_messages, max_depth=self.max_depth
            )
            state.messages = data["messages"]
            state.stream = req.stream is True
            state.n = n = req.n or 1
            if n > 1 and not spec.choices:
                raise RequestError(
                    400,
                    f"Agent {state.agent_name!r} answers one choice per request; 'n' must "
                    f"be 1, got {n}.",
                    param="n",
                    code="unsupported_value",
                )
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            model = spec.model or req.model or state.agent_name or "agent"
            await self._run(state, spec, include_usage, model, scope, receive, send, outcome)
            return
        except ClientDisconnect as exc:
            state.error = exc
            return
        except Exception as exc:
            state.error = exc
            response = self._failure(exc, state).response(rid)
        if outcome.started:
            return  # an answer is already on its way; the stream reported the failure
        outcome.response = response
        outcome.started = True
        await response(scope, receive, send)

    @staticmethod
    def _mark_cut(outcome: _Outcome) -> None:
        response = outcome.response
        if isinstance(response, StreamingWrapper) and response.status == "streaming":
            response.status = "disconnected"

    def _failure(self, exc: BaseException, state: RequestState) -> _Failure:
        """What the client is told about `exc`; a 5xx is logged once, with its traceback."""
        rid = state.request_id
        if isinstance(exc, RequestError):
            failure = _Failure(exc.status, exc.message, exc.param, exc.code, exc.headers)
        elif isinstance(exc, HTTPException):
            failure = _from_http_exception(exc)
        elif isinstance(exc, UnsupportedResult):
            failure = _Failure(500, str(exc), code="unsupported_result")
        else:
            detail = f"{type(exc).__name__}: {exc}" if self.debug else "The agent failed."
            failure = _Failure(500, f"{detail} (request id {rid})", code="agent_error")
        if failure.status >= 500:
            message = failure.message  # names the request id once, whatever the cause
            if rid not in message:
                message += f" (request id {rid})"
            quiet = isinstance(exc, RequestError) and not exc.log_traceback
            logger.error("agent %r: %s", state.agent_name, message, exc_info=None if quiet else exc)
        return failure

    async def _run(
        self,
        state: RequestState,
        spec: AgentSpec,
        include_usage: bool,
        model: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        outcome: _Outcome,
    ) -> None:
        # The agent runs in this task. Its first step runs right away: an answer that is
        # complete before anything has to wait needs no watcher. Once it waits, a watcher
        # task cancels this task if the client leaves. (A watcher per request, even one
        # cancelled at once, keeps the request's objects alive past its end: under load
        # that alone triggers the garbage collector several times as often.)
        coro = self._produce(state, spec, include_usage, model, scope, receive, send, outcome)
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, task, watch))
        try:
            await resume(coro, pending)
        except (Exception, asyncio.CancelledError) as exc:
            if not watch.disconnected:
                if isinstance(exc, asyncio.CancelledError):  # the server is cancelling this request
                    self._mark_cut(outcome)
                raise
            if not isinstance(exc, asyncio.CancelledError):
                logger.debug("agent raised while being cancelled", exc_info=exc)
        finally:
            watch.done = True
            watcher.cancel()
        if not watch.disconnected:
            return
        # The client left before the answer was complete: the agent was stopped.
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        self._mark_cut(outcome)
        state.error = state.error or ConnectionResetError("client disconnected")

    async def _produce(
        self,
        state: RequestState,
        spec: AgentSpec,
        include_usage: bool,
        model: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        outcome: _Outcome,
    ) -> None:
        result = await spec.call(state.messages, state.stream, state)
        if spec.choices:
            result = n_choices(result, state.n)
        kind, value = classify(result)
        if kind == RESPONSE:
            await self._pass_through(value, scope, receive, send, outcome)
            return
        cid = "chatcmpl-" + state.request_id  # the completion id names the request too
        created = now()
        if not state.stream:
            if kind == TEXT:
                message = {"role": "assistant", "content": value}
                completion: dict[str, Any] = one_choice(message, "stop", cid, created, model)
            elif kind in (COMPLETION, MESSAGE):
                completion = completion_from_dict(kind, value, cid, created, model)
            else:
                items = iter_items(kind, value)
                try:
                    completion = await assemble(items, cid, created, model)
                finally:
                    await _close(items)
            state.token_usage = completion.get("usage")
            body = encode(completion)
            outcome.started = True
            outcome.response = (
                Response(body, media_type="application/json") if self.hooks.finalize else _SENT
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        _JSON_TYPE,
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", state.request_id.encode()),
                    ],
                }
            )
            await _send_last(send, {"type": "http.response.body", "body": body})
            return
        await self._stream(
            state, result, kind, value, include_usage, model, cid, created, send, outcome
        )

    async def _stream(
        self,
        state: RequestState,
        result: Any,
        kind: int,
        value: Any,
        include_usage: bool,
        model: str,
        cid: str,
        created: int,
        send: Send,
        outcome: _Outcome,
    ) -> None:
        wrapper = StreamingWrapper(result)
        outcome.response = wrapper
        encoder = ChunkEncoder(cid, created, model, include_usage)
        if kind == TEXT:
            items: Any = _aiter_of([value])
        elif kind in (COMPLETION, MESSAGE):
            completion = completion_from_dict(kind, value, cid, created, model)
            encoder.set_model(completion["model"])
            items = _aiter_of(completion_chunks(completion))
        else:
            items = iter_items(kind, value)
        try:
            # Hold back leading role-only chunks: a failure before the first real chunk
            # is still answered with a proper 500.
            pending: list[Any] = []
            await _collect_leading(items, pending)
            for item in pending:
                if (
                    isinstance(item, dict)
                    and item.get("model")
                    and kind not in (COMPLETION, MESSAGE)
                ):
                    encoder.set_model(item["model"])
                    break
            first = b"".join(f for f in map(encoder.item, pending) if f)
            headers = [*_SSE_HEADERS, (b"x-request-id", state.request_id.encode())]
            wrapper.headers = {k.decode(): v.decode() for k, v in headers}
            outcome.started = True
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if first:
                wrapper.chunks_sent += len(pending)
                wrapper.bytes_sent += len(first)
                await send({"type": "http.response.body", "body": first, "more_body": True})
            try:
                async for item in items:
                    frame = encoder.item(item)
                    if frame:
                        wrapper.chunks_sent += 1
                        wrapper.bytes_sent += len(frame)
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
                tail = encoder.finish()
                state.token_usage = encoder.usage
                wrapper.bytes_sent += len(tail)
                await _send_last(
                    send, {"type": "http.response.body", "body": tail, "more_body": False}
                )
                wrapper.status = "completed"
            except Exception as exc:
                wrapper.status = "failed"
                wrapper.error = exc
                state.error = exc
                frame = ChunkEncoder.error(self._failure(exc, state).body())
                await send({"type": "http.response.body", "body": frame, "more_body": False})
        finally:
            await _close(items)

    async def _pass_through(
        self, response: Response, scope: Scope, receive: Receive, send: Send, outcome: _Outcome
    ) -> None:
        if not isinstance(response, StreamingResponse):
            outcome.response = response
            outcome.started = True
            await response(scope, receive, send)
            return
        wrapper = StreamingWrapper(response, response.status_code)
        wrapper.headers = dict(response.headers)
        wrapper.media_type = response.media_type or wrapper.media_type
        outcome.response = wrapper
        outcome.started = True

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                wrapper.chunks_sent += 1
                wrapper.bytes_sent += len(message["body"])
            await send(message)

        try:
            await response(scope, receive, counting_send)
        except Exception as exc:
            wrapper.status = "failed"
            wrapper.error = exc
            logger.exception("streamed response failed")
            return
        if wrapper.status == "streaming":
            wrapper.status = "completed"


_SENT = Response(status_code=200)


def _completed(response: Any) -> bool:
    if isinstance(response, StreamingWrapper):
        return response.status == "completed"
    return int(getattr(response, "status_code", 500)) < 400


async def _aiter_of(items: list[Any]) -> Any:
    for item in items:
        yield item


async def _collect_leading(items: Any, pending: list[Any]) -> None:
    """Read items into `pending` up to and including the first substantial one."""
    while True:
        try:
            item = await items.__anext__()
        except StopAsyncIteration:
            return
        pending.append(item)
        if is_substantial(item):
            return


async def _close(items: Any) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            logger.exception("closing the agent's stream failed")
