"""End to end under real uvicorn on 127.0.0.1: disconnects and concurrency."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from helpers import sse_events

from robutler.server import ServerBase, StreamingWrapper, get_context
from robutler_testing.live import LiveServer


def test_client_closing_socket_mid_stream_is_seen_as_disconnect() -> None:
    app = ServerBase()
    finalized = threading.Event()
    finals: list[tuple[Any, int]] = []
    produced: list[int] = []

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        for i in range(2000):
            produced.append(i)
            yield f"piece {i} "
            await asyncio.sleep(0.01)

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        finals.append((response, len(produced)))
        finalized.set()

    with LiveServer(app) as server:
        body = json.dumps(
            {"messages": [{"role": "user", "content": "go"}], "stream": True}
        ).encode()
        request = (
            b"POST /slow/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while received.count(b"data: ") < 3:
                received += sock.recv(65536)
            assert b"200 OK" in received
            assert not finalized.is_set()  # still streaming: finalize must wait
        assert finalized.wait(10), "finalize did not run after the client left"
        produced_at_close = len(produced)
    assert len(finals) == 1
    response, produced_at_finalize = finals[0]
    assert isinstance(response, StreamingWrapper)
    assert response.status == "disconnected"
    assert response.chunks_sent >= 3
    assert produced_at_finalize < 2000  # the agent was stopped, not run to the end
    assert produced_at_close == produced_at_finalize  # and nothing ran after finalize


def test_two_hundred_concurrent_requests_each_see_only_their_own_context() -> None:
    app = ServerBase()
    problems: list[str] = []
    finalized: list[str] = []

    @app.agent.before_request
    async def before(request: Any) -> None:
        get_context().set("tag", request.headers["x-tag"])  # type: ignore[union-attr]

    @app.agent("ctx")
    async def ctx_agent(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        tag = messages[-1]["content"]
        for step in range(3):
            await asyncio.sleep(0)
            seen = get_context().get("tag")  # type: ignore[union-attr]
            if seen != tag:
                problems.append(f"agent step {step}: {seen} != {tag}")
            yield f"{tag}:{step} "

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        tag = get_context().get("tag")  # type: ignore[union-attr]
        if tag != request.headers["x-tag"]:
            problems.append(f"finalize: {tag} != {request.headers['x-tag']}")
        finalized.append(tag)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        tag = f"req{i}"
        response = await client.post(
            "/ctx/chat/completions",
            json={"messages": [{"role": "user", "content": tag}], "stream": True},
            headers={"x-tag": tag},
        )
        events = sse_events(response.text)
        content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
        assert content == f"{tag}:0 {tag}:1 {tag}:2 "

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            await asyncio.gather(*(one(client, i) for i in range(200)))

    with LiveServer(app) as server:
        asyncio.run(main(server.url))
        deadline_ok = _wait_for(lambda: len(finalized) == 200)
    assert deadline_ok, f"only {len(finalized)} finalize calls"
    assert problems == []
    assert sorted(finalized) == sorted(f"req{i}" for i in range(200))


def test_official_client_against_live_server() -> None:
    app = ServerBase()

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"You said: {messages[-1]['content']}"

    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/echo", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "You said: hi"
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert (
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "You said: hi"
        )
        assert [m.id for m in client.models.list()] == ["echo"]
        missing = openai.OpenAI(base_url=f"{server.url}/nobody", api_key="unused", max_retries=0)
        try:
            missing.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        except openai.NotFoundError as exc:
            assert "nobody" in str(exc)
        else:
            raise AssertionError("expected NotFoundError")


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
