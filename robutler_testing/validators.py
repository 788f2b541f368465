"""Conformance checks for Chat Completions answers: JSON completions, chunks, SSE streams.

Each validator checks the OpenAI wire format itself (object names, field types, allowed
finish reasons, usage totals, tool calls, SSE framing, one id per stream, the `[DONE]`
sentinel) *and* parses with the official `openai` client's pydantic types in strict mode,
so "passes here" means "the official client reads it without coercion". Every problem is
collected before `ConformanceError` is raised, each with the index of the stream event it
concerns, so one run shows everything that is wrong.

`openai` and pydantic are imported on first use: importing this module costs only the
standard library, which keeps the pytest plugin's load cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeGuard

from robutler.server.protocol import json_kind as _kind

from .sse import SSEDecoder, decode_sse

__all__ = [
    "FINISH_REASONS",
    "ConformanceError",
    "Problem",
    "StreamReport",
    "validate_chunk",
    "validate_completion",
    "validate_stream",
]

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One conformance problem; `index` is the stream event it concerns (None: the whole)."""

    index: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.index is None else f"chunk {self.index}: {self.message}"


class ConformanceError(AssertionError):
    """An answer breaks the OpenAI wire format; `problems` lists every problem found."""

    def __init__(self, problems: Iterable[Problem], what: str = "answer") -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        lines = [f"{what} does not conform to the OpenAI wire format ({count} problem(s)):"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


@dataclass
class StreamReport:
    """What a valid stream said: its chunks and, for choice 0, the assembled answer."""

    chunks: list[dict[str, Any]]
    content: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    id: str | None = None
    model: str | None = None


# field checks ------------------------------------------------------------------------


def _where(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the object"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Collects problems for one object; remembers which fields it already faulted."""

    def __init__(self, problems: list[Problem], index: int | None) -> None:
        self.problems = problems
        self.index = index
        self.faulted: list[Path] = []

    def bad(self, path: Path, message: str) -> None:
        self.faulted.append(path)
        self.problems.append(Problem(self.index, f"{_where(path)} {message}"))

    def require(self, obj: Mapping[str, Any], path: Path, key: str) -> Any:
        """The value at `key`, or a 'missing' problem and None."""
        if key not in obj:
            self.bad((*path, key), "is missing")
        return obj.get(key)

    def string(
        self,
        obj: Mapping[str, Any],
        path: Path,
        key: str,
        *,
        required: bool = False,
        empty: bool = True,
    ) -> None:
        """A string field; optional ones may be absent or null."""
        value = obj.get(key)
        if value is None:
            if required:
                self.bad(
                    (*path, key), "is missing" if key not in obj else "must be a string, got null"
                )
            return
        if not isinstance(value, str):
            self.bad((*path, key), f"must be a string, got {_kind(value)}")
        elif not empty and not value:
            self.bad((*path, key), "must not be empty")

    def integer(self, obj: Mapping[str, Any], path: Path, key: str) -> None:
        if key not in obj:
            self.bad((*path, key), "is missing")
            return
        value = obj[key]
        if not _is_int(value):
            self.bad((*path, key), f"must be an integer, got {_kind(value)} {value!r}")
        elif value < 0:
            self.bad((*path, key), f"must not be negative, got {value}")

    def head(self, obj: Mapping[str, Any], object_name: str) -> None:
        """`object`, `id`, `created`, `model` of a completion or chunk."""
        if obj.get("object") != object_name:
            got = obj.get("object")
            self.bad(
                ("object",),
                "is missing" if got is None else f"is {got!r}, expected {object_name!r}",
            )
        self.string(obj, (), "id", required=True, empty=False)
        self.integer(obj, (), "created")
        self.string(obj, (), "model", required=True, empty=False)

    def usage(self, usage: Any, path: Path = ("usage",)) -> None:
        if not isinstance(usage, Mapping):
            self.bad(path, f"must be an object, got {_kind(usage)}")
            return
        for key in _USAGE_FIELDS:
            self.integer(usage, path, key)
        counts = [v for v in (usage.get(key) for key in _USAGE_FIELDS) if _is_int(v)]
        if len(counts) == len(_USAGE_FIELDS):
            prompt, completion, total = counts
            if prompt + completion != total:
                self.bad(
                    path,
                    f"does not add up: prompt_tokens {prompt} + completion_tokens {completion} "
                    f"!= total_tokens {total}",
                )

    def finish_reason(self, choice: Mapping[str, Any], path: Path, *, nullable: bool) -> None:
        reason = choice.get("finish_reason")
        if reason is None:
            if not nullable:
                self.bad(
                    (*path, "finish_reason"),
                    "is missing or null; a completion's choice must say why it stopped",
                )
        elif not isinstance(reason, str) or reason not in FINISH_REASONS:
            allowed = ", ".join(sorted(FINISH_REASONS))
            self.bad((*path, "finish_reason"), f"is {reason!r}, not one of {allowed}")

    def choices(self, obj: Mapping[str, Any]) -> list[tuple[Path, Mapping[str, Any]]]:
        """The well-formed choices, after checking the list and each index."""
        choices = self.require(obj, (), "choices")
        if "choices" in obj and not isinstance(choices, list):
            self.bad(("choices",), f"must be an array, got {_kind(choices)}")
        if not isinstance(choices, list):
            return []
        out = []
        seen: set[int] = set()
        for i, choice in enumerate(choices):
            path: Path = ("choices", i)
            if not isinstance(choice, Mapping):
                self.bad(path, f"must be an object, got {_kind(choice)}")
                continue
            self.integer(choice, path, "index")
            index = choice.get("index")
            if _is_int(index):
                if index in seen:
                    self.bad((*path, "index"), f"repeats choice index {index} within one object")
                seen.add(index)
            out.append((path, choice))
        return out

    def tool_call(self, call: Any, path: Path) -> None:
        """A complete tool call of a message: id, type "function", name, JSON arguments."""
        if not isinstance(call, Mapping):
            self.bad(path, f"must be an object, got {_kind(call)}")
            return
        self.string(call, path, "id", required=True, empty=False)
        if call.get("type") != "function":
            self.bad((*path, "type"), f"is {call.get('type')!r}, expected 'function'")
        function = call.get("function")
        if not isinstance(function, Mapping):
            self.bad(
                (*path, "function"),
                f"must be an object with name and arguments, got {_kind(function)}",
            )
            return
        fpath = (*path, "function")
        self.string(function, fpath, "name", required=True, empty=False)
        if "arguments" not in function:
            self.bad((*fpath, "arguments"), "is missing")
        else:
            self.arguments(function["arguments"], (*fpath, "arguments"))

    def arguments(self, arguments: Any, path: Path) -> None:
        if not isinstance(arguments, str):
            self.bad(path, f"must be a JSON string, got {_kind(arguments)}")
            return
        try:
            json.loads(arguments)
        except ValueError as exc:
            self.bad(path, f"is not valid JSON ({exc}): {_excerpt(arguments)}")

    def delta(self, delta: Any, path: Path) -> None:
        if not isinstance(delta, Mapping):
            self.bad(path, f"must be an object, got {_kind(delta)}")
            return
        role = delta.get("role")
        if role is not None and role != "assistant":
            self.bad((*path, "role"), f"is {role!r}; an answer's role is 'assistant'")
        self.string(delta, path, "content")
        self.string(delta, path, "refusal")
        calls = delta.get("tool_calls")
        if calls is None:
            return
        if not isinstance(calls, list):
            self.bad((*path, "tool_calls"), f"must be an array, got {_kind(calls)}")
            return
        for i, call in enumerate(calls):
            cpath: Path = (*path, "tool_calls", i)
            if not isinstance(call, Mapping):
                self.bad(cpath, f"must be an object, got {_kind(call)}")
                continue
            self.integer(call, cpath, "index")
            self.string(call, cpath, "id", empty=False)
            if call.get("type") is not None and call["type"] != "function":
                self.bad((*cpath, "type"), f"is {call['type']!r}, expected 'function'")
            function = call.get("function")
            if function is None:
                continue
            if not isinstance(function, Mapping):
                self.bad((*cpath, "function"), f"must be an object, got {_kind(function)}")
                continue
            self.string(function, (*cpath, "function"), "name")
            self.string(function, (*cpath, "function"), "arguments")

    def openai(self, model: Any, obj: Mapping[str, Any]) -> None:
        """Parse with the official client's type in strict mode; add what it rejects."""
        from pydantic import ValidationError

        try:
            model.model_validate(obj, strict=True)
        except ValidationError as exc:
            seen = set()
            for error in exc.errors(include_url=False):
                # Drop union-branch tags (class names) so paths match the wire fields.
                loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p[:1].isupper()))
                if any(loc[: len(f)] == f for f in self.faulted):
                    continue
                message = f"{_where(loc)}: {error['msg']} (rejected by openai.types.chat.{model.__name__}, strict)"
                if message not in seen:
                    seen.add(message)
                    self.problems.append(Problem(self.index, message))


