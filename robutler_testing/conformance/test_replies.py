"""Replies parsed by the official client, streamed and not, and the usage they report."""

from __future__ import annotations

import pytest

from .driver import Chat, Target, user

HELLO = [user("Say hello to the conformance suite.")]


def test_non_streaming_reply_is_parsed_by_the_client(chat: Chat) -> None:
    completion, body = chat.complete(HELLO)
    assert completion.object == "chat.completion"
    assert completion.id, "the completion has no id"
    assert len(completion.choices) >= 1, "the completion has no choices"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content, f"the reply has no content: {choice.message!r}"
    assert choice.finish_reason == "stop", f"finish_reason is {choice.finish_reason!r}"
    assert body["choices"][0]["message"]["content"] == choice.message.content


def test_non_streaming_reply_matches_the_reference_agent(chat: Chat, target: Target) -> None:
    completion, _ = chat.complete([user("exactly this")], agent=target.special("echo"))
    assert completion.choices[0].message.content == "echo received: exactly this"


def test_streaming_reply_is_iterated_by_the_client(chat: Chat) -> None:
    streamed = chat.stream(HELLO)
    assert streamed.chunks, "the client iterated no chunks"
    assert all(c.object == "chat.completion.chunk" for c in streamed.chunks)
    assert len({c.id for c in streamed.chunks}) == 1, "the chunks of one stream differ in id"
    assert streamed.content, "the stream carried no content"
    assert streamed.content == streamed.report.content, "client and validator disagree"
    assert streamed.finish_reason == "stop", f"finish_reason is {streamed.finish_reason!r}"


def test_streaming_content_equals_non_streaming_content(chat: Chat, target: Target) -> None:
    agent = target.special("echo")
    messages = [user("the same words, twice over")]
    completion, _ = chat.complete(messages, agent=agent)
    streamed = chat.stream(messages, agent=agent)
    assert streamed.content == completion.choices[0].message.content, (
        f"streamed {streamed.content!r} but answered {completion.choices[0].message.content!r}"
    )
    assert streamed.finish_reason == completion.choices[0].finish_reason


def test_stream_usage_totals_add_up_with_include_usage(chat: Chat) -> None:
    streamed = chat.stream(HELLO, stream_options={"include_usage": True})
    usage = streamed.usage
    if usage is None:
        _, body = chat.complete(HELLO)
        assert body.get("usage") is None, (
            "no chunk carried usage although include_usage was set, yet the same request "
            f"without streaming reports usage {body['usage']!r}"
        )
        pytest.skip(
            "the agent reports no token usage (in JSON answers either), so there are no "
            "totals to add up; sending none is right, see usage_is_absent_when_the_agent_gives_none"
        )
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens, (
        f"usage does not add up: {usage!r}"
    )
    last = streamed.chunks[-1]
    assert last.usage is not None, "usage is not on the last chunk"
    assert last.choices == [], f"the usage chunk should have no choices, got {last.choices!r}"


def test_stream_usage_without_include_usage_is_on_the_finish_chunk_once(chat: Chat) -> None:
    # Without include_usage a server may send no usage (OpenAI) or, as robutler does when
    # the agent gave usage, put it on the last finish chunk; never on two chunks, because
    # clients such as LangChain and LiteLLM add up every chunk's usage.
    streamed = chat.stream(HELLO)
    carriers = [chunk for chunk in streamed.chunks if chunk.usage is not None]
    assert len(carriers) <= 1, f"usage is on {len(carriers)} chunks; at most one may carry it"
    if carriers:
        last = streamed.chunks[-1]
        assert carriers[0] is last, "usage is not on the last chunk"
        assert [c.finish_reason for c in last.choices] and all(
            c.finish_reason for c in last.choices
        ), f"without include_usage, usage belongs on the finish chunk, got {last.choices!r}"


def test_non_streaming_usage_totals_add_up(chat: Chat, target: Target) -> None:
    completion, _ = chat.complete(HELLO, agent=target.special("echo"))
    usage = completion.usage
    assert usage is not None, "the echo agent counts usage, but the completion has none"
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens


def test_usage_is_absent_when_the_agent_gives_none(chat: Chat, target: Target) -> None:
    agent = target.special("quiet")
    completion, body = chat.complete(HELLO, agent=agent)
    assert completion.usage is None and body.get("usage") is None, (
        f"invented usage: {body.get('usage')!r}"
    )
    streamed = chat.stream(
        HELLO, agent=agent, stream_options={"include_usage": True}, expect_usage=False
    )
    assert streamed.usage is None, f"invented usage in the stream: {streamed.usage!r}"
