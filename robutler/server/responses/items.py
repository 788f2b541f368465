"""A stored response's input as Responses items: `GET /responses/{id}/input_items`.

A stored record keeps its conversation as Chat Completions messages (what the agent got,
without the instructions); `input_items` turns them back into the items of the
Responses API (`openai.types.responses.ResponseItem`), each with an id of its own that an
`item_reference` can name (`referenced_input`), and `item_list` pages them as OpenAI's
list object does (`after`, `before`, `limit`, `order`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..protocol import RequestError
from ..results import text_content
from .objects import item_id, output_text, refusal_part

__all__ = ["input_items", "item_list", "list_params", "referenced_input"]


def _input_parts(content: Any) -> list[dict[str, Any]]:
    """Chat content (a string or parts) as input content parts."""
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content or ():
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            parts.append(
                {
                    "type": "input_image",
                    "image_url": image.get("url"),
                    "detail": image.get("detail") or "auto",
                }
            )
        elif kind == "file":
            parts.append({"type": "input_file", **(part.get("file") or {})})
    return parts


def input_items(messages: Sequence[Mapping[str, Any]], response_id: str) -> list[dict[str, Any]]:
    """The conversation `messages` of stored response `response_id` as Responses items."""
    items: list[dict[str, Any]] = []
    for k, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            content = message.get("content")
            items.append(
                {
                    "id": item_id(response_id, "fco", f"i{k}"),
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id") or "",
                    "output": content if isinstance(content, str) else _input_parts(content),
                    "status": "completed",
                }
            )
        elif role == "assistant":
            text = text_content(message.get("content"))
            if text or message.get("refusal") or not message.get("tool_calls"):
                parts = [output_text(text or "")] if text or not message.get("refusal") else []
                if message.get("refusal"):
                    parts.append(refusal_part(message["refusal"]))
                items.append(
                    {
                        "id": item_id(response_id, "msg", f"i{k}"),
                        "type": "message",
                        "role": "assistant",
                        "status": "completed",
                        "content": parts,
                    }
                )
            for j, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                items.append(
                    {
                        "id": item_id(response_id, "fc", f"i{k}c{j}"),
                        "type": "function_call",
                        "call_id": call.get("id") or "",
                        "name": function.get("name") or "",
                        "arguments": function.get("arguments") or "",
                        "status": "completed",
                    }
                )
        else:
            items.append(
                {
                    "id": item_id(response_id, "msg", f"i{k}"),
                    "type": "message",
                    "role": role if role in ("user", "system", "developer") else "user",
                    "status": "completed",
                    "content": _input_parts(message.get("content")),
                }
            )
    return items


def referenced_input(
    messages: Sequence[Mapping[str, Any]], index: str
) -> list[dict[str, Any]] | None:
    """The message an input item's index (`i3`, or `i3c0` for a tool call) names."""
    if not index.startswith("i"):
        return None
    position, _, call = index[1:].partition("c")
    if not position.isdigit() or int(position) >= len(messages):
        return None
    message = dict(messages[int(position)])
    if not call:
        if message.get("role") == "assistant":
            message.pop("tool_calls", None)
        return [message]
    calls = message.get("tool_calls") or []
    if not call.isdigit() or int(call) >= len(calls):
        return None
    return [{"role": "assistant", "content": None, "tool_calls": [calls[int(call)]]}]


def _bad(param: str, message: str) -> RequestError:
    return RequestError(
        400, f"Invalid value for '{param}': {message}", param=param, code="invalid_value"
    )


def list_params(query: Mapping[str, str]) -> tuple[str | None, str | None, int, str]:
    """`after`, `before`, `limit` (1 to 100, default 20) and `order` (`asc` or `desc`,
    the default) of a list request; `include` is accepted (there is nothing more to add)."""
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise _bad("limit", f"must be an integer from 1 to 100, got {limit_text!r}")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise _bad("order", f"must be 'asc' or 'desc', got {order!r}")
    return query.get("after"), query.get("before"), int(limit_text), order


def item_list(
    items: list[dict[str, Any]], after: str | None, before: str | None, limit: int, order: str
) -> dict[str, Any]:
    """A page of `items` as OpenAI's list object."""
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]
    start, end = 0, len(ordered)
    if after is not None:
        if after not in ids:
            raise _bad("after", f"no item with id {after!r} in this response's input")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise _bad("before", f"no item with id {before!r} in this response's input")
        end = ids.index(before)
    window = ordered[start:end]
    page = window[:limit] if before is None else window[-limit:]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
        "has_more": len(page) < len(window),
    }
