"""Hardening, round 2: what a probe of a live server found, each against live uvicorn.

A client leaving an agent that never awaits, a pass-through response the server cannot
send, dynamic names that are not names, connection limits of `robutler serve`, answers
too large to assemble, and what `/health` and the docs show without a key.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import USER, wait_for
from starlette.responses import Response
from test_cli import serving

from robutler.server import ServerBase, get_context, pricing
from robutler_testing.live import LiveServer

KEY = "sk-hardening-0123"


class Finals:
    """A finalize hook recording the response and the credits of each request."""

    def __init__(self, app: ServerBase) -> None:
        self.responses: list[Any] = []
        self.credits: list[float] = []
        app.agent.finalize_request(self)

    def __call__(self, request: Any, response: Any) -> None:
        self.credits.append(get_context().usage["total_credits"])  # type: ignore[union-attr]
        self.responses.append(response)


# 1. a client that leaves an agent that never awaits ------------------------------------

PIECES = 300_000


def test_a_client_leaving_an_agent_that_never_awaits_is_noticed() -> None:
    app = ServerBase()
    finals = Finals(app)
    made: list[int] = []

    @app.agent("firehose")
    @pricing(credits_per_request=5)
    async def firehose(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        n = 0
        try:
            for n in range(PIECES):  # noqa: B007 - n is read in finally
                yield "x" * 100  # never awaits: only the server can notice the client left
        finally:
            made.append(n)

    with LiveServer(app) as live:
        body = {"messages": USER, "stream": True}
        with httpx.stream(
            "POST", f"{live.url}/firehose/chat/completions", json=body, timeout=20
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    break
        assert wait_for(lambda: bool(finals.responses)), "finalize never ran"
        # The server keeps serving others while such an agent streams.
        assert httpx.get(f"{live.url}/health", timeout=20).status_code == 200
    assert made and made[0] < PIECES - 1, "the agent ran to its end after the client left"
    wrapper = finals.responses[0]
    assert wrapper.status == "disconnected", wrapper
    assert finals.credits == [0], "a disconnected request was charged"


# 2. a pass-through response the server cannot send --------------------------------------


def test_a_pass_through_response_that_cannot_be_sent_is_a_failure() -> None:
    app = ServerBase()
    finals = Finals(app)

    @app.agent("evil-header")
    @pricing(credits_per_request=5)
    async def evil(messages: list[dict[str, Any]], stream: bool = False) -> Response:
        return Response("hi", headers={"x-echo": "a\r\nset-cookie: stolen=1"})

    with LiveServer(app) as live:
        response = httpx.post(
            f"{live.url}/evil-header/chat/completions", json={"messages": USER}, timeout=20
        )
        assert wait_for(lambda: bool(finals.responses))
    assert "set-cookie" not in response.headers
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "response_error"
    assert finals.responses[0].status_code == 500, "finalize saw a success"
    assert finals.credits == [0], "a request whose answer failed was charged"


# 3. dynamic names that are not names -----------------------------------------------------

BAD_NAMES = [
    "%2E%2E",  # ..
    "a%00b",  # NUL
    "a%0D%0Aforged: log",  # CR/LF
    "%E2%80%AEevil",  # a bidi control
    "a%5Cb",  # backslash
    ".hidden",
    "a" * 60_000,
]


def test_dynamic_names_are_checked_before_the_resolver() -> None:
    app = ServerBase()
    finals = Finals(app)
    asked: list[str] = []

    def resolver(name: str) -> Any:
        asked.append(name)
        return {"name": name}

    @app.agent(resolver)
    async def dynamic(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "hi"

    with LiveServer(app) as live:
        for raw in BAD_NAMES:
            url = f"{live.url}/{raw}/chat/completions"
            response = httpx.post(url, json={"messages": USER}, timeout=20)
            assert response.status_code == 404, (raw[:40], response.status_code)
        ok = httpx.post(f"{live.url}/fine-name/chat/completions", json={"messages": USER})
    assert ok.status_code == 200
    assert asked == ["fine-name"], f"the resolver saw {[a[:40] for a in asked]}"
    assert len(finals.responses) == 1


def test_static_names_have_the_same_length_limit() -> None:
    app = ServerBase()
    with pytest.raises(ValueError, match="at most 128"):
        app.agent("a" * 129)


# 4. connection limits of `robutler serve` ------------------------------------------------


def _raw_request(base: str, head: bytes, timeout: float = 10.0) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_serve_limits_header_size_header_time_and_concurrency() -> None:
    with serving(
        "--max-header-size",
        "4096",
        "--header-timeout",
        "0.5",
        "--limit-concurrency",
        "3",
    ) as (base, _):
        big = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n"
        assert _raw_request(base, big).startswith(b"HTTP/1.1 431")
        small = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
        assert _raw_request(base, small).startswith(b"HTTP/1.1 200")
        # A slow client that never finishes its headers is cut off: recv sees the close
        # (b"") long before the socket's own 10 s timeout would end the read.
        started = time.monotonic()
        assert _raw_request(base, b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n") == b""
        assert time.monotonic() - started < 9, "the header timeout did not close the socket"
        # The limit counts requests in progress, not connections: idle sockets leave room,
        # three streams in progress (the demo's `stream` agent telling a long story) do not.
        host, port = base.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        busy = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        try:
            assert _raw_request(base, small).startswith(b"HTTP/1.1 200")
            story = {"messages": [{"role": "user", "content": "word " * 300}], "stream": True}
            body = json.dumps(story).encode()
            for sock in busy:
                sock.sendall(
                    b"POST /stream/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
                    % (len(body), body)
                )
            assert wait_for(
                lambda: _raw_request(base, small).startswith(b"HTTP/1.1 503"), timeout=10
            )
        finally:
            for sock in idle + busy:
                sock.close()


# 5. a non-streamed request to a huge streaming agent ------------------------------------


def test_an_answer_too_large_to_assemble_is_refused_and_the_agent_stopped() -> None:
    app = ServerBase(max_answer_size=100_000)
    finals = Finals(app)
    made: list[int] = []

    @app.agent("huge")
    async def huge(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        n = 0
        try:
            for n in range(100_000):  # noqa: B007 - n is read in finally
                yield "y" * 1000
        finally:
            made.append(n)

    with LiveServer(app) as live:
        response = httpx.post(
            f"{live.url}/huge/chat/completions", json={"messages": USER}, timeout=20
        )
        assert wait_for(lambda: bool(finals.responses))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "answer_too_large" and "max_answer_size" in error["message"]
    assert made and made[0] < 1000, "the agent was not stopped"
    with pytest.raises(ValueError, match="max_answer_size"):
        ServerBase(max_answer_size=0)


# 6. /health and the docs when keys are configured ----------------------------------------


def test_with_keys_health_is_liveness_only_and_the_docs_want_the_key() -> None:
    app = ServerBase(api_keys=[KEY])

    @app.agent("secret-agent")
    async def secret(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "hi"

    auth = {"authorization": f"Bearer {KEY}"}
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert "secret-agent" in json.dumps(client.get("/health", headers=auth).json())
        for path in ("/docs", "/redoc", "/openapi.json"):
            denied = client.get(path)
            assert denied.status_code == 401, path
            assert denied.json()["error"]["code"] == "missing_api_key"
            assert client.get(path, headers=auth).status_code == 200, path
    public = ServerBase(api_keys=[KEY], public_docs=True)
    with TestClient(public) as client:
        assert client.get("/openapi.json").status_code == 200
    open_server = ServerBase()
    with TestClient(open_server) as client:
        assert client.get("/openapi.json").status_code == 200
        assert "agents" in client.get("/health").json()
