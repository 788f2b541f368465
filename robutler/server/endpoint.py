"""Serving one agent request, as plain ASGI: the request's way through the lifecycle.

`AgentEndpoint` holds what a server decided once (hooks, limits, keys). Each request gets
an `Exchange`, whose methods are the lifecycle's steps, in order:

1. `run` makes the request's `RequestState` current, calls `serve`, and then, whatever
   happened, `finalize`: @pricing charges for the outcome, then the finalize hooks, exactly
   once and shielded from the cancellation a disconnect causes;
2. `serve` checks the API key, runs the before hooks, resolves the agent (404), reads and
   validates the body (413/422) and calls `answer`; any failure becomes the OpenAI error
   answer (`AgentEndpoint.failure`), or an error event when a stream is already open;
3. `answer` runs `produce` in the request's task; once it has to wait, a watcher reads
   `receive`, and a client who leaves cancels it;
4. `produce` calls the agent and sends what it returned (see `results.py`): the agent's own
   response passed through (`pass_through`), a JSON answer (`send_json`) or an SSE stream
   (`stream`), which gives the event loop a turn every `YIELD_EVERY` items.

How a body is read and an answer written is the request's `WireFormat` (`wire.py`): Chat
Completions, or another API over the same steps. docs/architecture.md follows a request
through the modules.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .agents import find_agent
from .context import RequestState, _current
from .crosssite import check_json_body
from .eager import resume
from .lifecycle import Hooks, StreamingWrapper
from .pricing import apply_request_charges
from .protocol import JSON_TYPE as _JSON_TYPE
from .protocol import SSE_HEADERS, RequestError, as_request_error, error_response, now
from .results import (
    Kind,
    assemble,
    classify,
    completion_chunks,
    completion_from_dict,
    is_substantial,
    iter_items,
    n_choices,
    one_choice,
)
from .watch import Keepalive, Later, cancel_spawned, track_spawned, watch_disconnect
from .wire import CHAT, Parsed, StreamEncoder, WireFormat

if TYPE_CHECKING:
    from .agents import AgentSpec
    from .auth import ApiKeys

__all__ = ["AgentEndpoint", "ChatHandler", "Exchange", "error_response"]

logger = logging.getLogger("robutler")

DISCONNECTED = 499  # nginx's "client closed request": no answer was sent
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_ANSWER_SIZE = 32 * 1024 * 1024
# Bytes of messages an agent may be given, with the earlier turns a Responses request
# continues (`previous_response_id`): the body limit bounds one turn, this the conversation.
DEFAULT_MAX_CONVERSATION_SIZE = 16 * 1024 * 1024
# Seconds an agent may take for its answer, unless the server says otherwise: a hung
# upstream must not hold a stream open forever (keepalive comments defeat every idle
# timeout on the way).
DEFAULT_REQUEST_TIMEOUT = 600.0
# A stream yields to the event loop every this many items. An agent that never awaits,
# sent through a server whose `send` never waits (uvicorn's doesn't while the socket
# buffer has room), would otherwise hold the loop for its whole answer: no other request
# is served and the disconnect watcher cannot tell that the client left.
YIELD_EVERY = 16
# A stream whose agent has not given its first item after this many seconds is opened
# (headers and the role chunk) while the agent goes on: the client sees it start. An agent
# that fails sooner still gets a real error answer (500, or 502 for an upstream failure);
# one that fails later, an error event in the stream.
OPEN_STREAM_AFTER = 0.5


_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def incoming_request_id(scope: Scope) -> str | None:
    """The client's `X-Request-ID` when it is a safe token (letters, digits, `-_.:`, at
    most 128 characters); None otherwise, so that a fresh id is made."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode() if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


class AgentRequest(Request):
    """A Request whose body is read at most `max_body_size` bytes, never buffered past it,
    and only when it says it is JSON (415 otherwise)."""

    max_body_size: int = DEFAULT_MAX_BODY_SIZE

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            check_json_body(self.scope)  # 415: a cross-site form or no-cors fetch
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


