"""WebSocket mode of the Responses API: `response.create` turns over one connection.

A client opens a WebSocket on `/v1/responses` (or `/NAME/responses`), with its API key
checked at the handshake (401 before any upgrade), and sends JSON messages:

- `{"type": "response.create", ...}`: a Responses request (without `stream`); answered
  with the same semantic events a streamed HTTP answer has, one JSON message each.
  Turns run one at a time, in the order they came. `generate: false` makes a warm-up
  turn: a completed response with no output whose id later turns continue from,
  without calling the agent. A `stream_id` is repeated on each of the turn's events.
- `{"type": "response.steer", ...}`: answered `response.steer.failed` with
  `steering_not_supported` (robutler agents take no input while they run).

Each turn is a request of its own through the same flow as HTTP (`serve_turn`: before
hooks, the agent, `request_timeout`, usage, pricing, finalize exactly once): the turn is
handed to it as a streamed HTTP request, and its SSE frames are sent on as messages. A
socket that closes mid-turn is a client that left: the agent is cancelled and finalize
sees `disconnected`.

Continuations use a connection-local cache (`ConnectionWire`): every response of the
connection, `store: false` ones included, is kept in its memory (the most recent
`cached` of them), so `previous_response_id` continues on the same socket without a
store; stored responses are read from the server's store too. A continuation turn that
fails evicts the response it continued from. Failures are `error` messages
(`{"type": "error", "status": 400, "error": {...}}`, the Open Responses envelope).

Limits: `max_message_size` bytes per client message, `idle_timeout` seconds without a
message between turns, `max_duration` seconds per connection (then
`websocket_connection_limit_reached`), `max_queued` turns waiting behind the running one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json
from starlette.types import Message, Receive, Scope, Send

from ..protocol import RequestError, encode
from ..store import MemoryStore, ResponseStore
from .wire import ResponsesWire

__all__ = ["ConnectionStore", "ConnectionWire", "ResponsesSocket", "SocketLimits"]

# Serves one turn as a streamed HTTP request: (scope, receive, send, wire).
ServeTurn = Callable[[Scope, Receive, Send, ResponsesWire], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """What one WebSocket connection may do (see the module docstring)."""

    max_message_size: int = 16 * 1024 * 1024
    idle_timeout: float = 600.0
    max_duration: float = 3600.0
    cached: int = 64  # responses kept in the connection's memory for continuations
    max_queued: int = 16  # response.create messages waiting behind the running turn


class ConnectionStore(ResponseStore):
    """The server's store seen through a connection's memory: reads look in `local`
    first; what is stored goes to both; `local` alone keeps `store: false` responses."""

    def __init__(self, shared: ResponseStore, local: MemoryStore) -> None:
        self.shared = shared
        self.local = local

    async def get(self, response_id: str, owner: str | None = None) -> dict[str, Any] | None:
        record = await self.local.get(response_id, owner)
        return record if record is not None else await self.shared.get(response_id, owner)

    async def put(
        self, response_id: str, record: Mapping[str, Any], owner: str | None = None
    ) -> None:
        await self.put_json(response_id, encode(record), owner)

    async def put_json(self, response_id: str, data: bytes, owner: str | None = None) -> None:
        await self.local.put_json(response_id, data, owner)
        await self.shared.put_json(response_id, data, owner)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        here = await self.local.delete(response_id, owner)
        return await self.shared.delete(response_id, owner) or here


class ConnectionWire(ResponsesWire):
    """The Responses wire format of one WebSocket connection: the server's, with the
    connection's memory in front of its store (see `ConnectionStore`)."""

    api = "websocket"  # the label metrics and traces give its requests

    def __init__(self, base: ResponsesWire, cached: int) -> None:
        self.local = MemoryStore(cached)
        super().__init__(ConnectionStore(base.store, self.local), base.sealer)
        self.unstored = self.local


def error_event(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """The Open Responses WebSocket error envelope for an OpenAI-shaped error body."""
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    return {"type": "error", "status": status, "error": dict(error or {})}


def _error(exc: RequestError) -> dict[str, Any]:
    return error_event(exc.status, exc.body())


_TERMINAL_OK = (b"response.completed", b"response.incomplete")
_DROPPED_HEADERS = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"x-request-id",  # each turn is a request with an id of its own
        b"content-length",
        b"content-type",
    }
)


