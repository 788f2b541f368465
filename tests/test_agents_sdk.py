"""Real Agents SDK agents served by Server, the upstream API answered by mock_openai."""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any

import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, function_tool
from helpers import post, sse_events, stream_content

from robutler.server import Server, get_context
from robutler.server.agents_sdk import to_input_items
from robutler_testing.client import create_test_client
from robutler_testing.live import LiveServer
from robutler_testing.mock_openai import mock_openai

WEATHER_CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    WEATHER_CALLS.append(city)
    return f"Sunny and 21C in {city}"


def make_server(**agent_kwargs: Any) -> Server:
    agent = Agent(name="assistant", instructions="Be helpful.", model="gpt-test", **agent_kwargs)
    return Server(agents=[agent])


def test_plain_text_with_real_usage_and_model() -> None:
    with mock_openai() as upstream:
        upstream.add_text("Hello there", usage={"input_tokens": 12, "output_tokens": 3})
        with create_test_client(make_server()) as client:
            body = post(client, "assistant").json()
        upstream.assert_all_used()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert body["model"] == "gpt-test"
    assert upstream.requests[0]["model"] == "gpt-test"


def test_whole_conversation_is_the_runs_input() -> None:
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]
    with mock_openai() as upstream:
        upstream.add_text("Demain aussi.")
        with create_test_client(make_server()) as client:
            assert post(client, "assistant", messages).status_code == 200
    sent = upstream.requests[0]["input"]
    assert sent == to_input_items(messages)
    kinds = [item.get("type", item.get("role")) for item in sent]
    assert kinds == ["system", "user", "function_call", "function_call_output", "assistant", "user"]
    assert sent[-1]["content"] == [{"type": "input_text", "text": "And tomorrow?"}]


