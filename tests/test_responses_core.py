"""The Responses API core: requests to chat messages, response objects, and streamed events.

Each answer is checked by `robutler_testing`'s Responses validators and read back by the
official `openai` client (its SSE parser, its types, and the `client.responses.stream()`
accumulator), fed the encoder's exact bytes through an in-memory HTTP transport.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from robutler.server.agents_sdk import to_input_items
from robutler.server.protocol import RequestError, encode
from robutler.server.responses import (
    ResponsesEncoder,
    chat_messages,
    error_object,
    items_to_messages,
    new_response_id,
    objects,
    parse_responses_request,
    response_from_completion,
    response_json,
    response_json_from_completion,
    response_object,
    responses_usage,
)
from robutler.server.responses.wire import conversation
from robutler.server.results import UnsupportedResult, assemble
from robutler_testing.response_validators import validate_response, validate_response_stream

USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def parse(**body: Any) -> Any:
    body.setdefault("input", "hi")
    return parse_responses_request(json.dumps(body).encode())[1]


def client_for(body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    """The official client, answered with `body` for every request."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": content_type})

    return openai.OpenAI(
        api_key="unused",
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def call_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict:
    function: dict[str, Any] = {"arguments": args}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call["id"] = id
    return chunk({"tool_calls": [call]})


def encode_stream(items: Iterable[Any], **request: Any) -> tuple[bytes, ResponsesEncoder]:
    encoder = ResponsesEncoder(new_response_id(), 1_700_000_000, "agent-model", parse(**request))
    out = encoder.start()
    for item in items:
        out += encoder.item(item) or b""
    return out + encoder.finish(), encoder


# requests ------------------------------------------------------------------------------


def test_string_input_is_one_user_message() -> None:
    data, request, messages = parse_responses_request(
        b'{"model": "m", "input": "Hello", "seed": 7}'
    )
    assert messages == [{"role": "user", "content": "Hello"}]
    assert data["seed"] == 7 and request.model_extra == {"seed": 7}  # unknown fields kept
    assert request.stream is False and request.store is True


def test_input_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "zoom", "arguments": '{"x":2}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "a big cat"}],
        },
        {"type": "function_call", "call_id": "call_3", "name": "look", "arguments": "{}"},
    ]
    assert items_to_messages(items) == [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "look", "arguments": "{}"},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "zoom", "arguments": '{"x":2}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": "a big cat"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "look", "arguments": "{}"},
                }
            ],
        },
    ]


def test_assistant_refusal_part_and_file_part() -> None:
    messages = items_to_messages(
        [
            {"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        ]
    )
    assert messages == [
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]},
        {"role": "assistant", "content": None, "refusal": "No."},
    ]


def test_instructions_lead_and_previous_turns_come_before_the_input() -> None:
    _, request, given = parse_responses_request(
        json.dumps({"instructions": "Answer in French.", "input": "And now?"}).encode()
    )
    previous = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Salut"}]
    assert chat_messages(request, given, previous) == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "And now?"},
    ]
    assert chat_messages(parse(input="x"), [{"role": "user", "content": "x"}]) == [
        {"role": "user", "content": "x"}
    ]


def test_tools_and_tool_choice_in_the_chat_shape() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
    request = parse(
        tools=[tool, {"type": "web_search"}], tool_choice={"type": "function", "name": "f"}
    )
    assert request.chat_tools() == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "web_search"},
    ]
    assert request.chat_tool_choice() == {"type": "function", "function": {"name": "f"}}
    assert parse(tool_choice="required").chat_tool_choice() == "required"
    assert parse().chat_tools() is None


