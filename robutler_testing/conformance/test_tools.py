"""A tool-calling agent's tool calls, parsed by the client, whole and from stream deltas."""

from __future__ import annotations

import json

from .driver import Chat, Target, user
from .reference import TOOL_CALLS

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": call["name"],
            "parameters": {
                "type": "object",
                "properties": {key: {"type": "string"} for key in call["arguments"]},
            },
        },
    }
    for call in TOOL_CALLS
]
EXPECTED = [(call["name"], call["arguments"]) for call in TOOL_CALLS]


def test_tool_calls_are_parsed_by_the_client(chat: Chat, target: Target) -> None:
    agent = target.special("tools")
    completion, _ = chat.complete([user("weather and time?")], agent=agent, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", f"finish_reason is {choice.finish_reason!r}"
    calls = choice.message.tool_calls or []
    got = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
    assert got == EXPECTED, f"tool calls {got!r}, expected {EXPECTED!r}"
    ids = [c.id for c in calls]
    assert all(ids) and len(set(ids)) == len(ids), f"tool call ids must be distinct: {ids!r}"
    assert all(c.type == "function" for c in calls)


def test_tool_calls_are_assembled_from_stream_deltas(chat: Chat, target: Target) -> None:
    agent = target.special("tools")
    streamed = chat.stream([user("weather and time?")], agent=agent, tools=TOOLS)
    assert streamed.finish_reason == "tool_calls", f"finish_reason is {streamed.finish_reason!r}"
    calls = streamed.tool_calls()
    got = [(c["name"], json.loads(c["arguments"])) for c in calls]
    assert got == EXPECTED, f"assembled {got!r}, expected {EXPECTED!r}"
    ids = [c["id"] for c in calls]
    assert all(ids) and len(set(ids)) == len(ids), f"tool call ids must be distinct: {ids!r}"
    reported = [(c["function"]["name"], c["id"]) for c in streamed.report.tool_calls]
    assert reported == [(c["name"], c["id"]) for c in calls], "client and validator disagree"
