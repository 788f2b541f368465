"""Streaming a Responses API answer: semantic SSE events from Chat Completions stream items.

`ResponsesEncoder` is the Responses twin of `results.ChunkEncoder`: it consumes the same
stream items (str deltas, chat.completion.chunk dicts) and writes the events OpenAI's
Responses API streams, each as `event: TYPE\\ndata: JSON\\n\\n` with a strictly increasing
`sequence_number`:

    response.created, response.in_progress
    per message:  output_item.added, content_part.added, output_text.delta...,
                  output_text.done, content_part.done, output_item.done
    per tool call: output_item.added, function_call_arguments.delta...,
                  function_call_arguments.done, output_item.done
    response.completed (or response.incomplete, or response.failed)

Text is sent as it arrives. A message is closed when a tool call starts; tool calls stay
open until the end (their argument deltas may interleave), and a tool call's item is
added once its first arguments arrive, so that its name and call id are complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from ..client_objects import ClientItems
from ..protocol import encode
from ..results import client_items, text_content
from .objects import (
    MESSAGE_ITEM_JSON,
    REFUSAL_PART_JSON,
    TEXT_PART_JSON,
    error_object,
    item_id,
    output_text,
    refusal_part,
    response_json,
    responses_usage,
    status_of,
)

if TYPE_CHECKING:
    from .request import ResponsesRequest

__all__ = ["ResponsesEncoder"]

# A text delta's frame is its message's prefix (the event line and the fields up to
# "delta"), the delta, then this tail: the sequence number comes last, so that a delta
# costs two concatenations. The tails of a stream's first 1024 events are made once.
_DELTA_HEAD = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
_DELTA_TAIL = b',"logprobs":[],"sequence_number":%d}\n\n'
_DELTA_TAILS = tuple(_DELTA_TAIL % n for n in range(1024))


def _delta_tail(seq: int) -> bytes:
    return _DELTA_TAILS[seq] if seq < 1024 else _DELTA_TAIL % seq


_EVENT = b'event: %b\ndata: {"type":"%b","sequence_number":%d,%b}\n\n'
_EMPTY_TEXT_PART = TEXT_PART_JSON % b'""'


class _Message:
    __slots__ = (
        "done",
        "id",
        "index",
        "json",
        "parts",
        "prefix",
        "refusal",
        "refusal_at",
        "status",
        "text",
        "text_at",
    )

    def __init__(self, index: int, item: str) -> None:
        self.index = index
        self.id = item
        self.parts: list[str] = []  # "text" / "refusal", in content_index order
        self.text: list[str] = []
        self.text_at = -1
        self.refusal: list[str] = []
        self.refusal_at = -1
        self.prefix = b""
        self.done = False
        self.status = "in_progress"
        self.json = b""  # the finished item, encoded (once done)

    def item(self, status: str) -> dict[str, Any]:
        content = [
            output_text("".join(self.text))
            if part == "text"
            else refusal_part("".join(self.refusal))
            for part in self.parts
        ]
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }


class _Call:
    __slots__ = ("arguments", "call_id", "done", "id", "index", "name", "status")

    def __init__(self, call_id: str | None, name: str) -> None:
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []
        self.index = -1  # output_index, once the item is added
        self.id = ""
        self.done = False
        self.status = "in_progress"

    def item(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": "".join(self.arguments),
            "status": status,
        }


class ResponsesEncoder:
    """Encodes stream items as Responses API events for one response.

    `start()` gives the opening events; `item()` the events for a str delta or a chunk
    dict (None when there is nothing to send); `finish()` closes every item and sends
    `response.completed` (`response.incomplete` for a `length` or `content_filter`
    finish); `error(body)` sends `response.failed` with an OpenAI-shaped error body's
    message. `usage` is the agent's usage as it gave it; `response` is the final
    response object once `finish()` or `error()` ran. Methods called before `start()`
    send its events first.
    """

    __slots__ = (
        "_calls",
        "_client",
        "_items",
        "_message",
        "_pending",
        "_seq",
        "_texting",
        "created_at",
        "echo_json",
        "finish_reason",
        "model",
        "response_id",
        "response_json",
        "started",
        "usage",
    )

    def __init__(
        self, response_id: str, created_at: int, model: str, request: ResponsesRequest
    ) -> None:
        self.response_id = response_id
        self.created_at = created_at
        self.model = model
        self.echo_json = request.echo_json()  # the fields that repeat the request, encoded once
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_json: bytes | None = None  # the final response, once finished
        self.started = False
        self._seq = 0
        self._items: list[_Message | _Call] = []
        self._message: _Message | None = None  # the open message, if any
        self._calls: dict[int, _Call] = {}  # by the chunks' tool-call index
        self._pending: _Call | None = None  # a tool call whose item is not added yet
        self._texting: _Message | None = None  # the open text part's message, until a finish
        self._client: ClientItems | None = None  # for the openai client's stream objects

    def set_model(self, model: str) -> None:
        """Use the agent's model in the response (call before `start()`)."""
        self.model = model

    # frames -------------------------------------------------------------------------

    @property
    def response(self) -> dict[str, Any] | None:
        """The final response object, once `finish()` or `error()` ran."""
        return None if self.response_json is None else from_json(self.response_json)

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        """An event from its fields (but `type` and `sequence_number`)."""
        return self._raw_event(kind.encode(), encode(fields)[1:-1])

    def _snapshot(self, status: str, output: bytes, **extra: Any) -> bytes:
        """The response object as it stands, encoded, from its output encoded."""
        return response_json(
            self.response_id,
            self.created_at,
            self.model,
            self.echo_json,
            status=status,
            output=output,
            **extra,
        )

    def start(self) -> bytes:
        """`response.created` and `response.in_progress` (the same snapshot, encoded once)."""
        if self.started:
            return b""
        self.started = True
        snapshot = b'"response":%b' % self._snapshot("in_progress", b"[]")
        return self._raw_event(b"response.created", snapshot) + self._raw_event(
            b"response.in_progress", snapshot
        )

    def opening(self) -> bytes:
        """What opens a stream before the agent's first item: nothing beyond `start()`,
        whose events already tell the client the response is in progress."""
        return b""

    # items ----------------------------------------------------------------------------

    def item(self, item: Any) -> bytes | None:
        """Events for a stream item: a str delta or a chat.completion.chunk dict."""
        if isinstance(item, str):
            message = self._texting
            if message is None:
                return self.text(item) if item else None
            if not item:
                return None
            # the common case, a delta of the open text part: one frame, built in one step
            seq = self._seq
            self._seq = seq + 1
            message.text.append(item)
            return message.prefix + encode(item) + _delta_tail(seq)
        if isinstance(item, Mapping):
            return self.chunk(item)
        self._client, items = client_items(self._client, item)
        return b"".join(f for f in map(self.item, items) if f) or None

    def text(self, text: str) -> bytes | None:
        """Events for a text delta."""
        if self.finish_reason is not None:
            return None  # nothing may follow the answer's finish
        message = self._message
        out = b""
        if message is None or message.text_at < 0:
            out = self._open_text()
            message = self._message
            assert message is not None
        seq = self._seq
        self._seq = seq + 1
        message.text.append(text)
        return b"".join((out, message.prefix, encode(text), _delta_tail(seq)))

    def _open_text(self) -> bytes:
        """Open a message (if none is open) and its output_text part (if it has none)."""
        out, message = self._open_message()
        if message.text_at < 0:
            message.text_at = len(message.parts)
            message.parts.append("text")
            where = b'"item_id":%b,"output_index":%d,"content_index":%d' % (
                encode(message.id),
                message.index,
                message.text_at,
            )
            added = b'%b,"part":%b' % (where, _EMPTY_TEXT_PART)
            out += self._raw_event(b"response.content_part.added", added)
            message.prefix = _DELTA_HEAD + where + b',"delta":'
        self._texting = message
        return out

    def _add_message(self) -> bytes:
        index = len(self._items)
        message = _Message(index, item_id(self.response_id, "msg", index))
        self._items.append(message)
        self._message = message
        item = MESSAGE_ITEM_JSON % (encode(message.id), b"in_progress", b"")
        return self._raw_event(
            b"response.output_item.added", b'"output_index":%d,"item":%b' % (index, item)
        )

    def _open_message(self) -> tuple[bytes, _Message]:
        """The events that open the response and a message item, as far as not yet open."""
        out = self.start() if not self.started else b""
        out += self._add_pending()
        if self._message is None:
            out += self._add_message()
        message = self._message
        assert message is not None
        return out, message

    def _refusal(self, text: str) -> bytes:
        out, message = self._open_message()
        where = {"item_id": message.id, "output_index": message.index}
        if message.refusal_at < 0:
            message.refusal_at = len(message.parts)
            message.parts.append("refusal")
            out += self._event(
                "response.content_part.added",
                {**where, "content_index": message.refusal_at, "part": refusal_part("")},
            )
        message.refusal.append(text)
        return out + self._event(
            "response.refusal.delta", {**where, "content_index": message.refusal_at, "delta": text}
        )

    def _close_message(self, status: str = "completed") -> bytes:
        message = self._message
        if message is None:
            return b""
        self._message = self._texting = None
        message.done = True
        message.status = status
        where = b'"item_id":%b,"output_index":%d' % (encode(message.id), message.index)
        out = []
        parts = []
        for index, part in enumerate(message.parts):
            if part == "text":
                text = encode("".join(message.text))
                done = b'%b,"content_index":%d,"text":%b,"logprobs":[]' % (where, index, text)
                out.append(self._raw_event(b"response.output_text.done", done))
                part_json = TEXT_PART_JSON % text
            else:
                refusal = encode("".join(message.refusal))
                done = b'%b,"content_index":%d,"refusal":%b' % (where, index, refusal)
                out.append(self._raw_event(b"response.refusal.done", done))
                part_json = REFUSAL_PART_JSON % refusal
            parts.append(part_json)
            done = b'%b,"content_index":%d,"part":%b' % (where, index, part_json)
            out.append(self._raw_event(b"response.content_part.done", done))
        message.json = MESSAGE_ITEM_JSON % (encode(message.id), status.encode(), b",".join(parts))
        done = b'"output_index":%d,"item":%b' % (message.index, message.json)
        out.append(self._raw_event(b"response.output_item.done", done))
        return b"".join(out)

    def _raw_event(self, kind: bytes, fields: bytes) -> bytes:
        """An event from its fields (but `type` and `sequence_number`) encoded."""
        seq = self._seq
        self._seq = seq + 1
        return _EVENT % (kind, kind, seq, fields)

    def _add_pending(self) -> bytes:
        """Add the item of the tool call that is waiting for its first arguments, if any."""
        call = self._pending
        if call is None:
            return b""
        self._pending = None
        out = self._close_message()
        call.index = len(self._items)
        call.id = item_id(self.response_id, "fc", call.index)
        if not call.call_id:
            call.call_id = "call_" + uuid.uuid4().hex[:24]
        self._items.append(call)
        return out + self._event(
            "response.output_item.added",
            {"output_index": call.index, "item": {**call.item("in_progress"), "arguments": ""}},
        )

    def _tool_delta(self, call: Mapping[str, Any]) -> bytes:
        key = call.get("index", 0)
        function = call.get("function") or {}
        name = function.get("name")
        arguments = function.get("arguments")
        state = self._calls.get(key)
        out = b""
        if state is None:
            out += self._add_pending()
            state = self._calls[key] = _Call(call.get("id") or None, name or "")
            self._pending = state
        else:
            if call.get("id") and not state.call_id:
                state.call_id = call["id"]
            if name:
                state.name += name
        if not arguments:
            return out
        out += self._add_pending()  # this call's item, or a waiting one's before it
        state.arguments.append(arguments)
        return out + self._event(
            "response.function_call_arguments.delta",
            {"item_id": state.id, "output_index": state.index, "delta": arguments},
        )

    def chunk(self, chunk: Mapping[str, Any]) -> bytes | None:
        """Events for a chat.completion.chunk dict: its choice 0's content, refusal and
        tool-call deltas; its finish reason and usage are kept for `finish()`."""
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        out = b""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0 or self.finish_reason is not None:
                continue  # one answer per response; nothing may follow its finish
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                text = text_content(content) if isinstance(content, list) else content
                if text:
                    out += self.text(text) or b""
            if delta.get("refusal"):
                out += self._refusal(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self._texting = None  # nothing may follow the finish
        if out and not self.started:
            out = self.start() + out
        return out or None

    # the end --------------------------------------------------------------------------

    def finish(self) -> bytes:
        """Close every item and send `response.completed` (or `response.incomplete`)."""
        out = self.start()
        status, incomplete = status_of(self.finish_reason)
        item_status = "incomplete" if status == "incomplete" else "completed"
        out += self._add_pending()
        if not self._items:
            out += self._open_text()  # an empty answer is an empty message
        out += self._close_message(item_status)
        for item in self._items:
            if isinstance(item, _Call) and not item.done:
                item.done = True
                item.status = item_status
                arguments = "".join(item.arguments)
                where = {"item_id": item.id, "output_index": item.index}
                out += self._event(
                    "response.function_call_arguments.done", {**where, "arguments": arguments}
                )
                out += self._event(
                    "response.output_item.done",
                    {"output_index": item.index, "item": item.item(item_status)},
                )
        self.response_json = self._snapshot(
            status,
            self._output(),
            usage=responses_usage(self.usage),
            incomplete_details=incomplete,
        )
        kind = b"response.completed" if status == "completed" else b"response.incomplete"
        return out + self._raw_event(kind, b'"response":%b' % self.response_json)

    def empty(self) -> bytes:
        """`response.completed` with no output: a turn that generates nothing (a
        WebSocket warm-up, `generate: false`)."""
        out = self.start()
        self.response_json = self._snapshot("completed", b"[]")
        return out + self._raw_event(b"response.completed", b'"response":%b' % self.response_json)

    def error(self, body: Mapping[str, Any]) -> bytes:
        """`response.failed` carrying the error of an OpenAI-shaped error body."""
        out = self.start()
        self.response_json = self._snapshot(
            "failed",
            self._output(),
            usage=responses_usage(self.usage),
            error=error_object(body),
        )
        return out + self._raw_event(b"response.failed", b'"response":%b' % self.response_json)

    def _output(self) -> bytes:
        """The response's `output`, encoded: finished messages as they were sent, the
        rest (tool calls, a message cut off by a failure) as they stand."""
        items = [
            item.json
            if isinstance(item, _Message) and item.json
            else encode(item.item(item.status if item.done else "incomplete"))
            for item in self._items
        ]
        return b"[%b]" % b",".join(items)
