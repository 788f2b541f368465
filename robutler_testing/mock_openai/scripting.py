"""What the mock answers: scripted replies, the calls they answer, and how they are matched.

A reply is an `OutputReply` (assistant text and/or function calls) or an `ErrorReply` (an
HTTP error with an OpenAI-shaped body). The `Script` holds them: a reply added with
`match=` waits for a call it accepts (a `Match` on model or input text, or any callable
taking the `UpstreamCall`); the others are served in order to whatever call comes. A call
takes the first matched reply that accepts it, else the first unmatched one, so agents
running at once each get their own answers when their replies are matched.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from ..mock_agent import split_words

__all__ = [
    "Arguments",
    "ErrorReply",
    "Match",
    "Matcher",
    "OutputReply",
    "Reply",
    "Script",
    "ScriptedCall",
    "ToolCall",
    "UpstreamCall",
    "Usage",
    "check_usage",
    "split_arguments",
    "text_chunks",
]

Usage = Mapping[str, Any]
Arguments = Union[Mapping[str, Any], str]  # noqa: UP007 - evaluated at runtime on 3.10
Api = Literal["responses", "chat"]

USAGE_KEYS = frozenset(
    {
        "input_tokens",
        "prompt_tokens",
        "output_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
    }
)


def check_usage(usage: Usage | None) -> Usage | None:
    """`usage` as given, after refusing keys the mock does not know."""
    if usage is not None and (unknown := set(usage) - USAGE_KEYS):
        raise ValueError(f"unknown usage keys {sorted(unknown)}; use {sorted(USAGE_KEYS)}")
    return usage


@dataclass(frozen=True)
class ToolCall:
    """One function call in a scripted reply; ``arguments`` is a mapping or a JSON string."""

    name: str
    arguments: Arguments = field(default_factory=dict)
    call_id: str | None = None


@dataclass
class UpstreamCall:
    """One request the mock received, and what it answered (``None``: nothing was scripted).

    `api`, `model` and `text` are what replies are matched on.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    reply: str | None = None

    @property
    def api(self) -> Api | None:
        """ "responses" or "chat" for the two endpoints the mock serves, else None."""
        if self.method != "POST":
            return None
        path = self.path.rstrip("/")
        if path.endswith("/responses"):
            return "responses"
        if path.endswith("/chat/completions"):
            return "chat"
        return None

    @property
    def model(self) -> str | None:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def text(self) -> str:
        """All the text the model is sent, one piece a line: instructions, the messages or
        input items (their content, text parts and tool outputs)."""
        body = self.body if isinstance(self.body, dict) else {}
        pieces = [*_texts(body.get("instructions")), *_texts(body.get("input"))]
        pieces += _texts(body.get("messages"))
        return "\n".join(pieces)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("content", "text", "output"):
            yield from _texts(value.get(key))


@dataclass(frozen=True)
class Match:
    """Accepts a call by its model (equal) and its input text (a substring, or a compiled
    regular expression searched in `UpstreamCall.text`); both must hold when both are set."""

    model: str | None = None
    input: str | re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.model is None and self.input is None:
            raise ValueError("Match() needs model=... or input=... (or pass a callable)")

    def __call__(self, call: UpstreamCall) -> bool:
        if self.model is not None and call.model != self.model:
            return False
        if isinstance(self.input, str):
            return self.input in call.text
        return self.input is None or self.input.search(call.text) is not None

    def __str__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in (("model", self.model), ("input", self.input)) if v]
        return f"Match({', '.join(parts)})"


Matcher = Callable[[UpstreamCall], bool]


@dataclass(frozen=True)
class ScriptedCall:
    """A function call as it goes over the wire: JSON arguments and fixed ids."""

    name: str
    arguments: str
    call_id: str
    item_id: str


