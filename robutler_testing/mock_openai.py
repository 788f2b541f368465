"""A fake upstream OpenAI API for running real Agents SDK agents offline.

``mock_openai()`` serves a scripted OpenAI API on ``127.0.0.1`` (uvicorn in a background
thread) and points the ``openai`` clients and the Agents SDK at it::

    with mock_openai() as upstream:
        upstream.add_text("Hello there", usage={"input_tokens": 12, "output_tokens": 3})
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_error(500, "upstream failed")
        ...  # run agents, or a server that runs them
        upstream.requests  # the upstream request bodies, in order
        upstream.assert_all_used()

This fakes the *API*, not the model: the SDK's real model classes
(``OpenAIResponsesModel``, ``OpenAIChatCompletionsModel``), the ``openai`` client's HTTP
transport, SSE parsing, error mapping and retries all run under test, and anything that
talks HTTP - another process included, via ``OPENAI_BASE_URL`` - can use it. Use it to test
integration with the SDK: streaming events, usage accounting, tool round trips, upstream
failures and timeouts.

The Agents SDK's own ``agents.testing.ScriptedModel`` (present in openai-agents 0.24) fakes
the *model*: it replaces ``Model`` in-process, so no HTTP, client, or wire format is involved.
It is faster and simpler when only the agent's logic (tools, handoffs, guardrails) matters
and the transport does not.

Scripted replies are consumed one per upstream call, in order, each served in the shape the
call asked for: Responses (``POST /v1/responses``) or Chat Completions
(``POST /v1/chat/completions``), JSON or SSE (``"stream": true``). A call with nothing
scripted gets a 500 naming it and is reported by ``assert_all_used()`` and on leaving the
block. ``OPENAI_BASE_URL`` only reaches clients built inside the block; requests from httpx /
httpx2 clients to non-loopback hosts are refused while the block is active.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    import openai

__all__ = [
    "BlockedRequestError",
    "MockOpenAI",
    "ToolCall",
    "UpstreamCall",
    "mock_openai",
]

MOCK_API_KEY = "sk-mock"
_MISSING: Any = object()
_ENV_KEYS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_AGENTS_DISABLE_TRACING")
_LOOPBACK_HOSTS = {"localhost", "::1", "[::1]"}

Scope = dict[str, Any]
Usage = Mapping[str, Any]
Arguments = Union[Mapping[str, Any], str]  # noqa: UP007 - evaluated at runtime on 3.10


class BlockedRequestError(RuntimeError):
    """Raised for an HTTP request to a non-loopback host inside ``mock_openai()``."""


@dataclass(frozen=True)
class ToolCall:
    """One function call in a scripted reply; ``arguments`` is a mapping or a JSON string."""

    name: str
    arguments: Arguments = field(default_factory=dict)
    call_id: str | None = None


@dataclass
class UpstreamCall:
    """One request the mock received, and what it answered (``None``: nothing was scripted)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    reply: str | None = None


@dataclass
class _Reply:
    kind: Literal["output", "error"]
    chunks: list[str] | None = None
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, args, call_id, id
    usage: Usage | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    disconnect_after: int | None = None
    status: int = 200
    message: str = ""
    error_type: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "error":
            return f"error {self.status} {self.message!r}"
        parts = []
        if self.chunks is not None:
            text = "".join(self.chunks)
            parts.append(f"text {text[:40] + '...' if len(text) > 40 else text!r}")
        parts += [f"tool_call {name}({args})" for name, args, _, _ in self.calls]
        return ", ".join(parts)


class _DropConnection(Exception):
    """Raised inside the ASGI app to make uvicorn drop a connection mid-stream."""


class _QuietDrop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


