"""Response objects of the Responses API, built from what Chat Completions agents answer.

A `response` (`openai.types.responses.Response`) has an `output` list: `message` items
holding `output_text` (and `refusal`) parts, and `function_call` items for the answer's
tool calls. Its `usage` is there only when the agent gave usage, converted from Chat
Completions' `prompt_tokens`/`completion_tokens` to `input_tokens`/`output_tokens`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from ..protocol import encode
from ..results import text_content

if TYPE_CHECKING:
    from .request import ResponsesRequest

__all__ = [
    "MESSAGE_ITEM_JSON",
    "REFUSAL_PART_JSON",
    "TEXT_PART_JSON",
    "error_object",
    "new_response_id",
    "output_items",
    "response_from_completion",
    "response_json",
    "response_json_from_completion",
    "response_object",
    "response_of",
    "responses_usage",
    "status_of",
]


def new_response_id() -> str:
    """A fresh response id, `resp_` and 32 hex digits.

    Always made by the server, never from anything a client sent: stored responses are
    found by id, so a client must not be able to choose one.
    """
    return "resp_" + os.urandom(16).hex()  # as random as uuid4, without the UUID object


_ITEM_KEY = os.urandom(32)  # for ids not made here: a keyed hash, made once per process


class _ItemIds:
    """AES-256 of a response id's 16 random bytes, under a key from the server's secret:
    a keyed permutation, so an item id says nothing of its response's id (which reads
    and continues the stored response) to anyone without the key, and the server gets
    the response back from it (an `item_reference`). Made on first use."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        from .secret import derive

        cipher = Cipher(algorithms.AES(derive(b"item ids v1")), modes.ECB())
        self.hide = cipher.encryptor().update  # one block at a time: no chaining
        self.show = cipher.decryptor().update


_ids: _ItemIds | None = None


def _item_ids() -> _ItemIds:
    global _ids
    if _ids is None:
        _ids = _ItemIds()
    return _ids


def item_id(response_id: str, prefix: str, index: int | str) -> str:
    """The id of item `index` of a response: `msg_...` or `fc_...`, unique with it.

    Its middle part is the response id's random part enciphered (`_ItemIds`), never
    the response id itself (which reads and continues the stored response, and must not
    leak through an item id a client shows or logs); `response_of` reads it back. (An id
    not made by `new_response_id` gets a keyed hash instead, which nothing reads back.)
    """
    digits = response_id[5:]
    try:
        if len(digits) != 32 or not response_id.startswith("resp_"):
            raise ValueError(response_id)
        hidden = _item_ids().hide(bytes.fromhex(digits)).hex()
    except ValueError:
        hidden = blake2b(response_id.encode(), digest_size=16, key=_ITEM_KEY).hexdigest()
    return f"{prefix}_{hidden}_{index}"


def response_of(item: str) -> tuple[str, str] | None:
    """The response id and item index an `item_id` was made from, or None."""
    prefix, _, rest = item.partition("_")
    hidden, _, index = rest.partition("_")
    if not prefix or len(hidden) != 32 or not index:
        return None
    try:
        raw = bytes.fromhex(hidden)
    except ValueError:
        return None
    return "resp_" + _item_ids().show(raw).hex(), index


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


# `output_text(t)`, `refusal_part(t)` and a message item, encoded, with the JSON-encoded
# text (or id, status, parts) left open: what the encoder and the JSON answer write from.
TEXT_PART_JSON = b'{"type":"output_text","text":%b,"annotations":[],"logprobs":[]}'
REFUSAL_PART_JSON = b'{"type":"refusal","refusal":%b}'
MESSAGE_ITEM_JSON = b'{"id":%b,"type":"message","role":"assistant","status":"%b","content":[%b]}'


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def responses_usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An agent's usage (Chat Completions or Responses shaped) in the Responses shape.

    None when the agent gave none: robutler never invents token counts.
    """
    if not usage:
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        inp, out = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
    else:
        inp, out = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        in_details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
    total = usage.get("total_tokens")
    return {
        "input_tokens": inp,
        "input_tokens_details": {
            "cached_tokens": _count(in_details.get("cached_tokens")),
            "cache_write_tokens": _count(in_details.get("cache_write_tokens")),
        },
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": _count(out_details.get("reasoning_tokens"))},
        "total_tokens": _count(total) if total is not None else inp + out,
    }


# What a Chat Completions finish reason means for a response: status, incomplete reason.
_FINISH = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """A response's `status` and `incomplete_details` for a Chat Completions finish reason."""
    status, reason = _FINISH.get(finish_reason or "", ("completed", None))
    return status, ({"reason": reason} if reason else None)