BAD_REQUESTS = [
    ({}, "input", "Missing required parameter"),
    ({"input": 5}, "input", "string"),
    ({"input": [5]}, "input[0]", "object"),
    ({"input": [{"content": "hi"}]}, "input[0].role", "missing"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role", "robot"),
    ({"input": [{"role": "user"}]}, "input[0].content", "missing"),
    ({"input": [{"role": "user", "content": 3}]}, "input[0].content", "string or an array"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "input[0].content[0].text",
        "string",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "input[0].content[0].type",
        "input_audio",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "input[0].content[0].image_url",
        "file_id",
    ),
    (
        {"input": [{"role": "assistant", "content": [{"type": "input_image"}]}]},
        "input[0].content[0].type",
        "output_text or refusal",
    ),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type", "reasoning"),
    ({"input": [{"type": 7}]}, "input[0].type", "string"),
    (
        {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "input[0].call_id",
        "missing",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        "input[0].arguments",
        "string",
    ),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "missing"),
    ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output", "missing"),
    (
        {"input": [{"type": "function_call_output", "call_id": "c", "output": 1}]},
        "input[0].output",
        "string",
    ),
    ({"input": [{"type": {}, "call_id": "c", "output": ""}]}, "input[0].type", "string"),
    ({"input": "x", "stream": "yes"}, "stream", "boolean"),
    ({"input": "x", "store": 1}, "store", "boolean"),
    ({"input": "x", "instructions": ["a"]}, "instructions", "string"),
    ({"input": "x", "temperature": 3}, "temperature", "less than or equal"),
    ({"input": "x", "top_p": -1}, "top_p", "greater than or equal"),
    ({"input": "x", "presence_penalty": 2.5}, "presence_penalty", "less than or equal"),
    ({"input": "x", "frequency_penalty": "lots"}, "frequency_penalty", "number"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens", "greater than or equal"),
    ({"input": "x", "metadata": {"k": 1}}, "metadata.k", "string"),
    ({"input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "16"),
    ({"input": "x", "metadata": {"k": "v" * 513}}, "metadata.k", "512"),
    ({"input": "x", "tool_choice": "sometimes"}, "tool_choice", "'auto'"),
    ({"input": "x", "tools": [{"name": "f"}]}, "tools[0].type", "string"),
    (
        {"input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]},
        "tools[0].name",
        "Chat Completions tool",
    ),
    ({"input": "x", "previous_response_id": 5}, "previous_response_id", "string"),
    ({"input": "x", "truncation": "sometimes"}, "truncation", "auto"),
]


@pytest.mark.parametrize(("body", "param", "words"), BAD_REQUESTS)
def test_bad_request_names_the_field(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_responses_request(json.dumps(body).encode())
    assert info.value.status == 422
    assert info.value.param == param, info.value.message
    assert param in info.value.message
    assert words in info.value.message


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"", "invalid_json"), (b"{", "invalid_json"), (b"[1]", "invalid_json")],
)
def test_body_that_is_not_an_object(body: bytes, code: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_responses_request(body)
    assert (info.value.status, info.value.code) == (422, code)


@pytest.mark.parametrize(
    ("field", "value"),
    [("background", True), ("conversation", "conv_1"), ("prompt", {"id": "pmpt_1"})],
)
def test_features_robutler_does_not_offer_are_refused(field: str, value: Any) -> None:
    with pytest.raises(RequestError) as info:
        parse_responses_request(json.dumps({"input": "x", field: value}).encode())
    assert (info.value.status, info.value.param) == (400, field)
    assert info.value.code == "unsupported_parameter"
    assert parse(background=False).background is False  # saying no is fine


def test_limits_on_items_and_nesting() -> None:
    with pytest.raises(RequestError) as info:
        parse_responses_request(json.dumps({"input": ["x"] * 3}).encode(), max_messages=2)
    assert (info.value.param, info.value.code) == ("input", "too_many_messages")
    deep: Any = "x"
    for _ in range(10):
        deep = {"a": deep}
    with pytest.raises(RequestError) as info:
        parse_responses_request(json.dumps({"input": "x", "metadata": deep}).encode(), max_depth=5)
    assert info.value.code == "too_deeply_nested"


# chat messages -> Responses input items -> chat messages: nothing lost ----------------

texts = st.text(min_size=1, max_size=12)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
            for call in messages[-1]["tool_calls"]:
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": draw(texts)}
                )
            continue
        role = draw(st.sampled_from(["user", "system", "developer", "assistant"]))
        if role == "assistant" and messages and messages[-1]["role"] != "assistant":
            calls = [
                {
                    "id": f"call_{len(messages)}_{i}",
                    "type": "function",
                    "function": {"name": draw(texts), "arguments": json.dumps({"i": i})},
                }
                for i in range(draw(st.integers(0, 2)))
            ]
            message: dict[str, Any] = {"role": "assistant", "content": draw(texts)}
            if calls:
                message["content"] = draw(st.one_of(st.none(), texts))
                message["tool_calls"] = calls
            messages.append(message)
        elif role != "assistant":
            content: Any = draw(
                st.one_of(
                    texts,
                    st.lists(
                        st.one_of(
                            texts.map(lambda t: {"type": "text", "text": t}),
                            texts.map(
                                lambda t: {
                                    "type": "image_url",
                                    "image_url": {"url": "https://x/" + t, "detail": "auto"},
                                }
                            ),
                        ),
                        min_size=2,
                        max_size=3,
                    ),
                )
            )
            messages.append({"role": role, "content": content})
    return messages


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_chat_messages_survive_the_round_trip_through_input_items(messages: list[dict]) -> None:
    assert items_to_messages(to_input_items(messages)) == messages


# response objects ----------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "agent-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        **extra,
    }


def build(comp: dict[str, Any], **request: Any) -> dict[str, Any]:
    return response_from_completion(
        comp,
        response_id=new_response_id(),
        created_at=1_700_000_000,
        model="m",
        request=parse(**request),
    )


def test_response_from_a_text_completion() -> None:
    body = build(
        completion({"role": "assistant", "content": "Hello"}, usage=USAGE), metadata={"a": "b"}
    )
    validate_response(body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert (body["status"], body["model"], body["metadata"]) == (
        "completed",
        "agent-model",
        {"a": "b"},
    )
    assert body["usage"]["input_tokens"] == 3 and body["usage"]["output_tokens"] == 4
    assert body["usage"]["total_tokens"] == 7
    parsed = client_for(json.dumps(body).encode(), "application/json").responses.create(
        model="m", input="hi"
    )
    assert parsed.output_text == "Hello"
    assert parsed.id == body["id"]


def test_response_without_usage_has_none() -> None:
    body = build(completion({"role": "assistant", "content": "Hello"}))
    validate_response(body)
    assert body["usage"] is None


def test_response_with_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    body = build(
        completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls")
    )
    validate_response(body)
    assert [i["type"] for i in body["output"]] == ["function_call", "function_call"]
    assert [(i["call_id"], i["name"], i["arguments"]) for i in body["output"]] == [
        ("call_1", "f", '{"a": 1}'),
        ("call_2", "g", "{}"),
    ]
    assert len({i["id"] for i in body["output"]}) == 2
    with_text = build(
        completion({"role": "assistant", "content": "Let me see.", "tool_calls": calls})
    )
    assert [i["type"] for i in with_text["output"]] == ["message", "function_call", "function_call"]


def test_length_finish_is_an_incomplete_response() -> None:
    body = build(completion({"role": "assistant", "content": "Hel"}, "length"))
    validate_response(body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"


def test_response_echoes_the_request() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    body = build(
        completion({"role": "assistant", "content": "x"}),
        instructions="Be kind.",
        tools=[tool],
        tool_choice="required",
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=50,
        previous_response_id="resp_prev",
        store=False,
        parallel_tool_calls=False,
        user="u1",
        presence_penalty=0.25,
        frequency_penalty=-1,
        reasoning={"effort": "low"},
        prompt_cache_key="k",
    )
    validate_response(body)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.25, -1)
    assert body["reasoning"] == {"effort": "low", "summary": None}
    assert (body["prompt_cache_key"], body["safety_identifier"]) == ("k", None)
    complete = {**tool, "description": None, "strict": None}  # every field of a FunctionTool
    assert body["instructions"] == "Be kind." and body["tools"] == [complete]
    assert (body["tool_choice"], body["temperature"], body["top_p"]) == ("required", 0.5, 0.9)
    assert (body["max_output_tokens"], body["previous_response_id"]) == (50, "resp_prev")
    assert (body["store"], body["parallel_tool_calls"], body["user"]) == (False, False, "u1")


def test_a_response_to_a_bare_request_has_the_specs_defaults() -> None:
    """Sampling values the request left out are the API's defaults, as numbers."""
    body = build(completion({"role": "assistant", "content": "x"}))
    validate_response(body)
    defaults = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs")
    assert [body[k] for k in defaults] == [1.0, 1.0, 0.0, 0.0, 0]
    assert (body["service_tier"], body["reasoning"], body["safety_identifier"]) == (
        "default",
        None,
        None,
    )


answers = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.one_of(
            st.none(), st.text(max_size=8), st.just([{"type": "text", "text": "a"}])
        ),
        "refusal": st.one_of(st.none(), st.text(max_size=4)),
        "tool_calls": st.lists(
            st.fixed_dictionaries(  # with ids: an id the server makes up is random
                {
                    "id": st.sampled_from(["call_1", "call_2"]),
                    "type": st.just("function"),
                    "function": st.just({"name": "f", "arguments": "{}"}),
                }
            ),
            max_size=2,
        ),
    },
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "instructions": st.text(max_size=4),
        "metadata": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
        "store": st.booleans(),
        "temperature": st.floats(0, 2),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "truncation": st.sampled_from(["auto", "disabled"]),
        "reasoning": st.just({"effort": "low"}),
        "stream": st.booleans(),
        "model": st.text(max_size=4),
        "unknown_field": st.integers(),
    },
)


