"""Conformance checks for Responses API answers: `response` objects and their SSE streams.

`validate_response` checks a `response` object; `validate_response_stream` a stream of
semantic events (`event: TYPE` / `data: JSON`). Both check the wire rules themselves
(object names, statuses, item and part bookkeeping, sequence numbers, texts and tool-call
arguments that add up, usage totals) *and* parse with the official `openai` client's
types in strict mode; a stream is also fed through the accumulator behind
`client.responses.stream(...)`, so "passes here" means "the official client reads it".
Every problem is collected before `ConformanceError` is raised, each with the index of
the event it concerns.

`openai` and pydantic are imported on first use, like in `validators`.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .sse import SSEDecoder, decode_sse
from .validators import ConformanceError, Problem, _excerpt, _is_int, _kind, _pieces, _where

__all__ = [
    "RESPONSE_STATUSES",
    "EventProblem",
    "ResponseStreamReport",
    "validate_response",
    "validate_response_messages",
    "validate_response_stream",
]

RESPONSE_STATUSES = frozenset(
    {"completed", "failed", "in_progress", "cancelled", "queued", "incomplete"}
)
_ITEM_STATUSES = frozenset({"in_progress", "completed", "incomplete"})
_TERMINAL = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued", *_TERMINAL})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class EventProblem(Problem):
    """A problem of a Responses stream; `index` is the SSE event it concerns."""

    def __str__(self) -> str:
        return self.message if self.index is None else f"event {self.index}: {self.message}"


@dataclass
class ResponseStreamReport:
    """What a valid Responses stream said.

    `events` are the decoded events; `text` joins the output_text of every message item
    (what the client's `output_text` gives); `tool_calls` are the function calls
    (`id`, `call_id`, `name`, `arguments`); `status` is the final response's status
    (`completed`, `incomplete`, `failed`, or `error` for a stream ended by an `error`
    event); `response` is the final response object, `error` its error if any.
    """

    events: list[dict[str, Any]]
    text: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any] | None
    status: str | None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    id: str | None = None
    model: str | None = None
    refusal: str = ""
    event_types: list[str] = field(default_factory=list)


# helpers ------------------------------------------------------------------------------


def _json_problem(text: Any) -> str | None:
    if not isinstance(text, str):
        return f"must be a JSON string, got {_kind(text)}"
    try:
        json.loads(text)
    except ValueError as exc:
        return f"is not valid JSON ({exc}): {_excerpt(text)}"
    return None


@cache
def _event_types() -> dict[str, Any]:
    """Event type name -> the official client's event class."""
    from openai.types.responses import ResponseStreamEvent

    union = typing.get_args(ResponseStreamEvent)[0]
    out = {}
    for cls in typing.get_args(union):
        for literal in typing.get_args(cls.model_fields["type"].annotation):
            out[literal] = cls
    return out


@cache
def _type_literals() -> dict[str, frozenset[str]]:
    """Class name -> the `type` values of openai's models of that name (for union errors)."""
    import openai.types.responses  # noqa: F401 - loads every Responses type
    from pydantic import BaseModel

    out: dict[str, set[str]] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("openai.types"):
            continue
        for attr, cls in vars(module).items():
            if not (isinstance(cls, type) and issubclass(cls, BaseModel) and attr[:1].isupper()):
                continue
            type_field = cls.model_fields.get("type")
            if type_field is None:
                continue
            values = {v for v in typing.get_args(type_field.annotation) if isinstance(v, str)}
            if values:
                out.setdefault(cls.__name__, set()).update(values)
    return {k: frozenset(v) for k, v in out.items()}


def _on_branch(loc: tuple[Any, ...], data: Any) -> bool:
    """Whether a pydantic error is from the union branch that `data`'s `type` selects."""
    literals = _type_literals()
    node = data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(part, str) and part in literals:
            have = node.get("type") if isinstance(node, Mapping) else None
            if isinstance(have, str) and have not in literals[part]:
                return False
    return True


def _strict_parse(
    model: Any,
    obj: Mapping[str, Any],
    problems: list[Problem],
    index: int | None,
    faulted: list[Path],
    prefix: Path = (),
) -> None:
    """Parse `obj` with an official type in strict mode; add what it rejects.

    Union errors are kept only for the branch the data's `type` names, so a bad item is
    reported once, not once per kind of item the client knows.
    """
    from pydantic import ValidationError

    try:
        model.model_validate(obj, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        kept = [e for e in errors if _on_branch(e["loc"], obj)] or errors[:1]
        seen = set()
        for error in kept:
            loc = tuple(
                p
                for p in error["loc"]
                if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p in _TAGS))
            )
            path = (*prefix, *loc)
            if any(path[: len(f)] == f for f in faulted):
                continue
            message = (
                f"{_where(path)}: {error['msg']} "
                f"(rejected by openai.types.responses.{model.__name__}, strict)"
            )
            if message not in seen:
                seen.add(message)
                problems.append(EventProblem(index, message))