@cache
def _openai_types() -> tuple[Any, Any]:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    return ChatCompletion, ChatCompletionChunk


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _load(obj: Any, what: str, problems: list[Problem], index: int | None) -> Any:
    """Decode JSON text or bytes; dicts pass through. None (with a problem) on failure."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        try:
            obj = bytes(obj).decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(index, f"the {what} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
            )
            return None
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            problems.append(
                Problem(index, f"the {what} is not valid JSON ({exc}): {_excerpt(obj)}")
            )
            return None
    if not isinstance(obj, Mapping):
        problems.append(Problem(index, f"the {what} must be a JSON object, got {_kind(obj)}"))
        return None
    if obj.get("error"):  # what the openai client raises APIError for
        error = obj["error"]
        message = error.get("message") if isinstance(error, Mapping) else error
        problems.append(Problem(index, f"got an error instead of a {what}: {message!r}"))
        return None
    return dict(obj)


def _check_chunk(chunk: Mapping[str, Any], problems: list[Problem], index: int | None) -> None:
    check = _Checker(problems, index)
    check.head(chunk, "chat.completion.chunk")
    for path, choice in check.choices(chunk):
        if "delta" not in choice:
            check.bad((*path, "delta"), "is missing")
        else:
            check.delta(choice["delta"], (*path, "delta"))
        check.finish_reason(choice, path, nullable=True)
    if chunk.get("usage") is not None:
        check.usage(chunk["usage"])
    check.openai(_openai_types()[1], chunk)


# public validators -------------------------------------------------------------------


def validate_completion(body: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    """Check a non-streaming `chat.completion` (dict or JSON) and return it as a dict.

    Raises `ConformanceError` listing every problem (their `index` is None).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this module
    problems: list[Problem] = []
    data = _load(body, "completion", problems, None)
    if data is not None:
        check = _Checker(problems, None)
        check.head(data, "chat.completion")
        choices = check.choices(data)
        if isinstance(data.get("choices"), list) and not data["choices"]:
            check.bad(("choices",), "is empty; a completion has at least one choice")
        for path, choice in choices:
            check.finish_reason(choice, path, nullable=False)
            message = check.require(choice, path, "message")
            mpath = (*path, "message")
            if "message" in choice and not isinstance(message, Mapping):
                check.bad(mpath, f"must be an object, got {_kind(message)}")
            if not isinstance(message, Mapping):
                continue
            if message.get("role") != "assistant":
                check.bad((*mpath, "role"), f"is {message.get('role')!r}, expected 'assistant'")
            check.string(message, mpath, "content")
            check.string(message, mpath, "refusal")
            calls = message.get("tool_calls")
            if calls is not None and not isinstance(calls, list):
                check.bad((*mpath, "tool_calls"), f"must be an array, got {_kind(calls)}")
            elif calls:
                for i, call in enumerate(calls):
                    check.tool_call(call, (*mpath, "tool_calls", i))
            if choice.get("finish_reason") == "tool_calls" and not calls:
                check.bad(
                    (*path, "finish_reason"), "is 'tool_calls' but the message has no tool_calls"
                )
        if data.get("usage") is not None:
            check.usage(data["usage"])
        check.openai(_openai_types()[0], data)
    if problems:
        raise ConformanceError(problems, "completion")
    assert data is not None
    return data


