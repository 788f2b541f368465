"""robutler_testing.validators: each defect is caught and named; real answers pass."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler.server import ServerBase
from robutler_testing.mock_agent import MockAgent
from robutler_testing.validators import (
    ConformanceError,
    Problem,
    StreamReport,
    validate_chunk,
    validate_completion,
    validate_stream,
)

USER = [{"role": "user", "content": "hello"}]
HEAD = {
    "id": "chatcmpl-BxQ7abc",
    "object": "chat.completion.chunk",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
}


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chunk in the exact shape OpenAI sends."""
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    return {
        **HEAD,
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": [choice],
        **extra,
    }


def sse(*events: Any, done: bool = True) -> str:
    """An SSE body: each event as `data: JSON` plus a blank line, then `data: [DONE]`."""
    out = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return out + ("data: [DONE]\n\n" if done else "")


USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 2,
    "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

# What api.openai.com streams for "Say hi", with and without include_usage.
OPENAI_TEXT = [
    chunk({"role": "assistant", "content": "", "refusal": None}, obfuscation="sX3"),
    chunk({"content": "Hi"}, obfuscation="qE0d"),
    chunk({"content": " there!"}, obfuscation="j"),
    chunk({}, "stop", obfuscation="Yk2m"),
]
OPENAI_TEXT_USAGE = [{**c, "usage": None} for c in OPENAI_TEXT] + [
    {
        **HEAD,
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": [],
        "usage": USAGE,
    }
]


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call.update(id=id, type="function", function={"name": name, "arguments": args})
    else:
        call["function"] = {"arguments": args}
    return {"tool_calls": [call]}


# Two parallel tool calls, their arguments split across deltas, as OpenAI streams them.
OPENAI_TOOLS = [
    chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_AbC1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
            "refusal": None,
        }
    ),
    chunk(tool_delta(0, args='{"lo')),
    chunk(tool_delta(0, args='cation": "Pa')),
    chunk(tool_delta(0, args='ris"}')),
    chunk(tool_delta(1, id="call_DeF2", name="get_time")),
    chunk(tool_delta(1, args='{"tz": ')),
    chunk(tool_delta(1, args='"CET"}')),
    chunk({}, "tool_calls"),
]

OPENAI_COMPLETION = {
    "id": "chatcmpl-BxQ7abc",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hi there!",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}

TOOL_COMPLETION = copy.deepcopy(OPENAI_COMPLETION)
TOOL_COMPLETION["choices"][0]["message"] = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_AbC1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ],
    "refusal": None,
}
TOOL_COMPLETION["choices"][0]["finish_reason"] = "tool_calls"


def messages_of(exc: pytest.ExceptionInfo[ConformanceError]) -> str:
    return "\n".join(p.message for p in exc.value.problems)