class _Turn:
    """One `response.create` as a streamed HTTP request: its body in, its SSE frames
    out as WebSocket messages."""

    __slots__ = ("body", "buffer", "closed", "error", "ok", "sent_body", "socket", "status", "tag")

    def __init__(self, socket: _Connection, body: bytes, stream_id: Any) -> None:
        self.socket = socket
        self.body = body
        self.sent_body = False
        self.status = 0
        self.buffer = b""
        self.error = b""
        self.ok = False  # a completed or incomplete response was sent
        self.closed = False
        # a stream_id goes into each event, right after its opening brace
        self.tag = b"" if stream_id is None else b'"stream_id":' + encode(stream_id) + b","

    async def receive(self) -> Message:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.socket.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            return
        if kind != "http.response.body":
            return
        body = message.get("body", b"")
        if self.status != 200:
            self.error += body
            if not message.get("more_body", False):
                try:
                    data = from_json(self.error)
                except ValueError:
                    data = {"error": {"message": self.error.decode(errors="replace")}}
                await self.socket.send_json(error_event(self.status, data))
            return
        frames = (self.buffer + body).split(b"\n\n")
        self.buffer = frames.pop()
        for frame in frames:
            await self.frame(frame)

    async def frame(self, frame: bytes) -> None:
        """One SSE frame (`event: TYPE\\ndata: JSON`) as one message of its data."""
        name, _, data = frame.partition(b"\ndata: ")
        if not data:
            return  # a comment (keepalive)
        if name.removeprefix(b"event: ") in _TERMINAL_OK:
            self.ok = True
        if self.tag:
            data = b"{" + self.tag + data[1:]
        await self.socket.send_text(data)


