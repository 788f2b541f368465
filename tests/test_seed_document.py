"""The examples of robutler's original server documentation, walked section by section.

Every example of that document runs here in our own words, with the document's imports,
names, signatures and calls, and asserts what its text promises. Where the document shows
a placeholder (`StreamingResponse(...)`, `pass`), the nearest working form is used and a
comment says so. README.md ("Coming from the robutler server document") lists the import
paths this file proves.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import sse_events

import robutler.server as server_pkg
from robutler.server import Server, pricing
from robutler.server.base import RequestState, ServerBase, StreamingWrapper, get_context
from robutler_testing import MockAgent, validate_completion, validate_stream
from robutler_testing.live import LiveServer

HELLO = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}


def chat(client: Any, name: str, stream: bool = False, **extra: Any) -> Any:
    return client.post(f"/{name}/chat/completions", json={**HELLO, "stream": stream, **extra})


def test_the_documented_import_paths_are_the_same_objects() -> None:
    import robutler.server.base as base

    assert base.get_context is server_pkg.get_context
    assert base.RequestState is server_pkg.RequestState
    assert base.StreamingWrapper is server_pkg.StreamingWrapper
    assert base.ServerBase is server_pkg.ServerBase
    assert issubclass(Server, ServerBase)


# 1. Request lifecycle management ------------------------------------------------------


def make_lifecycle_app() -> tuple[ServerBase, dict[str, list[Any]]]:
    app = ServerBase()
    seen: dict[str, list[Any]] = {"before": [], "agent": [], "finalize": [], "order": []}

    @app.agent.before_request
    async def before_handler(request: Any) -> None:
        # Called before agent processing
        context = get_context()
        context.set("start_time", time.time())
        seen["before"].append(context)
        seen["order"].append("before")

    @app.agent.finalize_request
    async def finalize_handler(request: Any, response: Any) -> None:
        # Called after processing completes (including streaming)
        context = get_context()
        duration = time.time() - context.get("start_time", 0)
        seen["finalize"].append((context, response, duration))
        seen["order"].append("finalize")

    @app.agent("streamer")
    async def streamer(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        seen["agent"].append(get_context())

        async def pieces() -> AsyncIterator[str]:
            for word in ("one ", "two ", "three"):
                seen["agent"].append(get_context())  # the stream generator sees it too
                seen["order"].append("piece")
                yield word

        return pieces() if stream else "one two three"

    return app, seen


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_hooks_run_once_and_finalize_after_the_answer(stream: bool) -> None:
    app, seen = make_lifecycle_app()
    with LiveServer(app) as live:
        client = openai.OpenAI(base_url=f"{live.url}/streamer", api_key="unused")
        if stream:
            events = client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "Hello"}], stream=True
            )
            content = ""
            for chunk in events:
                content += "".join(c.delta.content or "" for c in chunk.choices)
        else:
            completion = client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "Hello"}]
            )
            content = completion.choices[0].message.content or ""
        client.close()
    assert content == "one two three"
    assert len(seen["before"]) == 1 and len(seen["finalize"]) == 1
    context, response, duration = seen["finalize"][0]
    assert 0 <= duration < 60, "the start time set in before_request was not kept"
    # Key guarantee 4: one context from the before hook through the stream to finalize.
    assert all(c is context for c in [*seen["before"], *seen["agent"]])
    if stream:
        # Key guarantee 2: finalize comes after the whole stream was handed over.
        assert seen["order"] == ["before", "piece", "piece", "piece", "finalize"]
        assert isinstance(response, StreamingWrapper) and response.completed
    else:
        assert seen["order"] == ["before", "finalize"]
        assert response.status_code == 200


# 2. Request state and context ---------------------------------------------------------


def test_the_agent_stores_data_and_tracks_usage_in_its_context() -> None:
    app = ServerBase()
    finals: list[RequestState] = []

    @app.agent("my-agent")
    async def my_agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        context = get_context()
        context.set("user_id", "123")
        context.track_usage(credits=10, reason="Agent processing", metadata={"model": "gpt-4"})
        return "Response"

    @app.agent.finalize_request
    def keep(request: Any, response: Any) -> None:
        finals.append(get_context())

    with _client(app) as client:
        body = chat(client, "my-agent").json()
    assert body["choices"][0]["message"]["content"] == "Response"
    context = finals[0]
    assert context.get("user_id") == "123" and context.get("missing", "dflt") == "dflt"
    assert context.usage["total_credits"] == 10
    (record,) = context.usage["records"]
    assert record["credits"] == 10 and record["reason"] == "Agent processing"
    assert record["metadata"] == {"model": "gpt-4"}
    assert context.get_duration() > 0


def test_request_state_api_as_documented() -> None:
    state = RequestState(None)
    state.set("key", "value")
    assert state.get("key") == "value"
    record_id = state.track_usage(5, "why", {"m": 1})
    assert isinstance(record_id, str)
    usage = state.usage
    assert isinstance(usage, dict) and usage["total_credits"] == 5
    assert isinstance(state.get_duration(), float)


def test_get_context_is_none_outside_a_request() -> None:
    # "if context:" in the document's Context Access example relies on this.
    assert get_context() is None


# 3. OpenAI-compatible endpoints: four per agent ----------------------------------------


def test_each_agent_gets_the_four_endpoints() -> None:
    app = ServerBase()

    @app.agent("assistant")
    async def my_assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"You said: {messages[-1]['content']}"

    with _client(app) as client:
        completion = chat(client, "assistant").json()
        streamed = chat(client, "assistant", stream=True)
        endpoint_info = client.get("/assistant/chat/completions").json()
        control = client.post("/assistant").json()
        info = client.get("/assistant").json()
    validate_completion(completion)
    assert completion["choices"][0]["message"]["content"] == "You said: Hello"
    assert validate_stream(streamed.content).content == "You said: Hello"
    assert endpoint_info["openai_compatible"] is True
    assert endpoint_info["supports_streaming"] is True
    assert info["name"] == "assistant"
    assert info["endpoints"]["chat_completions"] == "/assistant/chat/completions"
    assert control["name"] == "assistant" and control["status"] == "active"


# 4. Streaming support -----------------------------------------------------------------


def test_a_streaming_agent_returning_stream_events_or_a_streaming_response() -> None:
    from starlette.responses import StreamingResponse

    app = ServerBase()
    mock = MockAgent("inner", reply="Streamed hello")

    @app.agent("streaming-agent")
    async def streaming_agent(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        if stream:
            # Return object with stream_events() method (the document's comment); its
            # `StreamingResponse(...)` placeholder is shown by the next agent.
            return mock.run_streamed(messages)
        else:
            return "Non-streaming response"

    @app.agent("raw-streaming-agent")
    async def raw(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        # The placeholder `StreamingResponse(...)`, filled in: passed through as it is.
        async def body() -> AsyncIterator[bytes]:
            yield b"data: hand-made\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    with _client(app) as client:
        assert (
            chat(client, "streaming-agent").json()["choices"][0]["message"]["content"]
            == "Non-streaming response"
        )
        report = validate_stream(chat(client, "streaming-agent", stream=True).content)
        raw_text = chat(client, "raw-streaming-agent", stream=True).text
    assert report.content == "Streamed hello"
    assert raw_text == "data: hand-made\n\n"


# 5. Pricing decorator -----------------------------------------------------------------


def test_pricing_configuration_is_stored_and_the_function_still_works() -> None:
    @pricing(credits_per_request=10)
    async def my_agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "Response"

    @pricing(credits_per_token=0.1, max_credits=100)
    async def token_based_agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "Response"

    assert asyncio.run(my_agent([])) == "Response"  # outside a request it just runs
    assert my_agent.__name__ == "my_agent"
    app = ServerBase()
    app.agent("flat")(my_agent)
    app.agent("tokens")(token_based_agent)
    with _client(app) as client:
        flat = client.get("/flat").json()["pricing"]
        tokens = client.get("/tokens").json()["pricing"]
    assert flat["credits_per_request"] == 10
    assert tokens["credits_per_token"] == 0.1 and tokens["max_credits"] == 100


# Environment configuration -------------------------------------------------------------


def test_dotenv_is_loaded_without_overriding_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "OPENAI_API_KEY=from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8/already-set")
    ServerBase()
    assert os.environ["OPENAI_API_KEY"] == "from-dotenv"
    assert os.environ["OPENAI_BASE_URL"] == "http://127.0.0.1:8/already-set"


# Usage examples: basic ServerBase -------------------------------------------------------


def test_basic_server_base_usage(capsys: pytest.CaptureFixture[str]) -> None:
    app = ServerBase()

    @app.agent("assistant")
    async def my_assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        # Process messages
        response = f"You said: {messages[-1]['content']}"
        return response

    @app.agent.before_request
    async def log_request(request: Any) -> None:
        print(f"Processing request to {request.url}")

    @app.agent.finalize_request
    async def log_completion(request: Any, response: Any) -> None:
        print("Request completed")

    # The document runs `uvicorn.run(app, host="0.0.0.0", port=8000)`; tests bind loopback.
    with LiveServer(app) as live:
        client = openai.OpenAI(base_url=f"{live.url}/assistant", api_key="unused")
        completion = client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
        client.close()
    assert completion.choices[0].message.content == "You said: hi"
    out = capsys.readouterr().out
    assert f"Processing request to {live.url}/assistant/chat/completions" in out
    assert out.count("Request completed") == 1


# Usage examples: OpenAI agents ---------------------------------------------------------


def test_openai_agents_are_served_through_runner() -> None:
    from agents import Agent, function_tool

    from robutler_testing.mock_openai import mock_openai

    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        cities.append(city)
        return f"The weather in {city} is sunny and 72°F"

    weather_agent = Agent(
        name="weather-agent",
        instructions="You are a helpful weather assistant. Always respond in a friendly tone.",
        model="gpt-4o-mini",
        tools=[get_weather],
    )
    assistant_agent = Agent(
        name="assistant",
        instructions="You are a helpful general assistant. Always respond in haiku form.",
        model="gpt-4o-mini",
    )
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_text("Sunny in Paris!")
        upstream.add_text("Old pond, a frog jumps")
        app = Server(agents=[weather_agent, assistant_agent])
        with _client(app) as client:
            weather = chat(client, "weather-agent").json()
            haiku = chat(client, "assistant").json()
        upstream.assert_all_used()
    assert weather["choices"][0]["message"]["content"] == "Sunny in Paris!"
    assert cities == ["Paris"]
    assert haiku["choices"][0]["message"]["content"] == "Old pond, a frog jumps"
    assert upstream.requests[0]["instructions"].startswith("You are a helpful weather")


# Usage examples: enhanced Server with duck-typed agents ---------------------------------


class MyAgent:
    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, messages: list[dict[str, Any]]) -> str:
        return f"Agent {self.name}: {messages[-1]['content']}"

    async def run_streamed(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        # The document's body is `pass` ("Return streaming response"); the nearest working
        # form streams the same answer as `run`, a piece at a time.
        for piece in ("Agent ", f"{self.name}: ", messages[-1]["content"]):
            yield piece


def test_enhanced_server_registers_each_agent_and_runs_global_hooks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    agents = [MyAgent("assistant"), MyAgent("translator"), MyAgent("summarizer")]
    app = Server(agents=agents)

    @app.agent.finalize_request
    async def track_usage(request: Any, response: Any) -> None:
        context = get_context()
        if context:
            usage_data = context.usage
            print(f"Request used {usage_data.get('total_credits', 0)} credits")

    with _client(app) as client:
        for agent in agents:
            body = chat(client, agent.name).json()
            assert body["choices"][0]["message"]["content"] == f"Agent {agent.name}: Hello"
            report = validate_stream(chat(client, agent.name, stream=True).content)
            assert report.content == f"Agent {agent.name}: Hello"
    assert capsys.readouterr().out.count("Request used 0 credits") == 6


# Dynamic agent resolution ---------------------------------------------------------------


def test_dynamic_agents_get_their_resolved_data() -> None:
    available_agents = {"alpha", "beta"}

    def resolve_agent(agent_name: str) -> Any:
        # Return agent data or False if not found
        if agent_name in available_agents:
            return {"config": "...", "model": "gpt-4"}
        return False

    app = ServerBase()

    @app.agent(resolve_agent)
    async def dynamic_handler(
        messages: list[dict[str, Any]], stream: bool = False, agent_data: Any = None
    ) -> str:
        # agent_data contains the resolved data
        model = agent_data.get("model", "gpt-3.5-turbo")
        return f"Processed with {model}"

    with _client(app) as client:
        body = chat(client, "alpha").json()
        missing = chat(client, "gamma")
    assert body["choices"][0]["message"]["content"] == "Processed with gpt-4"
    assert missing.status_code == 404 and missing.json()["error"]["type"]


# Streaming response format ---------------------------------------------------------------


def test_final_chunk_carries_finish_reason_and_the_agents_usage() -> None:
    usage = {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    app = Server(agents=[MockAgent("mock", reply="Hello there", usage=usage)])
    with _client(app) as client:
        events = sse_events(chat(client, "mock", stream=True).text)
    chunks = events[:-1]
    assert events[-1] == "[DONE]"
    first = chunks[0]
    assert first["object"] == "chat.completion.chunk" and first["id"].startswith("chatcmpl-")
    assert first["choices"][0]["delta"]["role"] == "assistant"
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["choices"][0]["delta"] == {}
    assert last["usage"] == usage
    assert [c for c in chunks if c.get("usage")] == [last], "usage must be sent exactly once"


@pytest.mark.parametrize("include_usage", [False, True])
def test_agent_usage_reaches_the_official_client_exactly_once(include_usage: bool) -> None:
    usage = {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    app = Server(agents=[MockAgent("mock", reply="Hello there friend", usage=usage)])
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with LiveServer(app) as live:
        client = openai.OpenAI(base_url=f"{live.url}/mock", api_key="unused")
        chunks = list(
            client.chat.completions.create(
                model="gpt-4",
                messages=[{"role": "user", "content": "Hello"}],
                stream=True,
                **extra,
            )
        )
        client.close()
    carried = [c.usage for c in chunks if c.usage is not None]
    # LangChain and LiteLLM add up every chunk's usage: the sum must be the agent's usage.
    total = {k: sum(getattr(u, k) for u in carried) for k in usage}
    assert total == usage and len(carried) == 1
    assert (chunks[-1].choices == []) is include_usage


def test_the_server_never_invents_usage() -> None:
    app = Server(agents=[MockAgent("quiet", usage=None)])
    with _client(app) as client:
        for include_usage in (False, True):
            events = sse_events(
                chat(
                    client, "quiet", stream=True, stream_options={"include_usage": include_usage}
                ).text
            )
            assert not [e for e in events[:-1] if e.get("usage")]
        assert "usage" not in chat(client, "quiet").json()


# Streaming lifecycle ----------------------------------------------------------------------


def test_finalize_receives_the_streaming_wrapper_with_the_original_response() -> None:
    mock = MockAgent("mock")
    returned: list[Any] = []
    app = ServerBase()

    @app.agent("mock")
    async def agent(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        result = mock.run_streamed(messages) if stream else await mock.run(messages)
        returned.append(result)
        return result

    finals: list[Any] = []

    @app.agent.finalize_request
    async def handle_streaming_completion(request: Any, response: Any) -> None:
        # For streaming responses, this is called after streaming completes
        if hasattr(response, "original_response"):
            finals.append(response)

    with _client(app) as client:
        chat(client, "mock", stream=True)
    (wrapper,) = finals
    # Key guarantees 3 and 6: the wrapper is passed directly, and holds the agent's object
    # itself, not something extracted from it.
    assert isinstance(wrapper, StreamingWrapper) and wrapper.completed
    assert wrapper.original_response is returned[0]


# Agent function signatures -----------------------------------------------------------------


def test_the_five_handler_signatures() -> None:
    app = ServerBase()
    got: dict[str, Any] = {}

    @app.agent("basic")
    async def basic(messages, stream=False):  # type: ignore[no-untyped-def]
        got["basic"] = (messages, stream)
        return "basic"

    @app.agent("with-context")
    async def with_context(messages, stream=False, context=None):  # type: ignore[no-untyped-def]
        got["with-context"] = context
        return "ctx"

    @app.agent("with-request")
    async def with_request(messages, stream=False, request=None):  # type: ignore[no-untyped-def]
        got["with-request"] = request
        return "req"

    def resolve(name: str) -> Any:
        return {"resolved": name} if name.startswith("dyn-") else False

    @app.agent(resolve)
    async def full(  # type: ignore[no-untyped-def]
        messages, stream=False, context=None, request=None, agent_data=None
    ):
        got["full"] = (context, request, agent_data)
        return "full"

    with _client(app) as client:
        for name in ("basic", "with-context", "with-request", "dyn-x"):
            assert chat(client, name).status_code == 200, name
    assert got["basic"] == (HELLO["messages"], False)
    assert isinstance(got["with-context"], RequestState)
    assert got["with-request"].url.path == "/with-request/chat/completions"
    context, request, agent_data = got["full"]
    assert isinstance(context, RequestState) and request is context.request
    assert agent_data == {"resolved": "dyn-x"}


def test_a_handler_with_agent_data_only_as_documented() -> None:
    app = ServerBase()

    @app.agent(lambda name: {"n": name})
    async def agent(messages, stream=False, agent_data=None):  # type: ignore[no-untyped-def]
        return agent_data["n"]

    with _client(app) as client:
        assert chat(client, "zeta").json()["choices"][0]["message"]["content"] == "zeta"


# Error handling ------------------------------------------------------------------------------


def test_error_handling_as_documented() -> None:
    app = ServerBase()
    ran: list[str] = []

    @app.agent.before_request
    def buggy(request: Any) -> None:
        raise KeyError("a bug in a callback")

    @app.agent.finalize_request
    def buggy_finalize(request: Any, response: Any) -> None:
        ran.append("finalize")
        raise RuntimeError("another bug")

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "still answered"

    @app.agent("fails")
    async def fails(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "partial "
        raise RuntimeError("agent bug")

    @app.agent("fails-at-once")
    async def fails_at_once(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("agent bug")

    with _client(app) as client:
        # Callback errors don't break requests.
        answer = chat(client, "ok")
        # Invalid request bodies return 422.
        invalid = client.post("/ok/chat/completions", json={"messages": "not a list"})
        # Agent function errors are caught and handled gracefully.
        failed = chat(client, "fails-at-once")
        # Streaming errors are properly formatted in response chunks.
        streamed = chat(client, "fails", stream=True)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "still answered"
    assert invalid.status_code == 422 and invalid.json()["error"]["param"] == "messages"
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "agent_error"
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]" and "error" in events[-2]
    assert ran == ["finalize"] * 4


# Testing -------------------------------------------------------------------------------------


def test_create_test_client_from_the_documented_path() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from robutler.tests.test_server import create_test_client
    assert any(
        issubclass(w.category, DeprecationWarning)
        and "from robutler_testing import create_test_client" in str(w.message)
        for w in caught
    )
    my_agent = MockAgent("my-agent")
    app = Server(agents=[my_agent])
    client = create_test_client(app)
    try:
        # Test non-streaming
        response = client.post(
            "/my-agent/chat/completions",
            json={
                "model": "gpt-4",
                "messages": [{"role": "user", "content": "Hello"}],
                "stream": False,
            },
        )
        validate_completion(response.json())
        # Test streaming
        response = client.post(
            "/my-agent/chat/completions",
            json={
                "model": "gpt-4",
                "messages": [{"role": "user", "content": "Hello"}],
                "stream": True,
            },
        )
        report = validate_stream(response.content)
    finally:
        client.close()
    assert report.content == "mock-agent received: Hello".replace("mock-agent", "my-agent")


def test_the_old_test_module_holds_no_tests_and_keeps_the_core_light() -> None:
    import subprocess
    import sys

    import robutler.tests

    code = (
        "import sys, robutler.server, robutler.tests.test_server; "
        "assert 'robutler_testing' not in sys.modules, 'the core imported the testing package'"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert light.returncode == 0, light.stderr
    folder = Path(robutler.tests.__file__).parent
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", folder],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert collected.returncode == 5, collected.stdout  # 5: pytest found no tests there


def test_mock_agent_streams_role_content_and_a_final_chunk_with_usage() -> None:
    async def collect() -> list[Any]:
        run = MockAgent("mock", reply="two words").run_streamed([HELLO["messages"][0]])
        return [event.data.chunk async for event in run.stream_events()]

    chunks = asyncio.run(collect())
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "two words"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]


# Key guarantees --------------------------------------------------------------------------------


def test_key_guarantee_single_finalize_even_when_the_client_leaves_mid_stream() -> None:
    import httpx

    app = ServerBase()
    finals: list[Any] = []
    release = asyncio.Event()

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "first "
        await release.wait()  # never set: only the client's leaving ends this agent
        yield "never"

    @app.agent.finalize_request
    def final(request: Any, response: Any) -> None:
        finals.append(response)

    with LiveServer(app) as live:
        with httpx.stream(
            "POST", f"{live.url}/slow/chat/completions", json={**HELLO, "stream": True}, timeout=10
        ) as response:
            for line in response.iter_lines():
                if "first" in line:
                    break
        deadline = time.monotonic() + 10
        while not finals and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(finals) == 1 and finals[0].status == "disconnected"


def test_key_guarantee_hooks_only_for_agent_endpoints() -> None:
    app, seen = make_lifecycle_app()
    with _client(app) as client:
        for path in ("/health", "/streamer", "/streamer/chat/completions", "/streamer/models"):
            assert client.get(path).status_code == 200, path
    assert seen["before"] == [] and seen["finalize"] == []


def test_key_guarantee_openai_compatibility_of_every_answer() -> None:
    app = Server(agents=[MockAgent("mock"), MyAgent("duck")])
    with _client(app) as client:
        for name in ("mock", "duck"):
            validate_completion(chat(client, name).json())
            validate_stream(chat(client, name, stream=True).content)


def test_key_guarantee_clean_architecture_without_http_middleware() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    app = Server(agents=[MockAgent("mock")])
    assert not any(m.cls is BaseHTTPMiddleware for m in app.user_middleware)


# Migration from RobutlerServer ------------------------------------------------------------------


def test_robutler_server_still_works_with_a_warning() -> None:
    agents = [MyAgent("assistant")]
    with pytest.warns(DeprecationWarning, match="robutler.server.Server"):
        from robutler import RobutlerServer
    server = RobutlerServer(agents=agents)
    assert isinstance(server, Server)
    with _client(server) as client:
        assert json.loads(chat(client, "assistant").text)["choices"][0]["message"]["content"]


def _client(app: Any) -> Any:
    from robutler_testing import create_test_client

    return create_test_client(app)