def broken(base: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    body = copy.deepcopy(base)
    change(body)
    return body


# ---------------------------------------------------------------------------------------
# validate_completion


def test_completion_in_openai_shape_passes_and_is_returned() -> None:
    assert validate_completion(OPENAI_COMPLETION) == OPENAI_COMPLETION
    assert validate_completion(TOOL_COMPLETION) == TOOL_COMPLETION
    assert validate_completion(json.dumps(OPENAI_COMPLETION)) == OPENAI_COMPLETION
    assert validate_completion(json.dumps(OPENAI_COMPLETION).encode()) == OPENAI_COMPLETION


def test_completion_without_usage_passes() -> None:
    body = broken(OPENAI_COMPLETION, lambda b: b.pop("usage"))
    assert validate_completion(body) == body


def _msg(b: dict[str, Any]) -> dict[str, Any]:
    return b["choices"][0]["message"]


def _call(b: dict[str, Any]) -> dict[str, Any]:
    return _msg(b)["tool_calls"][0]


COMPLETION_DEFECTS: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any], str]] = [
    (
        "object",
        OPENAI_COMPLETION,
        lambda b: b.update(object="chat.completion.chunk"),
        "object is 'chat.completion.chunk'",
    ),
    ("no object", OPENAI_COMPLETION, lambda b: b.pop("object"), "object is missing"),
    ("no id", OPENAI_COMPLETION, lambda b: b.pop("id"), "id is missing"),
    ("id type", OPENAI_COMPLETION, lambda b: b.update(id=7), "id must be a string"),
    (
        "created str",
        OPENAI_COMPLETION,
        lambda b: b.update(created="1741570283"),
        "created must be an integer",
    ),
    (
        "created float",
        OPENAI_COMPLETION,
        lambda b: b.update(created=1741570283.5),
        "created must be an integer",
    ),
    (
        "created bool",
        OPENAI_COMPLETION,
        lambda b: b.update(created=True),
        "created must be an integer",
    ),
    ("no model", OPENAI_COMPLETION, lambda b: b.pop("model"), "model is missing"),
    ("model type", OPENAI_COMPLETION, lambda b: b.update(model=None), "model must be a string"),
    ("choices type", OPENAI_COMPLETION, lambda b: b.update(choices={}), "choices must be an array"),
    ("no choices", OPENAI_COMPLETION, lambda b: b.pop("choices"), "choices is missing"),
    ("empty choices", OPENAI_COMPLETION, lambda b: b.update(choices=[]), "choices is empty"),
    (
        "choice index",
        OPENAI_COMPLETION,
        lambda b: b["choices"][0].update(index="0"),
        "choices[0].index must be an integer",
    ),
    (
        "duplicate index",
        OPENAI_COMPLETION,
        lambda b: b["choices"].append(copy.deepcopy(b["choices"][0])),
        "repeats choice index 0",
    ),
    (
        "no message",
        OPENAI_COMPLETION,
        lambda b: b["choices"][0].pop("message"),
        "choices[0].message is missing",
    ),
    ("role", OPENAI_COMPLETION, lambda b: _msg(b).update(role="user"), "message.role is 'user'"),
    (
        "content type",
        OPENAI_COMPLETION,
        lambda b: _msg(b).update(content=["Hi"]),
        "message.content must be a string",
    ),
    (
        "finish bogus",
        OPENAI_COMPLETION,
        lambda b: b["choices"][0].update(finish_reason="done"),
        "finish_reason is 'done'",
    ),
    (
        "finish null",
        OPENAI_COMPLETION,
        lambda b: b["choices"][0].update(finish_reason=None),
        "finish_reason is missing or null",
    ),
    (
        "finish tool_calls without calls",
        OPENAI_COMPLETION,
        lambda b: b["choices"][0].update(finish_reason="tool_calls"),
        "'tool_calls' but the message has no tool_calls",
    ),
    ("call id", TOOL_COMPLETION, lambda b: _call(b).pop("id"), "tool_calls[0].id is missing"),
    (
        "call type",
        TOOL_COMPLETION,
        lambda b: _call(b).update(type="custom"),
        "tool_calls[0].type is 'custom'",
    ),
    (
        "call name",
        TOOL_COMPLETION,
        lambda b: _call(b)["function"].pop("name"),
        "function.name is missing",
    ),
    (
        "call args json",
        TOOL_COMPLETION,
        lambda b: _call(b)["function"].update(arguments="{'a': 1}"),
        "arguments is not valid JSON",
    ),
    (
        "call args type",
        TOOL_COMPLETION,
        lambda b: _call(b)["function"].update(arguments={"a": 1}),
        "arguments must be a JSON string",
    ),
    (
        "tool_calls type",
        TOOL_COMPLETION,
        lambda b: _msg(b).update(tool_calls={}),
        "tool_calls must be an array",
    ),
    (
        "usage sum",
        OPENAI_COMPLETION,
        lambda b: b["usage"].update(total_tokens=12),
        "does not add up",
    ),
    (
        "usage negative",
        OPENAI_COMPLETION,
        lambda b: b["usage"].update(prompt_tokens=-1, total_tokens=1),
        "must not be negative",
    ),
    (
        "usage missing field",
        OPENAI_COMPLETION,
        lambda b: b["usage"].pop("total_tokens"),
        "usage.total_tokens is missing",
    ),
    ("usage type", OPENAI_COMPLETION, lambda b: b.update(usage=[1, 2]), "usage must be an object"),
    # Only the official client's strict types catch these:
    (
        "strict detail",
        OPENAI_COMPLETION,
        lambda b: b["usage"]["completion_tokens_details"].update(reasoning_tokens="0"),
        "completion_tokens_details.reasoning_tokens: Input should be a valid integer",
    ),
    (
        "strict tier",
        OPENAI_COMPLETION,
        lambda b: b.update(service_tier="gold"),
        "ChatCompletion, strict",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "expected"),
    [case[1:] for case in COMPLETION_DEFECTS],
    ids=[case[0] for case in COMPLETION_DEFECTS],
)
def test_completion_defect_is_named(
    base: dict[str, Any], change: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    with pytest.raises(ConformanceError) as exc:
        validate_completion(broken(base, change))
    assert expected in messages_of(exc)
    assert all(p.index is None for p in exc.value.problems)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff{}", "not valid UTF-8"),
        ("[1, 2]", "must be a JSON object, got array"),
        (
            {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
            "Rate limit reached",
        ),
    ],
    ids=["json", "utf8", "array", "error body"],
)
def test_completion_that_is_not_a_completion(body: Any, expected: str) -> None:
    with pytest.raises(ConformanceError) as exc:
        validate_completion(body)
    assert expected in messages_of(exc)