@settings(max_examples=200, deadline=None)
@example({"role": "assistant", "content": "a", "refusal": "no"}, "stop", None, "m", {})
@example({"role": "assistant", "content": "a", "tool_calls": [CALL]}, "stop", None, "m", {})
@example({"role": "assistant", "content": [{"type": "text", "text": "a"}]}, "stop", None, "m", {})
@example({"role": "assistant", "content": "a"}, "stop", USAGE, "m", {})
@example({"role": "assistant", "content": "a"}, "length", USAGE, None, {"store": False})
@given(
    answers,
    st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]),
    st.one_of(st.none(), st.just(USAGE)),
    st.sampled_from(["agent-model", "", 'modèle "x"', None]),
    requests,
)
def test_the_encoded_response_is_the_objects_encoding_byte_for_byte(
    message: dict[str, Any],
    finish: str | None,
    usage: dict[str, Any] | None,
    model: str | None,
    body: dict[str, Any],
) -> None:
    """The JSON answer's shortcuts (the request's echo encoded once, a template for text
    answers) write exactly what encoding the response object would."""
    comp = completion(message, finish or "stop", **({"usage": usage} if usage else {}))
    if finish is None:
        comp["choices"][0].pop("finish_reason")
    comp["model"] = model
    request = parse(**body)
    assert request.echo_json() == encode(request.echo())
    args = {"response_id": new_response_id(), "created_at": 7, "model": "m", "request": request}
    with pytest.MonkeyPatch.context() as patch:  # one completed_at for both
        patch.setattr(objects.time, "time", lambda: 1_800_000_000.5)
        encoded = response_json_from_completion(comp, **args)
        assert encoded == encode(response_from_completion(comp, **args))
    validate_response(encoded)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["completed", "in_progress", "incomplete", "failed"]),
    st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2), max_size=2),
    st.one_of(st.none(), st.just(responses_usage(USAGE))),
    st.one_of(st.none(), st.just({"code": "server_error", "message": "m"})),
    st.one_of(st.none(), st.just({"reason": "max_output_tokens"})),
    requests,
)
def test_response_json_is_the_response_objects_encoding(
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    error: dict[str, Any] | None,
    incomplete: dict[str, Any] | None,
    body: dict[str, Any],
) -> None:
    """What a stream's encoder writes its snapshots with: the object, encoded from parts."""
    request = parse(**body)
    rid = new_response_id()
    extra = {"usage": usage, "error": error, "incomplete_details": incomplete}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(objects.time, "time", lambda: 1_800_000_000.5)
        encoded = response_json(
            rid, 7, "m", request.echo_json(), status=status, output=encode(output), **extra
        )
        expected = response_object(
            rid, 7, "m", request.echo(), status=status, output=output, **extra
        )
    assert encoded == encode(expected)


