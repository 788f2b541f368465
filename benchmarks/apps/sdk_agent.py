"""The Agents SDK agent both SDK apps serve: one function tool, the model on the upstream.

The upstream is `benchmarks.apps.upstream` (the repo's `mock_openai` on 127.0.0.1, in a
process of its own); the server's environment points the SDK at it (`OPENAI_BASE_URL`,
`OPENAI_API_KEY`, `OPENAI_AGENTS_DISABLE_TRACING=1`), so both apps run the SDK's own
default client, model class and Runner exactly as a deployment would.
"""

from __future__ import annotations

from agents import Agent, function_tool

MODEL = "gpt-bench"


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny and 21C in {city}"


agent = Agent(
    name="bench",
    instructions="Answer questions about the weather; call get_weather first.",
    model=MODEL,
    tools=[get_weather],
)