def validate_chunk(
    chunk: Mapping[str, Any] | str | bytes, *, index: int | None = None
) -> dict[str, Any]:
    """Check one `chat.completion.chunk` (dict or JSON) on its own and return it as a dict.

    `index` labels the problems (the chunk's place in its stream, if known). Stream-wide
    rules (one id, role first, one finish per choice) need `validate_stream`.
    """
    __tracebackhide__ = True
    problems: list[Problem] = []
    data = _load(chunk, "chunk", problems, index)
    if data is not None:
        _check_chunk(data, problems, index)
    if problems:
        raise ConformanceError(problems, "chunk")
    assert data is not None
    return data


# streams -----------------------------------------------------------------------------


def _pieces(sse: str | bytes | Iterable[str | bytes]) -> list[str | bytes]:
    """The stream as pieces for the decoder; lines without breaks (`iter_lines()`) get one."""
    if isinstance(sse, (str, bytes, bytearray, memoryview)):
        return [bytes(sse) if isinstance(sse, (bytearray, memoryview)) else sse]
    parts = list(sse)
    texts = [p for p in parts if isinstance(p, str)]
    if len(texts) == len(parts) and not any("\n" in p or "\r" in p for p in texts):
        return [p + "\n" for p in texts]
    return parts


def _sse_events(sse: str | bytes | Iterable[str | bytes], problems: list[Problem]) -> list[str]:
    """The data of each SSE event, reporting lines and endings that break the framing."""
    decoder = SSEDecoder()
    events = decode_sse(_pieces(sse), decoder)
    problems += [Problem(None, problem.message) for problem in decoder.problems]
    if events and not events[-1].terminated:
        problems.append(
            Problem(
                len(events) - 1,
                "the last event is not followed by a blank line; clients may never see it",
            )
        )
    return [event.data for event in events]


