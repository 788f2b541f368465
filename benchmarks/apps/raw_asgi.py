"""(a) The floor: a raw ASGI callable, no framework, stdlib json.

It does the same work as the other apps (parse the JSON body, produce `n` deltas from an
async generator, encode each as an SSE chunk) with as little else as Python allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.apps import DELTA, MAX_CHUNKS

PATH = "/bench/chat/completions"
_dumps = json.JSONEncoder(separators=(",", ":")).encode


async def deltas(n: int) -> AsyncIterator[str]:
    """The agent: `n` text deltas."""
    for _ in range(n):
        yield DELTA


async def _read_body(receive: Any) -> bytes:
    body = b""
    for _ in range(100_000):
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


async def _lifespan(receive: Any, send: Any) -> None:
    for _ in range(2):
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _plain(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] != PATH or scope["method"] != "POST":
        await _plain(send, 404, b'{"error":{"message":"not found"}}')
        return
    try:
        data = json.loads(await _read_body(receive))
        n = min(int(data["messages"][-1]["content"]), MAX_CHUNKS)
        stream = data.get("stream") is True
        model = data.get("model") or "bench"
    except (ValueError, KeyError, IndexError, TypeError):
        await _plain(send, 422, b'{"error":{"message":"bad request"}}')
        return
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if not stream:
        text = "".join([d async for d in deltas(n)])
        completion = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        }
        await _plain(send, 200, _dumps(completion).encode())
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
            ],
        }
    )
    head = _dumps(
        {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    )
    head = head[:-1]
    first = f'data: {head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":'
    prefix = f'data: {head},"choices":[{{"index":0,"delta":{{"content":'.encode()
    suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    started = False
    async for text in deltas(n):
        if started:
            body = prefix + _dumps(text).encode() + suffix
        else:
            body = (first + _dumps(text)).encode() + suffix
            started = True
        await send({"type": "http.response.body", "body": body, "more_body": True})
    finish = (
        f'data: {head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,'
        '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    await send({"type": "http.response.body", "body": finish.encode(), "more_body": False})
