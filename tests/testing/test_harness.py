"""create_test_client, FinalizeRecorder, and the pytest plugin as a downstream project uses it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_downstream_tests

from robutler.server import ServerBase
from robutler_testing.client import create_test_client
from robutler_testing.recorder import FinalizeRecorder

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_test_client_keeps_one_event_loop_and_closes_cleanly() -> None:
    import asyncio
    from contextlib import asynccontextmanager

    loops: list[Any] = []
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = ServerBase(lifespan=lifespan)

    @app.agent("loop")
    async def loop_agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        loops.append(asyncio.get_running_loop())
        return "ok"

    client = create_test_client(app)
    assert events == ["startup"]
    for _ in range(3):
        assert client.post("/loop/chat/completions", json=BODY).status_code == 200
    assert len({id(loop) for loop in loops}) == 1
    client.close()
    client.close()
    assert events == ["startup", "shutdown"]
    with create_test_client(app) as again:
        assert again.post("/loop/chat/completions", json=BODY).status_code == 200
    assert events == ["startup", "shutdown", "startup", "shutdown"]


def test_finalize_recorder_passes_a_correct_server() -> None:
    app = ServerBase()

    @app.agent("gen")
    async def gen(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"
        yield "b"

    recorder = FinalizeRecorder(app)
    with create_test_client(app) as client:
        client.post("/gen/chat/completions", json=BODY)
        client.post("/gen/chat/completions", json={**BODY, "stream": True})
        client.post("/nobody/chat/completions", json=BODY)
    recorder.assert_exactly_once(expected_requests=3)
    records = list(recorder.records.values())
    assert [r.status_code for r in records] == [200, 200, 404]
    assert [r.outcome for r in records] == [None, "completed", None]


def test_finalize_recorder_catches_a_server_that_finalizes_twice() -> None:
    app = ServerBase()

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "ok"

    recorder = FinalizeRecorder(app)
    run_finalize = app.endpoint.hooks.run_finalize

    async def twice(state: Any, response: Any) -> None:  # a deliberately broken server
        await run_finalize(state, response)
        await run_finalize(state, response)

    app.endpoint.hooks.run_finalize = twice  # type: ignore[method-assign]
    with create_test_client(app) as client:
        client.post("/ok/chat/completions", json=BODY)
    with pytest.raises(AssertionError, match="finalize ran 2 times"):
        recorder.assert_exactly_once()


def test_finalize_recorder_catches_finalize_before_stream_end() -> None:
    app = ServerBase()

    @app.agent("gen")
    async def gen(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"

    recorder = FinalizeRecorder(app)
    hooks = app.endpoint.hooks
    original = hooks.run_finalize

    async def early(state: Any, response: Any) -> None:
        response.status = "streaming"  # as if finalize ran while the stream was open
        await original(state, response)

    hooks.run_finalize = early  # type: ignore[method-assign]
    with create_test_client(app) as client:
        client.post("/gen/chat/completions", json={**BODY, "stream": True})
    with pytest.raises(AssertionError, match="before its stream ended"):
        recorder.assert_exactly_once()


DOWNSTREAM = """
from typing import Any

from robutler.server import ServerBase


def make_app() -> ServerBase:
    app = ServerBase()

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "echo: " + messages[-1]["content"]

    return app


def test_robutler_client(robutler_client):
    client = robutler_client(make_app())
    body = client.post("/echo/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).json()
    assert body["choices"][0]["message"]["content"] == "echo: x"


def test_live_server_and_openai_client(live_server, openai_client, finalize_recorder):
    app = make_app()
    recorder = finalize_recorder(app)
    url = live_server(app)
    assert url.startswith("http://127.0.0.1:")
    client = openai_client(url, "echo")
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "y"}])
    assert reply.choices[0].message.content == "echo: y"
    assert recorder.wait_for(1)
    recorder.assert_exactly_once(expected_requests=1)


def test_mock_agent_fixture(mock_agent):
    assert mock_agent.name == "mock-agent"
"""


def test_plugin_fixtures_work_in_a_downstream_project(tmp_path: Path) -> None:
    result = run_downstream_tests(tmp_path, "test_downstream.py", textwrap.dedent(DOWNSTREAM))
    assert "3 passed" in result.stdout


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, robutler_testing.plugin;"
        "print([m for m in ('agents', 'openai', 'hypothesis', 'respx', 'fastapi', 'uvicorn') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
