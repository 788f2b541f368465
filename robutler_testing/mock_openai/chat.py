"""The Chat Completions wire (``POST /v1/chat/completions``): a `chat.completion`, or its
`chat.completion.chunk` stream ending in ``data: [DONE]``.

The shapes follow the official client's `openai.types.chat` types; with
``stream_options.include_usage`` every chunk carries ``usage: null`` and a last chunk
without choices carries the usage, as the OpenAI API does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .http import Frame
from .scripting import OutputReply, split_arguments

__all__ = ["chunks", "completion"]

NextId = Callable[[], int]


def completion(reply: OutputReply, body: dict[str, Any], next_id: NextId) -> dict[str, Any]:
    """The `chat.completion` answering `body`."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}
    return {
        **_head(body, next_id, "chat.completion"),
        "choices": [choice],
        "usage": _usage(reply, body),
    }


def chunks(reply: OutputReply, body: dict[str, Any], next_id: NextId) -> list[Frame]:
    """The SSE frames of a streamed completion: role, deltas, tool calls, finish, [DONE]."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = _head(body, next_id, "chat.completion.chunk")
    frames: list[Frame] = []

    def emit(delta: dict[str, Any], is_delta: bool = False, finish: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk: dict[str, Any] = {**head, "choices": [choice]}
        if include_usage:
            chunk["usage"] = None
        frames.append(Frame(f"data: {json.dumps(chunk)}\n\n", is_delta))

    emit({"role": "assistant", "content": "" if reply.text is not None else None, "refusal": None})
    for text in reply.chunks or ():
        emit({"content": text}, True)
    for index, call in enumerate(reply.calls):
        start = {"index": index, "id": call.call_id, "type": "function"}
        emit({"tool_calls": [{**start, "function": {"name": call.name, "arguments": ""}}]})
        for piece in split_arguments(call.arguments):
            emit({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, True)
    emit({}, finish=_finish(reply))
    if include_usage:
        final = {**head, "choices": [], "usage": _usage(reply, body)}
        frames.append(Frame(f"data: {json.dumps(final)}\n\n", False))
    frames.append(Frame("data: [DONE]\n\n", False))
    return frames


def _head(body: dict[str, Any], next_id: NextId, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-mock-{next_id()}",
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model") or "gpt-4o",
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _finish(reply: OutputReply) -> str:
    return "tool_calls" if reply.calls else "stop"


def _usage(reply: OutputReply, body: dict[str, Any]) -> dict[str, Any]:
    n = reply.token_counts(body)
    return {
        "prompt_tokens": n.input,
        "completion_tokens": n.output,
        "total_tokens": n.total,
        "prompt_tokens_details": {"cached_tokens": n.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": n.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
