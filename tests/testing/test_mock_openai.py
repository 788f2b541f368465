"""Tests for robutler_testing.mock_openai: real Agents SDK agents and openai clients, offline."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from typing import Any

import httpx2
import openai
import pytest
from agents import Agent, Runner, function_tool, set_default_openai_api
from agents.models import _openai_shared
from agents.tracing import get_trace_provider
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from robutler_testing.mock_openai import (
    BlockedRequestError,
    ErrorReply,
    Match,
    OutputReply,
    ToolCall,
    compat,
    mock_openai,
)
from robutler_testing.sse import decode_sse

weather_calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    weather_calls.append(city)
    return f"Sunny in {city}"


def weather_agent() -> Agent[Any]:
    return Agent(name="forecaster", instructions="Answer about weather.", tools=[get_weather])


def sse_data(text: str) -> list[str]:
    return [event.data for event in decode_sse(text)]


# -- Agents SDK, Responses API -------------------------------------------------------------


async def test_runner_run_text_and_usage() -> None:
    with mock_openai() as upstream:
        upstream.add_text("Hello there", usage={"input_tokens": 12, "output_tokens": 3})
        result = await Runner.run(Agent(name="greeter", instructions="Be brief."), "Hi!")
        upstream.assert_all_used()

    assert result.final_output == "Hello there"
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 12, 3)
    assert usage.total_tokens == 15
    assert result.raw_responses[0].usage.output_tokens == 3
    [request] = upstream.requests
    assert upstream.calls[0].path == "/v1/responses"
    assert not request.get("stream")
    assert request["instructions"] == "Be brief."
    assert request["input"][0]["content"] == "Hi!"
    assert upstream.calls[0].headers["authorization"] == "Bearer sk-mock"


async def test_run_streamed_text_arrives_as_several_deltas() -> None:
    with mock_openai() as upstream:
        upstream.add_text("Hello there friend", usage={"input_tokens": 5, "output_tokens": 3})
        result = Runner.run_streamed(Agent(name="greeter"), "Hi!")
        kinds, deltas = [], []
        async for event in result.stream_events():
            if event.type == "raw_response_event":
                kinds.append(event.data.type)
                if event.data.type == "response.output_text.delta":
                    deltas.append(event.data.delta)

    assert upstream.requests[0]["stream"] is True
    assert deltas == ["Hello ", "there ", "friend"]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert result.final_output == "Hello there friend"
    assert result.context_wrapper.usage.total_tokens == 8


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_round_trip(streamed: bool) -> None:
    weather_calls.clear()
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Paris"}, call_id="call_1")
        upstream.add_text("It is sunny in Paris.")
        if streamed:
            result: Any = Runner.run_streamed(weather_agent(), "Weather in Paris?")
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(weather_agent(), "Weather in Paris?")
        upstream.assert_all_used()

    assert weather_calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    first, second = upstream.requests
    assert [tool["name"] for tool in first["tools"]] == ["get_weather"]
    outputs = [item for item in second["input"] if item.get("type") == "function_call_output"]
    assert outputs == [
        {"call_id": "call_1", "output": "Sunny in Paris", "type": "function_call_output"}
    ]
    calls = [item for item in second["input"] if item.get("type") == "function_call"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


async def test_several_tool_calls_in_one_reply() -> None:
    weather_calls.clear()
    with mock_openai() as upstream:
        upstream.add_tool_calls(
            [("get_weather", {"city": "Paris"}), ToolCall("get_weather", '{"city": "Oslo"}')]
        )
        upstream.add_text("Both sunny.")
        result = await Runner.run(weather_agent(), "Paris and Oslo?")

    assert sorted(weather_calls) == ["Oslo", "Paris"]
    assert result.final_output == "Both sunny."
    outputs = [i["output"] for i in upstream.requests[1]["input"] if "output" in i]
    assert sorted(outputs) == ["Sunny in Oslo", "Sunny in Paris"]


# -- matched replies -----------------------------------------------------------------------


async def test_concurrent_agents_get_their_own_matched_replies() -> None:
    weather_calls.clear()
    with mock_openai() as upstream:
        # Scripted in the other order than the agents start: served in order, the Paris
        # agent would get Oslo's tool call.
        upstream.add_tool_call("get_weather", {"city": "Oslo"}, match=Match(input="Oslo?"))
        upstream.add_text("Rainy in Oslo.", match=Match(input=re.compile(r"Oslo\?$", re.M)))
        upstream.add_tool_call("get_weather", {"city": "Paris"}, match=Match(input="Paris?"))
        upstream.add_text("Sunny in Paris.", match=lambda call: "Paris?" in call.text)
        paris, oslo = await asyncio.gather(
            Runner.run(weather_agent(), "Paris?"), Runner.run(weather_agent(), "Oslo?")
        )
        upstream.assert_all_used()

    assert (paris.final_output, oslo.final_output) == ("Sunny in Paris.", "Rainy in Oslo.")
    assert sorted(weather_calls) == ["Oslo", "Paris"]
    for call in upstream.calls:  # each agent's calls got its own city's replies
        city = "Paris" if "Paris?" in call.text else "Oslo"
        assert call.reply is not None and city in call.reply, (call.text, call.reply)
    assert sum("Sunny in Paris" in c.text for c in upstream.calls) == 1  # the tool's output


async def test_matched_by_model_before_the_queue() -> None:
    with mock_openai() as upstream:
        upstream.add_text("Hello.")
        upstream.add_text("Bonjour.", match=Match(model="gpt-fr"))
        french = await Runner.run(Agent(name="fr", model="gpt-fr"), "Salut")
        english = await Runner.run(Agent(name="en", model="gpt-en"), "Hi")
    assert (french.final_output, english.final_output) == ("Bonjour.", "Hello.")


def test_a_call_no_matched_reply_accepts_is_reported_with_what_it_sent() -> None:
    with mock_openai(max_retries=0, strict=False) as upstream:
        upstream.add_text("for Oslo", match=Match(input="Oslo"))
        assert "(match Match(input='Oslo'))" in upstream.pending[0]
        with pytest.raises(openai.InternalServerError, match="none of the 1 matched"):
            upstream.client().responses.create(model="m", input="Paris")
        assert upstream.pending == ["text 'for Oslo' (match Match(input='Oslo'))"]
        assert "input 'Paris'" in upstream.unexpected[0]


def test_a_match_callable_that_raises_is_reported() -> None:
    def broken(call: Any) -> bool:
        raise KeyError("oops")

    with mock_openai(max_retries=0, strict=False) as upstream:
        upstream.add_text("never", match=broken)
        with pytest.raises(openai.InternalServerError, match="match= callable raised"):
            upstream.client().responses.create(model="m", input="x")
    assert "KeyError('oops')" in upstream.unexpected[0]


def test_typed_replies_and_bad_matches() -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add(OutputReply(("typed ", "reply")))
        upstream.add(ErrorReply(418, "teapot", "invalid_request_error"), match=Match(model="tea"))
        client = upstream.client()
        assert client.responses.create(model="m", input="x").output_text == "typed reply"
        with pytest.raises(openai.APIStatusError, match="teapot") as caught:
            client.responses.create(model="tea", input="x")
        assert caught.value.status_code == 418
    with pytest.raises(TypeError, match=r"match= takes a Match\(model=..., input=...\)"):
        mock_openai().add_text("x", match="Paris")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Match\\(\\) needs model"):
        Match()


# -- the private names of other libraries -------------------------------------------------


def test_the_private_names_mock_openai_relies_on_are_still_there() -> None:
    moved = compat.missing()
    assert not moved, (
        f"mock_openai relies on private names this openai / agents release moved: {moved}; "
        "update robutler_testing/mock_openai/compat.py"
    )


def test_a_moved_private_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(_openai_shared, "get_default_openai_client")
    name = "agents.models._openai_shared.get_default_openai_client"
    assert compat.missing() == [name]
    before = os.environ.get("OPENAI_BASE_URL")
    with pytest.raises(compat.CompatError, match=re.escape(name)), mock_openai():
        pass
    assert os.environ.get("OPENAI_BASE_URL") == before  # what it had changed is undone


# -- Agents SDK, Chat Completions ----------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_round_trip_chat_completions(streamed: bool) -> None:
    weather_calls.clear()
    with mock_openai() as upstream:
        set_default_openai_api("chat_completions")
        upstream.add_tool_call("get_weather", {"city": "Rome"}, call_id="call_7")
        upstream.add_text("Warm in Rome.", usage={"input_tokens": 20, "output_tokens": 4})
        if streamed:
            result: Any = Runner.run_streamed(weather_agent(), "Rome?")
            deltas = [
                e.data.delta
                async for e in result.stream_events()
                if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
            ]
            assert deltas == ["Warm ", "in ", "Rome."]
        else:
            result = await Runner.run(weather_agent(), "Rome?")
            assert result.raw_responses[-1].usage.input_tokens == 20
        upstream.assert_all_used()
    assert _openai_shared.get_use_responses_by_default() is True  # restored

    assert weather_calls == ["Rome"]
    assert result.final_output == "Warm in Rome."
    assert [c.path for c in upstream.calls] == ["/v1/chat/completions"] * 2
    tool_messages = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": "call_7", "content": "Sunny in Rome"}]


# -- plain openai clients ------------------------------------------------------------------


def test_plain_openai_client_built_from_env() -> None:
    with mock_openai() as upstream:
        upstream.add_text("One two", usage={"prompt_tokens": 7, "completion_tokens": 2})
        upstream.add_text("Three four five")
        client = openai.OpenAI()  # picks OPENAI_BASE_URL / OPENAI_API_KEY up
        completion = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "count"}]
        )
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "more"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    assert completion.choices[0].message.content == "One two"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (7, 9)
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert content == ["Three ", "four ", "five"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_wire_format_parses_with_the_official_types() -> None:
    """Every body and event validates strictly (not just constructs) against openai's types."""
    events = TypeAdapter(ResponseStreamEvent)
    with mock_openai() as upstream, httpx2.Client(base_url=upstream.base_url) as http:
        for _ in range(4):
            upstream.add_tool_calls([("lookup", {"q": "x"})], text="Checking.")
        streamed = http.post("/responses", json={"model": "m", "input": "hi", "stream": True})
        plain = http.post("/responses", json={"model": "m", "input": "hi"})
        chat_stream = http.post(
            "/chat/completions",
            json={
                "model": "m",
                "messages": [],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        chat = http.post("/chat/completions", json={"model": "m", "messages": []})

    parsed = [events.validate_python(json.loads(d)) for d in sse_data(streamed.text)]
    names = [event.event for event in decode_sse(streamed.text)]
    assert names == [e.type for e in parsed]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    assert "response.function_call_arguments.done" in names
    final = parsed[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.usage is not None and final.usage.input_tokens_details is not None
    assert Response.model_validate(plain.json()).output[1].type == "function_call"
    *chunks, done = sse_data(chat_stream.text)
    assert done == "[DONE]"
    parsed_chunks = [ChatCompletionChunk.model_validate(json.loads(c)) for c in chunks]
    choices = [c.choices[0] for c in parsed_chunks if c.choices]
    assert choices[-1].finish_reason == "tool_calls"
    arguments = "".join(
        call.function.arguments or ""
        for choice in choices
        for call in choice.delta.tool_calls or []
        if call.function is not None
    )
    assert json.loads(arguments) == {"q": "x"}
    assert parsed_chunks[-1].usage is not None
    message = ChatCompletion.model_validate(chat.json()).choices[0]
    assert message.finish_reason == "tool_calls" and message.message.content == "Checking."


def test_in_process_asgi_transport() -> None:
    with mock_openai() as upstream:
        upstream.add_text("in process")
        async_http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=upstream.app))
        client = openai.AsyncOpenAI(base_url="http://mock/v1", api_key="k", http_client=async_http)

        async def call() -> str:
            response = await client.responses.create(model="m", input="x")
            await client.close()
            return response.output_text

        assert asyncio.run(call()) == "in process"


# -- failures ------------------------------------------------------------------------------


async def test_upstream_error_raises_api_status_error_after_retries() -> None:
    with mock_openai() as upstream:
        for _ in range(3):  # the client's first try and its 2 default retries
            upstream.add_error(500, "upstream failed", retry_after=0.001)
        with pytest.raises(openai.InternalServerError) as excinfo:
            await Runner.run(Agent(name="a"), "hi")
        upstream.assert_all_used()
    assert isinstance(excinfo.value, openai.APIStatusError)
    assert excinfo.value.status_code == 500
    assert "upstream failed" in str(excinfo.value)
    assert excinfo.value.body == {
        "message": "upstream failed",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert len(upstream.requests) == 3


def test_error_without_retries() -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add_error(429, "slow down", code="rate_limit_exceeded")
        upstream.add_text("fine now")
        client = upstream.client()
        with pytest.raises(openai.RateLimitError, match="slow down") as excinfo:
            client.responses.create(model="m", input="x")
        assert excinfo.value.code == "rate_limit_exceeded"
        assert client.responses.create(model="m", input="x").output_text == "fine now"


def test_unscripted_call_fails_and_is_reported() -> None:
    exit_error = pytest.raises(AssertionError, match=r"unscripted POST /v1/responses \(call #1\)")
    with exit_error, mock_openai() as upstream:
        with pytest.raises(openai.InternalServerError, match="nothing was scripted"):
            upstream.client().responses.create(model="m", input="x")
        assert len(upstream.calls) == 1  # not retried
        with pytest.raises(AssertionError, match="unscripted"):
            upstream.assert_all_used()
    not_found = pytest.raises(openai.NotFoundError, match="only serves")
    with mock_openai(strict=False) as upstream, not_found:
        upstream.client().models.list()
    assert upstream.unexpected and "GET /v1/models" in upstream.unexpected[0]


def test_leftover_replies_are_reported() -> None:
    with mock_openai() as upstream:
        upstream.add_text("used")
        upstream.add_tool_call("never_called", {"x": 1})
        upstream.add_error(503, "never served")
        upstream.client().responses.create(model="m", input="x")
        with pytest.raises(AssertionError) as excinfo:
            upstream.assert_all_used()
    message = str(excinfo.value)
    assert "never_called" in message and "never served" in message and "'used'" not in message


def test_delay_lets_clients_time_out_and_exit_stays_fast() -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add_text("too late", delay=math.inf)
        with pytest.raises(openai.APITimeoutError):
            upstream.client(timeout=0.3).responses.create(model="m", input="x")
        started = time.monotonic()
    assert time.monotonic() - started < 3


def test_disconnect_mid_stream() -> None:
    with mock_openai(max_retries=0) as upstream:
        upstream.add_text("a b c d", disconnect_after=2)
        deltas = []
        with pytest.raises(openai.APIConnectionError):
            for event in upstream.client().responses.create(model="m", input="x", stream=True):
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
    assert deltas == ["a ", "b "]


def test_requests_to_other_hosts_are_blocked() -> None:
    original = httpx2.HTTPTransport.handle_request
    exit_error = pytest.raises(AssertionError, match=r"blocked POST https://api\.openai\.com")
    with exit_error, mock_openai():
        with pytest.raises(BlockedRequestError):
            openai.OpenAI(base_url="https://api.openai.com/v1").responses.create(
                model="m", input="x"
            )
        with pytest.raises(BlockedRequestError):
            httpx2.get("http://example.com/")
    assert httpx2.HTTPTransport.handle_request is original


# -- environment and globals ---------------------------------------------------------------


def test_environment_and_sdk_globals_are_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
    previous_client = openai.AsyncOpenAI(api_key="sk-previous", base_url="http://127.0.0.1:9")
    monkeypatch.setattr(_openai_shared, "_default_openai_client", previous_client)
    monkeypatch.setattr(_openai_shared, "_default_openai_key", "sk-previous")
    provider: Any = get_trace_provider()
    monkeypatch.setattr(provider, "_manual_disabled", False)
    provider._refresh_disabled_flag()

    with mock_openai() as upstream:
        assert os.environ["OPENAI_BASE_URL"] == upstream.base_url
        assert upstream.base_url.startswith("http://127.0.0.1:")
        assert os.environ["OPENAI_API_KEY"] == "sk-mock"
        sdk_client = _openai_shared.get_default_openai_client()
        assert sdk_client is not None and sdk_client is not previous_client
        assert str(sdk_client.base_url).rstrip("/") == upstream.base_url
        assert provider._disabled is True

    assert os.environ["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert "OPENAI_API_KEY" not in os.environ
    assert "OPENAI_AGENTS_DISABLE_TRACING" not in os.environ
    assert _openai_shared.get_default_openai_client() is previous_client
    assert _openai_shared.get_default_openai_key() == "sk-previous"
    assert provider._disabled is False


async def test_async_with() -> None:
    before = os.environ.get("OPENAI_BASE_URL")
    async with mock_openai() as upstream:
        upstream.add_text("async hello")
        result = await Runner.run(Agent(name="a"), "hi")
        assert os.environ["OPENAI_BASE_URL"] == upstream.base_url
    assert result.final_output == "async hello"
    assert os.environ.get("OPENAI_BASE_URL") == before


def test_a_blocked_request_says_how_to_answer_it_with_respx() -> None:
    import httpx
    import respx  # noqa: F401  (imported: the hint names its client-level mocking)

    with mock_openai(strict=False) as upstream, pytest.raises(BlockedRequestError) as caught:
        httpx.get("https://weather.example/v1/now")
    assert '@pytest.mark.respx(using="httpx")' in str(caught.value)
    assert upstream.unexpected