def test_completion_problems_are_all_collected_and_listed() -> None:
    def change(b: dict[str, Any]) -> None:
        b.update(object="x", created="now")
        b["choices"][0]["finish_reason"] = "done"
        b["usage"]["total_tokens"] = 0

    with pytest.raises(ConformanceError) as exc:
        validate_completion(broken(OPENAI_COMPLETION, change))
    assert len(exc.value.problems) == 4, exc.value.problems
    text = str(exc.value)
    assert text.splitlines()[0].startswith("completion does not conform")
    assert "(4 problem(s))" in text
    assert len(text.splitlines()) == 5
    assert "  - created must be an integer, got string 'now'" in text
    assert isinstance(exc.value, AssertionError)


def test_a_fault_is_not_reported_twice_by_the_openai_types() -> None:
    with pytest.raises(ConformanceError) as exc:
        validate_completion(broken(OPENAI_COMPLETION, lambda b: b.update(created="1")))
    assert len(exc.value.problems) == 1


def test_strict_openai_parse_is_used_not_lenient() -> None:
    # Lenient pydantic would coerce "0" to 0; strict mode must refuse it.
    body = broken(
        OPENAI_COMPLETION,
        lambda b: b["usage"]["prompt_tokens_details"].update(cached_tokens="0"),
    )
    with pytest.raises(ConformanceError, match=r"prompt_tokens_details\.cached_tokens"):
        validate_completion(body)


# ---------------------------------------------------------------------------------------
# validate_chunk

GOOD_CHUNK = chunk({"content": "Hi"})
CALL_CHUNK = chunk(tool_delta(0, id="call_1", name="f"))

