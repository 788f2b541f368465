"""The built-in demo that `robutler serve` runs without APP: three MockAgent agents.

No API key and no network: `echo` repeats the last user message, `stream` streams a
longer reply word by word, `tools` answers with a tool call.
"""

from __future__ import annotations

from typing import Any

from robutler.server import Server

from .mock_agent import MockAgent

__all__ = ["app", "demo_app"]


def _story(messages: list[dict[str, Any]]) -> str:
    topic = str(messages[-1].get("content") or "robots") if messages else "robots"
    return (
        f"Here is a short story about {topic}. Once upon a time a butler robot served "
        "answers to anyone who asked, one word at a time, and everyone was pleased."
    )


def demo_app() -> Server:
    """A Server with the demo agents `echo`, `stream` and `tools`."""
    return Server(
        agents=[
            MockAgent("echo"),
            MockAgent("stream", reply=_story, delay=0.02),
            MockAgent(
                "tools", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
            ),
        ],
        title="robutler demo",
    )


app = demo_app()