_TAGS = frozenset({"str", "int", "float", "bool", "none", "function-after", "function-plain"})


class _Checker:
    """Collects problems of one object (a response, an event), with their paths."""

    def __init__(self, problems: list[Problem], index: int | None, prefix: Path = ()) -> None:
        self.problems = problems
        self.index = index
        self.prefix = prefix
        self.faulted: list[Path] = []

    def bad(self, path: Path, message: str) -> None:
        path = (*self.prefix, *path)
        self.faulted.append(path)
        self.problems.append(EventProblem(self.index, f"{_where(path)} {message}"))

    def string(self, obj: Mapping[str, Any], path: Path, key: str, *, empty: bool = False) -> None:
        value = obj.get(key)
        if key not in obj:
            self.bad((*path, key), "is missing")
        elif not isinstance(value, str):
            self.bad((*path, key), f"must be a string, got {_kind(value)}")
        elif not empty and not value:
            self.bad((*path, key), "must not be empty")

    def response(self, obj: Mapping[str, Any]) -> None:
        """The wire rules of a `response` object."""
        self.identity(obj)
        status = self.outcome(obj)
        self.output(obj, final=status == "completed")
        usage = obj.get("usage")
        if usage is not None:
            self.usage(usage)

    def identity(self, obj: Mapping[str, Any]) -> None:
        """`object`, `id`, `created_at` and `model`."""
        if obj.get("object") != "response":
            got = obj.get("object")
            self.bad(
                ("object",), "is missing" if got is None else f"is {got!r}, expected 'response'"
            )
        self.string(obj, (), "id")
        created = obj.get("created_at")
        if "created_at" not in obj:
            self.bad(("created_at",), "is missing")
        elif isinstance(created, bool) or not isinstance(created, (int, float)) or created < 0:
            self.bad(("created_at",), f"must be a Unix time in seconds, got {created!r}")
        self.string(obj, (), "model")

    def outcome(self, obj: Mapping[str, Any]) -> Any:
        """`status`, and the `error` / `incomplete_details` it asks for; returns it."""
        status = obj.get("status")
        if status is not None and not (isinstance(status, str) and status in RESPONSE_STATUSES):
            allowed = ", ".join(sorted(RESPONSE_STATUSES))
            self.bad(("status",), f"is {status!r}, not one of {allowed}")
        error = obj.get("error")
        if status == "failed":
            if not isinstance(error, Mapping) or not isinstance(error.get("message"), str):
                self.bad(("error",), "must be an object with a message when the status is 'failed'")
        elif error is not None:
            self.bad(("error",), f"must be null unless the status is 'failed' (status {status!r})")
        if status == "incomplete":
            details = obj.get("incomplete_details")
            if not isinstance(details, Mapping) or not details.get("reason"):
                self.bad(
                    ("incomplete_details",),
                    "must give a reason when the status is 'incomplete'",
                )
        return status

    def output(self, obj: Mapping[str, Any], *, final: bool) -> None:
        """`output`: an array of valid items with distinct ids."""
        output = obj.get("output")
        if "output" not in obj:
            self.bad(("output",), "is missing")
            return
        if not isinstance(output, list):
            self.bad(("output",), f"must be an array, got {_kind(output)}")
            return
        ids: dict[str, int] = {}
        for i, item in enumerate(output):
            self.item(item, ("output", i), final=final)
            item_id = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(item_id, str):
                if item_id in ids:
                    self.bad(("output", i, "id"), f"repeats the id of output[{ids[item_id]}]")
                ids.setdefault(item_id, i)

    def item(self, item: Any, path: Path, *, final: bool) -> None:
        """An output item: a message with text/refusal parts, or a function call."""
        if not isinstance(item, Mapping):
            self.bad(path, f"must be an object, got {_kind(item)}")
            return
        kind = item.get("type")
        status = item.get("status")
        if status is not None and not (isinstance(status, str) and status in _ITEM_STATUSES):
            self.bad(
                (*path, "status"), f"is {status!r}, not one of {', '.join(sorted(_ITEM_STATUSES))}"
            )
        if kind == "message":
            self.string(item, path, "id")
            if item.get("role") != "assistant":
                self.bad((*path, "role"), f"is {item.get('role')!r}, expected 'assistant'")
            content = item.get("content")
            if not isinstance(content, list):
                self.bad((*path, "content"), f"must be an array of parts, got {_kind(content)}")
                return
            for j, part in enumerate(content):
                self.part(part, (*path, "content", j))
        elif kind == "function_call":
            self.string(item, path, "call_id")
            self.string(item, path, "name")
            if "arguments" not in item:
                self.bad((*path, "arguments"), "is missing")
            elif final and (problem := _json_problem(item["arguments"])):
                self.bad((*path, "arguments"), problem)
        elif not isinstance(kind, str):
            self.bad((*path, "type"), f"must be a string, got {_kind(kind)}")

    def part(self, part: Any, path: Path) -> None:
        if not isinstance(part, Mapping):
            self.bad(path, f"must be an object, got {_kind(part)}")
            return
        kind = part.get("type")
        if kind == "output_text":
            self.string(part, path, "text", empty=True)
            if not isinstance(part.get("annotations"), list):
                self.bad(
                    (*path, "annotations"),
                    f"must be an array, got {_kind(part.get('annotations'))}",
                )
        elif kind == "refusal":
            self.string(part, path, "refusal", empty=True)
        else:
            self.bad((*path, "type"), f"is {kind!r}; a message's parts are output_text or refusal")

    def usage(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            self.bad(("usage",), f"must be an object, got {_kind(usage)}")
            return
        counts = []
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            value = usage.get(key)
            if key not in usage:
                self.bad(("usage", key), "is missing")
            elif not _is_int(value) or value < 0:
                self.bad(("usage", key), f"must be a non-negative integer, got {value!r}")
            else:
                counts.append(value)
        if len(counts) == 3 and counts[0] + counts[1] != counts[2]:
            self.bad(
                ("usage",),
                f"does not add up: input_tokens {counts[0]} + output_tokens {counts[1]} != "
                f"total_tokens {counts[2]}",
            )


def _load(obj: Any, what: str, problems: list[Problem], index: int | None) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        try:
            obj = bytes(obj).decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(EventProblem(index, f"the {what} is not valid UTF-8 ({exc.reason})"))
            return None
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            problems.append(
                EventProblem(index, f"the {what} is not valid JSON ({exc}): {_excerpt(obj)}")
            )
            return None
    if not isinstance(obj, Mapping):
        problems.append(EventProblem(index, f"the {what} must be a JSON object, got {_kind(obj)}"))
        return None
    return dict(obj)


# What the Open Responses specification's `ResponseResource` requires beyond what
# `openai.types.responses.Response` does: field -> (what it must be, its check).
def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    """An integer as JSON Schema sees one (`3.0` is one: the spec's `integer`)."""
    return _is_int(v) or (isinstance(v, float) and v.is_integer())


def _object(v: Any) -> bool:
    return isinstance(v, Mapping)


def _nullable(check: Any) -> Any:
    return lambda v: v is None or check(v)


_OPEN_RESPONSES: dict[str, tuple[str, Any]] = {
    "completed_at": ("an integer or null", _nullable(_integer)),
    "incomplete_details": ("an object or null", _nullable(_object)),
    "previous_response_id": ("a string or null", _nullable(lambda v: isinstance(v, str))),
    "instructions": ("a string or null", _nullable(lambda v: isinstance(v, str))),
    "error": ("an object or null", _nullable(_object)),
    "tools": ("an array", lambda v: isinstance(v, list)),
    "tool_choice": ("a string or an object", lambda v: isinstance(v, (str, Mapping))),
    "truncation": ("a string", lambda v: isinstance(v, str)),
    "parallel_tool_calls": ("a boolean", lambda v: isinstance(v, bool)),
    "text": ("an object", _object),
    "top_p": ("a number", _number),
    "presence_penalty": ("a number", _number),
    "frequency_penalty": ("a number", _number),
    "top_logprobs": ("an integer", _integer),
    "temperature": ("a number", _number),
    "reasoning": ("an object or null", _nullable(_object)),
    "usage": ("an object or null", _nullable(_object)),
    "max_output_tokens": ("an integer or null", _nullable(_integer)),
    "max_tool_calls": ("an integer or null", _nullable(_integer)),
    "store": ("a boolean", lambda v: isinstance(v, bool)),
    "background": ("a boolean", lambda v: isinstance(v, bool)),
    "service_tier": ("a string", lambda v: isinstance(v, str)),
    "metadata": ("present", lambda v: True),
    "safety_identifier": ("a string or null", _nullable(lambda v: isinstance(v, str))),
    "prompt_cache_key": ("a string or null", _nullable(lambda v: isinstance(v, str))),
}
_SPEC = "(required by the Open Responses ResponseResource)"


def _check_open_responses(check: _Checker, obj: Mapping[str, Any]) -> None:
    """The fields the Open Responses `ResponseResource` requires (null where it allows)."""
    for key, (what, ok) in _OPEN_RESPONSES.items():
        if key not in obj:
            check.bad((key,), f"is missing; it must be {what} {_SPEC}")
        elif not ok(obj[key]):
            check.bad((key,), f"must be {what}, got {_kind(obj[key])} {_SPEC}")
    reasoning = obj.get("reasoning")
    if isinstance(reasoning, Mapping):
        for key in ("effort", "summary"):
            if key not in reasoning:
                check.bad(("reasoning", key), f"is missing (null allowed) {_SPEC}")
    for i, tool in enumerate(obj.get("tools") or ()):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            continue
        for key in ("description", "parameters", "strict"):
            if key not in tool:
                check.bad(("tools", i, key), f"is missing (null allowed) {_SPEC}")
    usage = obj.get("usage")
    if isinstance(usage, Mapping):
        for details, key in (
            ("input_tokens_details", "cached_tokens"),
            ("output_tokens_details", "reasoning_tokens"),
        ):
            inner = usage.get(details)
            if not isinstance(inner, Mapping) or not _is_int(inner.get(key)):
                check.bad(("usage", details, key), f"must be an integer {_SPEC}")


def _check_response(
    data: Mapping[str, Any],
    problems: list[Problem],
    index: int | None,
    prefix: Path = (),
    open_responses: bool = True,
) -> None:
    from openai.types.responses import Response

    check = _Checker(problems, index, prefix)
    check.response(data)
    if open_responses:  # a checker of its own: the strict parse still names its findings
        _check_open_responses(_Checker(problems, index, prefix), data)
    _strict_parse(Response, data, problems, index, check.faulted, prefix)


# public: one response ----------------------------------------------------------------


def validate_response(
    body: Mapping[str, Any] | str | bytes, *, open_responses: bool = True
) -> dict[str, Any]:
    """Check a `response` object (dict or JSON) and return it as a dict.

    With `open_responses` (the default) it must also be an Open Responses
    `ResponseResource`: sampling values as numbers, `service_tier` a string, the
    nullable fields present, function tools complete. Raises `ConformanceError` listing
    every problem (their `index` is None).
    """
    problems: list[Problem] = []
    data = _load(body, "response", problems, None)
    if data is not None:
        if data.get("error") and data.get("object") != "response":
            error = data["error"]
            message = error.get("message") if isinstance(error, Mapping) else error
            problems.append(EventProblem(None, f"got an error instead of a response: {message!r}"))
        else:
            _check_response(data, problems, None, open_responses=open_responses)
    if problems:
        raise ConformanceError(problems, "response")
    assert data is not None
    return data


# streams ------------------------------------------------------------------------------


def _sse_blocks(
    sse: str | bytes | Iterable[str | bytes], problems: list[Problem]
) -> list[tuple[str | None, str]]:
    """Each SSE event's `event:` name (or None) and data, read with the shared decoder."""
    decoder = SSEDecoder()
    events = decode_sse(_pieces(sse), decoder)
    problems += [Problem(None, problem.message) for problem in decoder.problems]
    if events and not events[-1].terminated:
        problems.append(
            EventProblem(
                len(events) - 1,
                "the last event is not followed by a blank line; clients may never see it",
            )
        )
    return [(event.event, event.data) for event in events]


class _Part:
    __slots__ = ("done", "kind", "text", "text_done")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text
        self.text_done = False
        self.done = False


class _Item:
    __slots__ = (
        "args_done",
        "arguments",
        "call_id",
        "done",
        "done_item",
        "id",
        "kind",
        "name",
        "parts",
    )

    def __init__(self, item: Mapping[str, Any]) -> None:
        self.kind = item.get("type")
        self.id = item.get("id")
        self.call_id = item.get("call_id")
        self.name = item.get("name")
        arguments = item.get("arguments")
        self.arguments: str = arguments if isinstance(arguments, str) else ""
        self.args_done = False
        self.parts: list[_Part] = []
        self.done = False
        self.done_item: dict[str, Any] | None = None


class _Stream:
    """The stream-wide rules, fed one decoded event at a time."""

    def __init__(self, problems: list[Problem], expect_usage: bool | None) -> None:
        self.problems = problems
        self.expect_usage = expect_usage
        self.events: list[dict[str, Any]] = []
        self.items: list[_Item] = []
        self.last_seq: int | None = None
        self.response_id: str | None = None
        self.model: str | None = None
        self.final: dict[str, Any] | None = None
        self.status: str | None = None
        self.error: dict[str, Any] | None = None
        self.ended_at: int | None = None

    def bad(self, index: int, message: str) -> None:
        self.problems.append(EventProblem(index, message))

    def feed(self, index: int, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event.get("type")
        kind = kind if isinstance(kind, str) else ""
        if self.ended_at is not None:
            self.bad(index, f"{kind} comes after the stream ended (event {self.ended_at})")
            return
        seq = event.get("sequence_number")
        if _is_int(seq):
            if self.last_seq is not None and seq <= self.last_seq:
                self.bad(
                    index,
                    f"sequence_number {seq} does not increase (the previous was {self.last_seq})",
                )
            self.last_seq = seq
        if not self.events[:-1] and kind != "response.created":
            self.bad(index, f"the stream starts with {kind!r}; the first event is response.created")
        if kind in _LIFECYCLE:
            self._lifecycle(index, kind, event)
        elif kind == "error":
            self.ended_at = index
            self.status = "error"
            self.error = {k: event.get(k) for k in ("code", "message", "param")}
        elif kind == "response.output_item.added":
            self._added(index, event)
        elif kind == "response.output_item.done":
            self._item_done(index, event)
        elif kind in ("response.content_part.added", "response.content_part.done"):
            self._part_event(index, kind, event)
        elif kind in (
            "response.output_text.delta",
            "response.output_text.done",
            "response.refusal.delta",
            "response.refusal.done",
        ):
            self._text_event(index, kind, event)
        elif kind in (
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
        ):
            self._arguments_event(index, kind, event)

    def _lifecycle(self, index: int, kind: str, event: Mapping[str, Any]) -> None:
        response = event.get("response")
        if not isinstance(response, Mapping):
            return  # the strict parse names it
        rid = response.get("id")
        if self.response_id is None:
            self.response_id = rid
            self.model = response.get("model")
        elif rid != self.response_id:
            self.bad(
                index, f"{kind} is about response {rid!r}, the stream's is {self.response_id!r}"
            )
        if kind == "response.created" and self.events[:-1]:
            self.bad(index, "response.created comes again; it opens the stream, once")
        if kind in _TERMINAL:
            self.ended_at = index
            self.final = dict(response)
            self.status = response.get("status")
            self.error = response.get("error")
            if response.get("status") != _TERMINAL[kind]:
                self.bad(
                    index,
                    f"{kind} carries a response with status {response.get('status')!r}, expected {_TERMINAL[kind]!r}",
                )
            if kind != "response.failed":
                self._final_output(index, response)
        elif response.get("status") not in ("in_progress", "queued"):
            self.bad(
                index,
                f"{kind} carries a response with status {response.get('status')!r}, expected 'in_progress'",
            )

    def _item(self, index: int, event: Mapping[str, Any], kind: str | None = None) -> _Item | None:
        """The open item an event is about, checking its output_index and item_id."""
        output_index = event.get("output_index")
        if not _is_int(output_index):
            return None  # the strict parse names it
        if not 0 <= output_index < len(self.items):
            self.bad(
                index,
                f"{event.get('type')} names output_index {output_index}, but no item was added there",
            )
            return None
        item = self.items[output_index]
        if "item_id" in event and event["item_id"] != item.id:
            self.bad(
                index,
                f"item_id {event['item_id']!r} is not the id of output item {output_index} ({item.id!r})",
            )
        if item.done:
            self.bad(index, f"{event.get('type')} comes after output item {output_index} was done")
            return None
        if kind is not None and item.kind != kind:
            self.bad(
                index,
                f"{event.get('type')} is about output item {output_index}, a {item.kind!r}, not a {kind!r}",
            )
            return None
        return item

    def _added(self, index: int, event: Mapping[str, Any]) -> None:
        item = event.get("item")
        output_index = event.get("output_index")
        if not isinstance(item, Mapping) or not _is_int(output_index):
            return
        if output_index != len(self.items):
            self.bad(
                index,
                f"output_item.added has output_index {output_index}, expected {len(self.items)} (items are added in order from 0)",
            )
        if item.get("id") is not None and any(i.id == item.get("id") for i in self.items):
            self.bad(index, f"output_item.added repeats the item id {item.get('id')!r}")
        if item.get("status") not in (None, "in_progress"):
            self.bad(index, f"an added item's status is 'in_progress', got {item.get('status')!r}")
        state = _Item(item)
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, Mapping):
                state.parts.append(
                    _Part(str(part.get("type")), str(part.get("text", part.get("refusal", ""))))
                )
        self.items.append(state)

    def _part_event(self, index: int, kind: str, event: Mapping[str, Any]) -> None:
        item = self._item(index, event, "message")
        part = event.get("part")
        content_index = event.get("content_index")
        if item is None or not isinstance(part, Mapping) or not _is_int(content_index):
            return
        text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
        if kind == "response.content_part.added":
            if content_index != len(item.parts):
                self.bad(
                    index,
                    f"content_part.added has content_index {content_index}, expected {len(item.parts)}",
                )
                return
            item.parts.append(_Part(str(part.get("type")), text if isinstance(text, str) else ""))
            return
        if not 0 <= content_index < len(item.parts):
            self.bad(
                index,
                f"content_part.done names content_index {content_index}, which was never added",
            )
            return
        state = item.parts[content_index]
        if state.done:
            self.bad(
                index,
                f"content part {content_index} of output item {event.get('output_index')} is done twice",
            )
        state.done = True
        if part.get("type") != state.kind:
            self.bad(
                index,
                f"content_part.done has a {part.get('type')!r} part, it was added as {state.kind!r}",
            )
        elif text != state.text:
            self.bad(
                index,
                f"content_part.done says {_excerpt(str(text))}, the deltas say {_excerpt(state.text)}",
            )

    def _text_event(self, index: int, kind: str, event: Mapping[str, Any]) -> None:
        item = self._item(index, event, "message")
        content_index = event.get("content_index")
        if item is None or not _is_int(content_index):
            return
        want = "refusal" if kind.startswith("response.refusal") else "output_text"
        if not 0 <= content_index < len(item.parts):
            self.bad(index, f"{kind} names content_index {content_index}, which was never added")
            return
        part = item.parts[content_index]
        if part.kind != want:
            self.bad(index, f"{kind} is about a {part.kind!r} part, not a {want!r} part")
            return
        if part.done or part.text_done:
            self.bad(index, f"{kind} comes after content part {content_index} was done")
            return
        if kind.endswith(".delta"):
            delta = event.get("delta")
            if isinstance(delta, str):
                part.text += delta
            return
        part.text_done = True
        final = event.get("text" if want == "output_text" else "refusal")
        if isinstance(final, str) and final != part.text:
            self.bad(index, f"{kind} says {_excerpt(final)}, the deltas say {_excerpt(part.text)}")

    def _arguments_event(self, index: int, kind: str, event: Mapping[str, Any]) -> None:
        item = self._item(index, event, "function_call")
        if item is None:
            return
        if item.args_done:
            self.bad(index, f"{kind} comes after the arguments were done")
            return
        if kind.endswith(".delta"):
            if isinstance(event.get("delta"), str):
                item.arguments += event["delta"]
            return
        item.args_done = True
        arguments = event.get("arguments")
        if isinstance(arguments, str) and arguments != item.arguments:
            self.bad(
                index,
                f"function_call_arguments.done says {_excerpt(arguments)}, the deltas say {_excerpt(item.arguments)}",
            )
        if problem := _json_problem(arguments):
            self.bad(index, f"the arguments of function call {item.name!r} {problem}")

    def _item_done(self, index: int, event: Mapping[str, Any]) -> None:
        done = event.get("item")
        item = self._item(index, event)
        if item is None or not isinstance(done, Mapping):
            return
        item.done = True
        item.done_item = dict(done)
        if done.get("type") != item.kind or done.get("id") != item.id:
            self.bad(
                index,
                f"output_item.done is a {done.get('type')!r} with id {done.get('id')!r}; it was added as a {item.kind!r} with id {item.id!r}",
            )
            return
        if item.kind == "function_call":
            if done.get("call_id") != item.call_id:
                self.bad(
                    index,
                    f"the function call's call_id changed from {item.call_id!r} to {done.get('call_id')!r}",
                )
            if done.get("arguments") != item.arguments:
                self.bad(
                    index,
                    f"the done function call's arguments {_excerpt(str(done.get('arguments')))} are not what was streamed, {_excerpt(item.arguments)}",
                )
            if problem := _json_problem(done.get("arguments")):
                self.bad(index, f"the arguments of function call {done.get('name')!r} {problem}")
        elif item.kind == "message":
            content = done.get("content")
            texts = (
                [
                    (
                        p.get("type"),
                        p.get("text") if p.get("type") == "output_text" else p.get("refusal"),
                    )
                    for p in content
                    if isinstance(p, Mapping)
                ]
                if isinstance(content, list)
                else []
            )
            streamed = [(p.kind, p.text) for p in item.parts]
            if texts != streamed:
                self.bad(
                    index,
                    f"the done message's content {texts!r} is not what was streamed, {streamed!r}",
                )
            for number, part in enumerate(item.parts):
                if not part.done:
                    self.bad(
                        index,
                        f"output item {event.get('output_index')} is done before its content part {number}",
                    )

    def _final_output(self, index: int, response: Mapping[str, Any]) -> None:
        output = response.get("output")
        if not isinstance(output, list):
            return
        for number, item in enumerate(self.items):
            if not item.done:
                self.bad(
                    index, f"the stream ends with output item {number} ({item.kind}) never done"
                )
        ids = [i.get("id") if isinstance(i, Mapping) else None for i in output]
        streamed = [i.id for i in self.items]
        if ids != streamed:
            self.bad(
                index, f"the final output's items {ids!r} are not the streamed items {streamed!r}"
            )
            return
        for number, (final, item) in enumerate(zip(output, self.items, strict=False)):
            if item.done_item is None or not isinstance(final, Mapping):
                continue
            for key in ("content", "arguments", "call_id", "name"):
                if final.get(key) != item.done_item.get(key):
                    self.bad(
                        index, f"the final output[{number}].{key} differs from its output_item.done"
                    )

    def finish(self) -> None:
        if not self.events:
            self.problems.append(EventProblem(None, "the stream has no events"))
            return
        if self.ended_at is None:
            self.problems.append(
                EventProblem(
                    None,
                    "the stream never ends: no response.completed, response.incomplete or response.failed",
                )
            )
        usage = (self.final or {}).get("usage")
        if self.expect_usage and not usage:
            self.problems.append(
                EventProblem(
                    self.ended_at, "the final response has no usage, but usage was expected"
                )
            )
        if self.expect_usage is False and usage:
            self.problems.append(
                EventProblem(self.ended_at, "the final response has usage, but none was expected")
            )

    def report(self) -> ResponseStreamReport:
        final = self.final or {}
        text, refusal, calls = "", "", []
        for item in self.items:
            done = item.done_item or {}
            if item.kind == "message":
                for part in item.parts:
                    if part.kind == "output_text":
                        text += part.text
                    else:
                        refusal += part.text
            elif item.kind == "function_call":
                calls.append(
                    {
                        "id": item.id,
                        "call_id": item.call_id,
                        "name": done.get("name", item.name),
                        "arguments": item.arguments,
                    }
                )
        return ResponseStreamReport(
            events=self.events,
            text=text,
            tool_calls=calls,
            usage=final.get("usage"),
            status=self.status,
            response=self.final,
            error=self.error,
            id=self.response_id,
            model=self.model,
            refusal=refusal,
            event_types=[str(e.get("type")) for e in self.events],
        )


def _client_accumulator(events: list[tuple[int, Any]], problems: list[Problem]) -> None:
    """Feed the parsed events to the state behind `client.responses.stream(...)`."""
    from openai import omit
    from openai.lib.streaming.responses import ResponseStreamState

    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    for index, event in events:
        try:
            state.handle_event(event)
        except Exception as exc:
            problems.append(
                EventProblem(
                    index,
                    f"client.responses.stream() fails on {event.type}: {type(exc).__name__}: {exc}",
                )
            )
            return


def validate_response_stream(
    sse: str | bytes | Iterable[str | bytes],
    *,
    expect_usage: bool | None = None,
    open_responses: bool = True,
) -> ResponseStreamReport:
    """Check a Responses API SSE stream and report what it said.

    `sse` is the raw body (str or bytes), its byte chunks as they arrived, or its lines
    (`iter_lines()`). `expect_usage=True/False` also requires the final response's usage
    to be there / absent. With `open_responses` (the default) every response snapshot
    must also be an Open Responses `ResponseResource` (see `validate_response`). Problems carry the index of the event they concern. A stream
    that ends in `response.failed` is valid (its report's `status` is "failed"). Raises
    `ConformanceError`.
    """
    from pydantic import ValidationError

    problems: list[Problem] = []
    blocks = _sse_blocks(sse, problems)
    stream = _Stream(problems, expect_usage)
    parsed: list[tuple[int, Any]] = []
    types = _event_types()
    clean = True
    for index, (name, data) in enumerate(blocks):
        if data.strip() == "[DONE]":
            if index != len(blocks) - 1:
                problems.append(
                    EventProblem(index, "events follow data: [DONE]; clients stop reading there")
                )
            continue
        before = len(problems)
        event = _load(data, "event", problems, index)
        if event is None:
            clean = False
            continue
        kind = event.get("type")
        if name is None:
            problems.append(
                EventProblem(index, f"the event has no 'event:' line (its type is {kind!r})")
            )
        elif name != kind:
            problems.append(
                EventProblem(
                    index, f"the 'event:' line says {name!r} but the data's type is {kind!r}"
                )
            )
        cls = types.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problems.append(
                EventProblem(
                    index,
                    f"type {kind!r} is not a Responses stream event the official client knows",
                )
            )
        else:
            check = _Checker(problems, index)
            if not _is_int(event.get("sequence_number")):
                check.bad(
                    ("sequence_number",),
                    f"must be an integer, got {_kind(event.get('sequence_number'))}",
                )
            response = event.get("response")
            if isinstance(response, Mapping):
                _check_response(response, problems, index, ("response",), open_responses)
            for key in ("item",):
                if isinstance(event.get(key), Mapping):
                    check.item(
                        event[key], (key,), final=event.get("type") == "response.output_item.done"
                    )
            _strict_parse(cls, event, problems, index, check.faulted)
            try:
                parsed.append((index, cls.model_validate(event)))
            except ValidationError:
                clean = False
        stream.feed(index, event)
        clean = clean and len(problems) == before
    stream.finish()
    if clean and parsed:
        _client_accumulator(parsed, problems)
    if problems:
        raise ConformanceError(problems, "Responses stream")
    return stream.report()


def validate_response_messages(
    messages: Iterable[Mapping[str, Any] | str | bytes],
    *,
    expect_usage: bool | None = None,
    open_responses: bool = True,
) -> ResponseStreamReport:
    """Check the messages of one WebSocket-mode turn (`response.create` answered) and
    report what they said: the same events, by the same rules, as a streamed HTTP answer
    (`validate_response_stream`), one JSON message each; a turn refused with an `error`
    envelope (`{"type": "error", "status": ..., "error": {...}}`) reports status "error".
    A `stream_id` the client gave is allowed on every event.
    """
    frames: list[str] = []
    for message in messages:
        event = json.loads(message) if isinstance(message, (str, bytes)) else dict(message)
        event.pop("stream_id", None)
        if event.get("type") == "error" and isinstance(event.get("error"), Mapping):
            problems: list[Problem] = []
            error = event["error"]
            if not _is_int(event.get("status")):
                problems.append(EventProblem(len(frames), "an error envelope has a status"))
            for key in ("code", "message"):
                if not isinstance(error.get(key), str):
                    problems.append(EventProblem(len(frames), f"error.{key} must be a string"))
            if problems:
                raise ConformanceError(problems, "WebSocket error envelope")
            return ResponseStreamReport(
                events=[event], text="", tool_calls=[], usage=None, status="error", error=error
            )
        kind = event.get("type")
        frames.append(f"event: {kind}\ndata: {json.dumps(event)}\n\n")
    return validate_response_stream(
        "".join(frames), expect_usage=expect_usage, open_responses=open_responses
    )
