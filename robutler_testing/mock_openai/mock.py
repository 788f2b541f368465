"""`MockOpenAI`: the scripted API served on 127.0.0.1, and the `mock_openai()` block."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import chat, responses, websocket
from .guard import GUARD
from .http import QuietDrop, read_call, send_json, send_sse, target
from .patching import MOCK_API_KEY, Patches
from .scripting import (
    Arguments,
    ErrorReply,
    Matcher,
    OutputReply,
    Reply,
    Script,
    ToolCall,
    UpstreamCall,
    Usage,
    check_usage,
    default_error_type,
    error_body,
    text_chunks,
)
from .tape import CassetteOptions, Tape

if TYPE_CHECKING:
    import openai

__all__ = ["MockOpenAI", "close_async_client", "mock_openai"]

_WIRES = {
    "responses": (responses.response, responses.events),
    "chat": (chat.completion, chat.chunks),
}


class MockOpenAI:
    """A scripted OpenAI API on 127.0.0.1; use via :func:`mock_openai`.

    ``fallback`` (a callable taking the `UpstreamCall`, e.g. `echo`) answers the calls no
    scripted reply answers, instead of a 500. Attributes: ``base_url``
    (``http://127.0.0.1:PORT/v1``), ``calls`` (every request, as
    :class:`UpstreamCall`), ``requests`` (the POST bodies), ``unexpected`` (unscripted and
    blocked calls), ``app`` (the ASGI app, e.g. for ``httpx2.ASGITransport`` in-process use),
    ``recording`` (True while a cassette is being recorded).
    """

    def __init__(
        self,
        *,
        max_retries: int | None = None,
        block_network: bool = True,
        strict: bool = True,
        configure_agents: bool = True,
        cassette: CassetteOptions | None = None,
        fallback: Callable[[UpstreamCall], Reply] | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.fallback = fallback
        self.block_network = block_network
        self.strict = strict
        self.configure_agents = configure_agents
        self.calls: list[UpstreamCall] = []
        self.unexpected: list[str] = []
        self.port: int = 0
        self._script = Script()
        self._lock = self._script.lock
        self._closing = threading.Event()
        self._server: Any = None
        self._patches: Patches | None = None
        self._log_filter = QuietDrop()
        self.cassette = cassette
        self._tape: Tape | None = None

    # scripting

    def add(self, reply: Reply, *, match: Matcher | None = None) -> MockOpenAI:
        """Script a reply built by hand (an `OutputReply` or `ErrorReply`).

        With `match` (a `Match(model=..., input=...)`, or a callable taking the
        `UpstreamCall`) the reply waits for a call it accepts; without, it answers the next
        call no matched reply accepts.
        """
        if self.cassette is not None:
            raise RuntimeError(
                f"this mock_openai answers from the cassette {self.cassette.path}; "
                "scripted replies are not served in cassette mode"
            )
        self._script.add(reply, match)
        return self

    def add_text(
        self,
        text: str | Sequence[str],
        *,
        usage: Usage | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        disconnect_after: int | None = None,
        match: Matcher | None = None,
    ) -> MockOpenAI:
        """Script an assistant message.

        A string is streamed as one delta per word; a sequence of strings gives the deltas
        exactly. ``usage`` takes ``input_tokens``/``output_tokens`` (or ``prompt_tokens``/
        ``completion_tokens``), optionally ``cached_tokens`` and ``reasoning_tokens``; by
        default it is estimated (characters / 4). ``delay`` waits before answering
        (``math.inf``: hang until the block exits); ``chunk_delay`` waits after each delta;
        ``disconnect_after=n`` drops the connection after ``n`` deltas (streaming only).
        ``match``: see :meth:`add`.
        """
        reply = OutputReply(
            text_chunks(text),
            usage=check_usage(usage),
            delay=delay,
            chunk_delay=chunk_delay,
            disconnect_after=disconnect_after,
        )
        return self.add(reply, match=match)

    def add_tool_call(
        self,
        name: str,
        arguments: Arguments | None = None,
        *,
        call_id: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
        match: Matcher | None = None,
    ) -> MockOpenAI:
        """Script a reply that calls one function tool with ``arguments`` (mapping or JSON)."""
        call = ToolCall(name, {} if arguments is None else arguments, call_id)
        return self.add_tool_calls([call], usage=usage, delay=delay, match=match)

    def add_tool_calls(
        self,
        calls: Sequence[ToolCall | tuple[str, Arguments]],
        *,
        text: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
        match: Matcher | None = None,
    ) -> MockOpenAI:
        """Script one reply with several function calls, optionally preceded by ``text``."""
        if not calls:
            raise ValueError("add_tool_calls() needs at least one call")
        tool_calls = [c if isinstance(c, ToolCall) else ToolCall(*c) for c in calls]
        reply = OutputReply(
            None if text is None else text_chunks(text),
            self._script.tool_calls(tool_calls),
            usage=check_usage(usage),
            delay=delay,
        )
        return self.add(reply, match=match)

    def add_error(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        match: Matcher | None = None,
    ) -> MockOpenAI:
        """Script an HTTP error with an OpenAI-shaped body ``{"error": {message, type, ...}}``.

        The ``openai`` client retries 408/409/429/5xx (``max_retries``, default 2, with
        backoff); ``retry_after`` (seconds) sends ``retry-after-ms`` so retries come quickly,
        and ``headers={"x-should-retry": "false"}`` stops them.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after-ms"] = str(int(retry_after * 1000) or 1)
        reply = ErrorReply(
            status, message, type or default_error_type(status), code, extra, delay=delay
        )
        return self.add(reply, match=match)

    # inspection

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
    def recording(self) -> bool:
        """True while this mock records a cassette (its requests go to the real upstream)."""
        from .record import Recorder

        return isinstance(self._tape, Recorder)

    @property
    def pending(self) -> list[str]:
        """Descriptions of scripted replies (or recorded interactions) not yet consumed."""
        tape = self._tape
        return self._script.pending() + (tape.pending() if tape is not None else [])

    def assert_all_used(self) -> None:
        """Fail if a scripted reply was left over or a call was unscripted or blocked."""
        __tracebackhide__ = True
        problems = [f"unused scripted reply: {d}" for d in self.pending]
        with self._lock:
            problems += self.unexpected
        if problems:
            raise AssertionError("mock_openai: " + "; ".join(problems))

    def report(self, problem: str) -> None:
        """Record a problem that fails the block on exit (with `strict`)."""
        with self._lock:
            self.unexpected.append(problem)

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

    # the block

    def __enter__(self) -> MockOpenAI:
        self._open_tape()
        self._start()
        try:
            self._patch()
        except BaseException:
            self._unpatch()
            self._stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        __tracebackhide__ = True
        client = self._unpatch()
        if client is not None:
            close_async_client(client)
        self._stop()
        self._close_tape(exc_type)
        self._check_on_exit(exc_type)

    async def __aenter__(self) -> MockOpenAI:
        self._open_tape()
        await asyncio.to_thread(self._start)
        try:
            self._patch()
        except BaseException:
            self._unpatch()
            await asyncio.to_thread(self._stop)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        __tracebackhide__ = True
        client = self._unpatch()
        if client is not None:
            await client.close()
        await asyncio.to_thread(self._stop)
        self._close_tape(exc_type)
        self._check_on_exit(exc_type)

    def _check_on_exit(self, exc_type: type[BaseException] | None) -> None:
        __tracebackhide__ = True
        with self._lock:
            unexpected = list(self.unexpected)
        if self.strict and exc_type is None and unexpected:
            raise AssertionError("mock_openai: " + "; ".join(unexpected))

    def _open_tape(self) -> None:
        """Load the cassette, or get ready to record it (before the environment is patched:
        recording reads the real upstream and key from it)."""
        if self.cassette is not None:
            if self._server is not None:
                raise RuntimeError("this mock_openai() is already active")
            self._tape = self.cassette.open()

    def _close_tape(self, exc_type: type[BaseException] | None) -> None:
        """Write a recorded cassette, unless the block raised."""
        from .record import Recorder

        tape = self._tape
        if isinstance(tape, Recorder):
            tape.finish(exc_type is None)

    def _patch(self) -> None:
        from .record import Recorder

        self._patches = Patches()
        self._patches.apply(self.base_url, self.async_client, self.configure_agents)
        if self.block_network:
            tape = self._tape
            GUARD.install(self.report, [tape.host] if isinstance(tape, Recorder) else ())

    def _unpatch(self) -> Any:
        """Undo `_patch`; the Agents SDK client it made (for the caller to close), if any."""
        patches, self._patches = self._patches, None
        if patches is None:
            return None
        GUARD.uninstall(self.report)
        client = patches.agents_client
        patches.restore()
        return client

    def _start(self) -> None:
        from ..live import LiveServer

        if self._server is not None:
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

    def _stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.stop(timeout=10)
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        self._server = None

    # the ASGI app

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The mock API as an ASGI application."""
        if scope["type"] == "websocket":
            if self._tape is not None:  # not recorded or replayed yet: refuse, loudly
                self.report(
                    f"a WebSocket connection to {scope['path']}: cassettes record and replay "
                    "HTTP (JSON and SSE) only, not the Responses WebSocket mode"
                )
                await send({"type": "websocket.close", "code": 1008})
                return
            await websocket.serve_socket(self, scope, receive, send)
            return
        if scope["type"] != "http":
            return
        call, raw = await read_call(scope, receive)
        if self._tape is not None:
            await self._play(call, raw, scope, send)
            return
        if call.method == "POST" and call.path.rstrip("/") == "/v1/responses/compact":
            await self._compact(send, call)
            return
        reply = self._take(call)
        if isinstance(reply, str):
            status = 404 if call.api is None else 500
            error = error_body(f"mock_openai: {reply}", "mock_openai_error", None)
            await send_json(send, status, error, {"x-should-retry": "false"})
        elif reply.delay and not await self._sleep(reply.delay):
            error = error_body("mock_openai is shutting down", "server_error", None)
            await send_json(send, 503, error)
        else:
            await self._answer(send, call, reply)

    async def _play(self, call: UpstreamCall, raw: bytes, scope: dict[str, Any], send: Any) -> None:
        """Answer from the cassette, or through to the upstream while recording it."""
        from .record import Recorder

        with self._lock:
            self.calls.append(call)
        tape = self._tape
        if isinstance(tape, Recorder):
            await tape.serve(call, target(scope), raw, send, self.report)
        elif tape is not None:
            await tape.serve(call, target(scope), send, self.report, self._sleep)

    def _take(self, call: UpstreamCall) -> Reply | str:
        """Record `call` and take its reply, or record and return why there is none."""
        with self._lock:
            self.calls.append(call)
            number = len(self.calls)
            problem = None
            try:
                reply = None if call.api is None else self._script.take(call)
            except Exception as exc:  # a match= callable of the test's
                reply, problem = None, f"a match= callable raised {exc!r} on call #{number}"
            if reply is None and problem is None and call.api and self.fallback is not None:
                reply = self.fallback(call)
            if reply is None:
                problem = problem or self._unanswered(call, number)
                self.unexpected.append(problem)
                return problem
            call.reply = reply.describe()
            return reply

    def _unanswered(self, call: UpstreamCall, number: int) -> str:
        where = f"{call.method} {call.path} (call #{number})"
        if call.api is None:
            return (
                f"unexpected {where}: mock_openai only serves "
                "POST /v1/responses and POST /v1/chat/completions"
            )
        waiting = self._script.waiting_for_a_match
        if waiting:
            return (
                f"unscripted {where}: none of the {waiting} matched repl(ies) accepts it "
                f"(model {call.model!r}, input {call.text[-80:]!r}) and no unmatched one is left"
            )
        return (
            f"unscripted {where}: nothing was scripted; "
            "add a reply with add_text(), add_tool_call() or add_error()"
        )

    async def _answer(self, send: Any, call: UpstreamCall, reply: Reply) -> None:
        request_id = f"req_mock_{self._script.next_id()}"
        if isinstance(reply, ErrorReply):
            headers = {"x-request-id": request_id, **reply.headers}
            await send_json(send, reply.status, reply.body(), headers)
            return
        assert call.api is not None
        body = call.body if isinstance(call.body, dict) else {}
        json_body, frames = _WIRES[call.api]
        next_id = self._script.next_id
        if body.get("stream"):
            await send_sse(
                send,
                frames(reply, body, next_id),
                request_id,
                sleep=self._sleep,
                chunk_delay=reply.chunk_delay,
                disconnect_after=reply.disconnect_after,
            )
        else:
            payload = json_body(reply, body, next_id)
            await send_json(send, 200, payload, {"x-request-id": request_id})

    async def _compact(self, send: Any, call: UpstreamCall) -> None:
        """``POST /v1/responses/compact``: answered without a script (see `websocket`)."""
        with self._lock:
            self.calls.append(call)
        if not isinstance(call.body, dict) or not call.body.get("model"):
            error = error_body(
                "Missing required parameter: 'model'.",
                "invalid_request_error",
                "missing_required_parameter",
            )
            await send_json(send, 400, error)
            return
        await send_json(send, 200, websocket.compaction(call, self._script.next_id))

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


def mock_openai(
    *,
    max_retries: int | None = None,
    block_network: bool = True,
    strict: bool = True,
    configure_agents: bool = True,
    cassette: str | os.PathLike[str] | None = None,
    record: bool | None = None,
    ignore: Sequence[str] = (),
    scrub: Sequence[str] = (),
    pacing: bool | float = False,
    upstream: str | None = None,
    fallback: Callable[[UpstreamCall], Reply] | None = None,
) -> MockOpenAI:
    """Serve a scripted OpenAI API on 127.0.0.1 for the duration of a ``with`` block.

    Inside the block ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` point at the mock, the
    ``openai`` module-level client is reset, and (``configure_agents``) the Agents SDK's
    default client is an ``AsyncOpenAI`` on the mock with tracing disabled; all of it is
    restored afterwards. ``max_retries`` applies to that client and to ``upstream.client()``
    (``None``: the ``openai`` default, 2). ``block_network`` refuses httpx/httpx2 requests to
    non-loopback hosts. ``strict`` fails the block on exit if a call was unscripted or
    blocked. ``fallback`` answers what nothing scripted answers (see `MockOpenAI`). Works as
    ``with`` and ``async with``; not reentrant.

    With ``cassette`` (a YAML file's path) the replies come from recorded traffic instead
    of a script: replayed offline, or with ``record`` (default: ``ROBUTLER_RECORD=1`` in the
    environment) recorded from a real ``upstream`` (default: ``ROBUTLER_RECORD_UPSTREAM``,
    else ``OPENAI_BASE_URL``, else the OpenAI API; the key from ``ROBUTLER_RECORD_API_KEY``
    or ``OPENAI_API_KEY``) and written on leaving the block. ``ignore`` adds body paths
    left out of matching (``"instructions"``, ``"tools.*.description"``, ``"**.id"``);
    ``scrub`` adds header names whose values are never written; ``pacing`` replays streams
    at their recorded times (``True``, or a factor: 0.5 is twice as fast). See
    `robutler_testing.mock_openai.replay` for the matching rules.
    """
    options = None
    if cassette is not None:
        options = CassetteOptions.make(
            cassette, record=record, ignore=ignore, scrub=scrub, pacing=pacing, upstream=upstream
        )
    elif record or ignore or scrub or pacing or upstream:
        raise TypeError("record=, ignore=, scrub=, pacing= and upstream= need a cassette=")
    if options is not None and fallback is not None:
        raise TypeError("fallback= answers unscripted calls; a cassette= mock has no script")
    return MockOpenAI(
        max_retries=max_retries,
        block_network=block_network,
        strict=strict,
        configure_agents=configure_agents,
        cassette=options,
        fallback=fallback,
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
