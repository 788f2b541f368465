"""mock_openai's WebSocket mode and compaction: the official client's `responses.connect()`
and `responses.compact()`, the Agents SDK's websocket transport, and a robutler agent that
runs such an Agents SDK agent, served over WebSocket itself, all offline."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Agent, Runner, function_tool
from agents.models.openai_responses import OpenAIResponsesWSModel

from robutler.server import ServerBase
from robutler.server.store import MemoryStore
from robutler_testing import validate_response_messages
from robutler_testing.live import LiveServer
from robutler_testing.mock_openai import mock_openai

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def turn(conn: Any) -> list[dict[str, Any]]:
    events = []
    for event in conn:
        events.append(event.to_dict())
        if event.type in TERMINAL:
            return events
    raise AssertionError("the socket closed before the turn ended")


def test_the_official_client_over_the_mocks_websocket() -> None:
    with mock_openai() as upstream:
        upstream.add_text(["Hel", "lo"], usage={"input_tokens": 3, "output_tokens": 2})
        upstream.add_error(429, "slow down")
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        with upstream.client().responses.connect() as conn:
            conn.send({"type": "response.create", "model": "gpt-4o", "input": "hi"})
            report = validate_response_messages(turn(conn), expect_usage=True)
            assert report.text == "Hello" and report.usage["total_tokens"] == 5  # type: ignore[index]
            conn.send({"type": "response.create", "model": "gpt-4o", "input": "again"})
            error = turn(conn)[-1]
            assert (error["type"], error["status"]) == ("error", 429)
            conn.send({"type": "response.create", "model": "gpt-4o", "input": "weather"})
            report = validate_response_messages(turn(conn))
            assert report.tool_calls[0]["name"] == "get_weather"
            conn.response.steer(input="faster", previous_response_id="resp_x")
            assert conn.recv().type == "response.steer.failed"
        assert [r["input"] for r in upstream.requests] == ["hi", "again", "weather"]
        assert all(r["stream"] is True for r in upstream.requests)
        upstream.assert_all_used()


def test_an_unscripted_websocket_turn_is_an_error_message() -> None:
    with mock_openai(strict=False) as upstream:
        with upstream.client().responses.connect() as conn:
            conn.send({"type": "response.create", "model": "gpt-4o", "input": "hi"})
            error = turn(conn)[-1]
        assert error["status"] == 500 and "nothing was scripted" in error["error"]["message"]
        assert upstream.unexpected


def test_compaction_on_the_mock() -> None:
    with mock_openai() as upstream:
        client = upstream.client()
        compacted = client.responses.compact(model="gpt-4o", input="remember slate")
        assert compacted.object == "response.compaction"
        assert compacted.output[0].type == "compaction"
        with pytest.raises(Exception, match="model"):
            client.post("/responses/compact", body={"input": "x"}, cast_to=object)
        assert upstream.requests[0] == {"model": "gpt-4o", "input": "remember slate"}


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


async def test_an_agents_sdk_agent_with_the_websocket_transport_runs_offline() -> None:
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_text("It is sunny in Paris.")
        model = OpenAIResponsesWSModel("gpt-4o", upstream.async_client())
        agent = Agent(name="forecaster", model=model, tools=[get_weather])
        result = await Runner.run(agent, "Weather in Paris?")
        assert result.final_output == "It is sunny in Paris."
        outputs = [
            i for i in upstream.requests[1]["input"] if i.get("type") == "function_call_output"
        ]
        assert outputs[0]["output"] == "Sunny in Paris"
        upstream.assert_all_used()


def test_a_robutler_agent_running_a_websocket_sdk_agent_served_over_websocket() -> None:
    """Both hops over WebSocket: the official client to robutler, robutler's agent (an
    Agents SDK agent with the websocket transport) to the mock upstream."""
    with mock_openai() as upstream:
        upstream.add_tool_call("get_weather", {"city": "Oslo"})
        upstream.add_text(["Rain ", "in Oslo."])
        app = ServerBase(response_store=MemoryStore())

        @app.agent("forecaster")
        async def forecaster(messages: list[dict[str, Any]], stream: bool = False) -> str:
            model = OpenAIResponsesWSModel("gpt-4o", upstream.async_client())
            agent = Agent(name="forecaster", model=model, tools=[get_weather])
            result = await Runner.run(agent, messages[-1]["content"])
            return str(result.final_output)

        with LiveServer(app) as live:
            import openai

            client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
            with client.responses.connect() as conn:
                conn.send({"type": "response.create", "model": "forecaster", "input": "Oslo?"})
                report = validate_response_messages(turn(conn))
        assert report.text == "Rain in Oslo."
        assert upstream.requests[0]["tools"][0]["name"] == "get_weather"
        upstream.assert_all_used()