class _ChoiceState:
    __slots__ = ("content", "finished_at", "reason", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.finished_at: int | None = None
        self.reason: str | None = None
        self.tools: dict[int, dict[str, Any]] = {}


class _Stream:
    """Stream-wide rules, fed one chunk at a time."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.chunks: list[dict[str, Any]] = []
        self.head: dict[str, Any] = {}
        self.choices: dict[int, _ChoiceState] = {}
        self.usage_at: list[tuple[int, Any]] = []
        self.last_index: int | None = None

    def bad(self, index: int | None, message: str) -> None:
        self.problems.append(Problem(index, message))

    def feed(self, index: int, chunk: dict[str, Any]) -> None:
        self.chunks.append(chunk)
        self.last_index = index
        for key in ("id", "created", "model"):
            if key not in chunk:
                continue
            if key not in self.head:
                self.head[key] = chunk[key]
            elif chunk[key] != self.head[key]:
                self.bad(
                    index,
                    f"{key} {chunk[key]!r} differs from the stream's {key} {self.head[key]!r}",
                )
        if chunk.get("usage") is not None:
            self.usage_at.append((index, chunk["usage"]))
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, Mapping) and _is_int(choice.get("index")):
                self._choice(index, choice)

    def _choice(self, index: int, choice: Mapping[str, Any]) -> None:
        number = choice["index"]
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        state = self.choices.get(number)
        if state is None:
            state = self.choices[number] = _ChoiceState()
            if delta.get("role") != "assistant":
                self.bad(
                    index,
                    f"choice {number} starts without the assistant role (delta.role is {delta.get('role')!r})",
                )
        content = delta.get("content")
        calls = delta.get("tool_calls")
        if state.finished_at is not None and (content or calls):
            self.bad(
                index,
                f"choice {number} continues after its finish_reason in chunk {state.finished_at}",
            )
        if isinstance(content, str):
            state.content.append(content)
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping) and _is_int(call.get("index")):
                self._tool_delta(index, number, state, call)
        reason = choice.get("finish_reason")
        if reason is not None:
            if state.finished_at is not None:
                self.bad(
                    index,
                    f"choice {number} finishes again (it finished in chunk {state.finished_at})",
                )
            else:
                state.finished_at = index
                state.reason = reason
                if reason == "tool_calls" and not state.tools:
                    self.bad(
                        index,
                        f"choice {number} finishes with 'tool_calls' but streamed no tool calls",
                    )

    def _tool_delta(
        self, index: int, number: int, state: _ChoiceState, call: Mapping[str, Any]
    ) -> None:
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        slot = state.tools.get(call["index"])
        if slot is None:
            slot = state.tools[call["index"]] = {
                "id": None,
                "type": None,
                "name": "",
                "arguments": "",
                "start": index,
            }
        elif call.get("id") and slot["id"] and call["id"] != slot["id"]:
            self.bad(
                index,
                f"choice {number} tool call {call['index']} changes id from {slot['id']!r} to {call['id']!r}",
            )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        if isinstance(function.get("name"), str):
            slot["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            slot["arguments"] += function["arguments"]

    def finish(self, expect_usage: bool | None) -> None:
        if not self.chunks:
            self.bad(None, "the stream has no chunks")
        for number, state in sorted(self.choices.items()):
            if state.finished_at is None:
                self.bad(None, f"choice {number} never finished: no chunk gave its finish_reason")
            for tool_index, slot in sorted(state.tools.items()):
                call = f"choice {number} tool call {tool_index}"
                if not slot["id"]:
                    self.bad(slot["start"], f"{call} has no id")
                if slot["type"] != "function":
                    self.bad(
                        slot["start"], f"{call} has type {slot['type']!r}, expected 'function'"
                    )
                if not slot["name"]:
                    self.bad(slot["start"], f"{call} has no function name")
                try:
                    json.loads(slot["arguments"])
                except ValueError as exc:
                    self.bad(
                        slot["start"],
                        f"{call} arguments are not valid JSON ({exc}): {_excerpt(slot['arguments'])}",
                    )
        for index, _ in self.usage_at:
            if index != self.last_index:
                self.bad(
                    index, "usage comes before the last chunk; only the last chunk may carry it"
                )
        if expect_usage and not self.usage_at:
            self.bad(None, "the stream has no usage, but usage was expected")
        if expect_usage is False and self.usage_at:
            self.bad(self.usage_at[0][0], "the stream has usage, but none was expected")

    def report(self) -> StreamReport:
        first = self.choices.get(0) or _ChoiceState()
        tool_calls = [
            {
                "id": slot["id"],
                "type": slot["type"],
                "function": {"name": slot["name"], "arguments": slot["arguments"]},
            }
            for _, slot in sorted(first.tools.items())
        ]
        return StreamReport(
            chunks=self.chunks,
            content="".join(first.content),
            finish_reason=first.reason,
            usage=dict(self.usage_at[-1][1]) if self.usage_at else None,
            tool_calls=tool_calls,
            id=self.head.get("id"),
            model=self.head.get("model"),
        )


def validate_stream(
    sse: str | bytes | Iterable[str | bytes], *, expect_usage: bool | None = None
) -> StreamReport:
    """Check a Chat Completions SSE stream and report what it said.

    `sse` is the raw body (str or bytes), its byte chunks as they arrived (split anywhere,
    even inside a UTF-8 character), or its lines without line breaks (`iter_lines()`).
    `expect_usage=True/False` also requires the usage chunk to be there / absent.
    Problems carry the index of the `data:` event they concern. Raises `ConformanceError`.
    """
    __tracebackhide__ = True
    problems: list[Problem] = []
    events = _sse_events(sse, problems)
    stream = _Stream(problems)
    done_at = None
    for index, data in enumerate(events):
        if done_at is not None:
            problems.append(Problem(index, f"data after data: [DONE]: {_excerpt(data)}"))
            break
        if data.strip() == "[DONE]":
            done_at = index
            continue
        chunk = _load(data, "chunk", problems, index)
        if chunk is not None:
            _check_chunk(chunk, problems, index)
            stream.feed(index, chunk)
    if not events:
        problems.append(Problem(None, "the stream is empty: no data events"))
    else:
        if done_at is None:
            problems.append(Problem(None, "the stream does not end with data: [DONE]"))
        stream.finish(expect_usage)
    if problems:
        raise ConformanceError(problems, "stream")
    return stream.report()