def test_streamed_text_arrives_as_several_chunks_with_usage() -> None:
    with mock_openai() as upstream:
        upstream.add_text("One two three four", usage={"input_tokens": 5, "output_tokens": 4})
        with create_test_client(make_server()) as client:
            response = post(
                client, "assistant", stream=True, stream_options={"include_usage": True}
            )
    events = sse_events(response.text)
    chunks = events[:-1]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([c for c in contents if c]) >= 4
    assert stream_content(chunks) == "One two three four"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 9
    assert {c["model"] for c in chunks} == {"gpt-test"}
    assert upstream.requests[0]["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_runs_inside_the_run(stream: bool) -> None:
    WEATHER_CALLS.clear()
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_text("It is sunny in Paris.")
        with create_test_client(make_server(tools=[get_weather])) as client:
            response = post(client, "assistant", stream=stream)
        upstream.assert_all_used()
    assert WEATHER_CALLS == ["Paris"]
    second = upstream.requests[1]["input"]
    outputs = [item for item in second if item.get("type") == "function_call_output"]
    assert outputs and outputs[0]["output"] == "Sunny and 21C in Paris"
    if stream:
        chunks = sse_events(response.text)[:-1]
        assert stream_content(chunks) == "It is sunny in Paris."
        assert not any("tool_calls" in ch["delta"] for c in chunks for ch in c["choices"])
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:
        choice = response.json()["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": "It is sunny in Paris."}
        assert choice["finish_reason"] == "stop"


def test_chat_completions_model_streams_and_reports_usage() -> None:
    with mock_openai() as upstream:
        upstream.add_text("Hi from chat", usage={"input_tokens": 4, "output_tokens": 3})
        upstream.add_text("Hi again", usage={"input_tokens": 4, "output_tokens": 2})
        from openai import AsyncOpenAI

        model = OpenAIChatCompletionsModel(
            model="gpt-chat", openai_client=AsyncOpenAI(max_retries=0)
        )
        agent = Agent(name="chat", model=model, model_settings=ModelSettings(include_usage=True))
        with create_test_client(Server(agents=[agent])) as client:
            body = post(client, "chat").json()
            chunks = sse_events(
                post(client, "chat", stream=True, stream_options={"include_usage": True}).text
            )[:-1]
    assert body["choices"][0]["message"]["content"] == "Hi from chat"
    assert body["usage"]["total_tokens"] == 7
    assert body["model"] == "gpt-chat"
    assert stream_content(chunks) == "Hi again"
    assert chunks[-1]["usage"]["total_tokens"] == 6
    assert upstream.calls[0].path.endswith("/chat/completions")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failure_is_502_in_openai_shape(stream: bool) -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add_error(500, "upstream exploded")
        with create_test_client(make_server()) as client:
            response = post(client, "assistant", stream=stream)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "500" in error["message"]
    assert "upstream exploded" in error["message"]


def test_upstream_failure_mid_stream_is_an_error_event() -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add_text("one two three four five", disconnect_after=2)
        with create_test_client(make_server()) as client:
            response = post(client, "assistant", stream=True)
    events = sse_events(response.text)
    assert response.status_code == 200
    assert stream_content(events[:-2])
    assert events[-2]["error"]["code"] in ("upstream_unreachable", "upstream_error")
    assert events[-1] == "[DONE]"


def test_missing_api_key_is_a_clear_openai_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.models import _openai_shared

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(_openai_shared, "_default_openai_key", None)
    monkeypatch.setattr(_openai_shared, "_default_openai_client", None)
    with create_test_client(make_server()) as client:
        response = post(client, "assistant")
    assert response.status_code == 503
    error = response.json()["error"]
    assert "OPENAI_API_KEY" in error["message"] and error["code"] == "upstream_key_missing"


def test_client_disconnect_cancels_the_run() -> None:
    app = make_server()
    finalized = threading.Event()
    seen: list[Any] = []

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        seen.append((response.status, get_context().error))  # type: ignore[union-attr]
        finalized.set()

    with mock_openai() as upstream:
        upstream.add_text(["first ", "second ", "third"], chunk_delay=30)
        with LiveServer(app) as server:
            body = json.dumps(
                {"messages": [{"role": "user", "content": "go"}], "stream": True}
            ).encode()
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(
                    b"POST /assistant/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                received = b""
                while b"first" not in received:
                    received += sock.recv(65536)
            assert finalized.wait(10), "finalize did not run after the client left"
        assert len(upstream.calls) == 1  # no further upstream call for a client that left
    assert seen[0][0] == "disconnected"


def test_server_agents_sdk_agent_info() -> None:
    server = make_server()
    with create_test_client(server) as client:
        info = client.get("/assistant").json()
        assert info["name"] == "assistant" and info["description"] == "Be helpful."
        assert client.get("/assistant/models").json()["data"][0]["id"] == "assistant"


def test_upstream_timeout_is_504() -> None:
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    with mock_openai() as upstream:
        upstream.add_text("too late", delay=30)
        model = OpenAIResponsesModel(
            model="gpt-slow", openai_client=AsyncOpenAI(timeout=0.3, max_retries=0)
        )
        with create_test_client(Server(agents=[Agent(name="slow", model=model)])) as client:
            response = post(client, "slow")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_openai_settings_from_env_file_reach_the_agent(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_openai() as upstream:
        upstream.add_text("configured")
        env = tmp_path / "agents.env"
        env.write_text("OPENAI_ORGANIZATION=org-from-env-file\n")
        monkeypatch.delenv("OPENAI_ORGANIZATION", raising=False)
        monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
        from agents.models import _openai_shared

        monkeypatch.setattr(_openai_shared, "_default_openai_client", None)  # built from the env
        server = Server(agents=[Agent(name="org", model="gpt-test")], env_file=str(env))
        with create_test_client(server) as client:
            assert post(client, "org").json()["choices"][0]["message"]["content"] == "configured"
    headers = {k.lower(): v for k, v in upstream.calls[0].headers.items()}
    assert headers["openai-organization"] == "org-from-env-file"
    assert headers["authorization"] == "Bearer sk-mock"  # OPENAI_API_KEY from the environment


def test_missing_api_key_is_in_health_and_logged_once_per_request_without_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.models import _openai_shared

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(_openai_shared, "_default_openai_key", None)
    monkeypatch.setattr(_openai_shared, "_default_openai_client", None)
    with caplog.at_level(logging.WARNING, logger="robutler"):
        server = make_server()
    startup = [r for r in caplog.records if "needs an OpenAI API key" in r.getMessage()]
    assert len(startup) == 1 and startup[0].levelno == logging.WARNING
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="robutler"), create_test_client(server) as client:
        warnings = client.get("/health").json()["warnings"]
        for _ in range(2):
            assert post(client, "assistant").status_code == 503
    assert len(warnings) == 1 and "'assistant' needs an OpenAI API key" in warnings[0]
    records = [r for r in caplog.records if r.name == "robutler"]
    assert len(records) == 2 and all(r.exc_info is None for r in records), records
    monkeypatch.setenv("OPENAI_API_KEY", "sk-now-set")
    with create_test_client(server) as client:
        assert client.get("/health").json()["warnings"] == []