CHUNK_DEFECTS: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any], str]] = [
    (
        "object",
        GOOD_CHUNK,
        lambda c: c.update(object="chat.completion"),
        "object is 'chat.completion'",
    ),
    ("no id", GOOD_CHUNK, lambda c: c.pop("id"), "id is missing"),
    ("empty id", GOOD_CHUNK, lambda c: c.update(id=""), "id must not be empty"),
    ("created", GOOD_CHUNK, lambda c: c.update(created="1741570283"), "created must be an integer"),
    (
        "created negative",
        GOOD_CHUNK,
        lambda c: c.update(created=-5),
        "created must not be negative",
    ),
    ("model", GOOD_CHUNK, lambda c: c.update(model=4), "model must be a string"),
    ("no choices", GOOD_CHUNK, lambda c: c.pop("choices"), "choices is missing"),
    ("choice type", GOOD_CHUNK, lambda c: c.update(choices=["Hi"]), "choices[0] must be an object"),
    ("no index", GOOD_CHUNK, lambda c: c["choices"][0].pop("index"), "choices[0].index is missing"),
    ("no delta", GOOD_CHUNK, lambda c: c["choices"][0].pop("delta"), "choices[0].delta is missing"),
    (
        "delta type",
        GOOD_CHUNK,
        lambda c: c["choices"][0].update(delta="Hi"),
        "choices[0].delta must be an object",
    ),
    (
        "role",
        GOOD_CHUNK,
        lambda c: c["choices"][0]["delta"].update(role="user"),
        "delta.role is 'user'",
    ),
    (
        "content type",
        GOOD_CHUNK,
        lambda c: c["choices"][0]["delta"].update(content=5),
        "delta.content must be a string",
    ),
    (
        "finish",
        GOOD_CHUNK,
        lambda c: c["choices"][0].update(finish_reason="eos"),
        "finish_reason is 'eos'",
    ),
    (
        "call index",
        CALL_CHUNK,
        lambda c: c["choices"][0]["delta"]["tool_calls"][0].pop("index"),
        "tool_calls[0].index is missing",
    ),
    (
        "call type",
        CALL_CHUNK,
        lambda c: c["choices"][0]["delta"]["tool_calls"][0].update(type="fn"),
        "tool_calls[0].type is 'fn'",
    ),
    (
        "call args type",
        CALL_CHUNK,
        lambda c: c["choices"][0]["delta"]["tool_calls"][0]["function"].update(arguments={}),
        "function.arguments must be a string",
    ),
    (
        "tool_calls type",
        CALL_CHUNK,
        lambda c: c["choices"][0]["delta"].update(tool_calls={}),
        "delta.tool_calls must be an array",
    ),
    (
        "usage sum",
        GOOD_CHUNK,
        lambda c: c.update(usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 3}),
        "does not add up",
    ),
    (
        "usage field",
        GOOD_CHUNK,
        lambda c: c.update(usage={"prompt_tokens": 1, "completion_tokens": 1}),
        "usage.total_tokens is missing",
    ),
    # Only the official client's strict types catch these:
    (
        "strict obfuscation",
        GOOD_CHUNK,
        lambda c: c.update(obfuscation=5),
        "obfuscation: Input should be a valid string",
    ),
    (
        "strict logprobs",
        GOOD_CHUNK,
        lambda c: c["choices"][0].update(logprobs="none"),
        "ChatCompletionChunk, strict",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "expected"),
    [case[1:] for case in CHUNK_DEFECTS],
    ids=[case[0] for case in CHUNK_DEFECTS],
)
def test_chunk_defect_is_named(
    base: dict[str, Any], change: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    with pytest.raises(ConformanceError) as exc:
        validate_chunk(broken(base, change), index=3)
    assert expected in messages_of(exc)
    assert {p.index for p in exc.value.problems} == {3}


def test_chunks_in_openai_shape_pass() -> None:
    for c in [*OPENAI_TEXT_USAGE, *OPENAI_TOOLS]:
        assert validate_chunk(c) == c
    assert validate_chunk(json.dumps(GOOD_CHUNK)) == GOOD_CHUNK


def test_error_chunk_is_named() -> None:
    with pytest.raises(ConformanceError, match="The agent failed"):
        validate_chunk({"error": {"message": "The agent failed.", "type": "server_error"}})


# ---------------------------------------------------------------------------------------
# validate_stream: accepts


def test_openai_text_stream_without_usage() -> None:
    report = validate_stream(sse(*OPENAI_TEXT), expect_usage=False)
    assert isinstance(report, StreamReport)
    assert report.content == "Hi there!"
    assert report.finish_reason == "stop"
    assert report.usage is None
    assert report.tool_calls == []
    assert report.chunks == OPENAI_TEXT
    assert report.id == HEAD["id"]
    assert report.model == HEAD["model"]


def test_openai_text_stream_with_usage_chunk() -> None:
    report = validate_stream(sse(*OPENAI_TEXT_USAGE), expect_usage=True)
    assert report.content == "Hi there!"
    assert report.usage == USAGE
    assert report.chunks[-1]["choices"] == []


def test_openai_tool_call_stream_split_across_deltas() -> None:
    report = validate_stream(sse(*OPENAI_TOOLS))
    assert report.finish_reason == "tool_calls"
    assert report.content == ""
    assert report.tool_calls == [
        {
            "id": "call_AbC1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
        },
        {
            "id": "call_DeF2",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
        },
    ]


def test_stream_with_two_choices() -> None:
    def two(
        delta0: dict[str, Any], delta1: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        return {
            **HEAD,
            "choices": [
                {"index": 0, "delta": delta0, "logprobs": None, "finish_reason": finish},
                {"index": 1, "delta": delta1, "logprobs": None, "finish_reason": finish},
            ],
        }

    role = {"role": "assistant", "content": ""}
    body = sse(two(role, role), two({"content": "a"}, {"content": "b"}), two({}, {}, "stop"))
    assert validate_stream(body).content == "a"


def test_stream_accepts_comments_crlf_and_nospace_data() -> None:
    body = ": keep-alive\r\n\r\n" + sse(*OPENAI_TEXT).replace("\n", "\r\n").replace(
        "data: ", "data:", 1
    )
    assert validate_stream(body).content == "Hi there!"


def test_stream_input_forms_agree() -> None:
    body = sse(*OPENAI_TEXT)
    lines = body.split("\n")[:-1]  # as iter_lines() yields them: no line breaks
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    for form in (body, body.encode(), [body.encode()], lines, pieces, iter(pieces)):
        assert validate_stream(form).chunks == OPENAI_TEXT


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_byte_chunks_split_anywhere_even_inside_utf8(data: st.DataObject) -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "héllo wörld 🙂 — ok"}),
        chunk({}, "stop"),
    ).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert validate_stream(parts).content == "héllo wörld 🙂 — ok"


