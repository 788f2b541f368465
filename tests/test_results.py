"""Every row of the §Agents result table, streaming and not, through the ASGI app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import JSON_TYPE, post, sse_events, stream_content
from starlette.responses import JSONResponse, StreamingResponse

from robutler.server import ServerBase

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "agent-chunk",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "agent-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


async def agen_str() -> AsyncIterator[str]:
    for piece in ["Hel", "lo", " world"]:
        yield piece


def gen_str() -> Iterator[str]:
    yield from ["Hel", "lo", " world"]


async def agen_chunks() -> AsyncIterator[dict[str, Any]]:
    yield chunk("")
    yield chunk("Hello")
    yield chunk(" world")
    yield chunk(finish="stop", usage=USAGE)


class Events:
    """An object with stream_events(), like a streamed run result."""

    def stream_events(self) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[Any]:
            yield SimpleNamespace(type="other", data=SimpleNamespace(foo=1))
            async for c in agen_chunks():
                yield SimpleNamespace(type="chunk", data=SimpleNamespace(chunk=c))

        return events()


COMPLETION = {
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello world"},
            "finish_reason": "stop",
        }
    ],
    "model": "agent-model",
    "usage": USAGE,
}
TOOL_MESSAGE = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
        }
    ],
}

PARTS = [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}]

# name -> (factory of the agent's return value, expected content, expected model, has usage)
CASES: dict[str, tuple[Any, str, str, bool]] = {
    "str": (lambda: "Hello world", "Hello world", "req-model", False),
    "completion": (lambda: dict(COMPLETION), "Hello world", "agent-model", True),
    "message": (
        lambda: {"role": "assistant", "content": "Hello world"},
        "Hello world",
        "req-model",
        False,
    ),
    "async_iter_str": (agen_str, "Hello world", "req-model", False),
    "sync_iter_str": (gen_str, "Hello world", "req-model", False),
    "list_str": (lambda: ["Hel", "lo", " world"], "Hello world", "req-model", False),
    "async_iter_chunks": (agen_chunks, "Hello world", "agent-model", True),
    "sync_iter_chunks": (
        lambda: iter([chunk("Hello"), chunk(" world"), chunk(finish="stop", usage=USAGE)]),
        "Hello world",
        "agent-model",
        True,
    ),
    "stream_events": (Events, "Hello world", "agent-model", True),
    "final_output_str": (
        lambda: SimpleNamespace(final_output="Hello world"),
        "Hello world",
        "req-model",
        False,
    ),
    "final_output_completion": (
        lambda: SimpleNamespace(final_output=dict(COMPLETION)),
        "Hello world",
        "agent-model",
        True,
    ),
    "message_parts": (
        lambda: {"role": "assistant", "content": list(PARTS)},
        "Hello world",
        "req-model",
        False,
    ),
    "completion_parts": (
        lambda: {
            **COMPLETION,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": list(PARTS)}},
            ],
        },
        "Hello world",
        "agent-model",
        True,
    ),
    "chunk_parts": (
        lambda: iter(
            [
                {"choices": [{"index": 0, "delta": {"content": [PARTS[0]]}}]},
                {"choices": [{"index": 0, "delta": {"content": [PARTS[1]]}}]},
            ]
        ),
        "Hello world",
        "req-model",
        False,
    ),
}


@pytest.fixture
def result_client() -> Any:
    app = ServerBase()
    for name, (factory, *_rest) in CASES.items():

        def make(factory: Any = factory) -> Any:
            async def handler(messages: list[dict[str, Any]], stream: bool = False) -> Any:
                return factory()

            return handler

        app.agent(name.replace("_", "-"))(make())
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("case", list(CASES))
def test_non_streaming_result(result_client: Any, case: str) -> None:
    _, content, model, has_usage = CASES[case]
    response = post(result_client, case.replace("_", "-"), model="req-model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-" + response.headers["x-request-id"]
    assert body["model"] == model
    assert body["choices"][0]["message"] == {"role": "assistant", "content": content}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert ("usage" in body) is has_usage
    if has_usage:
        assert body["usage"] == USAGE


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_streaming_result(result_client: Any, case: str, include_usage: bool) -> None:
    _, content, model, has_usage = CASES[case]
    response = post(
        result_client,
        case.replace("_", "-"),
        model="req-model",
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {"chatcmpl-" + response.headers["x-request-id"]}
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {model}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:] if c["choices"])
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop"]
    assert stream_content(chunks) == content
    # The agent's usage is reported exactly once: on OpenAI's separate usage chunk when the
    # client asked for include_usage, otherwise on the last (finish) chunk.
    usage_chunks = [c for c in chunks if c.get("usage")]
    if not has_usage:
        assert usage_chunks == []
    elif include_usage:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    else:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["usage"] == USAGE


def test_str_stream_has_no_artificial_chunking(result_client: Any) -> None:
    events = sse_events(post(result_client, "async-iter-str", stream=True).text)
    contents = [c["choices"][0]["delta"].get("content") for c in events[:-1]]
    assert contents == ["Hel", "lo", " world", None]


def test_tool_call_message(app: ServerBase) -> None:
    @app.agent("tools")
    async def tools(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return dict(TOOL_MESSAGE)

    with TestClient(app) as client:
        body = post(client, "tools").json()
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call == {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
        events = sse_events(post(client, "tools", stream=True).text)
        chunks = events[:-1]
        deltas = [
            d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])
        ]
        assert deltas == [{"index": 0, **call}]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_deltas_assembled(app: ServerBase) -> None:
    @app.agent("tooldeltas")
    async def tooldeltas(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        def d(call: dict[str, Any]) -> dict[str, Any]:
            return {
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]
            }

        yield d(
            {
                "index": 0,
                "id": "call_a",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            }
        )
        yield d({"index": 0, "function": {"arguments": '{"x"'}})
        yield d({"index": 0, "function": {"arguments": ": 1}"}})
        yield d(
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "g", "arguments": "{}"},
            }
        )

    with TestClient(app) as client:
        body = post(client, "tooldeltas").json()
        message = body["choices"][0]["message"]
        assert body["choices"][0]["finish_reason"] == "tool_calls"
        assert message["content"] is None
        assert [c["function"] for c in message["tool_calls"]] == [
            {"name": "f", "arguments": '{"x": 1}'},
            {"name": "g", "arguments": "{}"},
        ]
        assert [c["id"] for c in message["tool_calls"]] == ["call_a", "call_b"]
        chunks = sse_events(post(client, "tooldeltas", stream=True).text)[:-1]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_starlette_responses_pass_through(app: ServerBase) -> None:
    @app.agent("raw")
    async def raw(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        if stream:

            async def body() -> AsyncIterator[bytes]:
                yield b"data: custom\n\n"

            return StreamingResponse(
                body(), media_type="text/event-stream", headers={"x-custom": "1"}
            )
        return JSONResponse({"custom": True}, status_code=201)

    with TestClient(app) as client:
        response = post(client, "raw")
        assert (response.status_code, response.json()) == (201, {"custom": True})
        response = post(client, "raw", stream=True)
        assert response.text == "data: custom\n\n"
        assert response.headers["x-custom"] == "1"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (42, "int"),
        (None, "NoneType"),
        (object(), "object"),
        ({"unexpected": 1}, "dict"),
        (b"bytes", "bytes"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_unsupported_result_is_500_naming_the_type(
    app: ServerBase, value: Any, type_name: str, stream: bool
) -> None:
    @app.agent("bad")
    async def bad(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return value

    with TestClient(app) as client:
        response = post(client, "bad", stream=stream)
    assert response.status_code == 500
    error = response.json()["error"]
    assert f"'{type_name}'" in error["message"]
    assert error["type"] == "server_error"


@pytest.mark.parametrize("stream", [False, True])
def test_content_parts_are_joined_into_text_the_official_client_accepts(
    app: ServerBase, stream: bool
) -> None:
    from openai.types.chat import ChatCompletion

    from robutler_testing import validate_completion, validate_stream

    @app.agent("parts")
    async def parts(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return {"role": "assistant", "content": [*PARTS, {"type": "output_text", "text": "!"}]}

    with TestClient(app) as client:
        response = post(client, "parts", stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        assert validate_stream(response.text).content == "Hello world!"
    else:
        body = validate_completion(response.json())
        assert body["choices"][0]["message"]["content"] == "Hello world!"
        ChatCompletion.model_validate(body, strict=True)


@pytest.mark.parametrize("stream", [False, True])
def test_a_content_part_that_is_not_text_is_500_naming_its_type(
    app: ServerBase, stream: bool
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}

    @app.agent("image")
    async def image_agent(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return {"role": "assistant", "content": [PARTS[0], image]}

    with TestClient(app) as client:
        response = post(client, "image", stream=stream)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "unsupported_result"
    assert "content part of type 'image_url'" in error["message"]


def test_unsupported_item_mid_stream_is_an_error_event(app: ServerBase) -> None:
    @app.agent("mixed")
    async def mixed(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        yield "fine"
        yield 3.5

    with TestClient(app) as client:
        events = sse_events(post(client, "mixed", stream=True).text)
    assert events[0]["choices"][0]["delta"]["content"] == "fine"
    assert "'float'" in events[-2]["error"]["message"]
    assert events[-1] == "[DONE]"


def test_sync_handler_and_optional_parameters(app: ServerBase) -> None:
    seen: dict[str, Any] = {}

    @app.agent("sync")
    def sync(
        messages: list[dict[str, Any]],
        stream: bool = False,
        context: Any = None,
        request: Any = None,
    ) -> str:
        seen.update(context=context, request=request, stream=stream)
        return "from a thread"

    @app.agent("bare")
    async def bare(messages: list[dict[str, Any]]) -> str:
        return "only messages"

    with TestClient(app) as client:
        assert post(client, "sync").json()["choices"][0]["message"]["content"] == "from a thread"
        assert post(client, "bare").json()["choices"][0]["message"]["content"] == "only messages"
    assert seen["context"] is not None and seen["context"].agent_name == "sync"
    assert seen["request"].url.path == "/sync/chat/completions"
    assert seen["stream"] is False


def test_messages_reach_agent_with_every_field(app: ServerBase) -> None:
    received: list[Any] = []

    @app.agent("fields")
    async def fields(messages: list[dict[str, Any]], stream: bool = False) -> str:
        received.append(messages)
        return "ok"

    messages = [
        {"role": "system", "content": "be brief", "name": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:x"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42", "x-extra": [1, 2]},
    ]
    body = {
        "messages": messages,
        "model": "m",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "temperature": 0.2,
        "top_p": 1,
        "max_tokens": 5,
        "seed": 1,
        "unknown_vendor_field": {"kept": True},
    }
    with TestClient(app) as client:
        response = client.post(
            "/fields/chat/completions", content=json.dumps(body), headers=JSON_TYPE
        )
    assert response.status_code == 200, response.text
    assert received == [messages]


def test_stream_fills_tool_call_ids_and_drops_content_after_finish(app: ServerBase) -> None:
    from robutler_testing import validate_stream

    @app.agent("sloppy")
    async def sloppy(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        call = {"index": 0, "function": {"name": "f", "arguments": "{}"}}
        yield {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
        yield {"choices": [{"index": 0, "delta": {"content": "late"}, "finish_reason": "stop"}]}

    with TestClient(app) as client:
        text = post(client, "sloppy", stream=True).text
    report = validate_stream(text)
    assert report.tool_calls[0]["id"].startswith("call_")
    assert report.tool_calls[0]["type"] == "function"
    assert report.finish_reason == "tool_calls"
    assert "late" not in text


def test_completion_id_names_the_request(result_client: Any) -> None:
    response = post(result_client, "str")
    assert response.json()["id"] == "chatcmpl-" + response.headers["x-request-id"]
    streamed = post(result_client, "str", stream=True)
    first = sse_events(streamed.text)[0]
    assert first["id"] == "chatcmpl-" + streamed.headers["x-request-id"]


def test_completion_ids_differ_per_request_also_for_agents_giving_their_own() -> None:
    from robutler.server import Server
    from robutler_testing import MockAgent

    app = Server(agents=[MockAgent("mock")])  # MockAgent's own ids repeat run after run
    with TestClient(app) as client:
        for stream in (False, True):
            ids = set()
            for _ in range(2):
                response = post(client, "mock", stream=stream)
                text = response.text
                cid = sse_events(text)[0]["id"] if stream else response.json()["id"]
                assert cid == "chatcmpl-" + response.headers["x-request-id"]
                ids.add(cid)
            assert len(ids) == 2, f"two requests answered with one id {ids} (stream={stream})"
