"""The official `openai` client's own objects as agent results.

An agent that returns what the client returned - `await client.chat.completions.create(...)`
or `client.responses.create(...)`, streamed or not - is answered on either API: a
`ChatCompletion` becomes the answer's completion, a Responses `Response` is turned into
one, and the items of a stream (`ChatCompletionChunk`s, Responses stream events) into the
str deltas and chunk dicts the encoders take. The upstream's usage is kept (a Responses
usage is given in the Chat Completions shape, which both wire formats read).

They are recognised by their shape (pydantic models whose `object` or `type` is the wire's),
never by importing `openai`: the core does not depend on it. The client's streams need no
recognising: they are async (or sync) iterators with `aclose` (or `close`), which the
endpoint already iterates and closes when the client leaves, so the upstream request is
cut too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .protocol import RequestError

__all__ = [
    "ClientItems",
    "UpstreamFailed",
    "chat_usage",
    "completion_of",
    "completion_of_response",
]


class UpstreamFailed(RequestError):
    """A Responses stream the agent returned reported a failure (`response.failed`, `error`):
    the upstream's fault, a 502 `upstream_error` (as `upstream.py` maps the others)."""

    def __init__(self, message: str) -> None:
        super().__init__(502, f"The upstream model API failed: {message}", code="upstream_error")


def _dump(obj: Any) -> Any:
    """A pydantic model as the JSON it came from (fields the upstream did not send left out)."""
    return obj.model_dump(mode="json", exclude_unset=True)


def completion_of(result: Any) -> dict[str, Any] | None:
    """A chat.completion dict for a client's `ChatCompletion` or `Response`, else None."""
    if not callable(getattr(result, "model_dump", None)):
        return None
    kind = getattr(result, "object", None)
    if kind == "chat.completion":
        completion: dict[str, Any] = _dump(result)
        return completion
    if kind == "response":
        return completion_of_response(_dump(result))
    return None


def chat_usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Responses usage (`input_tokens`, ...) in the Chat Completions shape; others as they are."""
    if not usage or "input_tokens" not in usage:
        return dict(usage) if usage else None
    out: dict[str, Any] = {
        "prompt_tokens": usage.get("input_tokens") or 0,
        "completion_tokens": usage.get("output_tokens") or 0,
        "total_tokens": usage.get("total_tokens")
        or (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0),
    }
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def completion_of_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """A chat.completion dict from a Responses `response` object (as JSON).

    Output messages give the content (text parts joined) and refusal, `function_call` items
    the tool calls; other items (reasoning, built-in tools) have no Chat Completions form
    and are left out.
    """
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "function_call":
            calls.append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or ""},
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
    }
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    reason = (response.get("incomplete_details") or {}).get("reason")
    finish = _INCOMPLETE.get(reason or "", "tool_calls" if calls else "stop")
    completion: dict[str, Any] = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if response.get("model"):
        completion["model"] = response["model"]
    usage = chat_usage(response.get("usage"))
    if usage:
        completion["usage"] = usage
    return completion


class ClientItems:
    """Turns the items of a client's stream into stream items, one stream at a time.

    A `ChatCompletionChunk` becomes its chunk dict. Responses events become text deltas,
    tool-call deltas (numbered in the order the calls were added), a refusal, and at the
    end a usage chunk (and a `length` finish for an incomplete response); the other events
    say nothing a Chat Completions stream carries. A failed response raises `UpstreamFailed`.
    """

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: dict[Any, int] = {}  # Responses item id (or output index) -> tool index

    def items(self, obj: Any) -> list[Any] | None:
        """The stream items for `obj`, or None when it is not one of the client's objects."""
        if not callable(getattr(obj, "model_dump", None)):
            return None
        if getattr(obj, "object", None) == "chat.completion.chunk":
            return [_dump(obj)]
        kind = getattr(obj, "type", None)
        if not isinstance(kind, str):
            return None
        if kind == "response.output_text.delta":
            return [obj.delta] if obj.delta else []
        if kind.startswith("response."):
            return self._event(kind, _dump(obj))
        if kind == "error":
            raise UpstreamFailed(str(getattr(obj, "message", obj)))
        return None

    def _event(self, kind: str, event: dict[str, Any]) -> list[Any]:
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self.calls[item.get("id") or event.get("output_index")] = len(self.calls)
            call = {
                "index": index,
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            return [_delta({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            found = self.calls.get(event.get("item_id"), self.calls.get(event.get("output_index")))
            if found is None or not event.get("delta"):
                return []
            call = {"index": found, "function": {"arguments": event["delta"]}}
            return [_delta({"tool_calls": [call]})]
        if kind == "response.refusal.done":
            return [_delta({"refusal": event.get("refusal") or ""})]
        if kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            out: list[Any] = []
            reason = (response.get("incomplete_details") or {}).get("reason")
            if reason in _INCOMPLETE:
                out.append(
                    {"choices": [{"index": 0, "delta": {}, "finish_reason": _INCOMPLETE[reason]}]}
                )
            usage = chat_usage(response.get("usage"))
            if usage:
                out.append({"choices": [], "usage": usage})
            return out
        if kind == "response.failed":
            error = (event.get("response") or {}).get("error") or {}
            raise UpstreamFailed(str(error.get("message", error)))
        return []


def _delta(delta: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}]}
