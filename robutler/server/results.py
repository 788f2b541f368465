"""Turn whatever an agent returns into a chat.completion or a stream of chunks.

`classify` decides once what a result is; `iter_items` yields its stream items (str
deltas or chunk dicts); `ChunkEncoder` turns items into SSE frames that share one id,
`created` and `model`; `assemble` folds items into one completion; `completion_from_dict`
fills in a completion or message dict. The docs' table of what an agent may return
(docs/guide/agents.md) says what becomes of each kind.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from enum import IntEnum
from typing import Any

from starlette.responses import Response

from .calls import aclose, aiter_of
from .client_objects import ClientItems, completion_of
from .protocol import DONE, RequestError, encode, error_frame, sse_data

__all__ = [
    "AnswerTooLarge",
    "ChoicesMismatch",
    "ChunkEncoder",
    "Kind",
    "UnsupportedContent",
    "UnsupportedResult",
    "assemble",
    "classify",
    "completion_from_dict",
    "iter_items",
    "n_choices",
    "one_choice",
    "text_content",
]


class UnsupportedResult(RequestError, TypeError):
    """An agent returned something robutler cannot turn into a reply (a 500 for the client)."""

    def __init__(self, value: Any, where: str = "returned", message: str | None = None) -> None:
        kind = type(value).__name__
        super().__init__(
            500,
            message
            or f"Agent {where} an unsupported value of type {kind!r}; return a str, a "
            "chat.completion or message dict, an iterator of str or chunk dicts, an object "
            "with stream_events() or final_output, or a Starlette Response.",
            code="unsupported_result",
        )
        self.value = value


class UnsupportedContent(UnsupportedResult):
    """An agent's message content had a part that is not text."""

    def __init__(self, part: Any) -> None:
        kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
        super().__init__(
            part,
            message=f"Agent returned a content part of type {kind!r}; Chat Completions "
            "answers carry text only: return text parts ({'type': 'text', 'text': ...}) or a str.",
        )


class ChoicesMismatch(UnsupportedResult):
    """A `choices=True` agent did not answer with the number of choices asked for."""

    def __init__(self, value: Any, n: int, got: str) -> None:
        super().__init__(
            value,
            message=f"The agent was asked for n={n} choices and {got}; an agent registered "
            f"with choices=True returns a list of {n} replies (str or message dicts) or a "
            f"chat.completion dict with {n} choices.",
        )


def n_choices(result: Any, n: int) -> Any:
    """A `choices=True` agent's result, checked to carry `n` choices.

    A list (or tuple) of replies becomes a completion dict with one choice per reply; a
    completion dict must have `n` choices; anything else is accepted only for `n == 1`.
    """
    result = _unwrap(result)
    if isinstance(result, (list, tuple)):
        if len(result) != n:
            raise ChoicesMismatch(result, n, f"returned a list of {len(result)}")
        choices = []
        for index, reply in enumerate(result):
            if isinstance(reply, str):
                reply = {"role": "assistant", "content": reply}
            elif not isinstance(reply, Mapping):
                raise UnsupportedResult(reply, "returned, as a choice,")
            choices.append({"index": index, "message": reply})
        return {"choices": choices}
    if isinstance(result, Mapping) and "choices" in result:
        got = len(result.get("choices") or ())
        if got != n:
            raise ChoicesMismatch(result, n, f"returned a completion with {got} choice(s)")
        return result
    if n != 1:
        raise ChoicesMismatch(result, n, f"returned a {type(result).__name__}")
    return result


_TEXT_PARTS = ("text", "output_text")


def text_content(content: Any) -> Any:
    """A message's content as Chat Completions answers carry it: text parts joined into a str.

    Anything but a list is returned as it is; a part that is not text raises
    `UnsupportedContent`.
    """
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif (
            isinstance(part, Mapping)
            and part.get("type") in _TEXT_PARTS
            and isinstance(part.get("text"), str)
        ):
            texts.append(part["text"])
        else:
            raise UnsupportedContent(part)
    return "".join(texts)


