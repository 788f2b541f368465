"""(sb) The FastAPI route a user would write by hand around the Agents SDK.

A pydantic request model; JSON answers call `Runner.run`, streams iterate
`Runner.run_streamed(...).stream_events()` and send each text delta as an SSE chunk, the
finish chunk carrying the run's usage, like robutler's answer. The agent is
`sdk_agent.py`'s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import Runner
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from benchmarks.apps.sdk_agent import MODEL, agent

app = FastAPI(title="hand-written SDK route")


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message]
    stream: bool = False


def _usage(result: Any) -> dict[str, int]:
    usage = result.context_wrapper.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
    chunk = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


async def _sse(cid: str, created: int, items: list[Any]) -> AsyncIterator[str]:
    result = Runner.run_streamed(agent, items)
    yield _chunk(cid, created, {"role": "assistant", "content": ""}, None)
    try:
        async for event in result.stream_events():
            if (
                event.type == "raw_response_event"
                and event.data.type == "response.output_text.delta"
            ):
                yield _chunk(cid, created, {"content": event.data.delta}, None)
    finally:
        if not result.is_complete:
            result.cancel()
    yield _chunk(cid, created, {}, "stop", usage=_usage(result))
    yield "data: [DONE]\n\n"


@app.post("/bench/chat/completions")
async def chat(request: ChatRequest) -> Any:
    """Chat Completions through the Agents SDK, JSON or SSE."""
    items: list[Any] = [{"role": m.role, "content": m.content} for m in request.messages]
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if request.stream:
        return StreamingResponse(_sse(cid, created, items), media_type="text/event-stream")
    result = await Runner.run(agent, items)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": str(result.final_output)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(result),
    }