class AgentEndpoint:
    """Serves agent requests for a server: what it decided once (hooks, limits, keys).

    `await endpoint(scope, receive, send, name, specs, wire)` serves one request through
    an `Exchange` of its own (`exchange_class`), in the given wire format (Chat
    Completions by default). With `name` and `specs` None the body's `model` names the
    agent, and `models(model)` (set by the server) gives the specs that may serve it.
    """

    exchange_class: type[Exchange]
    models: Callable[[str], list[AgentSpec]] | None = None

    def __init__(
        self,
        hooks: Hooks,
        *,
        max_body_size: int,
        max_messages: int = 10_000,
        max_depth: int = 64,
        max_answer_size: int = DEFAULT_MAX_ANSWER_SIZE,
        max_conversation_size: int = DEFAULT_MAX_CONVERSATION_SIZE,
        auth: ApiKeys | None = None,
        debug: bool = False,
        keepalive: float | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.hooks = hooks
        self.keepalive = keepalive  # seconds of silence before `: keepalive`; None: off
        self.request_timeout = request_timeout  # seconds an agent may take; None: no limit
        self.max_body_size = max_body_size
        self.max_answer_size = max_answer_size
        self.max_conversation_size = max_conversation_size
        self.max_messages = max_messages
        self.max_depth = max_depth
        self.auth = auth
        self.debug = debug

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str | None,
        specs: list[AgentSpec] | None,
        wire: WireFormat = CHAT,
    ) -> None:
        track_spawned(asyncio.get_running_loop())
        await self.exchange_class(self, wire, name, scope, receive, send).run(specs)

    def route_model(self, model: str | None) -> list[AgentSpec]:
        """The specs that may serve the agent a `/v1` request names by `model` (set by the
        server; 422 when `model` is missing)."""
        if not model:
            raise RequestError(
                422,
                "Missing required parameter: 'model' (the agent's name; GET /v1/models "
                "lists them).",
                param="model",
                code="missing_required_parameter",
            )
        if self.models is None:
            raise model_not_found(model)
        return self.models(model)

    def failure(self, exc: BaseException, state: RequestState) -> RequestError:
        """What the client is told about `exc`; a 5xx is logged once (see RequestError)."""
        rid = state.request_id
        error = as_request_error(exc, debug=self.debug, request_id=rid)
        if error.status >= 500 and not error.logged:
            message = error.message  # names the request id once, whatever the cause
            if rid not in message:
                message += f" (request id {rid})"
            trace = exc if error.log_traceback else None
            logger.error("agent %r: %s", state.agent_name, message, exc_info=trace)
        return error


ChatHandler = AgentEndpoint  # its former name


