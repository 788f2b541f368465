"""The Responses API wire (``POST /v1/responses``): a `response` object, or its SSE events.

The shapes follow the official client's `openai.types.responses` types (the mock's tests
validate every body and event against them strictly).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from .http import Frame
from .scripting import OutputReply, split_arguments

__all__ = ["events", "response"]

NextId = Callable[[], int]


def response(reply: OutputReply, body: dict[str, Any], next_id: NextId) -> dict[str, Any]:
    """The completed `response` object answering `body`."""
    return _response(reply, body, "completed", f"resp_mock_{next_id()}", _items(reply, next_id))


def events(reply: OutputReply, body: dict[str, Any], next_id: NextId) -> list[Frame]:
    """The SSE events of a streamed response, `response.created` to `response.completed`."""
    stream = _Events()
    response_id = f"resp_mock_{next_id()}"
    created = int(time.time())
    start = _response(reply, body, "in_progress", response_id, [], created=created)
    stream.emit("response.created", response=start)
    stream.emit("response.in_progress", response=start)
    items = _items(reply, next_id)
    for index, item in enumerate(items):
        if item["type"] == "message":
            stream.message(index, item, reply.chunks or ())
        else:
            stream.function_call(index, item)
        stream.emit("response.output_item.done", output_index=index, item=item)
    done = _response(reply, body, "completed", response_id, items, created=created)
    stream.emit("response.completed", response=done)
    return stream.frames


class _Events:
    """Numbers the events of one stream and frames them as `event:` + `data:`."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._seq = itertools.count()

    def emit(self, event_type: str, is_delta: bool = False, **fields: Any) -> None:
        data = {"type": event_type, "sequence_number": next(self._seq), **fields}
        text = f"event: {event_type}\ndata: {json.dumps(data)}\n\n"
        self.frames.append(Frame(text, is_delta))

    def message(self, index: int, item: dict[str, Any], chunks: tuple[str, ...]) -> None:
        text = item["content"][0]["text"]
        started = {**item, "status": "in_progress", "content": []}
        self.emit("response.output_item.added", output_index=index, item=started)
        part = {"item_id": item["id"], "output_index": index, "content_index": 0}
        self.emit("response.content_part.added", **part, part=_output_text(""))
        for chunk in chunks:
            self.emit("response.output_text.delta", True, **part, delta=chunk, logprobs=[])
        self.emit("response.output_text.done", **part, text=text, logprobs=[])
        self.emit("response.content_part.done", **part, part=_output_text(text))

    def function_call(self, index: int, item: dict[str, Any]) -> None:
        started = {**item, "status": "in_progress", "arguments": ""}
        self.emit("response.output_item.added", output_index=index, item=started)
        ref = {"item_id": item["id"], "output_index": index}
        for piece in split_arguments(item["arguments"]):
            self.emit("response.function_call_arguments.delta", True, **ref, delta=piece)
        self.emit(
            "response.function_call_arguments.done",
            **ref,
            name=item["name"],
            arguments=item["arguments"],
        )


def _items(reply: OutputReply, next_id: NextId) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text is not None:
        items.append(
            {
                "id": f"msg_mock_{next_id()}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [_output_text(reply.text)],
            }
        )
    items += [
        {
            "id": call.item_id,
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
            "status": "completed",
        }
        for call in reply.calls
    ]
    return items


def _response(
    reply: OutputReply,
    body: dict[str, Any],
    status: str,
    response_id: str,
    output: list[dict[str, Any]],
    *,
    created: int | None = None,
) -> dict[str, Any]:
    now = int(time.time())
    completed = status == "completed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": now if created is None else created,
        "status": status,
        "completed_at": now if completed else None,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "model": body.get("model") or "gpt-4o",
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "presence_penalty": body.get("presence_penalty", 0.0),
        "frequency_penalty": body.get("frequency_penalty", 0.0),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "safety_identifier": body.get("safety_identifier"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": _usage(reply, body) if completed else None,
        "user": None,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _usage(reply: OutputReply, body: dict[str, Any]) -> dict[str, Any]:
    n = reply.token_counts(body)
    return {
        "input_tokens": n.input,
        "input_tokens_details": {"cached_tokens": n.cached, "cache_write_tokens": 0},
        "output_tokens": n.output,
        "output_tokens_details": {"reasoning_tokens": n.reasoning},
        "total_tokens": n.total,
    }
