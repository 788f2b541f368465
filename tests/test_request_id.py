"""X-Request-ID: a safe incoming id is the request's id everywhere; anything else is replaced."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import USER, sse_events

from robutler.server import ServerBase, get_context

SAFE = ["trace-1234", "A.b_c:d-9", "x" * 128]
UNSAFE = ["", "has space", "a/b", 'quote"d', "x" * 129, "semi;colon", "caf\u00e9"]


def make_app(seen: list[str]) -> ServerBase:
    app = ServerBase()

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        ctx = get_context()
        assert ctx is not None
        seen.append(ctx.request_id)
        return "ok"

    @app.agent("boom")
    async def boom(messages: list[dict[str, Any]]) -> str:
        raise RuntimeError("boom")

    return app


def call(client: Any, agent: str, rid: str, stream: bool = False) -> Any:
    return client.post(
        f"/{agent}/chat/completions",
        json={"messages": USER, "stream": stream},
        headers={"x-request-id": rid.encode("latin-1")},  # type: ignore[dict-item]
    )


@pytest.mark.parametrize("rid", SAFE)
def test_a_safe_incoming_request_id_is_used_everywhere(
    rid: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    with TestClient(make_app(seen)) as client:
        response = call(client, "echo", rid)
        assert response.headers["x-request-id"] == rid
        assert response.json()["id"] == f"chatcmpl-{rid}"
        streamed = call(client, "echo", rid, stream=True)
        assert streamed.headers["x-request-id"] == rid
        assert sse_events(streamed.text)[0]["id"] == f"chatcmpl-{rid}"
        assert seen == [rid, rid]
        with caplog.at_level(logging.ERROR, logger="robutler"):
            failed = call(client, "boom", rid)
    assert failed.status_code == 500 and failed.headers["x-request-id"] == rid
    assert rid in failed.json()["error"]["message"]
    assert [r for r in caplog.records if rid in r.getMessage()], "the log line lacks the id"


@pytest.mark.parametrize("rid", UNSAFE)
def test_anything_else_is_replaced_by_a_fresh_id(rid: str) -> None:
    seen: list[str] = []
    with TestClient(make_app(seen)) as client:
        response = call(client, "echo", rid)
    fresh = response.headers["x-request-id"]
    assert fresh != rid and len(fresh) == 32 and fresh.isalnum()
    assert seen == [fresh]
    assert response.json()["id"] == f"chatcmpl-{fresh}"