class Kind(IntEnum):
    """What an agent returned, as `classify` tells it."""

    TEXT = 0  # a str
    COMPLETION = 1  # a chat.completion dict
    MESSAGE = 2  # a message dict
    EVENTS = 3  # an object with stream_events()
    AITER = 4  # an async iterator of str or chunk dicts
    ITER = 5  # a sync iterator of them
    RESPONSE = 6  # a Starlette Response, passed through


TEXT, COMPLETION, MESSAGE, EVENTS, AITER, ITER, RESPONSE = Kind


def _unwrap(result: Any) -> Any:
    """Follow `final_output` of objects that are not also streams; the `openai` client's
    `ChatCompletion` or `Response` becomes a chat.completion dict."""
    for _ in range(8):
        if isinstance(result, (str, dict, Response)):
            return result
        if hasattr(result, "stream_events") or not hasattr(result, "final_output"):
            return completion_of(result) or result
        result = result.final_output
    return result


def client_items(converter: ClientItems | None, item: Any) -> tuple[ClientItems, list[Any]]:
    """The stream items for one of the `openai` client's stream objects (a chunk, a
    Responses event), with the converter that keeps the stream's state; anything else
    raises `UnsupportedResult`."""
    if converter is None:
        converter = ClientItems()
    items = converter.items(item)
    if items is None:
        raise UnsupportedResult(item, "streamed")
    return converter, items


def classify(result: Any) -> tuple[Kind, Any]:
    """Return (kind, value) for an agent's result, or raise `UnsupportedResult`."""
    result = _unwrap(result)
    if isinstance(result, str):
        return TEXT, result
    if isinstance(result, Mapping):
        if "choices" in result:
            return COMPLETION, result
        if "content" in result or "tool_calls" in result or "role" in result:
            return MESSAGE, result
        raise UnsupportedResult(result)
    if isinstance(result, Response):
        return RESPONSE, result
    if callable(getattr(result, "stream_events", None)):
        return EVENTS, result
    if isinstance(result, AsyncIterable):
        return AITER, result
    if isinstance(result, Iterable) and not isinstance(result, (bytes, bytearray)):
        return ITER, result
    raise UnsupportedResult(result)


def _event_chunk(event: Any) -> Any:
    data = getattr(event, "data", None)
    if data is None and isinstance(event, Mapping):
        data = event.get("data")
    if data is None:
        return None
    if isinstance(data, Mapping):
        return data.get("chunk")
    return getattr(data, "chunk", None)


async def _events(result: Any) -> AsyncIterator[Any]:
    events = result.stream_events()
    if inspect.isawaitable(events):
        events = await events
    source = aiter_of(events)
    try:
        async for event in source:
            chunk = _event_chunk(event)
            if chunk is not None:
                yield chunk
    finally:
        # `async for` does not close what it iterates: a stream cut while the agent's
        # generator waits at a `yield` must run its `finally` now, not at garbage collection.
        await aclose(source)


def iter_items(kind: int, value: Any) -> AsyncIterator[Any]:
    """Stream items (str deltas or chunk dicts) for a streaming kind."""
    if kind == EVENTS:
        return _events(value)
    return aiter_of(value)


