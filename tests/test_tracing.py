"""OpenTelemetry spans, collected with opentelemetry-sdk's in-memory exporter from live
uvicorn: parent and child spans, GenAI attributes, traceparent, a cut stream's span."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from agents import Agent, function_tool
from helpers import USER, streaming, wait_for
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from robutler.server import Server, ServerBase
from robutler.server.endpoint import Exchange
from robutler_testing.live import LiveServer
from robutler_testing.mock_openai import mock_openai

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def collector() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    assert wait_for(lambda: bool(named(exporter, name))), [
        s.name for s in exporter.get_finished_spans()
    ]
    (span,) = named(exporter, name)
    return span


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.parent is not None and parent.context is not None and span.context is not None
    return (
        span.parent.span_id == parent.context.span_id
        and span.context.trace_id == parent.context.trace_id
    )


def test_a_request_is_a_server_span_continuing_the_callers_trace() -> None:
    provider, exporter = collector()
    app = ServerBase(tracing=provider, keepalive=0)

    @app.agent.before_request
    def check(request: Any) -> None:
        pass

    @app.agent.finalize_request
    async def bill(request: Any, response: Any) -> None:
        pass

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }

    with LiveServer(app) as live:
        response = httpx.post(
            f"{live.url}/echo/chat/completions",
            json={"messages": USER, "model": "gpt-x"},
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
            timeout=10,
        )
        assert response.status_code == 200
        request = one(exporter, "chat echo")
    assert request.kind == SpanKind.SERVER
    assert request.context is not None and request.parent is not None
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert format(request.parent.span_id, "016x") == PARENT_ID
    attributes = dict(request.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-x"
    assert attributes["gen_ai.agent.name"] == "echo"
    assert attributes["gen_ai.usage.input_tokens"] == 7
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["robutler.outcome"] == "completed"
    assert attributes["robutler.api"] == "chat"
    assert attributes["http.response.status_code"] == 200
    assert attributes["robutler.request_id"] == response.headers["x-request-id"]
    assert request.status.status_code == StatusCode.UNSET
    agent = one(exporter, "invoke_agent echo")
    assert child_of(agent, request)
    assert dict(agent.attributes or {})["gen_ai.operation.name"] == "invoke_agent"
    before = one(
        exporter,
        "before_request check",
    )
    finalize = one(
        exporter,
        "finalize_request bill",
    )
    assert child_of(before, request) and child_of(finalize, request)
    assert request.end_time is not None and finalize.end_time is not None
    assert finalize.end_time <= request.end_time  # the request's span outlives finalize


def test_a_failed_agent_sets_the_error_status() -> None:
    provider, exporter = collector()
    app = ServerBase(tracing=provider)

    @app.agent("broken")
    async def broken(messages: list[dict[str, Any]]) -> str:
        raise RuntimeError("the agent's bug")

    with LiveServer(app) as live:
        assert (
            httpx.post(f"{live.url}/broken/chat/completions", json={"messages": USER}).status_code
            == 500
        )
        span = one(exporter, "chat broken")
    attributes = dict(span.attributes or {})
    assert attributes["robutler.outcome"] == "failed"
    assert attributes["error.type"] == "RuntimeError"
    assert attributes["http.response.status_code"] == 500
    assert span.status.status_code == StatusCode.ERROR


def test_a_cut_stream_ends_its_span_once_with_its_outcome() -> None:
    provider, exporter = collector()
    app = ServerBase(tracing=provider, keepalive=0)
    waiting: list[bool] = []

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "first"
        waiting.append(True)
        await asyncio.Event().wait()  # the client leaves
        yield "never"

    with LiveServer(app) as live:
        with streaming(f"{live.url}/slow/chat/completions"):
            assert wait_for(lambda: bool(waiting))
            assert not named(exporter, "chat slow")  # still open while the stream is
        request = one(exporter, "chat slow")
        agent = one(exporter, "invoke_agent slow")
    assert dict(request.attributes or {})["robutler.outcome"] == "disconnected"
    assert child_of(agent, request)
    assert len(named(exporter, "chat slow")) == 1


def test_store_calls_are_spans_inside_the_request() -> None:
    provider, exporter = collector()
    app = ServerBase(tracing=provider)

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]]) -> str:
        return "hello"

    with LiveServer(app) as live:
        created = httpx.post(f"{live.url}/v1/responses", json={"model": "echo", "input": "hi"})
        assert created.status_code == 200, created.text
        request = one(exporter, "chat echo")
        put = one(exporter, "response_store put")
    assert dict(request.attributes or {})["robutler.api"] == "responses"
    assert put.context is not None and request.context is not None
    assert put.context.trace_id == request.context.trace_id
    assert child_of(put, one(exporter, "invoke_agent echo"))


def test_spans_made_inside_an_agents_sdk_run_nest_under_the_agent_span() -> None:
    provider, exporter = collector()
    tracer = provider.get_tracer("test")

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        with tracer.start_as_current_span("get_weather"):
            return f"Sunny in {city}"

    agent = Agent(
        name="assistant", instructions="Be helpful.", model="gpt-test", tools=[get_weather]
    )
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_text("It is sunny.")
        app = Server(agents=[agent], tracing=provider)
        with LiveServer(app) as live:
            answer = httpx.post(
                f"{live.url}/assistant/chat/completions", json={"messages": USER}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            request = one(exporter, "chat assistant")
            run = one(exporter, "invoke_agent assistant")
            tool = one(exporter, "get_weather")
    assert child_of(run, request) and child_of(tool, run)


def test_off_unless_configured_and_the_extra_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUTLER_TRACING", raising=False)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    off = ServerBase()
    assert off.tracer is None and off.endpoint.exchange_class is Exchange
    assert ServerBase(tracing=True).tracer is not None
    monkeypatch.setenv("ROBUTLER_TRACING", "1")
    assert ServerBase().tracer is not None
    assert ServerBase(tracing=False).tracer is None
    with pytest.raises(TypeError, match="TracerProvider"):
        ServerBase(tracing="yes")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"robutler-sdk\[tracing\]"):
        ServerBase(tracing=True)


def test_a_global_tracer_provider_turns_it_on() -> None:
    # set_tracer_provider holds for the whole process: a process of its own
    program = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from robutler.server import ServerBase\n"
        "assert ServerBase().tracer is None\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "assert ServerBase().tracer is not None\n"
        "assert ServerBase(tracing=False).tracer is None\n"
        "print('ok')\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.stdout.strip() == "ok", result.stderr
