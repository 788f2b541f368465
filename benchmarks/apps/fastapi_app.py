"""(b) The route a user would write by hand with FastAPI.

A pydantic request model, a dict answer for JSON, a `StreamingResponse` of SSE chunks
built with `json.dumps` (compact, so the bytes match the other apps). `/slow` streams its
deltas `SLOW_GAP` seconds apart; `/health` is the probe a load balancer would poll.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from benchmarks.apps import DELTA, MAX_CHUNKS, MAX_SLOW_CHUNKS, SLOW_GAP

app = FastAPI(title="hand-written")


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message]
    stream: bool = False


async def deltas(n: int) -> AsyncIterator[str]:
    """The agent: `n` text deltas."""
    for _ in range(n):
        yield DELTA


async def slow_deltas(n: int) -> AsyncIterator[str]:
    """The slow agent: `n` text deltas, `SLOW_GAP` seconds apart."""
    for i in range(n):
        if i:
            await asyncio.sleep(SLOW_GAP)
        yield DELTA


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> str:
    chunk = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


async def _sse(cid: str, created: int, model: str, texts: AsyncIterator[str]) -> AsyncIterator[str]:
    first = True
    async for text in texts:
        delta = {"role": "assistant", "content": text} if first else {"content": text}
        first = False
        yield _chunk(cid, created, model, delta, None)
    yield _chunk(cid, created, model, {}, "stop")
    yield "data: [DONE]\n\n"


@app.post("/bench/chat/completions")
async def chat(request: ChatRequest) -> Any:
    """Chat Completions, JSON or SSE."""
    n = min(int(request.messages[-1].content), MAX_CHUNKS)
    model = request.model or "bench"
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if request.stream:
        return StreamingResponse(
            _sse(cid, created, model, deltas(n)), media_type="text/event-stream"
        )
    text = "".join([d async for d in deltas(n)])
    return {
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


@app.post("/slow/chat/completions")
async def slow(request: ChatRequest) -> StreamingResponse:
    """A slow model's stream: `n` deltas, `SLOW_GAP` seconds apart."""
    n = min(int(request.messages[-1].content), MAX_SLOW_CHUNKS)
    model = request.model or "bench"
    cid = "chatcmpl-" + uuid.uuid4().hex
    stream = _sse(cid, int(time.time()), model, slow_deltas(n))
    return StreamingResponse(stream, media_type="text/event-stream")


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness, for the probe."""
    return {"status": "ok"}