def _tool_calls(calls: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        call = dict(call)
        function = dict(call.get("function") or {})
        if "name" in call and "name" not in function:
            function["name"] = call.pop("name")
        if "arguments" in call and "arguments" not in function:
            function["arguments"] = call.pop("arguments")
        args = function.get("arguments", "")
        if not isinstance(args, str):
            function["arguments"] = encode(args).decode()
        function.setdefault("arguments", "")
        call["function"] = function
        if not call.get("id"):
            call["id"] = "call_" + uuid.uuid4().hex[:24]
        if not call.get("type"):
            call["type"] = "function"
        out.append(call)
    return out


def _message(msg: Mapping[str, Any]) -> dict[str, Any]:
    message = dict(msg)
    message.setdefault("role", "assistant")
    message["content"] = text_content(message.get("content"))
    if message.get("tool_calls"):
        message["tool_calls"] = _tool_calls(message["tool_calls"])
    else:
        message.pop("tool_calls", None)
    return message


def one_choice(
    message: dict[str, Any], finish_reason: str, cid: str, created: int, model: str
) -> dict[str, Any]:
    """A chat.completion with `message` as its only choice."""
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def completion_from_dict(
    kind: int, value: Mapping[str, Any], cid: str, created: int, model: str
) -> dict[str, Any]:
    """A complete chat.completion from a completion or message dict."""
    if kind == MESSAGE:
        message = _message(value)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return one_choice(message, finish, cid, created, model)
    completion = dict(value)
    completion["id"] = cid  # one id per request, whatever the agent's dict said
    completion["object"] = "chat.completion"
    completion.setdefault("created", created)
    if not completion.get("model"):
        completion["model"] = model
    choices = []
    for i, choice in enumerate(completion.get("choices") or []):
        choice = dict(choice)
        choice.setdefault("index", i)
        message = _message(choice.get("message") or {})
        choice["message"] = message
        if not choice.get("finish_reason"):
            choice["finish_reason"] = "tool_calls" if message.get("tool_calls") else "stop"
        choice.setdefault("logprobs", None)
        choices.append(choice)
    completion["choices"] = choices
    if completion.get("usage") is None:
        completion.pop("usage", None)
    return completion


def completion_chunks(completion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chunks that stream a complete chat.completion."""
    chunks: list[dict[str, Any]] = []
    for choice in completion["choices"]:
        index = choice["index"]
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        for key, val in message.items():
            if key not in ("role", "content", "tool_calls"):
                delta[key] = val
        chunks.append({"choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        for i, call in enumerate(message.get("tool_calls") or []):
            call_delta = {"index": i, **call}
            chunks.append(
                {
                    "choices": [
                        {
                            "index": index,
                            "delta": {"tool_calls": [call_delta]},
                            "finish_reason": None,
                        }
                    ]
                }
            )
        chunks.append(
            {"choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    if completion.get("usage"):
        chunks.append({"choices": [], "usage": completion["usage"]})
    return chunks


class ChunkEncoder:
    """Encodes stream items as SSE frames sharing one id, `created` and `model`.

    It adds the assistant role to each choice's first chunk, drops a second finish for a
    choice, and closes every open choice in `finish()`. Frames that finish a choice are
    held until `finish()`, so that the agent's usage is reported exactly once wherever it
    arrived: on OpenAI's separate `choices: []` usage chunk when the client asked for
    `include_usage`, otherwise on the last finish chunk. Nothing may follow a finish, so
    holding it back delays no content.
    """

    __slots__ = (
        "_client",
        "_head",
        "_held",
        "_text_prefix",
        "cid",
        "created",
        "finished",
        "include_usage",
        "model",
        "roles",
        "tool_ids",
        "tool_indexes",
        "usage",
    )

    def __init__(self, cid: str, created: int, model: str, include_usage: bool) -> None:
        self.cid = cid
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.roles: set[int] = set()
        self.finished: set[int] = set()
        self.tool_indexes: set[int] = set()
        self.tool_ids: set[tuple[int, int]] = set()
        self.usage: Any = None
        self._head = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._text_prefix = b""
        self._held: list[tuple[list[Any], dict[str, Any]]] = []
        self._client: ClientItems | None = None

    def set_model(self, model: str) -> None:
        """Use the agent's model for every chunk (call before the first frame)."""
        self.model = model
        self._head["model"] = model
        self._text_prefix = b""

    def _frame(self, choices: list[Any], extra: Mapping[str, Any] | None = None) -> bytes:
        chunk = dict(extra) if extra else {}
        chunk.update(self._head)
        chunk["choices"] = choices
        return sse_data(encode(chunk))

    def text(self, text: str) -> bytes:
        """Frame for a content delta of choice 0."""
        if 0 not in self.roles:
            self.roles.add(0)
            delta = {"role": "assistant", "content": text}
            return self._frame(
                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
            )
        if not self._text_prefix:
            head = encode(self._head)[:-1]
            self._text_prefix = b"data: " + head + b',"choices":[{"index":0,"delta":{"content":'
        return self._text_prefix + encode(text) + b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def chunk(self, chunk: Mapping[str, Any]) -> bytes | None:
        """Frame for an agent's chunk dict, or None when nothing is left to send."""
        extra = {
            k: v
            for k, v in chunk.items()
            if k not in ("id", "object", "created", "model", "choices", "usage")
        }
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        choices = []
        finishing = []
        for choice in chunk.get("choices") or ():
            choice = dict(choice)
            index = choice.setdefault("index", 0)
            if index in self.finished:
                continue  # nothing may follow a choice's finish
            delta = dict(choice.get("delta") or {})
            if isinstance(delta.get("content"), list):
                delta["content"] = text_content(delta["content"])
            if index not in self.roles:
                self.roles.add(index)
                delta["role"] = "assistant"
                delta.setdefault("content", "")
            elif "role" in delta:
                del delta["role"]  # the choice's first chunk gave it
            if delta.get("tool_calls"):
                self.tool_indexes.add(index)
                delta["tool_calls"] = [
                    self._tool_delta(index, call) for call in delta["tool_calls"]
                ]
            choice["delta"] = delta
            choice.setdefault("logprobs", None)
            if choice.get("finish_reason"):
                self.finished.add(index)
                finishing.append(choice)
            else:
                choice["finish_reason"] = None
                choices.append(choice)
        if finishing:
            self._held.append((finishing, extra))
        if not choices:
            return None
        return self._frame(choices, extra)

    def _tool_delta(self, index: int, call: Mapping[str, Any]) -> dict[str, Any]:
        """A tool-call delta; the first one of each call gets an id and a type if it lacks them."""
        call = dict(call)
        key = (index, call.setdefault("index", 0))
        if key not in self.tool_ids:
            self.tool_ids.add(key)
            if not call.get("id"):
                call["id"] = "call_" + uuid.uuid4().hex[:24]
            if not call.get("type"):
                call["type"] = "function"
        return call

    def item(self, item: Any) -> bytes | None:
        """Frame for a stream item: str or chunk dict."""
        if isinstance(item, str):
            return self.text(item) if item else None
        if isinstance(item, Mapping):
            return self.chunk(item)
        self._client, items = client_items(self._client, item)
        return b"".join(f for f in map(self.item, items) if f) or None

    def finish(self) -> bytes:
        """The finish chunks (held and still open), the agent's usage once, and [DONE]."""
        out = b""
        if not self.roles:
            self.roles.add(0)
            delta = {"role": "assistant", "content": ""}
            out += self._frame(
                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
            )
        frames = self._held
        for index in sorted(self.roles - self.finished):
            reason = "tool_calls" if index in self.tool_indexes else "stop"
            choice = {"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}
            frames.append(([choice], {}))
            self.finished.add(index)
        if self.usage and not self.include_usage:
            choices, extra = frames[-1]
            frames[-1] = (choices, {**extra, "usage": self.usage})
        for choices, extra in frames:
            out += self._frame(choices, extra)
        if self.include_usage and self.usage:
            out += self._frame([], {"usage": self.usage})
        return out + DONE

    def start(self) -> bytes:
        """What opens every stream: nothing, in Chat Completions."""
        return b""

    def opening(self) -> bytes:
        """What opens a stream before the agent's first item: choice 0's role chunk."""
        self.roles.add(0)
        delta = {"role": "assistant", "content": ""}
        return self._frame([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def error(self, body: Mapping[str, Any]) -> bytes:
        """An error event followed by [DONE]."""
        return error_frame(body)


def is_substantial(item: Any) -> bool:
    """False for leading chunks that carry only a role or empty content."""
    if isinstance(item, str):
        return bool(item)
    if not isinstance(item, Mapping):
        return True
    if item.get("usage"):
        return True
    for choice in item.get("choices") or ():
        if choice.get("finish_reason"):
            return True
        for key, val in (choice.get("delta") or {}).items():
            if key != "role" and val not in (None, "", []):
                return True
    return False


class AnswerTooLarge(RequestError):
    """An answer assembled for a non-streaming request grew past `max_answer_size`."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            500,
            f"The agent's answer is longer than the server's limit of {limit} characters for "
            "a non-streaming request; ask with stream=true, or raise max_answer_size.",
            code="answer_too_large",
        )


class _Choice:
    """One choice of an answer being assembled."""

    __slots__ = ("content", "extra", "finish_reason", "has_content", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.has_content = False
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.extra: dict[str, Any] = {}

    def add_text(self, text: str) -> int:
        self.content.append(text)
        self.has_content = True
        return len(text)

    def add_delta(self, delta: Mapping[str, Any]) -> int:
        """Fold one chunk's delta in; returns the characters it added."""
        size = 0
        for key, val in delta.items():
            if key == "content":
                if val is not None:
                    size += self.add_text(text_content(val))
            elif key == "tool_calls":
                for call in val or ():
                    size += self.add_tool_delta(call)
            elif key != "role" and val is not None:
                self.extra[key] = val
        return size

    def add_tool_delta(self, call: Mapping[str, Any]) -> int:
        slot = self.tools.setdefault(
            call.get("index", len(self.tools)),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        fn = call.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] += fn["name"]
        arguments = fn.get("arguments") or ""
        slot["function"]["arguments"] += arguments
        return len(arguments)

    def as_choice(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", **self.extra}
        message["content"] = "".join(self.content) if self.has_content or not self.tools else None
        if self.tools:
            message["tool_calls"] = _tool_calls(self.tools[k] for k in sorted(self.tools))
        finish = self.finish_reason or ("tool_calls" if self.tools else "stop")
        return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


class _Assembly:
    """The choices, usage and model of an answer being folded from stream items."""

    __slots__ = ("budget", "choices", "client", "limit", "model", "usage")

    def __init__(self, limit: int | None) -> None:
        self.client: ClientItems | None = None
        self.choices: dict[int, _Choice] = {}
        self.usage: Any = None
        self.model: str | None = None
        self.limit = limit
        self.budget: float = limit if limit is not None else math.inf

    def choice(self, index: int) -> _Choice:
        choice = self.choices.get(index)
        if choice is None:
            choice = self.choices[index] = _Choice()
        return choice

    def add(self, item: Any) -> None:
        """Fold in a str delta or a chunk dict."""
        if isinstance(item, str):
            size = self.choice(0).add_text(item)
        elif isinstance(item, Mapping):
            size = self.add_chunk(item)
        else:
            self.client, items = client_items(self.client, item)
            for each in items:
                self.add(each)
            return
        self.budget -= size
        if self.budget < 0:
            raise AnswerTooLarge(self.limit or 0)

    def add_chunk(self, chunk: Mapping[str, Any]) -> int:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        size = 0
        for raw in chunk.get("choices") or ():
            choice = self.choice(raw.get("index", 0))
            size += choice.add_delta(raw.get("delta") or {})
            if raw.get("finish_reason"):
                choice.finish_reason = raw["finish_reason"]
        return size

    def completion(self, cid: str, created: int, model: str) -> dict[str, Any]:
        choices = self.choices or {0: _Choice()}
        completion: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.model or model,
            "choices": [choices[i].as_choice(i) for i in sorted(choices)],
        }
        if self.usage:
            completion["usage"] = self.usage
        return completion


async def assemble(
    items: AsyncIterator[Any],
    cid: str,
    created: int,
    model: str,
    limit: int | None = None,
    yield_every: int = 0,
) -> dict[str, Any]:
    """Fold a stream of str deltas and chunk dicts into one chat.completion.

    More than `limit` characters of content and tool arguments raise `AnswerTooLarge`
    (the caller closes the agent's stream). Every `yield_every` items the event loop gets
    a turn, so that an agent that never awaits cannot hold it.
    """
    assembly = _Assembly(limit)
    countdown = yield_every
    async for item in items:
        if countdown:
            countdown -= 1
            if not countdown:
                countdown = yield_every
                await asyncio.sleep(0)
        assembly.add(item)
    return assembly.completion(cid, created, model)
