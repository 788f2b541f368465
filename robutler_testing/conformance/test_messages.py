"""What goes in reaches the agent intact, and what comes out reaches the client intact."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .driver import Chat, Target, user
from .reference import BIG_REPLY

HISTORY: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the weather in Paris?", "name": "alice"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temp_c": 21}'},
    {"role": "assistant", "content": "It is 21 °C in Paris."},
    {"role": "user", "content": "And tomorrow?"},
]

PARTS = [
    {"type": "text", "text": "first part"},
    {"type": "text", "text": "second part"},
]

UNICODE = 'héllo wörld — 你好\uff0c世界 — مرحبا — 🤖🚀 👩‍💻 🇫🇷 — e\u0301 — "quoted" \\ back\tslash — \u2028 end 𝄞'


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_multi_turn_history_with_tool_messages_is_accepted(chat: Chat, stream: bool) -> None:
    if stream:
        assert chat.stream(HISTORY).report.finish_reason is not None
    else:
        completion, _ = chat.complete(HISTORY)
        assert completion.choices[0].message.role == "assistant"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_multi_turn_history_reaches_the_agent_intact(
    chat: Chat, target: Target, stream: bool
) -> None:
    agent = target.mock("echo")
    if stream:
        chat.stream(HISTORY, agent="echo")
    else:
        chat.complete(HISTORY, agent="echo")
    sent = chat.wire.last().request_json()["messages"]
    assert sent == HISTORY, "the client did not send the history as given"
    received = agent.calls[-1]
    assert received == sent, f"the agent received {received!r}, the client sent {sent!r}"


def test_content_as_list_of_parts_is_accepted(chat: Chat) -> None:
    completion, _ = chat.complete([user(PARTS)])
    assert completion.choices[0].message.content is not None
    assert chat.stream([user(PARTS)]).content


def test_content_as_list_of_parts_reaches_the_agent_intact(chat: Chat, target: Target) -> None:
    agent = target.mock("echo")
    parts = [*PARTS, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]
    completion, _ = chat.complete([user(parts)], agent="echo")
    assert agent.calls[-1] == [user(parts)], f"the agent received {agent.calls[-1]!r}"
    assert completion.choices[0].message.content == "echo received: first part second part"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_unicode_and_emoji_round_trip(chat: Chat, target: Target, stream: bool) -> None:
    agent = target.special("echo")
    expected = f"echo received: {UNICODE}"
    got: str | None
    if stream:
        got = chat.stream([user(UNICODE)], agent=agent).content
    else:
        got = chat.complete([user(UNICODE)], agent=agent)[0].choices[0].message.content
    assert got == expected, f"sent {UNICODE!r}, got back {got!r}"
    assert json.loads(chat.wire.last().request_body)["messages"][0]["content"] == UNICODE


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_one_mebibyte_reply(chat: Chat, target: Target, stream: bool) -> None:
    agent = target.special("big")
    got: str | None
    if stream:
        streamed = chat.stream([user("a lot, please")], agent=agent)
        got = streamed.content
        assert len(streamed.chunks) >= 64, f"only {len(streamed.chunks)} chunks"
    else:
        got = chat.complete([user("a lot, please")], agent=agent)[0].choices[0].message.content
    assert got is not None and len(got.encode()) == len(BIG_REPLY), (
        f"got {len((got or '').encode())} bytes, expected {len(BIG_REPLY)}"
    )
    assert got == BIG_REPLY, "the 1 MiB reply arrived altered"