class _Connection:
    """One accepted WebSocket: its turns, one at a time, and its reader."""

    def __init__(
        self,
        socket: ResponsesSocket,
        scope: Scope,
        receive: Receive,
        send: Send,
        owner: str | None,
    ) -> None:
        self.socket = socket
        self.scope = scope
        self.receive = receive
        self._send = send
        self.owner = owner
        self.wire = ConnectionWire(socket.wire, socket.limits.cached)
        self.gone = asyncio.Event()  # the client closed the socket
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.lock = asyncio.Lock()
        headers = [(k, v) for k, v in scope.get("headers", ()) if k not in _DROPPED_HEADERS]
        headers.append((b"content-type", b"application/json"))
        self.http_scope = {
            **scope,
            "type": "http",
            "method": "POST",
            "http_version": "1.1",
            "scheme": "https" if scope.get("scheme") == "wss" else "http",
            "query_string": b"",
            "headers": headers,
        }

    async def send_text(self, data: bytes) -> None:
        if self.gone.is_set():
            return
        try:
            async with self.lock:
                await self._send({"type": "websocket.send", "text": data.decode()})
        except Exception:  # the peer is gone: the reader sees the close and says so
            self.gone.set()

    async def send_json(self, event: Mapping[str, Any]) -> None:
        await self.send_text(encode(event))

    async def read(self) -> None:
        """Read the socket until it closes: `response.create` messages go to the inbox,
        `response.steer` is answered at once (it may come while a turn runs)."""
        limits = self.socket.limits
        limit = limits.max_message_size
        try:
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if len(data) > limit:
                    await self.send_json(
                        _error(
                            RequestError(
                                400,
                                f"The message is larger than this server's limit of {limit} "
                                "bytes (max_message_size).",
                                code="message_too_large",
                            )
                        )
                    )
                    continue
                try:
                    event = from_json(data)
                except ValueError as exc:
                    error = RequestError(
                        400, f"The message is not valid JSON: {exc}", code="invalid_json"
                    )
                    await self.send_json(_error(error))
                    continue
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "response.steer":
                    await self.steer(event)
                elif kind == "response.create" and self.inbox.qsize() >= limits.max_queued:
                    await self.send_json(
                        _error(
                            RequestError(
                                429,
                                f"More than {limits.max_queued} response.create messages are "
                                "waiting on this connection; turns run one at a time.",
                                code="too_many_queued",
                            )
                        )
                    )
                elif kind == "response.create":
                    self.inbox.put_nowait(event)
                else:
                    await self.send_json(
                        _error(
                            RequestError(
                                400,
                                f"Invalid value for 'type': {kind!r}; a client message is "
                                "'response.create' or 'response.steer'.",
                                param="type",
                                code="invalid_value",
                            )
                        )
                    )
        finally:
            self.gone.set()
            self.inbox.put_nowait(None)

    async def steer(self, event: dict[str, Any]) -> None:
        """`response.steer`: robutler agents take no input while they run."""
        await self.send_json(
            {
                "type": "response.steer.failed",
                "sequence_number": 0,
                "error": {
                    "code": "steering_not_supported",
                    "message": "This server's agents do not take steering input while they "
                    "run; send it in the next response.create with previous_response_id.",
                    "type": "invalid_request_error",
                },
                "steer": {
                    "id": "steer_" + os.urandom(12).hex(),
                    "previous_response_id": str(event.get("previous_response_id") or ""),
                    "input": event.get("input") if event.get("input") is not None else "",
                },
            }
        )

    async def run(self) -> None:
        limits = self.socket.limits
        reader = asyncio.ensure_future(self.read())
        started = time.monotonic()
        try:
            while True:
                try:
                    data = await asyncio.wait_for(self.inbox.get(), limits.idle_timeout)
                except asyncio.TimeoutError:
                    await self.send_json(
                        _error(
                            RequestError(
                                408,
                                f"No message for {limits.idle_timeout:g} s (idle_timeout); "
                                "the connection is closed.",
                                code="websocket_idle_timeout",
                            )
                        )
                    )
                    break
                if data is None:
                    return
                if time.monotonic() - started > limits.max_duration:
                    await self.send_json(
                        _error(
                            RequestError(
                                400,
                                f"This connection reached its limit of {limits.max_duration:g}"
                                " s; open a new WebSocket connection.",
                                code="websocket_connection_limit_reached",
                            )
                        )
                    )
                    break
                await self.turn(data)
        finally:
            reader.cancel()
            if not self.gone.is_set():
                self.gone.set()
                with contextlib.suppress(Exception):  # the peer may be gone already
                    await self._send({"type": "websocket.close", "code": 1000})

    async def turn(self, event: dict[str, Any]) -> None:
        """One `response.create`: a streamed request through the server's flow."""
        body = {k: v for k, v in event.items() if k not in ("type", "stream_id", "generate")}
        body.pop("stream_options", None)
        body["stream"] = True
        previous = body.get("previous_response_id")
        if event.get("generate") is False:
            ok = await self.warm_up(body, event.get("stream_id"))
        else:
            turn = _Turn(self, encode(body), event.get("stream_id"))
            await self.socket.serve_turn(self.http_scope, turn.receive, turn.send, self.wire)
            ok = turn.ok
        if not ok and isinstance(previous, str):
            await self.wire.local.delete(previous, self.owner)

    async def warm_up(self, body: dict[str, Any], stream_id: Any) -> bool:
        """A `generate: false` turn: the response (no output) and its conversation are
        kept for continuations; the agent is not called."""
        from .encoder import ResponsesEncoder
        from .request import Pending, parse_responses_request
        from .wire import ResponsesCall

        turn = _Turn(self, b"", stream_id)
        try:
            pending: list[Pending] = []
            _, request, messages = parse_responses_request(encode(body), pending=pending)
            messages = await self.wire.resolve(messages, pending, self.owner)
            previous = await self.wire.previous(request.previous_response_id, self.owner)
        except RequestError as exc:
            await self.send_json(_error(exc))
            return False
        target = self.wire.store if request.store is not False else self.wire.local
        call = ResponsesCall(request, self.owner, target)
        call.conversation = encode([*previous, *messages])
        encoder = ResponsesEncoder(call.response_id, int(time.time()), request.model or "", request)
        call.encoder = encoder
        frames = encoder.start() + encoder.empty()
        await call.save()
        for frame in frames.split(b"\n\n")[:-1]:
            await turn.frame(frame)
        return True


class ResponsesSocket:
    """The WebSocket app of one Responses route (see the module docstring).

    `serve_turn(scope, receive, send, wire)` serves one turn as a streamed HTTP request
    through the server's request flow; `wire` is the server's Responses wire format;
    `auth` the server's keys (None: open).
    """

    def __init__(
        self,
        serve_turn: ServeTurn,
        wire: ResponsesWire,
        auth: Any = None,
        limits: SocketLimits | None = None,
    ) -> None:
        self.serve_turn = serve_turn
        self.wire = wire
        self.auth = auth
        self.limits = limits or SocketLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        owner = None
        if self.auth is not None:
            try:
                owner = self.auth.check(scope)
            except RequestError as exc:
                await _refuse(scope, send, exc)
                return
        await send({"type": "websocket.accept"})
        await _Connection(self, scope, receive, send, owner).run()


async def _refuse(scope: Scope, send: Send, exc: RequestError) -> None:
    """Refuse the handshake: the error as an HTTP answer where the server can send one
    (uvicorn can), else a close before accepting (a 403 to the client)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        response = exc.response()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
        return
    await send({"type": "websocket.close", "code": 1008})