@given(st.text(max_size=8), st.sampled_from(["in_progress", "completed", "incomplete"]))
def test_the_part_and_item_templates_encode_what_the_builders_build(text: str, status: str) -> None:
    parts = [objects.output_text(text), objects.refusal_part(text)]
    encoded = [objects.TEXT_PART_JSON % encode(text), objects.REFUSAL_PART_JSON % encode(text)]
    assert encoded == [encode(p) for p in parts]
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": status}
    got = objects.MESSAGE_ITEM_JSON % (encode("msg_1"), status.encode(), b",".join(encoded))
    assert got == encode({**item, "content": parts})


# One value for every field of the request model (but `input`), each unlike its default.
ONE_FIELD = {
    "model": "m",
    "instructions": "Be brief.",
    "stream": True,
    "store": False,
    "previous_response_id": "resp_1",
    "tools": [{"type": "function", "name": "f"}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "metadata": {"k": "v"},
    "temperature": 0.5,
    "top_p": 0.5,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "max_output_tokens": 9,
    "max_tool_calls": 2,
    "top_logprobs": 3,
    "truncation": "auto",
    "text": {"format": {"type": "json_object"}},
    "reasoning": {"effort": "low"},
    "include": ["x"],
    "user": "u",
    "safety_identifier": "s",
    "prompt_cache_key": "k",
    "service_tier": "auto",
    "stream_options": {"include_obfuscation": False},
    "background": False,
}


def test_one_field_table_covers_the_request_model() -> None:
    from robutler.server.responses import ResponsesRequest

    assert set(ONE_FIELD) == set(ResponsesRequest.model_fields) - {"input"}


@pytest.mark.parametrize("name", sorted(ONE_FIELD))
def test_echo_json_is_the_echo_for_a_request_that_sets_one_field(name: str) -> None:
    request = parse(**{name: ONE_FIELD[name]})
    assert request.echo_json() == encode(request.echo())


def test_responses_usage_accepts_either_shape() -> None:
    assert responses_usage(None) is None and responses_usage({}) is None
    chat = {
        **USAGE,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    assert responses_usage(chat) == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 7,
    }
    assert responses_usage({"input_tokens": 5, "output_tokens": 1})["total_tokens"] == 6


def test_error_object_uses_a_code_the_type_allows() -> None:
    body = {"error": {"message": "Busy", "type": "rate_limit_error", "param": None, "code": "x"}}
    assert error_object(body) == {
        "code": "rate_limit_exceeded",
        "message": "Busy",
        "type": "rate_limit_error",
    }
    assert (
        error_object({"error": {"message": "Boom", "type": "server_error"}})["code"]
        == "server_error"
    )


# streams -------------------------------------------------------------------------------


def read_with_client(body: bytes) -> tuple[list[Any], Any]:
    """The events `client.responses.create(stream=True)` yields, and the final response
    that `client.responses.stream()` assembles."""
    client = client_for(body)
    events = list(client.responses.create(model="m", input="hi", stream=True))
    with client.responses.stream(model="m", input="hi") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    return events, final


def test_text_stream() -> None:
    body, encoder = encode_stream(["Hel", "lo", " world"])
    report = validate_response_stream(body, expect_usage=False)
    assert report.text == "Hello world" and report.status == "completed"
    assert report.event_types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in report.events] == list(range(11))
    events, final = read_with_client(body)
    assert [e.type for e in events] == report.event_types
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == [
        "Hel",
        "lo",
        " world",
    ]
    assert final.output_text == "Hello world" and final.id == encoder.response_id
    assert encoder.response is not None and encoder.response["output"] == report.response["output"]


