"""Upstream protocol faults (issue #24, item 10): a fake model API on 127.0.0.1 that
answers garbage, and the 502 `upstream_error` the README promises for each fault.

`mock_openai` speaks the protocol correctly, so the faults come from a raw socket server
of a few lines: whatever bytes a case names, after the request has been read.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel
from helpers import sse_events
from openai import AsyncOpenAI

from robutler.server import Server, ServerBase
from robutler_testing.live import LiveServer


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode()) for e in events
    )


_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": "gpt-test",
    "status": "in_progress",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}
_START = (
    {"type": "response.created", "sequence_number": 0, "response": _RESPONSE},
    {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello ",
        "logprobs": [],
    },
)
_FAILED = {
    "type": "response.failed",
    "sequence_number": 2,
    "response": {
        **_RESPONSE,
        "status": "failed",
        "error": {"code": "server_error", "message": "x"},
    },
}
_ERROR = {"type": "error", "sequence_number": 2, "code": "server_error", "message": "boom"}

# What the fake upstream answers: (content type, body), always with status 200.
FAULTS = {
    "malformed JSON": ("application/json", b'{"id": "resp_1", "output": [tru'),
    "garbage SSE": ("text/event-stream", b"data: {garbage\n\ndata: \x00\xff\n\n"),
    "truncated stream": ("text/event-stream", _sse(*_START)),
    "error event": ("text/event-stream", _sse(*_START, _ERROR)),
    "response.failed event": ("text/event-stream", _sse(*_START, _FAILED)),
}


class _Faulty(socketserver.BaseRequestHandler):
    answer: ClassVar[tuple[str, bytes]] = FAULTS["malformed JSON"]

    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            part = self.request.recv(65536)
            if not part:
                return
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            part = self.request.recv(65536)
            if not part:
                return
            body += part
        kind, payload = _Faulty.answer
        head = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\nconnection: close\r\n\r\n" % kind.encode()
        self.request.sendall(head + payload)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Faulty)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def live(upstream: str) -> Iterator[str]:
    client = AsyncOpenAI(base_url=upstream, api_key="sk-fake", max_retries=0)
    agents = [
        Agent(name="responses", model=OpenAIResponsesModel("gpt-test", openai_client=client)),
        Agent(name="chat", model=OpenAIChatCompletionsModel("gpt-test", openai_client=client)),
    ]
    with LiveServer(Server(agents=agents)) as server:
        yield server.url


def _ask(live: str, agent: str, stream: bool) -> tuple[int, dict[str, Any]]:
    """The status and the error a client gets: the JSON error, or a stream's error event."""
    response = httpx.post(
        f"{live}/{agent}/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "stream": stream},
        timeout=30,
    )
    if response.headers["content-type"].startswith("text/event-stream"):
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        return response.status_code, events[-2]["error"]
    return response.status_code, response.json()["error"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_upstream_protocol_fault_is_a_502_upstream_error(
    live: str, fault: str, stream: bool
) -> None:
    _Faulty.answer = FAULTS[fault]
    status, error = _ask(live, "responses", stream)
    assert status in ((200, 502) if stream else (502,)), (status, error)
    assert error["code"] == "upstream_error", error
    assert "upstream" in error["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_garbage_from_a_chat_completions_upstream_is_a_502(live: str, stream: bool) -> None:
    _Faulty.answer = FAULTS["malformed JSON"] if not stream else FAULTS["garbage SSE"]
    status, error = _ask(live, "chat", stream)
    assert status in ((200, 502) if stream else (502,)) and error["code"] == "upstream_error"


def test_an_agent_that_calls_the_openai_client_itself_gets_a_502(upstream: str) -> None:
    """Not only Agents SDK agents: an agent whose own openai client call meets a fault."""
    app = ServerBase()
    client = AsyncOpenAI(base_url=upstream, api_key="sk-fake", max_retries=0)

    @app.agent("direct")
    async def direct(messages: list[dict[str, Any]], stream: bool = False) -> str:
        answer = await client.responses.create(model="gpt-test", input="hi")
        return answer.output_text

    _Faulty.answer = FAULTS["malformed JSON"]
    with LiveServer(app) as server:
        status, error = _ask(server.url, "direct", False)
    assert status == 502 and error["code"] == "upstream_error", error