class MockOpenAI:
    """A scripted OpenAI API on 127.0.0.1; use via :func:`mock_openai`.

    Attributes: ``base_url`` (``http://127.0.0.1:PORT/v1``), ``calls`` (every request, as
    :class:`UpstreamCall`), ``requests`` (the POST bodies), ``unexpected`` (unscripted and
    blocked calls), ``app`` (the ASGI app, e.g. for ``httpx2.ASGITransport`` in-process use).
    """

    def __init__(
        self,
        *,
        max_retries: int | None = None,
        block_network: bool = True,
        strict: bool = True,
        configure_agents: bool = True,
    ) -> None:
        self.max_retries = max_retries
        self.block_network = block_network
        self.strict = strict
        self.configure_agents = configure_agents
        self.calls: list[UpstreamCall] = []
        self.unexpected: list[str] = []
        self.port: int = 0
        self._queue: deque[_Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server: Any = None
        self._saved: dict[str, Any] = {}
        self._agents_client: openai.AsyncOpenAI | None = None
        self._log_filter = _QuietDrop()
        self._active = False

    # -- scripting -------------------------------------------------------------------------

    def add_text(
        self,
        text: str | Sequence[str],
        *,
        usage: Usage | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        disconnect_after: int | None = None,
    ) -> MockOpenAI:
        """Script an assistant message.

        A string is streamed as one delta per word; a sequence of strings gives the deltas
        exactly. ``usage`` takes ``input_tokens``/``output_tokens`` (or ``prompt_tokens``/
        ``completion_tokens``), optionally ``cached_tokens`` and ``reasoning_tokens``; by
        default it is estimated (characters / 4). ``delay`` waits before answering
        (``math.inf``: hang until the block exits); ``chunk_delay`` waits after each delta;
        ``disconnect_after=n`` drops the connection after ``n`` deltas (streaming only).
        """
        chunks = _split_words(text) if isinstance(text, str) else [str(c) for c in text]
        return self._add(
            _Reply(
                "output",
                chunks=chunks,
                usage=_check_usage(usage),
                delay=delay,
                chunk_delay=chunk_delay,
                disconnect_after=disconnect_after,
            )
        )

    def add_tool_call(
        self,
        name: str,
        arguments: Arguments | None = None,
        *,
        call_id: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> MockOpenAI:
        """Script a reply that calls one function tool with ``arguments`` (mapping or JSON)."""
        return self.add_tool_calls(
            [ToolCall(name, {} if arguments is None else arguments, call_id)],
            usage=usage,
            delay=delay,
        )

    def add_tool_calls(
        self,
        calls: Sequence[ToolCall | tuple[str, Arguments]],
        *,
        text: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> MockOpenAI:
        """Script one reply with several function calls, optionally preceded by ``text``."""
        if not calls:
            raise ValueError("add_tool_calls() needs at least one call")
        specs = []
        for call in calls:
            tc = call if isinstance(call, ToolCall) else ToolCall(*call)
            args = tc.arguments if isinstance(tc.arguments, str) else json.dumps(tc.arguments)
            n = next(self._ids)
            specs.append((tc.name, args, tc.call_id or f"call_mock_{n}", f"fc_mock_{n}"))
        chunks = None if text is None else _split_words(text)
        return self._add(
            _Reply("output", chunks=chunks, calls=specs, usage=_check_usage(usage), delay=delay)
        )

    def add_error(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> MockOpenAI:
        """Script an HTTP error with an OpenAI-shaped body ``{"error": {message, type, ...}}``.

        The ``openai`` client retries 408/409/429/5xx (``max_retries``, default 2, with
        backoff); ``retry_after`` (seconds) sends ``retry-after-ms`` so retries come quickly,
        and ``headers={"x-should-retry": "false"}`` stops them.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after-ms"] = str(int(retry_after * 1000) or 1)
        return self._add(
            _Reply(
                "error",
                status=status,
                message=message,
                error_type=type or _default_error_type(status),
                code=code,
                headers=extra,
                delay=delay,
            )
        )

    def _add(self, reply: _Reply) -> MockOpenAI:
        with self._lock:
            self._queue.append(reply)
        return self

    # -- inspection ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (set once the block is entered)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[Any]:
        """The bodies (parsed JSON) of the POST requests received, in order."""
        with self._lock:
            return [c.body for c in self.calls if c.method == "POST"]

    @property
    def pending(self) -> list[str]:
        """Descriptions of scripted replies not yet consumed."""
        with self._lock:
            return [r.describe() for r in self._queue]

    def assert_all_used(self) -> None:
        """Fail if a scripted reply was left over or a call was unscripted or blocked."""
        __tracebackhide__ = True
        problems = [f"unused scripted reply: {d}" for d in self.pending]
        with self._lock:
            problems += self.unexpected
        if problems:
            raise AssertionError("mock_openai: " + "; ".join(problems))

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` client for this mock (``kwargs`` go to the constructor)."""
        import openai

        return openai.OpenAI(**self._client_kwargs(kwargs))

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client for this mock (``kwargs`` go to the constructor)."""
        import openai

        return openai.AsyncOpenAI(**self._client_kwargs(kwargs))

    def _client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("api_key", MOCK_API_KEY)
        if self.max_retries is not None:
            kwargs.setdefault("max_retries", self.max_retries)
        return kwargs

    # -- context management ----------------------------------------------------------------

    def __enter__(self) -> MockOpenAI:
        self._start()
        try:
            self._patch()
        except BaseException:
            self._unpatch()
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        client = self._agents_client
        self._unpatch()
        if client is not None:
            close_async_client(client)
        self._stop()
        self._check_on_exit(exc_type)

    async def __aenter__(self) -> MockOpenAI:
        await asyncio.to_thread(self._start)
        try:
            self._patch()
        except BaseException:
            self._unpatch()
            await asyncio.to_thread(self._stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        client = self._agents_client
        self._unpatch()
        if client is not None:
            await client.close()
        await asyncio.to_thread(self._stop)
        self._check_on_exit(exc_type)

    def _check_on_exit(self, exc_type: type[BaseException] | None) -> None:
        __tracebackhide__ = True
        with self._lock:
            unexpected = list(self.unexpected)
        if self.strict and exc_type is None and unexpected:
            raise AssertionError("mock_openai: " + "; ".join(unexpected))

    def _start(self) -> None:
        from .live import LiveServer

        if self._active:
            raise RuntimeError("this mock_openai() is already active")
        self._closing.clear()
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        server = LiveServer(
            self.app,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        try:
            server.start(timeout=10)
        except (RuntimeError, TimeoutError) as exc:
            logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
            raise RuntimeError(f"mock_openai: the mock server did not start ({exc})") from None
        self._server = server
        self.port = server.port
        self._active = True

    def _stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.stop(timeout=10)
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        self._server = None
        self._active = False

    def _patch(self) -> None:
        saved = self._saved
        saved["env"] = {k: os.environ.get(k) for k in _ENV_KEYS}
        self._save_tracing()
        os.environ["OPENAI_BASE_URL"] = self.base_url
        os.environ["OPENAI_API_KEY"] = MOCK_API_KEY
        os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
        openai_mod: Any = sys.modules.get("openai")
        if openai_mod is not None:
            saved["openai_client"] = openai_mod._client
            openai_mod._client = None
        if self.configure_agents:
            self._patch_agents()
        if self.block_network:
            _GUARD.install(self)

    def _unpatch(self) -> None:
        saved, self._saved = self._saved, {}
        if not saved:
            return
        if self.block_network:
            _GUARD.uninstall(self)
        if "agents" in saved:
            self._unpatch_agents(saved["agents"])
        if "openai_client" in saved:
            openai_mod: Any = sys.modules["openai"]
            ours = openai_mod._client
            if ours is not None and ours is not saved["openai_client"]:
                ours.close()
            openai_mod._client = saved["openai_client"]
        for key, value in saved["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "tracing" in saved:
            provider, env_disabled, manual_disabled = saved["tracing"]
            if manual_disabled is _MISSING:
                provider.set_disabled(False)
            else:
                provider._env_disabled = env_disabled
                provider._manual_disabled = manual_disabled
                provider._refresh_disabled_flag()

    def _save_tracing(self) -> None:
        if not self.configure_agents:
            return
        try:
            from agents.tracing import get_trace_provider
        except ImportError:
            return
        provider = get_trace_provider()
        self._saved["tracing"] = (
            provider,
            getattr(provider, "_env_disabled", _MISSING),
            getattr(provider, "_manual_disabled", _MISSING),
        )
        provider.set_disabled(True)

    def _patch_agents(self) -> None:
        try:
            import openai
            from agents.models import _openai_shared as shared
        except ImportError:
            return
        self._saved["agents"] = (
            shared.get_default_openai_key(),
            shared.get_default_openai_client(),
            shared.get_use_responses_by_default(),
            shared.get_default_openai_responses_transport(),
        )
        import httpx2

        # No keep-alive: the client may be used from several event loops (pytest-asyncio,
        # Runner.run_sync, a server thread), and pooled connections are bound to one loop.
        http_client = openai.DefaultAsyncHttpx2Client(
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=0)
        )
        self._agents_client = self.async_client(http_client=http_client)
        shared.set_default_openai_key(MOCK_API_KEY)
        shared.set_default_openai_client(self._agents_client)

    def _unpatch_agents(self, saved: tuple[Any, ...]) -> None:
        from agents.models import _openai_shared as shared

        key, client, use_responses, transport = saved
        shared.set_default_openai_key(key)
        shared.set_default_openai_client(client)
        shared.set_use_responses_by_default(use_responses)
        shared.set_default_openai_responses_transport(transport)
        self._agents_client = None

    # -- the ASGI app ----------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        """The mock API as an ASGI application."""
        if scope["type"] != "http":
            return
        body_bytes = b""
        while True:
            message = await receive()
            body_bytes += message.get("body", b"")
            if not message.get("more_body"):
                break
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            body = {"_raw": body_bytes.decode("utf-8", "replace")}
        call = UpstreamCall(method, path, headers, body)
        api = None
        if method == "POST" and path.rstrip("/").endswith("/responses"):
            api = "responses"
        elif method == "POST" and path.rstrip("/").endswith("/chat/completions"):
            api = "chat"
        with self._lock:
            self.calls.append(call)
            number = len(self.calls)
            reply = self._queue.popleft() if api is not None and self._queue else None
            if reply is not None:
                call.reply = reply.describe()
            elif api is None:
                problem = (
                    f"unexpected {method} {path} (call #{number}): mock_openai only serves "
                    "POST /v1/responses and POST /v1/chat/completions"
                )
                self.unexpected.append(problem)
            else:
                problem = (
                    f"unscripted {method} {path} (call #{number}): nothing was scripted; "
                    "add a reply with add_text(), add_tool_call() or add_error()"
                )
                self.unexpected.append(problem)
        if reply is None:
            status = 404 if api is None else 500
            error = _error_body(f"mock_openai: {problem}", "mock_openai_error", None)
            await _send_json(send, status, error, {"x-should-retry": "false"})
            return
        if reply.delay and not await self._sleep(reply.delay):
            await _send_json(
                send, 503, _error_body("mock_openai is shutting down", "server_error", None)
            )
            return
        request_id = f"req_mock_{next(self._ids)}"
        if reply.kind == "error":
            err = _error_body(reply.message, reply.error_type, reply.code)
            await _send_json(send, reply.status, err, {"x-request-id": request_id, **reply.headers})
            return
        body = body if isinstance(body, dict) else {}
        streaming = bool(body.get("stream"))
        if api == "responses":
            if streaming:
                events = self._responses_events(reply, body)
                await self._send_sse(send, reply, events, request_id)
            else:
                payload = self._response_object(reply, body, "completed")
                await _send_json(send, 200, payload, {"x-request-id": request_id})
        elif streaming:
            await self._send_sse(send, reply, self._chat_chunks(reply, body), request_id)
        else:
            payload = self._chat_completion(reply, body)
            await _send_json(send, 200, payload, {"x-request-id": request_id})

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the block is exiting meanwhile."""
        import anyio

        end = time.monotonic() + seconds
        while not self._closing.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            await anyio.sleep(min(remaining, 0.05))
        return False

    async def _send_sse(
        self, send: Any, reply: _Reply, events: list[tuple[str, bool]], request_id: str
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        deltas = 0
        for event, is_delta in events:
            if is_delta and reply.disconnect_after is not None:
                if deltas >= reply.disconnect_after:
                    raise _DropConnection("mock_openai: scripted disconnect")
                deltas += 1
            await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
            if is_delta and reply.chunk_delay and not await self._sleep(reply.chunk_delay):
                raise _DropConnection("mock_openai: shutting down")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- Responses API ---------------------------------------------------------------------

    def _output_items(self, reply: _Reply) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reply.chunks is not None:
            text = "".join(reply.chunks)
            items.append(
                {
                    "id": f"msg_mock_{next(self._ids)}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [_output_text(text)],
                }
            )
        for name, args, call_id, item_id in reply.calls:
            items.append(
                {
                    "id": item_id,
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": args,
                    "status": "completed",
                }
            )
        return items

    def _response_object(
        self,
        reply: _Reply,
        body: dict[str, Any],
        status: str,
        *,
        response_id: str | None = None,
        created: int | None = None,
        output: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        created = int(time.time()) if created is None else created
        completed = status == "completed"
        if output is None:
            output = self._output_items(reply) if completed else []
        return {
            "id": response_id or f"resp_mock_{next(self._ids)}",
            "object": "response",
            "created_at": created,
            "status": status,
            "completed_at": int(time.time()) if completed else None,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "model": body.get("model") or "gpt-4o",
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": _responses_usage(reply, body) if completed else None,
            "user": None,
        }

    def _responses_events(self, reply: _Reply, body: dict[str, Any]) -> list[tuple[str, bool]]:
        seq = itertools.count()
        events: list[tuple[str, bool]] = []

        def emit(event_type: str, is_delta: bool = False, **fields: Any) -> None:
            data = {"type": event_type, "sequence_number": next(seq), **fields}
            events.append((f"event: {event_type}\ndata: {json.dumps(data)}\n\n", is_delta))

        response_id = f"resp_mock_{next(self._ids)}"
        created = int(time.time())
        start = self._response_object(
            reply, body, "in_progress", response_id=response_id, created=created
        )
        emit("response.created", response=start)
        emit("response.in_progress", response=start)
        items = self._output_items(reply)
        for index, item in enumerate(items):
            item_ref = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = {**item_ref, "content_index": 0}
                emit("response.content_part.added", **part, part=_output_text(""))
                for chunk in reply.chunks or []:
                    emit("response.output_text.delta", True, **part, delta=chunk, logprobs=[])
                emit("response.output_text.done", **part, text=text, logprobs=[])
                emit("response.content_part.done", **part, part=_output_text(text))
            else:
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for piece in _split_arguments(item["arguments"]):
                    emit("response.function_call_arguments.delta", True, **item_ref, delta=piece)
                emit(
                    "response.function_call_arguments.done",
                    **item_ref,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            emit("response.output_item.done", output_index=index, item=item)
        done = self._response_object(
            reply, body, "completed", response_id=response_id, created=created, output=items
        )
        emit("response.completed", response=done)
        return events

    # -- Chat Completions ------------------------------------------------------------------

    def _chat_completion(self, reply: _Reply, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if reply.chunks is None else "".join(reply.chunks),
            "refusal": None,
            "annotations": [],
        }
        if reply.calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for name, args, cid, _ in reply.calls
            ]
        return {
            "id": f"chatcmpl-mock-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.calls else "stop",
                }
            ],
            "usage": _chat_usage(reply, body),
            "service_tier": "default",
            "system_fingerprint": None,
        }

    def _chat_chunks(self, reply: _Reply, body: dict[str, Any]) -> list[tuple[str, bool]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-mock-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or "gpt-4o",
            "service_tier": "default",
            "system_fingerprint": None,
        }
        events: list[tuple[str, bool]] = []

        def emit(
            delta: dict[str, Any], is_delta: bool = False, finish_reason: str | None = None
        ) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            chunk: dict[str, Any] = {**base, "choices": [choice]}
            if include_usage:
                chunk["usage"] = None
            events.append((f"data: {json.dumps(chunk)}\n\n", is_delta))

        text_first = reply.chunks is not None
        emit({"role": "assistant", "content": "" if text_first else None, "refusal": None})
        for chunk in reply.chunks or []:
            emit({"content": chunk}, True)
        for index, (name, args, cid, _) in enumerate(reply.calls):
            head = {"index": index, "id": cid, "type": "function"}
            emit({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            for piece in _split_arguments(args):
                emit({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, True)
        emit({}, finish_reason="tool_calls" if reply.calls else "stop")
        if include_usage:
            final: dict[str, Any] = {**base, "choices": [], "usage": _chat_usage(reply, body)}
            events.append((f"data: {json.dumps(final)}\n\n", False))
        events.append(("data: [DONE]\n\n", False))
        return events


def mock_openai(
    *,
    max_retries: int | None = None,
    block_network: bool = True,
    strict: bool = True,
    configure_agents: bool = True,
) -> MockOpenAI:
    """Serve a scripted OpenAI API on 127.0.0.1 for the duration of a ``with`` block.

    Inside the block ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` point at the mock, the
    ``openai`` module-level client is reset, and (``configure_agents``) the Agents SDK's
    default client is an ``AsyncOpenAI`` on the mock with tracing disabled; all of it is
    restored afterwards. ``max_retries`` applies to that client and to ``upstream.client()``
    (``None``: the ``openai`` default, 2). ``block_network`` refuses httpx/httpx2 requests to
    non-loopback hosts. ``strict`` fails the block on exit if a call was unscripted or
    blocked. Works as ``with`` and ``async with``; not reentrant.
    """
    return MockOpenAI(
        max_retries=max_retries,
        block_network=block_network,
        strict=strict,
        configure_agents=configure_agents,
    )


def close_async_client(client: Any) -> None:
    """Close an `AsyncOpenAI` client from sync code, on a fresh event loop in a thread.

    Meant for clients that keep no idle connections (so nothing is bound to the loop that
    used them). The thread leaves this thread's event loop alone: `Runner.run_sync` keeps
    its loop as the thread's default, and replacing that would leave it unclosed.
    """

    def close() -> None:
        try:
            asyncio.run(client.close())
        except Exception:  # closing must not fail a test's teardown
            logging.getLogger("robutler_testing").debug("closing %r failed", client, exc_info=True)

    thread = threading.Thread(target=close, name="robutler-close-client")
    thread.start()
    thread.join(10)


# -- network guard -------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


class _NetworkGuard:
    """Refuses httpx/httpx2 transport requests to non-loopback hosts while mocks are active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[MockOpenAI] = []
        self._originals: list[tuple[type, str, Any]] = []

    def install(self, mock: MockOpenAI) -> None:
        with self._lock:
            self._active.append(mock)
            if len(self._active) == 1:
                self._patch_all()

    def uninstall(self, mock: MockOpenAI) -> None:
        with self._lock:
            if mock in self._active:
                self._active.remove(mock)
            if not self._active:
                for cls, name, original in reversed(self._originals):
                    setattr(cls, name, original)
                self._originals.clear()

    def _patch_all(self) -> None:
        modules = []
        for name in ("httpx2", "httpx"):
            try:
                modules.append(__import__(name))
            except ImportError:
                continue
        for module in modules:
            self._wrap(module.HTTPTransport, "handle_request", is_async=False)
            self._wrap(module.AsyncHTTPTransport, "handle_async_request", is_async=True)

    def _wrap(self, cls: type, name: str, *, is_async: bool) -> None:
        original = cls.__dict__[name]
        self._originals.append((cls, name, original))
        check = self._check
        if is_async:

            async def guarded_async(transport: Any, request: Any) -> Any:
                check(request)
                return await original(transport, request)

            setattr(cls, name, guarded_async)
        else:

            def guarded(transport: Any, request: Any) -> Any:
                check(request)
                return original(transport, request)

            setattr(cls, name, guarded)

    def _check(self, request: Any) -> None:
        host = request.url.host
        if _is_loopback(host):
            return
        problem = (
            f"blocked {request.method} {request.url}: mock_openai() only lets requests reach "
            "loopback hosts (point the client at upstream.base_url, or pass block_network=False)"
        )
        if "respx" in sys.modules:
            problem += (
                "; to answer an httpx request with respx, mock it at the client: "
                '@pytest.mark.respx(using="httpx") or respx.mock(using="httpx")'
            )
        with self._lock:
            active = list(self._active)
        for mock in active:
            with mock._lock:
                mock.unexpected.append(problem)
        raise BlockedRequestError(problem)


_GUARD = _NetworkGuard()


# -- wire-format helpers -------------------------------------------------------------------


def _split_words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _split_arguments(arguments: str, pieces: int = 3) -> Iterator[str]:
    size = max(1, math.ceil(len(arguments) / pieces))
    for start in range(0, len(arguments), size):
        yield arguments[start : start + size]


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


_USAGE_KEYS = {
    "input_tokens",
    "prompt_tokens",
    "output_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
}


def _check_usage(usage: Usage | None) -> Usage | None:
    if usage is not None and (unknown := set(usage) - _USAGE_KEYS):
        raise ValueError(f"unknown usage keys {sorted(unknown)}; use {sorted(_USAGE_KEYS)}")
    return usage


def _estimate(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text) // 4)


def _token_counts(reply: _Reply, body: dict[str, Any]) -> tuple[int, int, int, int, int]:
    usage = reply.usage or {}
    prompt = body.get("input", body.get("messages", ""))
    inp = usage.get("input_tokens", usage.get("prompt_tokens"))
    out = usage.get("output_tokens", usage.get("completion_tokens"))
    if inp is None:
        inp = _estimate(prompt)
    if out is None:
        out = sum(_estimate(c) for c in reply.chunks or []) + sum(
            _estimate(name + args) for name, args, _, _ in reply.calls
        )
    total = usage.get("total_tokens", inp + out)
    return inp, out, total, usage.get("cached_tokens", 0), usage.get("reasoning_tokens", 0)


def _responses_usage(reply: _Reply, body: dict[str, Any]) -> dict[str, Any]:
    inp, out, total, cached, reasoning = _token_counts(reply, body)
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total,
    }


def _chat_usage(reply: _Reply, body: dict[str, Any]) -> dict[str, Any]:
    inp, out, total, cached, reasoning = _token_counts(reply, body)
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _default_error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "conflict_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _error_body(message: str, error_type: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


async def _send_json(
    send: Any, status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
