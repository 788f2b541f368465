"""Hardening, round 3 (issue #24): what a probe of a live server found, against live uvicorn.

Conversations chained past the limits, function outputs that answer no call, duplicate
keys, item ids that gave away the response id, upstream protocol faults, the default
request timeout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from test_cli import ROOT, free_port

from robutler.server import ServerBase
from robutler_testing.live import LiveServer


def echo_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(**kwargs)

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"{len(messages)} messages"

    return app


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with LiveServer(echo_app(max_messages=50, max_conversation_size=20_000)) as server:
        yield server.url


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


# 1. the conversation an agent gets is bounded, earlier turns included --------------------


def test_a_chained_conversation_is_held_to_max_messages(live: str) -> None:
    c = client(live)
    turn = [{"role": "user", "content": f"m{i}"} for i in range(20)]
    first = c.responses.create(model="echo", input=turn)  # type: ignore[arg-type]
    second = c.responses.create(
        model="echo",
        input=turn,  # type: ignore[arg-type]
        previous_response_id=first.id,
    )
    assert second.output_text == "41 messages"  # 20 + the answer + 20
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(
            model="echo",
            input=turn,  # type: ignore[arg-type]
            previous_response_id=second.id,
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "too_many_messages" and error["param"] == "previous_response_id"
    assert "max_messages" in error["message"] and "50" in error["message"]


def test_a_chained_conversation_is_held_to_max_conversation_size(live: str) -> None:
    c = client(live)
    big = "x" * 8_000
    first = c.responses.create(model="echo", input=big)
    second = c.responses.create(model="echo", input=big, previous_response_id=first.id)
    for store in (True, False):  # not stored: the earlier turns still count
        with pytest.raises(openai.BadRequestError) as caught:
            c.responses.create(model="echo", input=big, previous_response_id=second.id, store=store)
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["code"] == "conversation_too_large"
        assert "max_conversation_size" in error["message"] and "20000" in error["message"]
    # One turn alone past the limit (under the body limit) is refused too, naming input.
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="echo", input="y" * 30_000)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "input"
    with pytest.raises(ValueError, match="max_conversation_size"):
        ServerBase(max_conversation_size=0)


# 11. function outputs that answer no call; duplicate keys ------------------------------


def test_a_function_output_must_answer_a_call_of_the_conversation(live: str) -> None:
    c = client(live)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(
            model="echo",
            input=[{"type": "function_call_output", "call_id": "call_nowhere", "output": "1"}],
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert "call_nowhere" in error["message"] and error["param"] == "input"
    # A call in the same input, or in the turn it continues, is answered fine.
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "1"}
    first = c.responses.create(model="echo", input=[call, output])
    assert first.output_text == "2 messages"
    again = c.responses.create(
        model="echo",
        previous_response_id=first.id,
        input=[{**output, "output": "2"}],
    )
    assert again.output_text == "4 messages"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "echo", "model": "other", "input": "hi"}',
        b'{"model": "echo", "input": [{"role": "user", "role": "system", "content": "x"}]}',
    ],
)
def test_duplicate_keys_in_a_body_are_refused(live: str, body: bytes) -> None:
    response = httpx.post(
        f"{live}/v1/responses", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "duplicate key" in error["message"] and error["code"] == "invalid_json"
    chat = httpx.post(
        f"{live}/echo/chat/completions",
        content=b'{"messages": [], "messages": [{"role": "user", "content": "x"}]}',
        headers={"content-type": "application/json"},
    )
    assert chat.status_code == 400 and "duplicate key" in chat.json()["error"]["message"]


# 13. item ids and the access log ---------------------------------------------------------


def test_item_ids_do_not_contain_the_response_id(live: str) -> None:
    c = client(live)
    answer = c.responses.create(model="echo", input="hi")
    stream = c.responses.create(model="echo", input="hi", stream=True)
    streamed = next(e for e in stream if e.type == "response.completed").response
    for response in (answer, streamed):
        secret = response.id.removeprefix("resp_")
        ids = [item.id for item in response.output]
        assert ids and all(secret not in (i or "") for i in ids), (response.id, ids)
        stored = c.responses.retrieve(response.id)
        assert [i.id for i in stored.output] == ids  # the ids stay what the client got


@contextmanager
def serve_logged(*args: str) -> Iterator[tuple[str, list[str]]]:
    """`robutler serve` at log level info (the access log on); its output once it ends."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "robutler", "serve", *args, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.05)
        yield base, lines
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        lines[:] = out.splitlines() if out else []


def test_the_access_log_of_serve_masks_response_ids(tmp_path: Any) -> None:
    with serve_logged("--responses-db", str(tmp_path / "r.db")) as (base, lines):
        c = client(base)
        answer = c.responses.create(model="echo", input="hi")
        assert c.responses.retrieve(answer.id).id == answer.id
        c.responses.delete(answer.id)
    secret = answer.id.removeprefix("resp_")
    access = [line for line in lines if "/v1/responses" in line]
    assert len(access) == 3, lines
    assert not [line for line in lines if secret in line], lines
    assert sum(bool(re.search(r"/v1/responses/resp_\S*\.\.\.", line)) for line in access) == 2


# 8. a default request timeout: a hung agent cannot hold a stream open forever -----------


def test_request_timeout_defaults_to_ten_minutes_and_none_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROBUTLER_REQUEST_TIMEOUT", raising=False)
    assert ServerBase().endpoint.request_timeout == 600
    assert ServerBase(request_timeout=None).endpoint.request_timeout is None
    assert ServerBase(request_timeout=0).endpoint.request_timeout is None
    assert ServerBase(request_timeout=5).endpoint.request_timeout == 5
    monkeypatch.setenv("ROBUTLER_REQUEST_TIMEOUT", "0")
    assert ServerBase().endpoint.request_timeout is None
    assert ServerBase(request_timeout=7).endpoint.request_timeout == 7


def test_a_hung_stream_with_keepalives_ends_at_the_default_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream whose agent hangs while keepalives flow ends at the request timeout the
    server has without being told (from the environment here, to keep the test short)."""
    import asyncio

    monkeypatch.setenv("ROBUTLER_REQUEST_TIMEOUT", "1.5")
    app = ServerBase(keepalive=0.2)

    @app.agent("hung")
    async def hung(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        yield "thinking"
        await asyncio.Event().wait()  # an upstream that never answers

    with LiveServer(app) as server:
        started = time.monotonic()
        with httpx.stream(
            "POST",
            f"{server.url}/hung/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
            timeout=30,
        ) as response:
            body = response.read().decode()
        took = time.monotonic() - started
    assert took < 20
    assert ": keepalive" in body
    error = next(json.loads(line[6:]) for line in body.splitlines() if '"error"' in line)
    assert error["error"]["code"] == "timeout", body
    assert body.rstrip().endswith("data: [DONE]")
