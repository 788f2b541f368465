"""Agents that return what the official `openai` client returned, served on both APIs.

The agents call `mock_openai` (the upstream API on 127.0.0.1) with real `AsyncOpenAI` and
`OpenAI` clients and return the client's own objects: a `ChatCompletion`, an `AsyncStream`
or `Stream` of `ChatCompletionChunk`, a Responses `Response`, a stream of Responses events.
robutler is served by uvicorn; the official client asks it on Chat Completions and on the
Responses API, JSON and streamed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from robutler.server import ServerBase
from robutler_testing.live import LiveServer
from robutler_testing.mock_openai import MockOpenAI, mock_openai

USAGE = {"input_tokens": 12, "output_tokens": 3}
CHAT_USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


def _input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def make_app(upstream: MockOpenAI, opened: list[Any]) -> ServerBase:
    """One agent per kind of client object; `opened` gets every upstream stream."""
    app = ServerBase()
    aclient = upstream.async_client(max_retries=0)
    client = upstream.client(max_retries=0)

    @app.agent("chat")
    async def chat(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        result = await aclient.chat.completions.create(
            model="gpt-up",
            messages=messages,  # type: ignore[arg-type]
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),  # type: ignore[arg-type]
        )
        if stream:
            opened.append(result)
        return result

    @app.agent("responses")
    async def responses(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        result = await aclient.responses.create(
            model="gpt-up",
            input=_input(messages),  # type: ignore[arg-type]
            stream=stream,
        )
        if stream:
            opened.append(result)
        return result

    @app.agent("tools")
    async def tools(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return await aclient.chat.completions.create(
            model="gpt-up",
            messages=messages,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
            stream=stream,
        )

    @app.agent("response-tools")
    async def response_tools(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return await aclient.responses.create(
            model="gpt-up",
            input=_input(messages),  # type: ignore[arg-type]
            tools=[{"type": "function", "name": "get_weather", "parameters": {}}],  # type: ignore[list-item]
            stream=stream,
        )

    @app.agent("sync")  # a plain function: run in the threadpool, its Stream iterated there
    def sync(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        result = client.chat.completions.create(
            model="gpt-up",
            messages=messages,  # type: ignore[arg-type]
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),  # type: ignore[arg-type]
        )
        if stream:
            opened.append(result)
        return result

    @app.agent("relay")  # the agent's own generator, passing the client's chunks on
    async def relay(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        upstream_stream = await aclient.chat.completions.create(
            model="gpt-up",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in upstream_stream:
            yield chunk

    @app.agent("relay-events")
    async def relay_events(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        events = await aclient.responses.create(
            model="gpt-up",
            input=_input(messages),  # type: ignore[arg-type]
            stream=True,
        )
        async for event in events:
            yield event

    return app


@pytest.fixture
def served() -> Iterator[tuple[MockOpenAI, str, list[Any]]]:
    opened: list[Any] = []
    with mock_openai(max_retries=0) as upstream:
        server = LiveServer(make_app(upstream, opened)).start()
        try:
            yield upstream, server.url, opened
        finally:
            server.stop()
        upstream.assert_all_used()


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


AGENTS = ["chat", "responses", "sync", "relay", "relay-events"]


@pytest.mark.parametrize("agent", ["chat", "responses", "sync"])
def test_chat_json_answer_keeps_upstream_text_and_usage(
    served: tuple[MockOpenAI, str, list[Any]], agent: str
) -> None:
    upstream, url, _ = served
    upstream.add_text("Hello there", usage=USAGE)
    with client_for(url) as client:
        completion = client.chat.completions.create(
            model=agent, messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.model_dump(include=set(CHAT_USAGE)) == CHAT_USAGE
    assert completion.model == "gpt-up"  # the upstream's model, as the agent answered
    assert upstream.requests[0]["messages" if agent != "responses" else "input"][-1] == {
        "role": "user",
        "content": "hi",
    }


@pytest.mark.parametrize("agent", AGENTS)
def test_chat_stream_keeps_upstream_text_and_usage(
    served: tuple[MockOpenAI, str, list[Any]], agent: str
) -> None:
    upstream, url, _ = served
    upstream.add_text(["Hel", "lo ", "there"], usage=USAGE)
    with client_for(url) as client:
        chunks = list(
            client.chat.completions.create(
                model=agent,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    usages = [c.usage for c in chunks if c.usage]
    assert len(usages) == 1 and usages[0].model_dump(include=set(CHAT_USAGE)) == CHAT_USAGE
    assert {c.id for c in chunks} == {chunks[0].id}  # robutler's one id, not upstream's


@pytest.mark.parametrize("agent", AGENTS)
def test_responses_api_answers_from_client_objects(
    served: tuple[MockOpenAI, str, list[Any]], agent: str
) -> None:
    upstream, url, _ = served
    upstream.add_text("Hello there", usage=USAGE)
    upstream.add_text(["Hel", "lo ", "there"], usage=USAGE)
    with client_for(url) as client:
        response = client.responses.create(model=agent, input="hi")
        with client.responses.stream(model=agent, input="hi") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
    assert response.output_text == "Hello there"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert "".join(deltas) == "Hello there" == final.output_text
    assert final.usage is not None and final.usage.total_tokens == 15


@pytest.mark.parametrize("agent", ["tools", "response-tools"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_from_client_objects(
    served: tuple[MockOpenAI, str, list[Any]], agent: str, stream: bool
) -> None:
    upstream, url, _ = served
    upstream.add_tool_call("get_weather", {"city": "Paris"}, call_id="call_up1", usage=USAGE)
    upstream.add_tool_call("get_weather", {"city": "Oslo"}, call_id="call_up2", usage=USAGE)
    with client_for(url) as client:
        chat_args = {"model": agent, "messages": [{"role": "user", "content": "weather?"}]}
        if stream:
            with client.chat.completions.stream(**chat_args) as events:  # type: ignore[arg-type]
                completion = events.get_final_completion()
            with client.responses.stream(model=agent, input="weather?") as revents:
                response = revents.get_final_response()
        else:
            completion = client.chat.completions.create(**chat_args)  # type: ignore[call-overload]
            response = client.responses.create(model=agent, input="weather?")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_up1"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.replace(" ", "") == '{"city":"Paris"}'  # type: ignore[union-attr]
    (item,) = [o for o in response.output if o.type == "function_call"]
    assert (item.call_id, item.name) == ("call_up2", "get_weather")
    assert item.arguments.replace(" ", "") == '{"city":"Oslo"}'


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("agent", ["chat", "responses", "sync"])
def test_a_client_that_leaves_closes_the_upstream_stream(
    served: tuple[MockOpenAI, str, list[Any]], agent: str, api: str
) -> None:
    upstream, url, opened = served
    upstream.add_text([f"w{i} " for i in range(200)], chunk_delay=0.05)
    with client_for(url) as client:
        if api == "chat":
            stream: Any = client.chat.completions.create(
                model=agent, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        else:
            stream = client.responses.create(model=agent, input="hi", stream=True)
        with stream:
            for n, _ in enumerate(stream):
                if n == 3:
                    break
    (upstream_stream,) = opened
    deadline = time.monotonic() + 10
    while not upstream_stream.response.is_closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream_stream.response.is_closed, "the upstream stream was left open"


def test_a_failed_responses_stream_is_an_error_not_an_answer() -> None:
    """`response.failed` from the upstream is a 502 upstream_error (an error event in a stream)."""
    from openai.types.responses import ResponseFailedEvent

    from robutler.server.client_objects import ClientItems, UpstreamFailed

    event = ResponseFailedEvent.model_validate(
        {
            "type": "response.failed",
            "sequence_number": 3,
            "response": {
                "id": "resp_1",
                "object": "response",
                "created_at": 0,
                "model": "gpt-up",
                "output": [],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "status": "failed",
                "error": {"code": "server_error", "message": "boom"},
            },
        }
    )
    with pytest.raises(UpstreamFailed, match="boom") as failed:
        ClientItems().items(event)
    assert (failed.value.status, failed.value.code) == (502, "upstream_error")
