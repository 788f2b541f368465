"""The mock's HTTP plumbing: reading a call off ASGI, sending JSON, paced SSE frames, drops."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .scripting import UpstreamCall

__all__ = ["DropConnection", "Frame", "QuietDrop", "read_call", "send_json", "send_sse", "target"]

Sleep = Callable[[float], Awaitable[bool]]


@dataclass(frozen=True)
class Frame:
    """One SSE frame; `delta` frames count for `disconnect_after` and wait `chunk_delay`."""

    text: str
    delta: bool = False


class DropConnection(Exception):
    """Raised inside the ASGI app to make uvicorn drop a connection mid-stream."""


class QuietDrop(logging.Filter):
    """Keeps uvicorn from logging the scripted drops as errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


async def read_call(scope: dict[str, Any], receive: Any) -> tuple[UpstreamCall, bytes]:
    """The request as an `UpstreamCall` (a body that is not JSON is kept as ``{"_raw": ...}``),
    and its body's bytes."""
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = {"_raw": raw.decode("utf-8", "replace")}
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    return UpstreamCall(scope["method"], scope["path"], headers, body), raw


def target(scope: dict[str, Any]) -> str:
    """The request's path, with its query string when it has one."""
    query = scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + ("?" + query if query else "")


async def send_json(
    send: Any, status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def send_sse(
    send: Any,
    frames: list[Frame],
    request_id: str,
    *,
    sleep: Sleep,
    chunk_delay: float = 0.0,
    disconnect_after: int | None = None,
) -> None:
    """Stream `frames`; drop the connection after `disconnect_after` deltas, or when
    `sleep` (the pause after each delta) says the mock is shutting down."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    deltas = 0
    for frame in frames:
        if frame.delta and disconnect_after is not None:
            if deltas >= disconnect_after:
                raise DropConnection("mock_openai: scripted disconnect")
            deltas += 1
        await send({"type": "http.response.body", "body": frame.text.encode(), "more_body": True})
        if frame.delta and chunk_delay and not await sleep(chunk_delay):
            raise DropConnection("mock_openai: shutting down")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
