"""A real Agents SDK agent tested against recorded model traffic (cassettes/weather.yaml).

Offline, `pytest` replays the cassette: the agent's requests must match the recorded ones
(a changed prompt, tool or model fails the test naming the field), and the recorded
replies come back byte for byte. To re-record from the real API, once, with a key:

    OPENAI_API_KEY=sk-... pytest --record examples/recorded_agent

then review and commit the rewritten cassette.
"""

from __future__ import annotations

import pytest
from agents import Agent, Runner, function_tool

forecasts: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    forecasts.append(city)
    return f"Sunny and 24C in {city}"


agent = Agent(
    name="forecaster",
    instructions="Answer weather questions in one sentence; use the get_weather tool.",
    tools=[get_weather],
    model="gpt-4o-mini",
)


@pytest.mark.mock_openai(cassette="weather")
def test_the_agent_calls_its_tool_and_answers_from_it() -> None:
    forecasts.clear()
    result = Runner.run_sync(agent, "What's the weather in Paris?")
    assert forecasts == ["Paris"]  # the recorded model asked for the tool; it really ran
    assert "Paris" in result.final_output and "24" in result.final_output