class Exchange:
    """One request on its way through the lifecycle; each method is one of its steps.

    `response` is what finalize will be given (the JSON answer, a `StreamingWrapper`, the
    agent's own response, an error, or a 499 when nothing was sent); `started` says an
    answer is on its way (a later failure can only be reported inside it);
    `disconnected` says the client left while the agent ran, `timed_out` that it ran past
    `request_timeout`; `encoder` is the open stream's.
    """

    __slots__ = (
        "disconnected",
        "done",
        "encoder",
        "endpoint",
        "finished",
        "keepalive",
        "receive",
        "response",
        "scope",
        "send",
        "started",
        "state",
        "timed_out",
        "wire",
    )

    def __init__(
        self,
        endpoint: AgentEndpoint,
        wire: WireFormat,
        name: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.endpoint = endpoint
        self.wire = wire
        self.scope = scope
        self.receive = receive
        self.send = send
        request = AgentRequest(scope, receive)
        request.max_body_size = endpoint.max_body_size
        self.state = RequestState(request, name, incoming_request_id(scope))
        self.response: Any = None
        self.started = False
        self.disconnected = False
        self.timed_out = False
        self.done = False
        self.finished = False  # the whole answer was handed to the server
        self.encoder: Any = None
        self.keepalive: Keepalive | None = None  # the open stream's timer, if any

    # 1. the request, from its context to its finalize ----------------------------------

    async def run(self, specs: list[AgentSpec] | None) -> None:
        """Serve the request with its state current, then finalize it exactly once."""
        state = self.state
        token = _current.set(state)
        try:
            await self.serve(specs)
        finally:
            try:
                await self.finalize()
            finally:
                state.spawned = None
                _current.reset(token)

    async def finalize(self) -> None:
        """Settle @pricing charges for the outcome and run the finalize hooks, once."""
        state = self.state
        response = self.response
        if response is None:
            response = Response(status_code=DISCONNECTED)
        state.response = response
        if state.charges:
            apply_request_charges(state, self.completed(response))
        await self.endpoint.hooks.run_finalize(state, response)

    def completed(self, response: Any) -> bool:
        """Whether the client got the whole answer, a success (what @pricing charges)."""
        if isinstance(response, StreamingWrapper):
            return response.status == "completed"
        return self.finished and int(getattr(response, "status_code", 500)) < 400

    # 2. keys, hooks, resolution, validation --------------------------------------------

    async def serve(self, specs: list[AgentSpec] | None) -> None:
        """Check the key, run the before hooks, find the agent, read the body; `answer`.
        A failure becomes the OpenAI error answer (or is reported in the open stream).

        `specs` None: the agent is the one the body's `model` names (the `/v1` front
        door), so the body is read and validated first, then the hooks run and the agent
        is resolved (404 `model_not_found`).
        """
        state = self.state
        endpoint = self.endpoint
        try:
            if endpoint.auth is not None:
                state.api_key_name = endpoint.auth.check(self.scope)
            if specs is None:
                parsed = await self.parse()
                specs = endpoint.route_model(parsed.model)
                state.agent_name = parsed.model
                if endpoint.hooks.before:
                    await endpoint.hooks.run_before(state)
                spec, state.agent_data = await _find_model(state.agent_name or "", specs)
            else:
                if endpoint.hooks.before:
                    await endpoint.hooks.run_before(state)
                spec, state.agent_data = await find_agent(state.agent_name or "", specs)
                parsed = await self.parse()
            if parsed.n > 1 and not spec.choices:
                raise RequestError(
                    400,
                    f"Agent {state.agent_name!r} answers one choice per request; 'n' must "
                    f"be 1, got {parsed.n}.",
                    param="n",
                    code="unsupported_value",
                )
            await self.answer(spec, parsed)
            return
        except ClientDisconnect as exc:
            state.error = exc
            return
        except Exception as exc:
            state.error = exc
            error = endpoint.failure(exc, state)
        if self.started:
            return  # an answer is already on its way; the stream reported the failure
        self.response = error.response(state.request_id)
        self.started = True
        await self.response(self.scope, self.receive, self.send)

    async def parse(self) -> Parsed:
        """Read the body (413 beyond the limit) and parse it in the wire format (422)."""
        state = self.state
        assert state.request is not None
        parsed = await self.wire.parse(await state.request.body(), self)
        state.messages = parsed.messages
        state.stream = parsed.stream
        state.n = parsed.n
        return parsed

    # 3. the agent, watched for a client who leaves -------------------------------------

    async def answer(self, spec: AgentSpec, parsed: Parsed) -> None:
        """Run `produce` in this task; if the client leaves meanwhile, or the agent runs past
        `request_timeout`, it is cancelled, and so are the tasks it started."""
        # The first step runs right away: an answer that is complete before anything has
        # to wait needs no watcher. Once it waits, a watcher task cancels this task if the
        # client leaves. (A watcher per request, even one cancelled at once, keeps the
        # request's objects alive past its end: under load that alone makes the garbage
        # collector run several times as often.)
        coro = self.produce(spec, parsed)
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(watch_disconnect(self.receive, task, self))
        limit = self.endpoint.request_timeout
        timer = (
            asyncio.get_running_loop().call_later(limit, self.time_out, task)
            if limit is not None
            else None
        )
        try:
            await resume(coro, pending)
        except (Exception, asyncio.CancelledError) as exc:
            if not (self.disconnected or self.timed_out):
                if isinstance(exc, asyncio.CancelledError):  # the server is cancelling this request
                    self.mark_cut()
                    cancel_spawned(self.state, task)
                raise
            if not isinstance(exc, asyncio.CancelledError):
                logger.debug("agent raised while being cancelled", exc_info=exc)
        finally:
            self.done = True
            watcher.cancel()
            if timer is not None:
                timer.cancel()
        if not (self.disconnected or self.timed_out):
            return
        # The client left, or time ran out, before the answer was complete: the agent was
        # stopped, and whatever it started goes too.
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        cancel_spawned(self.state, task)
        if self.disconnected:
            self.mark_cut()
            self.state.error = self.state.error or ConnectionResetError("client disconnected")
        else:
            await self.report_timeout(limit or 0)

    def time_out(self, task: asyncio.Task[Any]) -> None:
        """The agent ran past `request_timeout`: stop it (`answer` reports it)."""
        if not self.done and not self.disconnected:
            self.timed_out = True
            task.cancel()

    async def report_timeout(self, limit: float) -> None:
        """Tell the client (504, or an error event in the open stream) and finalize."""
        state = self.state
        error = RequestError(
            504,
            f"The agent did not finish within the server's request_timeout of {limit:g} s "
            f"(request id {state.request_id}).",
            code="timeout",
        )
        state.error = TimeoutError(error.message)
        logger.warning("agent %r: %s", state.agent_name, error.message)
        response = self.response
        if isinstance(response, StreamingWrapper) and self.started:
            if response.status == "streaming":
                response.status = "timeout"
                response.error = state.error
                frame = self.encoder.error(error.body())
                await self.send({"type": "http.response.body", "body": frame, "more_body": False})
            return
        if not self.started:
            self.response = error.response(state.request_id)
            self.started = True
            await self.response(self.scope, self.receive, self.send)

    def mark_cut(self) -> None:
        """A stream that was still going when the request ended was cut off."""
        response = self.response
        if isinstance(response, StreamingWrapper) and response.status == "streaming":
            response.status = "disconnected"

    # 4. what the agent returned, sent --------------------------------------------------

    async def produce(self, spec: AgentSpec, parsed: Parsed) -> None:
        """Call the agent and send its answer: passed through, as JSON, or streamed."""
        state = self.state
        result = await spec.call(state.messages, state.stream, state)
        if spec.choices:
            result = n_choices(result, parsed.n)
        kind, value = classify(result)
        if kind == Kind.RESPONSE:
            await self.pass_through(value)
            return
        answer_id = self.wire.id_prefix + state.request_id  # the answer's id names the request
        created = now()
        model = spec.model or parsed.model or state.agent_name or "agent"
        if state.stream:
            await self.stream(result, kind, value, answer_id, created, model, parsed)
            return
        if kind == Kind.TEXT:
            message = {"role": "assistant", "content": value}
            completion: dict[str, Any] = one_choice(message, "stop", answer_id, created, model)
        elif kind in (Kind.COMPLETION, Kind.MESSAGE):
            completion = completion_from_dict(kind, value, answer_id, created, model)
        else:
            items = iter_items(kind, value)
            try:
                completion = await assemble(
                    items, answer_id, created, model, self.endpoint.max_answer_size, YIELD_EVERY
                )
            finally:
                await _close(items)
        state.token_usage = completion.get("usage")
        body = self.wire.json_body(completion, parsed, self)
        if parsed.on_answer is not None:
            await parsed.on_answer()
        await self.send_json(body)

    async def send_json(self, body: bytes) -> None:
        """Send a 200 JSON answer; finalize gets it as a Response (if anyone looks)."""
        rid = self.state.request_id
        self.started = True
        headers = [_JSON_TYPE, (b"content-length", str(len(body)).encode())]
        headers.append((b"x-request-id", rid.encode()))
        self.response = _sent_json(body, [*headers]) if self.endpoint.hooks.finalize else _SENT
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await _send_last(self.send, {"type": "http.response.body", "body": body})
        self.finished = True

    async def stream(
        self,
        result: Any,
        kind: Kind,
        value: Any,
        answer_id: str,
        created: int,
        model: str,
        parsed: Parsed,
    ) -> None:
        """Stream the answer as SSE; the wrapper tells finalize how the stream ended."""
        state = self.state
        send = self.send
        wrapper = StreamingWrapper(result)
        self.response = wrapper
        encoder = self.wire.encoder(answer_id, created, model, parsed, self)
        items = _stream_items(kind, value, answer_id, created, model, encoder)
        self.encoder = encoder
        headers = [*SSE_HEADERS, (b"x-request-id", state.request_id.encode())]
        wrapper.headers = {k.decode(): v.decode() for k, v in headers}
        try:
            held = await self.open_when_ready(items, kind, encoder, headers)
            if held:
                await self.send_frame(held)
            countdown = YIELD_EVERY
            async for item in items:
                frame = encoder.item(item)
                if frame:
                    await self.send_frame(frame)
                countdown -= 1
                if not countdown:
                    countdown = YIELD_EVERY
                    await asyncio.sleep(0)  # a disconnect cancels this task here
            tail = encoder.finish()
            state.token_usage = encoder.usage
            if parsed.on_answer is not None:
                await parsed.on_answer()
            await self.quiet()
            wrapper.bytes_sent += len(tail)
            await _send_last(send, {"type": "http.response.body", "body": tail, "more_body": False})
            wrapper.status = "completed"
        except Exception as exc:
            if not self.started:
                raise  # nothing sent yet: the client gets a real error answer
            wrapper.status = "failed"
            wrapper.error = exc
            state.error = exc
            frame = encoder.error(self.endpoint.failure(exc, state).body())
            await self.quiet()  # also when the agent failed after an early open
            await send({"type": "http.response.body", "body": frame, "more_body": False})
        finally:
            if self.keepalive is not None:
                self.keepalive.abort()
            await _close(items)

    async def open_when_ready(
        self, items: Any, kind: Kind, encoder: StreamEncoder, headers: list[tuple[bytes, bytes]]
    ) -> bytes:
        """Open the stream; return the frames of the leading items still to send.

        Leading role-only chunks are held back: an agent that fails at once, before its
        first real chunk, still gets a proper 500. One that has to wait for it (a model
        thinking) gets the stream opened after `OPEN_STREAM_AFTER`, so the client sees it
        start; a failure after that is an error event in the stream.
        """
        pending: list[Any] = []
        collecting = _collect_leading(items, pending)
        try:
            waiting = collecting.send(None)
        except StopIteration:
            _adopt_agent_model(encoder, kind, pending)
            first = encoder.start() + b"".join(f for f in map(encoder.item, pending) if f)
            await self.open_stream(headers, first, len(pending))
            return b""
        opener = Later(
            OPEN_STREAM_AFTER,
            lambda: self.open_stream(headers, encoder.start() + encoder.opening(), 1),
        )
        try:
            await resume(collecting, waiting)
        except BaseException:
            collecting.close()
            raise
        finally:
            opener.cancel()
            if opener.task is not None:
                await opener.task  # the stream was opened while the agent waited
        if opener.task is None:
            _adopt_agent_model(encoder, kind, pending)
            await self.open_stream(headers, encoder.start(), 0)
        return b"".join(f for f in map(encoder.item, pending) if f)

    async def open_stream(self, headers: list[tuple[bytes, bytes]], first: bytes, n: int) -> None:
        """Send the stream's headers and its first frames (`n` items' worth), then start
        the keepalive timer: from here on, a silent agent (one still thinking about its
        first token, or in a long tool call) keeps the stream alive."""
        wrapper = self.response
        self.started = True
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        if first:
            wrapper.chunks_sent += n
            wrapper.bytes_sent += len(first)
            await self.send({"type": "http.response.body", "body": first, "more_body": True})
        self.keepalive = self.start_keepalive()

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame of the open stream (after a keepalive comment being sent)."""
        keepalive = self.keepalive
        wrapper = self.response
        wrapper.chunks_sent += 1
        wrapper.bytes_sent += len(frame)
        if keepalive is not None and keepalive.task is not None:
            await keepalive.settle()
        await self.send({"type": "http.response.body", "body": frame, "more_body": True})

    async def quiet(self) -> None:
        """No more keepalive comments: the stream's last frame is next (one being sent
        goes out first)."""
        if self.keepalive is not None:
            self.keepalive.stop()
            await self.keepalive.settle()

    def start_keepalive(self) -> Keepalive | None:
        """The open stream's keepalive timer, when the server sends keepalives."""
        interval = self.endpoint.keepalive
        if interval is None:
            return None
        wrapper = self.response
        return Keepalive(interval, self.send, lambda: wrapper.bytes_sent)

    async def pass_through(self, response: Response) -> None:
        """Send the agent's own Starlette response as it is."""
        bad = _bad_header(response)
        if bad is not None:
            # A server refuses such a header only after it has begun the response, and
            # then the client gets nothing: answer a proper error instead.
            raise ResponseError(f"its Response has a header {bad!r} with CR, LF or NUL in it")
        scope, receive, send = self.scope, self.receive, self.send
        if not isinstance(response, StreamingResponse):
            self.response = response
            self.started = True
            try:
                await response(scope, receive, send)
                self.finished = True
            except Exception as exc:
                # The client did not get the answer: finalize must not see a success.
                state = self.state
                state.error = exc
                error = self.endpoint.failure(ResponseError(f"sending it failed: {exc!r}"), state)
                self.response = error.response(state.request_id)
            return
        wrapper = StreamingWrapper(response, response.status_code)
        wrapper.headers = dict(response.headers)
        wrapper.media_type = response.media_type or wrapper.media_type
        self.response = wrapper
        self.started = True

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


