"""Every error status on agent routes, in OpenAI's shape."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from helpers import JSON_TYPE, USER, post, sse_events

from robutler.server import ServerBase


def assert_openai_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.fixture
def server() -> ServerBase:
    app = ServerBase(max_body_size=2048)

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "fine"

    @app.agent("boom")
    async def boom(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("secret database password in here")

    @app.agent("boom-gen")
    async def boom_gen(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        raise RuntimeError("before the first chunk")
        yield "never"

    @app.agent("mid")
    async def mid(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        yield "partial "
        raise RuntimeError("secret mid-stream")

    return app


@pytest.fixture
def client(server: ServerBase) -> Any:
    with TestClient(server) as c:
        yield c


def test_unknown_static_agent_is_404(client: Any) -> None:
    error = assert_openai_error(post(client, "missing"), 404)
    assert "missing" in error["message"]
    assert error["code"] == "agent_not_found"


def test_resolver_false_is_404() -> None:
    app = ServerBase()

    @app.agent(lambda name: {"n": name} if name.startswith("dyn-") else False)
    async def dynamic(
        messages: list[dict[str, Any]], stream: bool = False, agent_data: Any = None
    ) -> str:
        return f"data={agent_data}"

    with TestClient(app) as client:
        assert (
            post(client, "dyn-a").json()["choices"][0]["message"]["content"]
            == "data={'n': 'dyn-a'}"
        )
        assert_openai_error(post(client, "other"), 404)
        assert_openai_error(client.get("/other"), 404)
        assert client.get("/dyn-a").json()["dynamic"] is True


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "messages", "required"),
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": "hi"}, "messages", "list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "'user'"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "required"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
        ({"messages": USER, "stream": "yes"}, "stream", "boolean"),
        ({"messages": USER, "stream": 1}, "stream", "boolean"),
        ({"messages": USER, "temperature": "hot"}, "temperature", "number"),
        ({"messages": USER, "temperature": 9}, "temperature", "less than"),
        (
            {"messages": USER, "stream_options": {"include_usage": "no"}},
            "stream_options.include_usage",
            "boolean",
        ),
        ({"messages": USER, "model": 3}, "model", "string"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    client: Any, body: dict[str, Any], param: str, words: str
) -> None:
    error = assert_openai_error(client.post("/ok/chat/completions", json=body), 422)
    assert error["param"] == param
    assert param in error["message"]
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_body_is_422(client: Any, raw: bytes, words: str) -> None:
    error = assert_openai_error(
        client.post("/ok/chat/completions", content=raw, headers=JSON_TYPE), 422
    )
    assert words in error["message"]


def test_body_over_limit_is_413(client: Any) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 4096}]}
    error = assert_openai_error(client.post("/ok/chat/completions", json=big), 413)
    assert "2048" in error["message"]

    def chunks() -> Any:  # no content-length: the limit holds while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 100

    assert_openai_error(
        client.post("/ok/chat/completions", content=chunks(), headers=JSON_TYPE), 413
    )


def test_agent_exception_is_500_without_internals(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="robutler"):
        response = post(client, "boom")
    error = assert_openai_error(response, 500)
    assert "secret" not in error["message"]
    assert error["type"] == "server_error"
    rid = response.headers["x-request-id"]
    assert rid in error["message"]
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1 and rid in logged[0].getMessage()


def test_agent_exception_text_shown_with_debug() -> None:
    app = ServerBase(debug=True)

    @app.agent("boom")
    async def boom(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("visible detail")

    with TestClient(app) as client:
        error = assert_openai_error(post(client, "boom"), 500)
    assert "RuntimeError: visible detail" in error["message"]


def test_stream_failing_before_first_chunk_is_500(client: Any) -> None:
    assert_openai_error(post(client, "boom-gen", stream=True), 500)
    assert_openai_error(post(client, "boom", stream=True), 500)


def test_stream_failing_midway_sends_error_event_then_done(client: Any) -> None:
    response = post(client, "mid", stream=True)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0]["choices"][0]["delta"]["content"] == "partial "
    error = events[-2]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "secret" not in error["message"]
    assert events[-1] == "[DONE]"


def test_http_exception_from_before_hook_keeps_status_and_headers(server: ServerBase) -> None:
    @server.agent.before_request
    async def gate(request: Any) -> None:
        if request.headers.get("x-pay") != "yes":
            raise HTTPException(402, "Insufficient credits", headers={"x-credits": "0"})

    with TestClient(server) as client:
        response = post(client, "ok")
        error = assert_openai_error(response, 402)
        assert error["message"] == "Insufficient credits"
        assert response.headers["x-credits"] == "0"
        response = client.post(
            "/ok/chat/completions", json={"messages": USER}, headers={"x-pay": "yes"}
        )
        assert response.status_code == 200


def test_wrong_method_is_405_in_openai_shape(client: Any) -> None:
    response = client.put("/ok/chat/completions", json={})
    error = assert_openai_error(response, 405)
    assert response.headers["allow"] == "GET, POST"
    assert "PUT" in error["message"]
    assert_openai_error(client.delete("/ok/models"), 405)


def test_error_answers_and_the_openapi_error_schema_come_from_one_model() -> None:
    from robutler.server.protocol import ErrorBody

    app = ServerBase()

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "fine"

    with TestClient(app) as client:
        answers = [
            client.post("/ok/chat/completions", json={"messages": "no"}),
            client.post("/missing/chat/completions", json={"messages": USER}),
            client.put("/ok/chat/completions"),
        ]
        schema = client.get("/openapi.json").json()
    for answer in answers:
        assert answer.status_code >= 400
        ErrorBody.model_validate(answer.json())
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert sorted(detail["required"]) == ["code", "message", "param", "type"]