def test_byte_chunks_split_at_every_byte() -> None:
    body = sse(chunk({"role": "assistant", "content": "é🙂"}), chunk({}, "stop")).encode()
    assert validate_stream([body[i : i + 1] for i in range(len(body))]).content == "é🙂"


def test_mock_agent_stream_passes() -> None:
    import asyncio

    async def collect() -> list[dict[str, Any]]:
        run = MockAgent(
            "m", tool_calls=[{"name": "f", "arguments": {"x": [1, 2]}}], reply="ok"
        ).run_streamed(USER)
        return [event.data.chunk async for event in run.stream_events()]

    chunks = asyncio.run(collect())
    report = validate_stream(sse(*chunks))
    assert report.content == "ok"
    assert report.tool_calls[0]["function"] == {"name": "f", "arguments": '{"x": [1, 2]}'}
    assert report.usage is not None


@pytest.fixture
def server_client() -> Any:
    app = ServerBase()
    agent = MockAgent("mock", "Hello from the mock agent")

    @app.agent("mock")
    async def mock(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return agent.run_streamed(messages) if stream else await agent.run(messages)

    @app.agent("plain")
    async def plain(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "plain text reply"

    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("name", ["mock", "plain"])
@pytest.mark.parametrize("include_usage", [True, False])
def test_robutler_server_streams_pass(server_client: Any, name: str, include_usage: bool) -> None:
    body = {"messages": USER, "stream": True, "stream_options": {"include_usage": include_usage}}
    with server_client.stream("POST", f"/{name}/chat/completions", json=body) as response:
        assert response.status_code == 200
        parts = list(response.iter_bytes())
    report = validate_stream(parts, expect_usage=name == "mock")
    assert report.content == ("Hello from the mock agent" if name == "mock" else "plain text reply")
    assert report.finish_reason == "stop"


@pytest.mark.parametrize("name", ["mock", "plain"])
def test_robutler_server_completions_pass(server_client: Any, name: str) -> None:
    response = server_client.post(f"/{name}/chat/completions", json={"messages": USER})
    body = validate_completion(response.content)
    assert body["choices"][0]["message"]["content"]


# ---------------------------------------------------------------------------------------
# validate_stream: rejects


def _rejects(body: Any, expected: str, **kwargs: Any) -> list[Problem]:
    with pytest.raises(ConformanceError) as exc:
        validate_stream(body, **kwargs)
    assert expected in messages_of(exc), str(exc.value)
    return exc.value.problems


def _with(
    index: int, change: Callable[[dict[str, Any]], Any], chunks: list[dict[str, Any]] = OPENAI_TEXT
) -> list[dict[str, Any]]:
    out = copy.deepcopy(chunks)
    change(out[index])
    return out


def test_rejects_missing_done() -> None:
    _rejects(sse(*OPENAI_TEXT, done=False), "does not end with data: [DONE]")


def test_rejects_data_after_done() -> None:
    problems = _rejects(
        sse(*OPENAI_TEXT) + sse(OPENAI_TEXT[-1], done=False), "data after data: [DONE]"
    )
    assert problems[0].index == 5


def test_rejects_last_event_without_blank_line() -> None:
    problems = _rejects(sse(*OPENAI_TEXT)[:-1], "not followed by a blank line")
    assert problems[0].index == 4
    _rejects(sse(*OPENAI_TEXT)[:-2], "not followed by a blank line")


def test_rejects_non_json_data_without_raising_json_errors() -> None:
    body = sse(OPENAI_TEXT[0], "{'content': 'Hi'}", *OPENAI_TEXT[1:])
    problems = _rejects(body, "not valid JSON")
    assert [p.index for p in problems if "JSON" in p.message] == [1]


def test_rejects_data_that_is_not_an_object() -> None:
    _rejects(sse(*OPENAI_TEXT[:2], "[1, 2]", *OPENAI_TEXT[2:]), "must be a JSON object, got array")


def test_rejects_lines_that_are_not_sse_fields() -> None:
    body = (
        sse(*OPENAI_TEXT[:2], done=False)
        + json.dumps(OPENAI_TEXT[2])
        + "\n\n"
        + sse(*OPENAI_TEXT[3:])
    )
    _rejects(body, "line 5 is not an SSE field")


def test_rejects_error_event_naming_its_message() -> None:
    error = {"error": {"message": "The agent failed. (request id 42)", "type": "server_error"}}
    problems = _rejects(sse(*OPENAI_TEXT[:2], error), "The agent failed. (request id 42)")
    assert problems[0].index == 2


@pytest.mark.parametrize(
    ("key", "value"), [("id", "chatcmpl-other"), ("created", 1741570284), ("model", "gpt-4o")]
)
def test_rejects_a_second_id_created_or_model(key: str, value: Any) -> None:
    problems = _rejects(
        sse(*_with(2, lambda c: c.update({key: value}))), f"{key} {value!r} differs"
    )
    assert [p.index for p in problems] == [2]


def test_rejects_first_chunk_without_assistant_role() -> None:
    _rejects(sse(*OPENAI_TEXT[1:]), "choice 0 starts without the assistant role")


def test_rejects_two_finishes() -> None:
    problems = _rejects(
        sse(*OPENAI_TEXT, OPENAI_TEXT[-1]), "choice 0 finishes again (it finished in chunk 3)"
    )
    assert problems[0].index == 4


def test_rejects_a_choice_that_never_finishes() -> None:
    problems = _rejects(sse(*OPENAI_TEXT[:-1]), "choice 0 never finished")
    assert problems[0].index is None


def test_rejects_content_after_finish() -> None:
    _rejects(
        sse(*OPENAI_TEXT, OPENAI_TEXT[1]), "choice 0 continues after its finish_reason in chunk 3"
    )


def test_rejects_usage_before_the_last_chunk() -> None:
    usage_chunk = OPENAI_TEXT_USAGE[-1]
    problems = _rejects(
        sse(*OPENAI_TEXT[:2], usage_chunk, *OPENAI_TEXT[2:]), "usage comes before the last chunk"
    )
    assert problems[0].index == 2


def test_rejects_usage_that_does_not_add_up() -> None:
    chunks = _with(-1, lambda c: c["usage"].update(total_tokens=99), OPENAI_TEXT_USAGE)
    problems = _rejects(
        sse(*chunks), "does not add up: prompt_tokens 9 + completion_tokens 2 != total_tokens 99"
    )
    assert problems[0].index == 4


def test_expect_usage() -> None:
    _rejects(
        sse(*OPENAI_TEXT), "the stream has no usage, but usage was expected", expect_usage=True
    )
    _rejects(
        sse(*OPENAI_TEXT_USAGE), "the stream has usage, but none was expected", expect_usage=False
    )


def test_rejects_tool_call_without_id() -> None:
    chunks = _with(4, lambda c: c["choices"][0]["delta"]["tool_calls"][0].pop("id"), OPENAI_TOOLS)
    problems = _rejects(sse(*chunks), "choice 0 tool call 1 has no id")
    assert problems[0].index == 4


def test_rejects_tool_call_without_name() -> None:
    chunks = _with(
        4, lambda c: c["choices"][0]["delta"]["tool_calls"][0]["function"].pop("name"), OPENAI_TOOLS
    )
    _rejects(sse(*chunks), "choice 0 tool call 1 has no function name")


def test_rejects_tool_call_without_type() -> None:
    chunks = _with(4, lambda c: c["choices"][0]["delta"]["tool_calls"][0].pop("type"), OPENAI_TOOLS)
    _rejects(sse(*chunks), "choice 0 tool call 1 has type None, expected 'function'")


def test_rejects_tool_call_arguments_that_assemble_to_invalid_json() -> None:
    chunks = [c for i, c in enumerate(OPENAI_TOOLS) if i != 3]  # drop the closing fragment
    problems = _rejects(sse(*chunks), "choice 0 tool call 0 arguments are not valid JSON")
    assert problems[0].index == 0


def test_rejects_tool_call_that_changes_id() -> None:
    chunks = _with(
        2, lambda c: c["choices"][0]["delta"]["tool_calls"][0].update(id="call_zzz"), OPENAI_TOOLS
    )
    _rejects(sse(*chunks), "changes id from 'call_AbC1' to 'call_zzz'")


def test_rejects_tool_calls_finish_without_tool_calls() -> None:
    _rejects(
        sse(*_with(3, lambda c: c["choices"][0].update(finish_reason="tool_calls"))),
        "streamed no tool calls",
    )


def test_chunk_defects_in_a_stream_carry_the_chunk_index() -> None:
    problems = _rejects(
        sse(*_with(2, lambda c: c["choices"][0].update(finish_reason="eos"))),
        "finish_reason is 'eos'",
    )
    assert problems[0].index == 2


def test_rejects_empty_stream() -> None:
    _rejects("", "the stream is empty")
    _rejects(b"", "the stream is empty")


def test_rejects_invalid_utf8() -> None:
    body = sse(*OPENAI_TEXT).encode().replace(b"Hi", b"H\xff")
    _rejects(body, "not valid UTF-8")


def test_rejects_stream_of_no_chunks() -> None:
    _rejects("data: [DONE]\n\n", "the stream has no chunks")


def test_stream_problems_are_all_collected() -> None:
    chunks = _with(1, lambda c: c.update(model="other", created="soon"))
    body = sse(*chunks[:-1], done=False)
    problems = _rejects(body, "created must be an integer")
    text = "\n".join(str(p) for p in problems)
    assert "chunk 1: model 'other' differs" in text
    assert "\nchoice 0 never finished" in text
    assert "\nthe stream does not end with data: [DONE]" in text
    assert len(problems) == 5, (
        text
    )  # created type, created differs, model differs, unfinished, no [DONE]


# ---------------------------------------------------------------------------------------
# robustness: whatever comes in, the only failure is a ConformanceError

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value = copy.deepcopy(value)
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


@settings(max_examples=150, deadline=None)
@given(st.data(), JSON)
def test_a_field_replaced_by_any_json_never_crashes_a_validator(
    data: st.DataObject, new: Any
) -> None:
    base = data.draw(
        st.sampled_from([OPENAI_COMPLETION, TOOL_COMPLETION, *OPENAI_TEXT_USAGE, *OPENAI_TOOLS])
    )
    path = data.draw(st.sampled_from(_paths(base)))
    value = _replace(base, path, new)
    validate = validate_completion if base.get("object") == "chat.completion" else validate_chunk
    try:
        validate(value)
    except ConformanceError as exc:
        assert exc.problems
    if base.get("object") == "chat.completion.chunk":
        chunks = [*OPENAI_TEXT_USAGE, value]
        try:
            validate_stream(sse(*chunks))
        except ConformanceError as exc:
            assert exc.problems


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.lists(st.text() | st.binary(), max_size=5)))
def test_any_input_gives_a_report_or_a_conformance_error(sse_input: Any) -> None:
    try:
        validate_stream(sse_input)
    except ConformanceError as exc:
        assert exc.problems