AgentEndpoint.exchange_class = Exchange

_SENT = Response(status_code=200)


def _sent_json(body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> Response:
    """A JSON answer that was sent, as finalize hooks get it: a Starlette `Response` with
    the body and the headers that went out, taken as they are rather than built again by
    `Response.__init__` (the response is only read: it has been sent)."""
    response = Response.__new__(Response)
    response.status_code = 200
    response.media_type = "application/json"
    response.background = None
    response.body = body
    response.raw_headers = raw_headers
    return response


class ResponseError(RequestError):
    """The agent's own Response cannot be sent as it is (a 500 `response_error`)."""

    def __init__(self, why: str) -> None:
        super().__init__(500, "The agent's response could not be sent.", code="response_error")
        self.why = why

    def __str__(self) -> str:
        return f"the agent's response could not be sent: {self.why}"


def model_not_found(model: str) -> RequestError:
    return RequestError(
        404,
        f"The model {model!r} does not exist: it names no agent of this server (GET /v1/models "
        "lists them).",
        param="model",
        code="model_not_found",
    )


async def _find_model(model: str, specs: list[AgentSpec]) -> tuple[AgentSpec, Any]:
    """`find_agent` for a `/v1` request: an unknown agent is a 404 `model_not_found`."""
    try:
        return await find_agent(model, specs)
    except RequestError as exc:
        if exc.status != 404:
            raise
        raise model_not_found(model) from None


def _bad_header(response: Response) -> str | None:
    """The name of a header whose name or value holds CR, LF or NUL, if any."""
    for name, value in response.raw_headers:
        if b"\r" in value or b"\n" in value or b"\0" in value or b"\r" in name or b"\n" in name:
            return name.decode("latin-1")
    return None


async def _aiter_of(items: list[Any]) -> Any:
    for item in items:
        yield item


def _stream_items(
    kind: Kind, value: Any, answer_id: str, created: int, model: str, encoder: StreamEncoder
) -> Any:
    """What the agent returned as an async iterator of stream items."""
    if kind == Kind.TEXT:
        return _aiter_of([value])
    if kind in (Kind.COMPLETION, Kind.MESSAGE):
        completion = completion_from_dict(kind, value, answer_id, created, model)
        encoder.set_model(completion["model"])
        return _aiter_of(completion_chunks(completion))
    return iter_items(kind, value)


def _adopt_agent_model(encoder: StreamEncoder, kind: Kind, pending: list[Any]) -> None:
    """A stream of chunks names the model of its first chunk that has one."""
    if kind in (Kind.COMPLETION, Kind.MESSAGE):
        return
    agent_model = next((m for m in map(_item_model, pending) if m), None)
    if agent_model:
        encoder.set_model(agent_model)


def _item_model(item: Any) -> Any:
    """The model a stream item names: a chunk dict's, or that of one of the `openai`
    client's objects (a `ChatCompletionChunk`, a Responses event with its `response`)."""
    if isinstance(item, dict):
        return item.get("model")
    if isinstance(item, str):
        return None
    model = getattr(item, "model", None) or getattr(getattr(item, "response", None), "model", None)
    return model if isinstance(model, str) else None


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