@dataclass(frozen=True)
class OutputReply:
    """An assistant answer: text (`chunks` are its deltas; None: no text) and/or calls.

    `delay` waits before answering (`math.inf`: until the block exits); streamed,
    `chunk_delay` waits after each delta and `disconnect_after=n` drops the connection
    after n deltas.
    """

    chunks: tuple[str, ...] | None = None
    calls: tuple[ScriptedCall, ...] = ()
    usage: Usage | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    disconnect_after: int | None = None

    @property
    def text(self) -> str | None:
        return None if self.chunks is None else "".join(self.chunks)

    def describe(self) -> str:
        parts = []
        if self.text is not None:
            text = self.text
            parts.append(f"text {text[:40] + '...' if len(text) > 40 else text!r}")
        parts += [f"tool_call {call.name}({call.arguments})" for call in self.calls]
        return ", ".join(parts)

    def token_counts(self, body: Mapping[str, Any]) -> TokenCounts:
        """The usage to report: as scripted, or estimated at 4 characters a token."""
        usage = self.usage or {}
        inp = usage.get("input_tokens", usage.get("prompt_tokens"))
        out = usage.get("output_tokens", usage.get("completion_tokens"))
        if inp is None:
            inp = _estimate(body.get("input", body.get("messages", "")))
        if out is None:
            out = sum(_estimate(c) for c in self.chunks or ()) + sum(
                _estimate(call.name + call.arguments) for call in self.calls
            )
        return TokenCounts(
            inp,
            out,
            usage.get("total_tokens", inp + out),
            usage.get("cached_tokens", 0),
            usage.get("reasoning_tokens", 0),
        )


def echo(call: UpstreamCall) -> OutputReply:
    """A reply that says the call's last user message back ("You said: ...")."""
    body = call.body if isinstance(call.body, dict) else {}
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        last = items
    else:
        users = [m for m in items if isinstance(m, dict) and m.get("role", "user") == "user"]
        last = "\n".join(_texts(users[-1])) if users else ""
    return OutputReply(text_chunks(f"You said: {last}"))


@dataclass(frozen=True)
class TokenCounts:
    """The token counts both wires report, each in its own shape."""

    input: int
    output: int
    total: int
    cached: int
    reasoning: int


def _estimate(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error answered with ``{"error": {message, type, param, code}}``."""

    status: int
    message: str
    type: str
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def describe(self) -> str:
        return f"error {self.status} {self.message!r}"

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)


Reply = Union[OutputReply, ErrorReply]  # noqa: UP007 - evaluated at runtime on 3.10


def error_body(message: str, error_type: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def default_error_type(status: int) -> str:
    """The `type` the OpenAI API gives an error of this status."""
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "conflict_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")


def split_arguments(arguments: str, pieces: int = 3) -> list[str]:
    """JSON arguments in (at most) `pieces` deltas, the way a model streams them."""
    size = max(1, math.ceil(len(arguments) / pieces))
    return [arguments[start : start + size] for start in range(0, len(arguments), size)]


def text_chunks(text: str | Any) -> tuple[str, ...]:
    """A string as one delta per word (spaces kept); a sequence of strings as given."""
    return tuple(split_words(text)) if isinstance(text, str) else tuple(str(c) for c in text)


@dataclass(frozen=True)
class _Entry:
    reply: Reply
    match: Matcher | None

    def describe(self) -> str:
        return self.reply.describe() + ("" if self.match is None else f" (match {self.match})")


class Script:
    """The replies not yet served, thread-safe (the mock's server runs in its own thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A number no other id of this mock has (ids are unique per mock)."""
        return next(self._ids)

    def add(self, reply: Reply, match: Matcher | None = None) -> None:
        if match is not None and not callable(match):
            raise TypeError(
                f"match= takes a Match(model=..., input=...) or a callable taking the "
                f"UpstreamCall, got {type(match).__name__}"
            )
        with self.lock:
            self._entries.append(_Entry(reply, match))

    def tool_calls(self, calls: list[ToolCall]) -> tuple[ScriptedCall, ...]:
        """Scripted calls with ids: `call_mock_N` unless the call names its own."""
        out = []
        for call in calls:
            args = call.arguments
            n = self.next_id()
            out.append(
                ScriptedCall(
                    call.name,
                    args if isinstance(args, str) else json.dumps(args),
                    call.call_id or f"call_mock_{n}",
                    f"fc_mock_{n}",
                )
            )
        return tuple(out)

    def take(self, call: UpstreamCall) -> Reply | None:
        """The reply for `call` (removed from the script), or None. Call with `lock` held."""
        matched = (e for e in self._entries if e.match is not None and e.match(call))
        entry = next(matched, None) or next((e for e in self._entries if e.match is None), None)
        if entry is None:
            return None
        self._entries.remove(entry)
        return entry.reply

    @property
    def waiting_for_a_match(self) -> int:
        return sum(1 for e in self._entries if e.match is not None)

    def pending(self) -> list[str]:
        """Descriptions of the replies not yet served."""
        with self.lock:
            return [e.describe() for e in self._entries]
