"""Slow agents in production: keepalives, an early-opened stream, timeouts, cancellation.

Everything runs against live uvicorn on 127.0.0.1. Nothing here is timed: agents wait on
events the test controls, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from helpers import USER, sse_events, wait_for

from robutler.server import Server, ServerBase, StreamingWrapper, get_context, pricing
from robutler_testing import validate_stream
from robutler_testing.live import LiveServer

STREAM = {"messages": USER, "stream": True}


class Gate:
    """An event the test opens from its thread for an agent waiting on uvicorn's loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        await self.event.wait()

    def open(self) -> None:
        assert wait_for(lambda: self.event is not None), "the agent never reached the gate"
        assert self.loop is not None and self.event is not None
        self.loop.call_soon_threadsafe(self.event.set)


class Finals:
    def __init__(self, app: ServerBase) -> None:
        self.responses: list[Any] = []
        self.credits: list[float] = []
        self.errors: list[Any] = []
        app.agent.finalize_request(self)

    def __call__(self, request: Any, response: Any) -> None:
        ctx = get_context()
        assert ctx is not None
        self.responses.append(response)
        self.credits.append(ctx.usage["total_credits"])
        self.errors.append(ctx.error)


# keepalives ---------------------------------------------------------------------------


def test_keepalive_comments_fill_a_silent_stream_and_never_split_an_event() -> None:
    app = ServerBase(keepalive=0.02)
    gate = Gate()

    @app.agent("thinker")
    async def thinker(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "before the tool call, "
        await gate.wait()  # a long, silent tool call
        yield "after it"

    with LiveServer(app) as live:
        raw: list[bytes] = []
        with httpx.stream(
            "POST", f"{live.url}/thinker/chat/completions", json=STREAM, timeout=10
        ) as response:
            parts = response.iter_bytes()
            while b"".join(raw).count(b": keepalive\n\n") < 2:
                raw.append(next(parts))
            gate.open()
            raw.extend(parts)
    body = b"".join(raw)
    assert body.count(b": keepalive\n\n") >= 2
    # Comments sit between events, on lines of their own.
    for block in body.split(b"\n\n")[:-1]:
        assert block.startswith((b"data: ", b": keepalive")), block[:60]
        assert b": keepalive" not in block or block == b": keepalive"
    report = validate_stream(body)
    assert report.content == "before the tool call, after it"


def test_the_official_client_ignores_keepalive_comments() -> None:
    app = ServerBase(keepalive=0.02)
    gate = Gate()

    @app.agent("thinker")
    async def thinker(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"
        await gate.wait()
        yield "b"

    with LiveServer(app) as live:
        client = openai.OpenAI(base_url=f"{live.url}/thinker", api_key="k", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        chunks = iter(stream)
        first = next(chunks)
        threading.Timer(0.2, gate.open).start()  # comments go out while the client waits
        rest = list(chunks)
        client.close()
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "ab"


def test_keepalive_off_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerBase(keepalive=0).endpoint.keepalive is None
    assert ServerBase().endpoint.keepalive == 15.0
    monkeypatch.setenv("ROBUTLER_SSE_KEEPALIVE", "2.5")
    assert ServerBase().endpoint.keepalive == 2.5
    monkeypatch.setenv("ROBUTLER_SSE_KEEPALIVE", "soon")
    with pytest.raises(ValueError, match="ROBUTLER_SSE_KEEPALIVE"):
        ServerBase()
    with pytest.raises(ValueError, match="request_timeout"):
        ServerBase(keepalive=1, request_timeout=-1)


# a stream opens before a slow first token --------------------------------------------------


def test_a_stream_opens_while_the_agent_thinks_before_its_first_token() -> None:
    app = ServerBase(keepalive=0)
    gate = Gate()

    @app.agent("slow-start")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        await gate.wait()  # the model thinking
        yield "finally"

    with (
        LiveServer(app) as live,
        httpx.stream(
            "POST", f"{live.url}/slow-start/chat/completions", json=STREAM, timeout=10
        ) as response,
    ):
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        # The headers and the role chunk arrived while the agent still waits.
        assert gate.event is not None and not gate.event.is_set()
        assert response.headers["content-type"].startswith("text/event-stream")
        opening = json.loads(first.removeprefix("data: "))
        assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        gate.open()
        rest = [line for line in lines if line]
    report = validate_stream("\n\n".join([first, *rest]) + "\n\n")
    assert report.content == "finally"


def test_keepalive_comments_also_fill_the_wait_for_a_slow_first_token() -> None:
    # The stream opens after OPEN_STREAM_AFTER with no token yet; from then on the
    # keepalive timer runs, so a model thinking for a minute is not cut by a proxy.
    app = ServerBase(keepalive=0.02)
    gate = Gate()

    @app.agent("slow-start")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        await gate.wait()  # the model thinking, before any token
        yield "finally"

    with LiveServer(app) as live:
        raw: list[bytes] = []
        with httpx.stream(
            "POST", f"{live.url}/slow-start/chat/completions", json=STREAM, timeout=10
        ) as response:
            parts = response.iter_bytes()
            while b"".join(raw).count(b": keepalive\n\n") < 2:
                raw.append(next(parts))
            assert gate.event is not None and not gate.event.is_set()
            gate.open()
            raw.extend(parts)
    body = b"".join(raw)
    before_token = body.split(b"finally")[0]
    assert before_token.count(b": keepalive\n\n") >= 2
    assert validate_stream(body).content == "finally"


def test_an_agent_that_fails_at_once_still_gets_a_real_500() -> None:
    app = ServerBase()

    @app.agent("broken")
    async def broken(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        await asyncio.sleep(0)  # a short wait is not a slow start
        raise RuntimeError("no")
        yield "never"

    with LiveServer(app) as live:
        response = httpx.post(f"{live.url}/broken/chat/completions", json=STREAM, timeout=10)
    assert response.status_code == 500 and response.json()["error"]["code"] == "agent_error"


# timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_agent_past_request_timeout_is_cancelled_answered_504_and_not_charged(
    stream: bool,
) -> None:
    app = ServerBase(request_timeout=0.2, keepalive=0)
    finals = Finals(app)
    exits: list[str] = []

    @app.agent("stuck")
    @pricing(credits_per_request=5)
    async def stuck(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        try:
            yield "partial "
            await asyncio.Event().wait()  # never set: only the timeout ends this
            yield "never"
        except BaseException as exc:
            exits.append(type(exc).__name__)
            raise

    with LiveServer(app) as live:
        response = httpx.post(
            f"{live.url}/stuck/chat/completions",
            json={"messages": USER, "stream": stream},
            timeout=10,
        )
        assert wait_for(lambda: bool(finals.responses))
    assert exits in (["CancelledError"], ["GeneratorExit"])
    assert finals.credits == [0] and len(finals.responses) == 1
    outcome = finals.responses[0]
    if stream:
        assert response.status_code == 200
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        error = events[-2]["error"]
        assert error["code"] == "timeout" and "request_timeout" in error["message"]
        assert isinstance(outcome, StreamingWrapper) and outcome.status == "timeout"
    else:
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
        assert outcome.status_code == 504
    assert isinstance(finals.errors[0], TimeoutError)


# cancellation reaches the work --------------------------------------------------------------


def _leave_after_first_event(url: str, body: dict[str, Any]) -> None:
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                return


def test_a_client_leaving_cancels_the_agent_its_awaited_and_spawned_tasks() -> None:
    app = ServerBase(keepalive=0)
    finals = Finals(app)
    seen: dict[str, str] = {}

    async def forever(label: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            seen[label] = "finally ran"

    @app.agent("busy")
    async def busy(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        background = asyncio.create_task(forever("spawned"))  # never awaited
        awaited = asyncio.create_task(forever("awaited"))
        try:
            yield "started"
            await awaited
        finally:
            seen["agent"] = "finally ran"
            del background

    with LiveServer(app) as live:
        _leave_after_first_event(f"{live.url}/busy/chat/completions", STREAM)
        assert wait_for(lambda: len(seen) == 3), seen
        assert wait_for(lambda: bool(finals.responses))
    assert seen == {"agent": "finally ran", "awaited": "finally ran", "spawned": "finally ran"}
    assert finals.responses[0].status == "disconnected"


def test_a_client_leaving_cancels_a_coroutine_agent_before_it_answers() -> None:
    app = ServerBase()
    finals = Finals(app)
    seen: list[str] = []

    @app.agent("pondering")
    async def pondering(messages: list[dict[str, Any]], stream: bool = False) -> str:
        try:
            await asyncio.Event().wait()
            return "never"
        finally:
            seen.append("finally ran")

    with LiveServer(app) as live:
        with contextlib.suppress(httpx.ReadTimeout):  # the client gives up and leaves
            httpx.post(
                f"{live.url}/pondering/chat/completions", json={"messages": USER}, timeout=0.3
            )
        assert wait_for(lambda: bool(seen) and bool(finals.responses))
    assert seen == ["finally ran"]
    assert finals.responses[0].status_code == 499


def test_a_client_leaving_cancels_an_agents_sdk_run() -> None:
    from agents import Agent

    from robutler_testing.mock_openai import mock_openai

    with mock_openai() as upstream:
        upstream.add_text(["one ", "two ", "three"], chunk_delay=math.inf)  # stalls after one
        app = Server(agents=[Agent(name="sdk", instructions="Be brief.", model="gpt-test")])
        finals = Finals(app)
        with LiveServer(app) as live:
            _leave_after_first_event(f"{live.url}/sdk/chat/completions", STREAM)
            assert wait_for(lambda: bool(finals.responses))
            assert finals.responses[0].status == "disconnected"
            leftovers = live_tasks(live)
        upstream.assert_all_used()
    assert leftovers == [], f"the run kept tasks alive: {leftovers}"


def live_tasks(live: LiveServer) -> list[str]:
    """Names of the tasks still running a request's work on the server's loop."""
    loop = getattr(live._server, "_loop", None) or _server_loop(live)
    future = asyncio.run_coroutine_threadsafe(_pending_work(), loop)
    return future.result(timeout=10)


def _server_loop(live: LiveServer) -> asyncio.AbstractEventLoop:
    servers = live._server.servers  # uvicorn's asyncio servers
    return servers[0].get_loop()  # type: ignore[no-any-return]


async def _pending_work() -> list[str]:
    await asyncio.sleep(0.05)  # let cancellations land
    me = asyncio.current_task()
    names = []
    for task in asyncio.all_tasks():
        if task is me:
            continue
        code = getattr(task.get_coro(), "__qualname__", "")
        if "run_streamed" in code or "_start_streaming" in code or "stream_events" in code:
            names.append(code)
    return names
