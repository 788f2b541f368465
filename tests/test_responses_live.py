"""Real clients against uvicorn on 127.0.0.1: the official `openai` client on `/v1` (chat
and responses), and OpenAI Agents SDK agents whose model is a served robutler agent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)
from openai.types.responses import ResponseTextDeltaEvent

from robutler.server import ServerBase, current_context
from robutler_testing import validate_response, validate_response_stream

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def make_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(**kwargs)

    @app.agent("assistant")
    async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Echoes, naming how many user turns it has seen."""
        turns = sum(m["role"] == "user" for m in messages)
        text = f"turn {turns}: {messages[-1]['content']}"
        if stream:
            return (piece + " " for piece in text.split(" "))
        return text

    @app.agent("forecaster")
    async def forecaster(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Asks for the weather tool, then answers with what it returned."""
        last = messages[-1]
        if last["role"] == "tool":
            current_context().set("tool_result", last["content"])
            return f"The forecast: {last['content']}."
        call = {
            "id": "call_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    return app


@pytest.fixture(scope="module")
def base_url() -> Any:
    from robutler_testing.live import LiveServer

    with LiveServer(make_app()) as server:
        yield server.url


def v1(base_url: str, asynchronous: bool = False) -> Any:
    cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return cls(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


# the official client on /v1 --------------------------------------------------------------


def test_models_and_chat_on_v1(base_url: str) -> None:
    client = v1(base_url)
    assert [m.id for m in client.models.list()] == ["assistant", "forecaster"]
    assert client.models.retrieve("assistant").id == "assistant"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nobody")
    assert info.value.code == "model_not_found"
    reply = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "turn 1: hi"
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "turn 1: hi "
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_responses_json_stream_and_helper(base_url: str) -> None:
    client = v1(base_url)
    raw = client.responses.with_raw_response.create(model="assistant", input="hello")
    validate_response(raw.http_response.content)
    response = raw.parse()
    assert response.output_text == "turn 1: hello" and response.status == "completed"
    with client.responses.with_streaming_response.create(
        model="assistant", input="hello", stream=True
    ) as streamed:
        report = validate_response_stream(list(streamed.iter_bytes()))
    assert report.text == "turn 1: hello "
    events = list(client.responses.create(model="assistant", input="hey", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert deltas == ["turn ", "1: ", "hey "]
    with client.responses.stream(model="assistant", input="again") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "turn 1: again "


def test_previous_response_id_retrieve_and_delete(base_url: str) -> None:
    client = v1(base_url)
    first = client.responses.create(model="assistant", input="one")
    second = client.responses.create(model="assistant", input="two", previous_response_id=first.id)
    assert second.output_text == "turn 2: two"
    with client.responses.stream(
        model="assistant", input="three", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert third.output_text == "turn 3: three "
    got = client.responses.retrieve(second.id)
    assert (got.id, got.output_text, got.previous_response_id) == (
        second.id,
        "turn 2: two",
        first.id,
    )
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="assistant", input="x", previous_response_id=second.id)
    assert info.value.code == "previous_response_not_found"


def test_a_tool_round_trip_with_the_official_client(base_url: str) -> None:
    client = v1(base_url)
    tool = {"type": "function", **WEATHER}
    first = client.responses.create(model="forecaster", input="Weather in Paris?", tools=[tool])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    second = client.responses.create(
        model="forecaster",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=[tool],
    )
    assert second.output_text == "The forecast: sunny."


def test_the_async_client(base_url: str) -> None:
    async def scenario() -> tuple[str, str, str]:
        client = v1(base_url, asynchronous=True)
        created = await client.responses.create(model="assistant", input="async")
        stream = await client.responses.create(model="assistant", input="async", stream=True)
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        got = await client.responses.retrieve(created.id)
        await client.close()
        return created.output_text, text, got.output_text

    assert asyncio.run(scenario()) == ("turn 1: async", "turn 1: async ", "turn 1: async")


# the Agents SDK with a served robutler agent as its model -----------------------------------

CALLED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLED.append(city)
    return f"sunny in {city}"


@pytest.mark.parametrize("model_class", [OpenAIResponsesModel, OpenAIChatCompletionsModel])
def test_the_agents_sdk_runs_on_a_served_agent(base_url: str, model_class: Any) -> None:
    async def scenario() -> tuple[str, str, str]:
        client = v1(base_url, asynchronous=True)
        config = RunConfig(tracing_disabled=True)
        talker = Agent(name="talker", model=model_class(model="assistant", openai_client=client))
        text = (await Runner.run(talker, "hi there", run_config=config)).final_output
        streamed = Runner.run_streamed(talker, "stream please", run_config=config)
        deltas = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event":
                data: Any = event.data
                if getattr(data, "type", None) == "response.output_text.delta":
                    deltas.append(data.delta)
        weather = Agent(
            name="weather",
            model=model_class(model="forecaster", openai_client=client),
            tools=[get_weather],
        )
        answer = (await Runner.run(weather, "Weather in Paris?", run_config=config)).final_output
        await client.close()
        return text, "".join(deltas), answer

    CALLED.clear()
    text, streamed, answer = asyncio.run(scenario())
    assert text == "turn 1: hi there"
    assert streamed.strip() == "turn 1: stream please"
    assert CALLED == ["Paris"]  # the SDK ran the tool the served agent asked for
    assert answer == "The forecast: sunny in Paris."


# the README's examples, as written --------------------------------------------------------


def run_readme_example(marker: str) -> None:
    """Run the README's `marker` example against its first agents, served by uvicorn."""
    import re

    from helpers import documentation

    from robutler.server.store import MemoryStore
    from robutler_testing.live import LiveServer

    readme = documentation()
    agents_src = re.search(r"```python\n(# my_agents.py\n.*?)```", readme, re.S)
    example = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", readme, re.S)
    assert agents_src and example, f"README lost its agents or its {marker} example"
    namespace: dict[str, Any] = {}
    exec(compile(agents_src.group(1), "my_agents.py", "exec"), namespace)
    namespace["app"].response_store = MemoryStore()
    with LiveServer(namespace["app"]) as server:
        code = example.group(1).replace("http://127.0.0.1:8000", server.url)
        exec(compile(code, f"{marker}.py", "exec"), {})


def test_the_readme_v1_example_runs_against_the_readme_agents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_readme_example("readme-v1-example")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['assistant', 'counter']"
    assert out[1] == "You said: Hello"
    assert out[2] == "You said: Stream itcompleted"
    assert out[3] == "You said: More?"


def test_the_readme_websocket_compaction_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    run_readme_example("readme-responses-more")
    out = capsys.readouterr().out.splitlines()
    assert out == ["You said: Hello", "You said: Again", "['message']", "You said: Hi"]