def test_each_sse_frame_names_its_event() -> None:
    body, _ = encode_stream(["a"])
    frames = body.decode().split("\n\n")[:-1]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert json.loads(data_line[6:])["type"] == event_line[7:]


def test_chunk_stream_with_usage_and_tool_call() -> None:
    items = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me look."}),
        call_delta(0, id="call_1", name="lookup", args=""),
        call_delta(0, args='{"q": '),
        call_delta(0, args='"cats"}'),
        chunk(finish="tool_calls"),
        {"choices": [], "usage": USAGE},
    ]
    body, encoder = encode_stream(items)
    report = validate_response_stream(body, expect_usage=True)
    assert report.text == "Let me look."
    assert [(c["call_id"], c["name"], c["arguments"]) for c in report.tool_calls] == [
        ("call_1", "lookup", '{"q": "cats"}')
    ]
    assert report.usage is not None and report.usage["total_tokens"] == 7
    assert encoder.usage == USAGE  # the agent's own usage, for pricing and hooks
    _, final = read_with_client(body)
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_1", "lookup", '{"q": "cats"}')
    ]
    assert final.usage is not None and final.usage.total_tokens == 7


def test_interleaved_tool_calls_and_names_in_pieces() -> None:
    items = [
        call_delta(0, id="call_a", name="fi", args=""),
        call_delta(0, name="nd"),  # the name arrives in two pieces
        call_delta(1, id="call_b", name="add", args='{"x":'),
        call_delta(0, args='{"q": 1}'),
        call_delta(1, args=" 2}"),
        chunk(finish="tool_calls"),
    ]
    body, _ = encode_stream(items)
    report = validate_response_stream(body)
    assert sorted((c["call_id"], c["name"], c["arguments"]) for c in report.tool_calls) == [
        ("call_a", "find", '{"q": 1}'),
        ("call_b", "add", '{"x": 2}'),
    ]
    _, final = read_with_client(body)
    assert [(c.call_id, c.arguments) for c in final.output] == [
        ("call_a", '{"q": 1}'),
        ("call_b", '{"x": 2}'),
    ]


