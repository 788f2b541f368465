"""§Lifecycle: hook order, finalize exactly once after the last byte, context identity."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from helpers import USER, ASGICall, post
from starlette.responses import Response

from robutler.server import ServerBase, StreamingWrapper, get_context


class Recorder:
    """Hooks that record every call, with the context each one saw."""

    def __init__(self, app: ServerBase) -> None:
        self.events: list[tuple[str, Any]] = []
        self.finals: list[tuple[Any, Any]] = []
        app.agent.before_request(self.before)
        app.agent.finalize_request(self.finalize)

    async def before(self, request: Any) -> None:
        self.events.append(("before", get_context()))

    async def finalize(self, request: Any, response: Any) -> None:
        ctx = get_context()
        self.events.append(("finalize", ctx))
        self.finals.append((ctx, response))


BODY = json.dumps({"messages": USER}).encode()
STREAM_BODY = json.dumps({"messages": USER, "stream": True}).encode()


def make_app() -> tuple[ServerBase, Recorder, dict[str, Any]]:
    app = ServerBase()
    rec = Recorder(app)
    seen: dict[str, Any] = {}

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        rec.events.append(("agent", get_context()))
        return "fine"

    @app.agent("gen")
    async def gen(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        rec.events.append(("agent", get_context()))
        for i in range(3):
            rec.events.append(("chunk", get_context()))
            yield f"c{i} "

    @app.agent("boom")
    async def boom(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("no")

    @app.agent("mid")
    async def mid(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"
        raise RuntimeError("mid")

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        seen["started"] = True
        try:
            for i in range(1000):
                yield f"s{i}"
                await asyncio.sleep(0.005)
        except BaseException as exc:  # the disconnect cancels the agent
            seen["agent_exit"] = type(exc).__name__
            raise

    return app, rec, seen


def test_hook_order_and_one_context() -> None:
    app = ServerBase()
    order: list[str] = []
    contexts: list[Any] = []

    for i in range(2):

        async def before(request: Any, i: int = i) -> None:
            order.append(f"before{i}")
            contexts.append(get_context())

        def finalize(request: Any, response: Any, i: int = i) -> None:  # sync hooks too
            order.append(f"finalize{i}")
            contexts.append(get_context())

        app.agent.before_request(before)
        app.agent.finalize_request(finalize)

    def resolver(name: str) -> Any:
        order.append("resolve")
        contexts.append(get_context())
        return {"name": name}

    @app.agent(resolver)
    async def dynamic(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        order.append("agent")
        contexts.append(get_context())

        async def spawned() -> Any:
            return get_context()

        contexts.append(await asyncio.create_task(spawned()))
        yield "x"
        order.append("stream")
        contexts.append(get_context())

    with TestClient(app) as client:
        response = post(client, "anyone", stream=True)
    assert response.status_code == 200
    assert order == ["before0", "before1", "resolve", "agent", "stream", "finalize0", "finalize1"]
    assert contexts[0] is not None
    assert all(c is contexts[0] for c in contexts)
    assert contexts[0].agent_data == {"name": "anyone"}
    assert get_context() is None


@pytest.mark.parametrize("path", ["/ok/chat/completions", "/ok/responses"])
def test_finalize_gets_the_json_answer_as_it_was_sent(path: str) -> None:
    app, recorder, _ = make_app()
    body = BODY if "chat" in path else json.dumps({"input": "hi"}).encode()
    with TestClient(app) as client:
        sent = client.post(path, content=body, headers={"content-type": "application/json"})
    assert sent.status_code == 200
    [(_, response)] = recorder.finals
    assert type(response) is Response  # what hooks written for Starlette's JSON answers expect
    assert response.status_code == 200 and response.body == sent.content
    assert response.media_type == "application/json"
    for name in ("content-type", "content-length", "x-request-id"):
        assert response.headers[name] == sent.headers[name]


@pytest.mark.parametrize(
    ("name", "body", "status", "kind", "state"),
    [
        ("ok", BODY, 200, "Response", None),
        ("ok", STREAM_BODY, 200, "StreamingWrapper", "completed"),
        ("gen", STREAM_BODY, 200, "StreamingWrapper", "completed"),
        ("gen", BODY, 200, "Response", None),
        ("boom", BODY, 500, "Response", None),
        ("boom", STREAM_BODY, 500, "Response", None),
        ("mid", STREAM_BODY, 200, "StreamingWrapper", "failed"),
        ("mid", BODY, 500, "Response", None),
        ("nobody", BODY, 404, "Response", None),
        ("ok", b"{", 422, "Response", None),
    ],
)
async def test_finalize_exactly_once_after_the_last_byte(
    name: str, body: bytes, status: int, kind: str, state: str | None
) -> None:
    app, rec, _ = make_app()
    sent_at_finalize: list[int] = []

    call = ASGICall(app, f"/{name}/chat/completions", body)

    @app.agent.finalize_request
    async def check_last_byte(request: Any, response: Any) -> None:
        sent_at_finalize.append(len(call.sent))
        last = call.sent[-1]
        assert last["type"] == "http.response.body" and not last.get("more_body", False)

    await call.run()
    assert call.status == status
    assert [e for e, _ in rec.events].count("finalize") == 1
    assert len(rec.finals) == 1
    ctx, response = rec.finals[0]
    assert type(response).__name__ == kind
    assert response.status_code == status
    if state is not None:
        assert response.status == state
    assert sent_at_finalize == [len(call.sent)]
    before_ctx = [c for e, c in rec.events if e == "before"]
    assert before_ctx == [ctx]


async def test_finalize_once_when_before_hook_rejects_and_agent_never_runs() -> None:
    app, rec, _ = make_app()

    @app.agent.before_request
    async def reject(request: Any) -> None:
        raise HTTPException(401, "no key")

    call = await ASGICall(app, "/ok/chat/completions", BODY).run()
    assert call.status == 401
    assert [e for e, _ in rec.events] == ["before", "finalize"]
    assert rec.finals[0][1].status_code == 401


def _hook_app(hook_errors: str | None = None) -> tuple[ServerBase, Recorder, list[str]]:
    """A server whose first before hook crashes with KeyError; a second hook records."""
    app = ServerBase() if hook_errors is None else ServerBase(hook_errors=hook_errors)
    later: list[str] = []

    @app.agent.before_request
    def broken(request: Any) -> None:
        raise KeyError("oops")

    @app.agent.before_request
    async def after(request: Any) -> None:
        later.append("after")

    rec = Recorder(app)

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        rec.events.append(("agent", get_context()))
        yield "fi"
        yield "ne"

    return app, rec, later


def _hook_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "robutler" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("body", [BODY, STREAM_BODY], ids=["json", "stream"])
async def test_a_crashing_before_hook_is_logged_and_the_request_goes_on(
    caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    app, rec, later = _hook_app()
    with caplog.at_level(logging.ERROR, logger="robutler"):
        call = await ASGICall(app, "/ok/chat/completions", body).run()
    assert call.status == 200 and "fi" in call.text and "ne" in call.text
    assert later == ["after"], "the hooks after the crashing one did not run"
    assert [e for e, _ in rec.events].count("agent") == 1
    assert [e for e, _ in rec.events].count("finalize") == 1
    failures = _hook_failures(caplog)
    assert len(failures) == 1, [r.getMessage() for r in failures]
    message = failures[0].getMessage()
    assert "before_request hook" in message and "broken" in message
    assert "agent" not in message
    assert "KeyError" in (failures[0].exc_text or "")


@pytest.mark.parametrize("body", [BODY, STREAM_BODY], ids=["json", "stream"])
async def test_hook_errors_reject_fails_closed_with_500_hook_error(
    caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    app, rec, later = _hook_app("reject")
    with caplog.at_level(logging.ERROR, logger="robutler"):
        call = await ASGICall(app, "/ok/chat/completions", body).run()
    assert call.status == 500
    error = json.loads(call.text)["error"]
    assert error["code"] == "hook_error" and "before_request hook" in error["message"]
    assert later == [] and "agent" not in [e for e, _ in rec.events]
    assert [e for e, _ in rec.events].count("finalize") == 1
    assert rec.finals[0][1].status_code == 500
    failures = _hook_failures(caplog)
    assert len(failures) == 1 and "broken" in failures[0].getMessage()


def test_hook_errors_takes_log_or_reject() -> None:
    with pytest.raises(ValueError, match=r"hook_errors must be 'log'.*or 'reject'"):
        ServerBase(hook_errors="ignore")


async def test_disconnect_mid_stream_cancels_agent_and_finalizes_once() -> None:
    app, rec, seen = make_app()
    call = await ASGICall(app, "/slow/chat/completions", STREAM_BODY, leave_after=3).run()
    assert call.status == 200
    assert seen["agent_exit"] in ("CancelledError", "GeneratorExit")
    assert len(rec.finals) == 1
    response = rec.finals[0][1]
    assert isinstance(response, StreamingWrapper)
    assert response.status == "disconnected" and response.disconnected and not response.completed
    assert response.original_response is not None and hasattr(
        response.original_response, "__anext__"
    )


class _Events:
    """An object with `stream_events()`, like a run of an agent framework."""

    def __init__(self, produce: Any) -> None:
        self.produce = produce

    def stream_events(self) -> AsyncIterator[Any]:
        return self.produce()


class _Iterable:
    """An async iterable that is not itself an iterator."""

    def __init__(self, produce: Any) -> None:
        self.produce = produce

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.produce()


@pytest.mark.parametrize("wrap", [_Events, _Iterable], ids=["stream_events", "async_iterable"])
async def test_a_stream_cut_while_the_agent_waits_at_a_yield_closes_the_agent_at_once(
    wrap: Any,
) -> None:
    # The agent never awaits, so the client's leaving is noticed at one of the stream's
    # own loop turns, while the agent's generator is suspended at a `yield`, not inside
    # an await of its own. Its `finally` must run before finalize, not when collected.
    app = ServerBase()
    order: list[str] = []

    async def produce() -> AsyncIterator[Any]:
        try:
            for i in range(10_000):
                yield {"data": {"chunk": f"e{i} "}} if wrap is _Events else f"e{i} "
        finally:
            order.append("agent finally")

    @app.agent("cut")
    def cut(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return wrap(produce)

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:  # runs inline: no loop turn
        order.append(f"finalize {response.status}")

    call = await ASGICall(app, "/cut/chat/completions", STREAM_BODY, leave_after=2).run()
    assert call.status == 200
    assert order == ["agent finally", "finalize disconnected"]


async def test_finalize_hook_errors_are_logged_and_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = ServerBase()
    ran: list[str] = []

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "fine"

    @app.agent.finalize_request
    async def first(request: Any, response: Any) -> None:
        ran.append("first")
        raise ValueError("hook bug")

    @app.agent.finalize_request
    def second(request: Any, response: Any) -> None:
        ran.append("second")
        raise ValueError("sync hook bug")

    @app.agent.finalize_request
    async def third(request: Any, response: Any, context: Any) -> None:
        ran.append(f"third:{context.agent_name}")

    with caplog.at_level(logging.ERROR, logger="robutler"):
        call = await ASGICall(app, "/ok/chat/completions", BODY).run()
    assert call.status == 200 and "fine" in call.text
    assert ran == ["first", "second", "third:ok"]
    assert len([r for r in caplog.records if "finalize_request hook" in r.getMessage()]) == 2


async def test_finalize_is_not_cut_short_by_cancellation() -> None:
    app = ServerBase()
    entered = asyncio.Event()
    release = asyncio.Event()
    done: list[str] = []

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "fine"

    @app.agent.finalize_request
    async def slow_finalize(request: Any, response: Any) -> None:
        entered.set()
        await release.wait()
        done.append("finished")

    task = asyncio.ensure_future(ASGICall(app, "/ok/chat/completions", BODY).run())
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()  # what a server does to a request on shutdown or disconnect
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert done == ["finished"]


def test_hooks_do_not_run_for_info_routes_or_health() -> None:
    app, rec, _ = make_app()
    with TestClient(app) as client:
        for path in (
            "/ok",
            "/ok/models",
            "/ok/chat/completions",
            "/health",
            "/docs",
            "/openapi.json",
        ):
            assert client.get(path).status_code == 200, path
        assert client.post("/ok").json()["status"] == "active"
    assert rec.events == []


async def test_context_does_not_leak_into_the_caller_or_the_next_request() -> None:
    app, rec, _ = make_app()
    await ASGICall(app, "/ok/chat/completions", BODY).run()
    assert get_context() is None  # the app ran in this very task
    await ASGICall(app, "/gen/chat/completions", STREAM_BODY).run()
    first, second = (c for e, c in rec.events if e == "finalize")
    assert first is not second
    assert get_context() is None


async def test_request_cancelled_mid_stream_finalizes_once_as_disconnected() -> None:
    app, rec, seen = make_app()
    call = ASGICall(app, "/slow/chat/completions", STREAM_BODY)
    task = asyncio.ensure_future(call.run())
    for _ in range(200):  # until the stream is on its way (bounded)
        if len([m for m in call.sent if m["type"] == "http.response.body"]) >= 2:
            break
        await asyncio.sleep(0.005)
    task.cancel()  # what a server does to its requests when it shuts down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(rec.finals) == 1
    assert rec.finals[0][1].status == "disconnected"
    assert seen["agent_exit"] in ("CancelledError", "GeneratorExit")


async def test_json_request_whose_client_left_finalizes_with_a_499_response() -> None:
    """What the README promises finalize gets when a JSON request's client left early."""
    from starlette.responses import Response

    app = ServerBase()
    rec = Recorder(app)
    started = asyncio.Event()
    cancelled: list[bool] = []

    @app.agent("waits")
    async def waits(messages: list[dict[str, Any]], stream: bool = False) -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    call = ASGICall(app, "/waits/chat/completions", BODY)
    task = asyncio.ensure_future(call.run())
    await started.wait()
    call.leave()  # the client hangs up before any answer
    await asyncio.wait_for(task, 10)
    assert cancelled == [True] and call.sent == []
    ((ctx, response),) = rec.finals
    assert isinstance(response, Response) and not isinstance(response, StreamingWrapper)
    assert response.status_code == 499
    assert isinstance(ctx.error, ConnectionResetError)
