"""API keys, limits, malformed input, CORS, and 5xx logging."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import USER, ASGICall, post

from robutler.server import ServerBase, get_context

KEY = "sk-test-0123456789"


def keyed_app(**kwargs: Any) -> tuple[ServerBase, dict[str, Any]]:
    app = ServerBase(**kwargs)
    seen: dict[str, Any] = {"agent_runs": 0, "finalize": 0, "before": 0}

    @app.agent("secure")
    async def secure(messages: list[dict[str, Any]], stream: bool = False) -> str:
        seen["agent_runs"] += 1
        seen["key_name"] = get_context().api_key_name  # type: ignore[union-attr]
        return "secret answer"

    @app.agent.before_request
    def before(request: Any) -> None:
        seen["before"] += 1

    @app.agent.finalize_request
    def finalize(request: Any, response: Any) -> None:
        seen["finalize"] += 1
        seen["last_status"] = response.status_code

    return app, seen


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        (auth("wrong"), "invalid_api_key"),
        ({"Authorization": KEY}, "missing_api_key"),
        (auth(""), "missing_api_key"),
    ],
)
def test_missing_or_wrong_key_is_401_and_runs_no_agent_code(
    headers: dict[str, str], code: str
) -> None:
    app, seen = keyed_app(api_keys=[KEY])
    with TestClient(app) as client:
        response = client.post("/secure/chat/completions", json={"messages": USER}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == code and error["type"] == "authentication_error"
        assert KEY not in response.text
        for path in ("/secure", "/secure/models", "/secure/chat/completions"):
            assert client.get(path, headers=headers).status_code == 401
        assert client.get("/health").status_code == 200
    assert seen["agent_runs"] == 0 and seen["before"] == 0
    assert seen["finalize"] == 1 and seen["last_status"] == 401


def test_right_key_passes_and_context_names_the_key_not_the_key() -> None:
    app, seen = keyed_app(api_keys={"alice": KEY, "bob": "sk-bob"})
    with TestClient(app) as client:
        response = client.post(
            "/secure/chat/completions", json={"messages": USER}, headers=auth("sk-bob")
        )
        assert response.status_code == 200
        assert client.get("/secure", headers=auth(KEY)).status_code == 200
    assert seen["key_name"] == "bob"
    assert KEY not in repr(app.api_keys) and "sk-bob" not in repr(app.api_keys)


def test_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUTLER_API_KEYS", f" {KEY} , sk-two ")
    app, seen = keyed_app()
    with TestClient(app) as client:
        assert post(client, "secure").status_code == 401
        assert (
            client.post(
                "/secure/chat/completions", json={"messages": USER}, headers=auth("sk-two")
            ).status_code
            == 200
        )
    assert seen["key_name"] == "1"
    monkeypatch.delenv("ROBUTLER_API_KEYS")
    open_app, _ = keyed_app()
    assert open_app.api_keys is None


def test_keys_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = keyed_app(api_keys=[KEY])
    with caplog.at_level(logging.DEBUG), TestClient(app) as client:
        client.post("/secure/chat/completions", json={"messages": USER}, headers=auth(KEY + "x"))
        client.post("/secure/chat/completions", json={"messages": USER}, headers=auth(KEY))
    assert KEY not in caplog.text


def test_bad_key_configuration_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="not a str"):
        ServerBase(api_keys="one-key")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        ServerBase(api_keys=[""])
    with pytest.raises(ValueError, match="max_messages must be a positive int"):
        ServerBase(max_messages=0)


def test_message_count_and_depth_limits_are_422() -> None:
    app, seen = keyed_app(max_messages=3, max_depth=8)
    with TestClient(app) as client:
        many = client.post("/secure/chat/completions", json={"messages": USER * 4})
        assert many.status_code == 422 and many.json()["error"]["param"] == "messages"
        assert "limit is 3" in many.json()["error"]["message"]
        nested: Any = "x"
        for _ in range(10):
            nested = {"n": nested}
        deep = client.post("/secure/chat/completions", json={"messages": USER, "extra": nested})
        assert deep.status_code == 422 and "deeper than 8" in deep.json()["error"]["message"]
        assert (
            client.post("/secure/chat/completions", json={"messages": USER * 3}).status_code == 200
        )
    assert seen["agent_runs"] == 1


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (json.dumps({"messages": USER}).encode(), "text/plain"),
        (b"\xc3\x28", "application/json"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1'
            + b"0" * 5000
            + b"}",
            "application/json",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 1e999}', "application/json"),
        (b"null", "application/json"),
        (b'"messages"', "application/json"),
        (b'{"messages": [null]}', "application/json"),
        (b'{"messages": [{"role": "user", "content": {"a": 1}}]}', "application/json"),
    ],
)
def test_malformed_input_is_4xx_in_openai_shape(raw: bytes, content_type: str) -> None:
    app, _ = keyed_app()
    with TestClient(app) as client:
        response = client.post(
            "/secure/chat/completions", content=raw, headers={"content-type": content_type}
        )
    assert 200 <= response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_cors_off_by_default_and_on_with_origins() -> None:
    app, _ = keyed_app()
    with TestClient(app) as client:
        response = client.options(
            "/secure/chat/completions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in response.headers
    app, _ = keyed_app(cors_origins=["https://app.example"])
    with TestClient(app) as client:
        response = client.options(
            "/secure/chat/completions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        response = client.post(
            "/secure/chat/completions",
            json={"messages": USER},
            headers={"Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in response.headers


async def test_5xx_logged_once_with_traceback_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = ServerBase()

    @app.agent("boom")
    async def boom(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise ValueError("kaput")

    with caplog.at_level(logging.DEBUG, logger="robutler"):
        call = await ASGICall(
            app, "/boom/chat/completions", json.dumps({"messages": USER}).encode()
        ).run()
    headers = dict(call.sent[0]["headers"])
    rid = headers[b"x-request-id"].decode()
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(records) == 1
    assert rid in records[0].getMessage() and records[0].exc_info is not None


def test_client_content_not_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = keyed_app()
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        client.post(
            "/secure/chat/completions",
            json={"messages": [{"role": "robot", "content": "PRIVATE-TEXT"}]},
        )
        client.post("/no-such-agent-PRIVATE/chat/completions", json={"messages": USER})
        client.post(
            "/secure/chat/completions",
            json={"messages": [{"role": "user", "content": "PRIVATE-TEXT"}]},
        )
    server_logs = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("robutler", "uvicorn", "fastapi"))
    ]
    assert not [m for m in server_logs if "PRIVATE" in m]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [502, 503])
async def test_every_5xx_is_logged_once_also_from_request_errors(
    caplog: pytest.LogCaptureFixture, stream: bool, status: int
) -> None:
    from fastapi import HTTPException

    from robutler.server.protocol import RequestError

    app = ServerBase()

    @app.agent("upstream")
    async def upstream(messages: list[dict[str, Any]], stream: bool = False) -> str:
        if status == 502:
            raise RequestError(502, "The upstream model API answered 500.", code="upstream_error")
        raise HTTPException(503, "overloaded")

    body = json.dumps({"messages": USER, "stream": stream}).encode()
    with caplog.at_level(logging.DEBUG, logger="robutler"):
        call = await ASGICall(app, "/upstream/chat/completions", body).run()
    assert call.status == status
    rid = dict(call.sent[0]["headers"])[b"x-request-id"].decode()
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(records) == 1 and rid in records[0].getMessage() and records[0].exc_info