def test_tool_call_without_id_or_arguments_gets_an_id() -> None:
    body, _ = encode_stream([call_delta(0, name="ping")])
    report = validate_response_stream(body.replace(b'"arguments":""', b'"arguments":"{}"'))
    assert report.tool_calls[0]["call_id"].startswith("call_")
    assert report.tool_calls[0]["name"] == "ping"


def test_text_after_a_tool_call_is_a_second_message() -> None:
    items = [chunk({"content": "A"}), call_delta(0, id="c", name="f", args="{}"), "B"]
    body, _ = encode_stream(items)
    report = validate_response_stream(body)
    assert report.text == "AB"
    assert [i["type"] for i in report.response["output"]] == ["message", "function_call", "message"]


def test_refusal_is_a_refusal_part() -> None:
    body, _ = encode_stream([chunk({"refusal": "I can't "}), chunk({"refusal": "help."})])
    report = validate_response_stream(body)
    assert report.refusal == "I can't help." and report.text == ""
    _, final = read_with_client(body)
    assert final.output[0].content[0].type == "refusal"


def test_an_empty_answer_is_an_empty_message() -> None:
    body, _ = encode_stream([])
    report = validate_response_stream(body)
    assert report.text == "" and report.response["output"][0]["content"][0]["text"] == ""
    assert read_with_client(body)[1].output_text == ""


def test_length_finish_streams_response_incomplete() -> None:
    body, _ = encode_stream(["Hel", chunk(finish="length")])
    report = validate_response_stream(body)
    assert report.status == "incomplete" and report.event_types[-1] == "response.incomplete"
    assert report.response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_nothing_follows_the_finish_and_other_choices_are_ignored() -> None:
    items = [
        "Hi",
        {"choices": [{"index": 1, "delta": {"content": "other choice"}, "finish_reason": None}]},
        chunk({"content": [{"type": "text", "text": "!"}]}, "stop"),
        chunk({"content": "after the finish"}),
        "also after",
    ]
    report = validate_response_stream(encode_stream(items)[0])
    assert report.text == "Hi!"


def test_methods_before_start_send_the_opening_events_first() -> None:
    encoder = ResponsesEncoder(new_response_id(), 1, "m", parse())
    body = (encoder.item("x") or b"") + encoder.finish()
    report = validate_response_stream(body)
    assert report.event_types[:2] == ["response.created", "response.in_progress"]
    assert encoder.start() == b""  # once only


def test_set_model_names_the_agents_model() -> None:
    encoder = ResponsesEncoder(new_response_id(), 1, "m", parse())
    encoder.set_model("gpt-agent")
    report = validate_response_stream(encoder.start() + encoder.finish())
    assert report.model == "gpt-agent" and report.response["model"] == "gpt-agent"


