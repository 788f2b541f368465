"""robutler_testing.mock_agent: scripted replies, streams, usage, failures, and the server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

import robutler_testing.mock_agent as mock_agent_module
from robutler.server import ServerBase
from robutler_testing.mock_agent import (
    ChunkEvent,
    MockAgent,
    MockAgentError,
    MockRunResult,
    MockStreamedRun,
    split_words,
)
from robutler_testing.validators import ConformanceError, validate_completion, validate_stream

USER = [{"role": "user", "content": "hello"}]


async def stream(run: MockStreamedRun) -> list[dict[str, Any]]:
    """The chunks of a streamed run."""
    out = []
    async for event in run.stream_events():
        assert isinstance(event, ChunkEvent)
        assert event.type == "chunk"
        out.append(event.data.chunk)
    return out


async def stream_until_error(run: MockStreamedRun) -> tuple[list[dict[str, Any]], BaseException]:
    chunks: list[dict[str, Any]] = []
    with pytest.raises(MockAgentError) as exc:
        async for event in run.stream_events():
            chunks.append(event.data.chunk)
    return chunks, exc.value


def as_sse(chunks: list[dict[str, Any]]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def contents(chunks: list[dict[str, Any]]) -> list[str]:
    """The content pieces after the role chunk."""
    return [
        c["choices"][0]["delta"]["content"]
        for c in chunks[1:]
        if "content" in c["choices"][0]["delta"]
    ]


# defaults --------------------------------------------------------------------------------


async def test_defaults_echo_the_last_user_message() -> None:
    agent = MockAgent()
    assert (agent.name, agent.model) == ("mock-agent", "mock-model")
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "be brief"},
    ]
    result = await agent.run(messages)
    assert isinstance(result, MockRunResult)
    body = validate_completion(result.final_output)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "mock-model"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "mock-agent received: hello"}
    assert choice["finish_reason"] == "stop"


async def test_default_stream_shape() -> None:
    chunks = await stream(MockAgent("x").run_streamed(USER))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert contents(chunks) == ["x ", "received: ", "hello"]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"] == {}
    assert last["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in chunks[:-1])
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    report = validate_stream(as_sse(chunks))
    assert report.content == "x received: hello"


async def test_content_parts_are_echoed_as_joined_text() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "this"},
            ],
        }
    ]
    result = await MockAgent().run(messages)
    assert (
        result.final_output["choices"][0]["message"]["content"]
        == "mock-agent received: look at this"
    )


async def test_no_user_message_echoes_nothing() -> None:
    result = await MockAgent().run([{"role": "system", "content": "hi"}])
    assert result.final_output["choices"][0]["message"]["content"] == "mock-agent received: "


async def test_streamed_final_output_matches_run() -> None:
    agent = MockAgent()
    run = agent.run_streamed(USER)
    assert run.final_output is None
    assert not run.is_complete
    await stream(run)
    assert run.is_complete
    assert run.final_output is not None
    expected = (await agent.run(USER)).final_output
    assert run.final_output["choices"] == expected["choices"]
    assert run.final_output["usage"] == expected["usage"]


# reply and chunks --------------------------------------------------------------------------


async def test_reply_string() -> None:
    agent = MockAgent("a", "Fixed answer, always.")
    result = await agent.run(USER)
    assert result.final_output["choices"][0]["message"]["content"] == "Fixed answer, always."
    chunks = await stream(agent.run_streamed(USER))
    assert contents(chunks) == ["Fixed ", "answer, ", "always."]


async def test_reply_function_gets_the_messages() -> None:
    seen = []

    def reply(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return f"{len(messages)} message(s)"

    agent = MockAgent("a", reply)
    result = await agent.run(USER)
    assert result.final_output["choices"][0]["message"]["content"] == "1 message(s)"
    assert seen == [USER]
    assert "".join(contents(await stream(agent.run_streamed(USER * 2)))) == "2 message(s)"


async def test_async_reply_function() -> None:
    async def reply(messages: list[dict[str, Any]]) -> str:
        await asyncio.sleep(0)
        return messages[-1]["content"].upper()

    result = await MockAgent("a", reply).run(USER)
    assert result.final_output["choices"][0]["message"]["content"] == "HELLO"


async def test_reply_function_must_return_a_string() -> None:
    with pytest.raises(TypeError, match="returned int"):
        await MockAgent("a", lambda messages: 42).run(USER)  # type: ignore[arg-type, return-value]


async def test_chunks_fix_the_stream_and_the_reply() -> None:
    agent = MockAgent("a", chunks=["Hel", "lo", " wor", "ld"])
    assert contents(await stream(agent.run_streamed(USER))) == ["Hel", "lo", " wor", "ld"]
    result = await agent.run(USER)
    assert result.final_output["choices"][0]["message"]["content"] == "Hello world"
    assert MockAgent("b", "Hello world", chunks=["Hello", " world"]).chunks == ["Hello", " world"]


def test_chunks_that_contradict_the_reply_are_refused() -> None:
    with pytest.raises(ValueError, match="not the join of chunks"):
        MockAgent("a", "Hello", chunks=["Hi"])
    with pytest.raises(ValueError, match="not both"):
        MockAgent("a", lambda m: "x", chunks=["x"])
    with pytest.raises(TypeError, match="chunks must be strings"):
        MockAgent("a", chunks=["x", 1])  # type: ignore[list-item]


@given(st.text())
def test_split_words_keeps_every_character(text: str) -> None:
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert all(pieces)
    assert all(len(p.split()) <= 1 for p in pieces)


def test_split_words_keeps_spaces_with_words() -> None:
    assert split_words("  two  words ") == ["  two  ", "words "]
    assert split_words("") == []
    assert split_words("   ") == ["   "]


# usage --------------------------------------------------------------------------------------


async def test_default_usage_counts_words_and_adds_up() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "say it"}]},
    ]
    result = await MockAgent("a", "one two three four").run(messages)
    assert result.final_output["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "total_tokens": 9,
    }


async def test_usage_dict_is_used_as_given() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    agent = MockAgent(usage=usage)
    assert (await agent.run(USER)).final_output["usage"] == usage
    assert (await stream(agent.run_streamed(USER)))[-1]["usage"] == usage


async def test_usage_none_sends_no_usage() -> None:
    agent = MockAgent(usage=None)
    assert "usage" not in (await agent.run(USER)).final_output
    chunks = await stream(agent.run_streamed(USER))
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_bad_usage_is_refused() -> None:
    with pytest.raises(TypeError, match="usage"):
        MockAgent(usage=12)  # type: ignore[arg-type]


# delay --------------------------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records MockAgent's sleeps (and sleeps for no time) instead of timing anything."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(mock_agent_module.asyncio, "sleep", fake_sleep)
    return recorded


async def test_delay_sleeps_before_each_streamed_piece(sleeps: list[float]) -> None:
    agent = MockAgent("a", "one two three", delay=0.001)
    run = agent.run_streamed(USER)
    seen = []
    async for event in run.stream_events():
        seen.append((len(sleeps), event.data.chunk["choices"][0]["delta"].get("content")))
    # no sleep before the role chunk; one before each content piece; none before the finish
    assert seen == [(0, ""), (1, "one "), (2, "two "), (3, "three"), (3, None)]
    assert sleeps == [0.001] * 3


async def test_delay_applies_to_run_too(sleeps: list[float]) -> None:
    await MockAgent("a", "one two", delay=0.002).run(USER)
    assert sleeps == [0.002, 0.002]


async def test_no_delay_no_sleep(sleeps: list[float]) -> None:
    await MockAgent("a", "one two").run(USER)
    await stream(MockAgent("a", "one two").run_streamed(USER))
    assert sleeps == []


async def test_tiny_real_delay_still_streams_everything() -> None:
    chunks = await stream(MockAgent("a", "a b c", delay=0.0005).run_streamed(USER))
    assert "".join(contents(chunks)) == "a b c"


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        MockAgent(delay=-1)


# fail_after ---------------------------------------------------------------------------------


async def test_fail_after_zero_fails_before_the_first_piece() -> None:
    chunks, error = await stream_until_error(
        MockAgent("a", "one two", fail_after=0).run_streamed(USER)
    )
    assert len(chunks) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "'a' failed on purpose after 0 chunk(s)" in str(error)


async def test_fail_after_k_fails_after_k_pieces() -> None:
    chunks, error = await stream_until_error(
        MockAgent("a", "one two three", fail_after=2).run_streamed(USER)
    )
    assert contents(chunks) == ["one ", "two "]
    assert "after 2 chunk(s)" in str(error)


async def test_fail_after_beyond_the_pieces_fails_before_the_finish() -> None:
    chunks, _ = await stream_until_error(MockAgent("a", "one two", fail_after=5).run_streamed(USER))
    assert contents(chunks) == ["one ", "two"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


@pytest.mark.parametrize("fail_after", [0, 1, 9])
async def test_fail_after_makes_run_fail(fail_after: int) -> None:
    agent = MockAgent("a", "one two", fail_after=fail_after)
    with pytest.raises(MockAgentError):
        await agent.run(USER)
    assert issubclass(MockAgentError, RuntimeError)


@pytest.mark.parametrize("fail_after", [-1, 1.5])
def test_bad_fail_after_is_refused(fail_after: Any) -> None:
    with pytest.raises(ValueError, match="fail_after"):
        MockAgent(fail_after=fail_after)


# tool calls ---------------------------------------------------------------------------------

TOOLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}},
    {"name": "get_time", "arguments": {}},
]


async def test_tool_calls_in_run() -> None:
    result = await MockAgent("a", tool_calls=TOOLS).run(USER)
    body = validate_completion(result.final_output)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] is None
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris", "unit": "C"},
        {},
    ]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert len({c["id"] for c in calls}) == 2


async def test_tool_calls_streamed_as_deltas() -> None:
    agent = MockAgent("a", tool_calls=TOOLS)
    chunks = await stream(agent.run_streamed(USER))
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [d["index"] for d in deltas] == [0, 0, 1, 1]
    assert deltas[0]["type"] == "function"
    assert deltas[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert "id" not in deltas[1]
    report = validate_stream(as_sse(chunks))
    assert report.finish_reason == "tool_calls"
    expected = (await agent.run(USER)).final_output["choices"][0]["message"]["tool_calls"]
    assert [c["function"] for c in report.tool_calls] == [c["function"] for c in expected]


async def test_tool_calls_with_a_reply_carry_content_too() -> None:
    agent = MockAgent("a", "Checking.", tool_calls=TOOLS[:1])
    message = (await agent.run(USER)).final_output["choices"][0]["message"]
    assert message["content"] == "Checking."
    report = validate_stream(as_sse(await stream(agent.run_streamed(USER))))
    assert report.content == "Checking."
    assert len(report.tool_calls) == 1


async def test_tool_call_string_arguments_are_kept() -> None:
    agent = MockAgent("a", tool_calls=[{"name": "f", "arguments": "{not json"}])
    result = await agent.run(USER)
    assert (
        result.final_output["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        == "{not json"
    )
    with pytest.raises(ConformanceError, match="not valid JSON"):
        validate_completion(result.final_output)


def test_tool_call_without_name_is_refused() -> None:
    with pytest.raises(ValueError, match="'name'"):
        MockAgent(tool_calls=[{"arguments": {}}])


# determinism and calls ----------------------------------------------------------------------


def _without_created(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_created(v) for k, v in value.items() if k != "created"}
    if isinstance(value, list):
        return [_without_created(v) for v in value]
    return value


async def test_runs_are_deterministic_and_ids_differ_per_run() -> None:
    first, second = MockAgent("a", tool_calls=TOOLS), MockAgent("a", tool_calls=TOOLS)
    one = [(await first.run(USER)).final_output, await stream(first.run_streamed(USER))]
    two = [(await second.run(USER)).final_output, await stream(second.run_streamed(USER))]
    assert _without_created(one) == _without_created(two)
    assert one[0]["id"] != one[1][0]["id"]
    first.reset()
    again = (await first.run(USER)).final_output
    assert _without_created(again) == _without_created(one[0])


async def test_calls_records_each_run_and_reset_clears() -> None:
    agent = MockAgent()
    messages = [{"role": "user", "content": "hi", "name": "bob"}]
    await agent.run(messages)
    agent.run_streamed([{"role": "user", "content": "streamed"}])  # recorded when called
    await agent.run("plain text")
    assert agent.calls == [
        messages,
        [{"role": "user", "content": "streamed"}],
        [{"role": "user", "content": "plain text"}],
    ]
    messages[0]["content"] = "changed later"
    assert agent.calls[0][0]["content"] == "hi"
    agent.reset()
    assert agent.calls == []


# end to end through the server ---------------------------------------------------------------


def serve(*agents: MockAgent) -> TestClient:
    """A ServerBase with one route per MockAgent, through a small wrapper handler."""
    app = ServerBase()
    for agent in agents:

        def register(agent: MockAgent) -> None:
            @app.agent(agent.name)
            async def handler(messages: list[dict[str, Any]], stream: bool = False) -> Any:
                return agent.run_streamed(messages) if stream else await agent.run(messages)

        register(agent)
    return TestClient(app)


AGENTS: dict[str, dict[str, Any]] = {
    "echo": {},
    "tools": {"tool_calls": TOOLS},
    "quiet": {"reply": "no usage here", "usage": None},
    "slow": {"reply": "a b c", "delay": 0.0005},
    "breaks": {"reply": "one two three", "fail_after": 2},
    "breaks-early": {"reply": "one two", "fail_after": 0},
}


@pytest.fixture
def agents() -> dict[str, MockAgent]:
    return {name: MockAgent(name, **options) for name, options in AGENTS.items()}


@pytest.fixture
def mock_client(agents: dict[str, MockAgent]) -> Any:
    with serve(*agents.values()) as client:
        yield client


def post(client: Any, name: str, **body: Any) -> Any:
    return client.post(f"/{name}/chat/completions", json={"messages": USER, **body})


@pytest.mark.parametrize("name", ["echo", "tools", "quiet", "slow"])
def test_server_completion(mock_client: Any, agents: dict[str, MockAgent], name: str) -> None:
    response = post(mock_client, name)
    assert response.status_code == 200
    body = validate_completion(response.content)
    # The server passes the agent's completion through: same as a fresh agent's first run,
    # except for the id, which is the request's.
    expected = asyncio.run(MockAgent(name, **AGENTS[name]).run(USER)).final_output
    assert body.pop("id") == "chatcmpl-" + response.headers["x-request-id"]
    expected.pop("id")
    assert _without_created(body) == _without_created(expected)
    assert agents[name].calls == [USER]


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("name", ["echo", "tools", "quiet", "slow"])
def test_server_stream(
    mock_client: Any, agents: dict[str, MockAgent], name: str, include_usage: bool
) -> None:
    response = post(mock_client, name, stream=True, stream_options={"include_usage": include_usage})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    # MockAgent's usage reaches the client with or without include_usage (on the usage
    # chunk, or on the finish chunk), exactly once.
    report = validate_stream(response.content, expect_usage=name != "quiet")
    carriers = [c for c in report.chunks if c.get("usage")]
    assert len(carriers) == (0 if name == "quiet" else 1)
    if carriers:
        assert carriers[0] is report.chunks[-1]
        assert (carriers[0]["choices"] == []) is include_usage
    assert report.model == "mock-model"
    if name == "tools":
        assert report.finish_reason == "tool_calls"
        assert [c["function"]["name"] for c in report.tool_calls] == ["get_weather", "get_time"]
    else:
        assert report.finish_reason == "stop"
        assert (
            report.content
            == {"echo": "echo received: hello", "quiet": "no usage here", "slow": "a b c"}[name]
        )
    assert agents[name].calls == [USER]


def test_server_stream_failing_half_way_is_caught_by_the_validator(mock_client: Any) -> None:
    response = post(mock_client, "breaks", stream=True)
    assert response.status_code == 200
    with pytest.raises(ConformanceError) as exc:
        validate_stream(response.content)
    messages = [p.message for p in exc.value.problems]
    assert any("got an error instead of a chunk: 'The agent failed." in m for m in messages), (
        messages
    )
    assert any("choice 0 never finished" in m for m in messages), messages


def test_server_stream_failing_before_the_first_piece_answers_500(mock_client: Any) -> None:
    response = post(mock_client, "breaks-early", stream=True)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "agent_error"


def test_server_completion_of_a_failing_agent_answers_500(mock_client: Any) -> None:
    response = post(mock_client, "breaks")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