def error_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """A response's `error` from an OpenAI-shaped error body `{"error": {...}}`.

    Its `code` is one the Response type allows: `rate_limit_exceeded` for a 429's
    `rate_limit_error`, otherwise `server_error`; the message says what happened.
    """
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    assert isinstance(error, Mapping)
    kind = error.get("type")
    code = "rate_limit_exceeded" if kind == "rate_limit_error" else "server_error"
    out: dict[str, Any] = {
        "code": code,
        "message": str(error.get("message") or "The agent failed."),
    }
    if error.get("param") is not None:
        out["param"] = error["param"]
    if isinstance(kind, str):
        out["type"] = kind
    return out


def response_object(
    response_id: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `response` object; `echo` holds the request fields it repeats."""
    return {
        **_head(response_id, created_at, model, status, error, incomplete_details),
        "output": output,
        "usage": usage,
        **echo,
    }


def response_json(
    response_id: str,
    created_at: int,
    model: str,
    echo: bytes,
    *,
    status: str,
    output: bytes,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
) -> bytes:
    """`response_object(...)` encoded, from its `output` list and `echo` (a JSON object)
    already encoded: what a stream's encoder has of them."""
    head = encode(_head(response_id, created_at, model, status, error, incomplete_details))
    return b"".join((head[:-1], b',"output":', output, b',"usage":', encode(usage), b",", echo[1:]))


def _head(
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    error: dict[str, Any] | None,
    incomplete_details: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete_details,
        "model": model,
    }


def output_items(
    message: Mapping[str, Any], response_id: str, item_status: str = "completed"
) -> list[dict[str, Any]]:
    """A chat message's answer as output items: a `message` item, then `function_call` items.

    The message item is left out when the message has tool calls and no text.
    """
    items: list[dict[str, Any]] = []
    content = text_content(message.get("content"))
    refusal = message.get("refusal")
    calls = message.get("tool_calls") or []
    if content or refusal or not calls:
        parts = []
        if content or not refusal:
            parts.append(output_text(content or ""))
        if refusal:
            parts.append(refusal_part(refusal))
        items.append(
            {
                "id": item_id(response_id, "msg", 0),
                "type": "message",
                "role": "assistant",
                "status": item_status,
                "content": parts,
            }
        )
    for call in calls:
        function = call.get("function") or {}
        items.append(
            {
                "id": item_id(response_id, "fc", len(items)),
                "type": "function_call",
                "call_id": call.get("id") or "call_" + uuid.uuid4().hex[:24],
                "name": function.get("name") or "",
                "arguments": function.get("arguments") or "",
                "status": "completed",
            }
        )
    return items


def response_from_completion(
    completion: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    request: ResponsesRequest,
) -> dict[str, Any]:
    """The `response` object that answers `request` with a chat.completion's first choice.

    The completion's own `model` wins over `model`; its usage, if any, is converted.
    """
    choice = (completion.get("choices") or [{}])[0]
    status, incomplete = status_of(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    return response_object(
        response_id,
        created_at,
        completion.get("model") or model,
        request.echo(),
        status=status,
        output=output_items(choice.get("message") or {}, response_id, item_status),
        usage=responses_usage(completion.get("usage")),
        incomplete_details=incomplete,
    )


def response_json_from_completion(
    completion: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    request: ResponsesRequest,
) -> bytes:
    """`response_from_completion(...)` encoded, byte for byte, without building the object:
    the fields that repeat the request come encoded from `request.echo_json()`, and a
    plain text answer's message item (the usual output) is written from its template."""
    choice = (completion.get("choices") or [{}])[0]
    status, incomplete = status_of(choice.get("finish_reason"))
    message = choice.get("message") or {}
    text = message.get("content")
    if (
        isinstance(text, str)
        and status == "completed"
        and not message.get("refusal")
        and not message.get("tool_calls")
    ):
        part = TEXT_PART_JSON % encode(text)
        item = MESSAGE_ITEM_JSON % (encode(item_id(response_id, "msg", 0)), b"completed", part)
        output = b"[%b]" % item
    else:
        item_status = "incomplete" if status == "incomplete" else "completed"
        output = encode(output_items(message, response_id, item_status))
    return response_json(
        response_id,
        created_at,
        completion.get("model") or model,
        request.echo_json(),
        status=status,
        output=output,
        usage=responses_usage(completion.get("usage")),
        incomplete_details=incomplete,
    )