def test_failure_after_the_start_is_response_failed() -> None:
    encoder = ResponsesEncoder(new_response_id(), 1, "m", parse())
    body = encoder.start() + (encoder.item("Half an ans") or b"")
    body += encoder.error(
        {"error": {"message": "The agent failed. (request id r1)", "type": "server_error"}}
    )
    report = validate_response_stream(body)
    assert report.status == "failed" and report.event_types[-1] == "response.failed"
    assert report.error == {
        "code": "server_error",
        "message": "The agent failed. (request id r1)",
        "type": "server_error",
    }
    assert report.response["output"][0]["status"] == "incomplete"
    events = list(client_for(body).responses.create(model="m", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "The agent failed. (request id r1)"


def test_an_unsupported_stream_item_is_named() -> None:
    encoder = ResponsesEncoder(new_response_id(), 1, "m", parse())
    with pytest.raises(UnsupportedResult, match="int"):
        encoder.item(5)


# streamed and not streamed agree --------------------------------------------------------

deltas = st.text(min_size=1, max_size=6)


@st.composite
def stream_items(draw: st.DrawFn) -> list[Any]:
    items: list[Any] = []
    if draw(st.booleans()):
        items.append(chunk({"role": "assistant", "content": ""}))
    for piece in draw(st.lists(deltas, max_size=5)):
        items.append(piece if draw(st.booleans()) else chunk({"content": piece}))
    calls = draw(st.integers(0, 2))
    for index in range(calls):
        args = json.dumps({"n": draw(st.integers(-5, 5)), "s": draw(deltas)})
        cut = draw(st.integers(0, len(args)))
        items.append(call_delta(index, id=f"call_{index}", name=f"tool{index}", args=args[:cut]))
        if cut < len(args):
            items.append(call_delta(index, args=args[cut:]))
    items.append(
        chunk(finish=draw(st.sampled_from(["stop", "tool_calls" if calls else "stop", "length"])))
    )
    if draw(st.booleans()):
        items.append({"choices": [], "usage": USAGE})
    return items


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


@settings(max_examples=120, deadline=None)
@given(stream_items())
def test_stream_and_json_give_the_same_response(items: list[Any]) -> None:
    import asyncio

    body, encoder = encode_stream(items)
    report = validate_response_stream(body)
    assert encoder.response is not None
    comp = asyncio.run(assemble(_aiter(items), "chatcmpl-1", 1, "agent-model"))
    json_body = response_from_completion(
        comp,
        response_id=encoder.response_id,
        created_at=1_700_000_000,
        model="agent-model",
        request=parse(),
    )
    validate_response(json_body)

    def essence(response: dict[str, Any]) -> list[Any]:
        return [
            (i["type"], i.get("content"), i.get("call_id"), i.get("name"), i.get("arguments"))
            for i in response["output"]
            if not (
                i["type"] == "message"
                and i["content"]
                == [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]
            )
        ]

    assert essence(json_body) == essence(report.response)
    assert (json_body["status"], json_body["usage"]) == (report.status, report.usage)
    if report.status == "completed":  # the helper gives a final response for completed only
        assert read_with_client(body)[1].output_text == report.text


def test_a_stored_conversation_is_its_input_then_its_output_also_in_the_old_shape() -> None:
    output = [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Salut", "annotations": []}],
        }
    ]
    record = {"response": {"output": output}, "input": [{"role": "user", "content": "Hi"}]}
    assert conversation(record) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
    ]
    # records written before the output was kept as output alone hold the whole turn
    old = {"response": {"output": output}, "messages": [{"role": "user", "content": "x"}]}
    assert conversation(old) == [{"role": "user", "content": "x"}]


def test_items_that_stand_for_others_are_left_for_the_wire() -> None:
    from robutler.server.responses.request import items_to_messages, splice

    pending: list[Any] = []
    items = [
        {"role": "user", "content": "a"},
        {"type": "item_reference", "id": "msg_1"},
        {"type": "compaction", "encrypted_content": "x"},
    ]
    messages = items_to_messages(items, "input", pending)
    assert [path for _, _, path in pending] == ["input[1]", "input[2]"]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    expansions = {
        id(pending[0][0]): [{"role": "assistant", "content": "b"}],
        id(pending[1][0]): [{"role": "assistant", "content": None, "tool_calls": [call]}],
    }
    assert splice(messages, expansions) == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "tool_calls": [call]},
    ]
    with pytest.raises(RequestError) as info:  # refused where nothing resolves them
        items_to_messages(items, "input")
    assert info.value.param == "input[1].type"
    with pytest.raises(RequestError) as info:  # a type that is no string, with pending too
        items_to_messages([{"type": {}, "call_id": "c", "output": ""}], "input", [])
    assert info.value.param == "input[0].type"
