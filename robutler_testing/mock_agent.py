"""MockAgent: a scripted, deterministic agent for testing servers offline.

It has the shape the server's adapters expect from an agent object (`name`, async
`run(messages)`, synchronous `run_streamed(messages)` whose result has
`stream_events()`), so it can stand in for a real agent anywhere: behind `ServerBase`
handlers, in `Server(agents=[...])`, or in lifecycle tests that need an agent which is
slow (`delay`) or fails half-way (`fail_after`). Everything it answers is a function of
its arguments and the messages, except `created`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ChunkData",
    "ChunkEvent",
    "MockAgent",
    "MockAgentError",
    "MockRunResult",
    "MockStreamedRun",
    "split_words",
]

Messages = list[dict[str, Any]]
Reply = str | Callable[[Messages], str | Awaitable[str]]
Usage = Mapping[str, Any] | Literal["auto"] | None

_WORDS = re.compile(r"\s*\S+\s*|\s+")


class MockAgentError(RuntimeError):
    """Raised by a MockAgent that was told to fail (`fail_after`)."""


def split_words(text: str) -> list[str]:
    """Split `text` into word pieces that keep their spaces: `"".join(pieces) == text`."""
    return _WORDS.findall(text)


@dataclass(frozen=True)
class ChunkData:
    """The payload of a stream event: one `chat.completion.chunk` dict."""

    chunk: dict[str, Any]


@dataclass(frozen=True)
class ChunkEvent:
    """One event of `MockStreamedRun.stream_events()`; `type` is always `"chunk"`."""

    data: ChunkData
    type: str = "chunk"


@dataclass
class MockRunResult:
    """What `MockAgent.run` returns: `final_output` is a complete `chat.completion` dict."""

    final_output: dict[str, Any]


@dataclass(frozen=True)
class _Script:
    """Everything one run answers, decided before the first chunk is sent."""

    completion: dict[str, Any]
    first: dict[str, Any]
    pieces: list[dict[str, Any]]
    last: dict[str, Any]


class MockStreamedRun:
    """What `MockAgent.run_streamed` returns, like the Agents SDK's `RunResultStreaming`.

    `stream_events()` yields `ChunkEvent`s: the role chunk, one chunk per piece, then the
    finish chunk (with usage). `final_output` is the equivalent `chat.completion` once the
    stream completed, else None.
    """

    def __init__(self, agent: MockAgent, messages: Messages, run_number: int) -> None:
        self._agent = agent
        self._messages = messages
        self._run_number = run_number
        self.final_output: dict[str, Any] | None = None
        self.is_complete = False

    async def stream_events(self) -> AsyncIterator[ChunkEvent]:
        """Yield the run's chunks, sleeping `delay` before and failing per `fail_after`."""
        agent = self._agent
        script = await agent._script(self._messages, self._run_number)
        yield ChunkEvent(ChunkData(script.first))
        async for piece in agent._paced(script):
            yield ChunkEvent(ChunkData(piece))
        yield ChunkEvent(ChunkData(script.last))
        self.final_output = script.completion
        self.is_complete = True


class MockAgent:
    """A scripted agent: fixed or computed replies, streamed in pieces, with failure modes.

    - `reply`: the answer text, or a function (sync or async) of the messages returning it.
      By default the agent names itself and echoes the last user message
      (`"mock-agent received: hello"`; text parts of list content joined with spaces).
    - `chunks`: the streamed pieces; by default the reply split into words, spaces kept.
      When given, their join is the reply.
    - `usage`: `"auto"` (default) counts words of the input and of the reply, so the
      numbers are deterministic and add up; a dict is used as given; None sends no usage.
    - `delay`: seconds to sleep before each piece, in `run` as in `run_streamed`.
    - `fail_after=k`: raise `MockAgentError` after k pieces (0: before the first), and
      before the finish chunk when there are fewer; `run` raises too.
    - `tool_calls=[{"name": ..., "arguments": {...}}]`: answer with these tool calls
      (finish_reason `"tool_calls"`); content is None unless `reply` or `chunks` is given.

    `calls` lists the messages of each `run`/`run_streamed` call; `reset()` clears it.
    """

    def __init__(
        self,
        name: str = "mock-agent",
        reply: Reply | None = None,
        *,
        chunks: Sequence[str] | None = None,
        usage: Usage = "auto",
        model: str = "mock-model",
        delay: float = 0.0,
        fail_after: int | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if chunks is not None:
            chunks = list(chunks)
            if not all(isinstance(c, str) for c in chunks):
                raise TypeError("MockAgent chunks must be strings")
            if callable(reply):
                raise ValueError("give MockAgent either a reply function or chunks, not both")
            if isinstance(reply, str) and reply != "".join(chunks):
                raise ValueError(f"MockAgent reply {reply!r} is not the join of chunks {chunks!r}")
        elif reply is not None and not isinstance(reply, str) and not callable(reply):
            raise TypeError(
                f"MockAgent reply must be a str or a function, got {type(reply).__name__}"
            )
        if usage is not None and usage != "auto" and not isinstance(usage, Mapping):
            raise TypeError(f"MockAgent usage must be 'auto', a dict or None, got {usage!r}")
        if delay < 0:
            raise ValueError(f"MockAgent delay must be >= 0, got {delay!r}")
        if fail_after is not None and (not isinstance(fail_after, int) or fail_after < 0):
            raise ValueError(
                f"MockAgent fail_after must be an int >= 0 or None, got {fail_after!r}"
            )
        self.name = name
        self.reply = reply
        self.chunks: list[str] | None = chunks
        self.usage = usage
        self.model = model
        self.delay = delay
        self.fail_after = fail_after
        self.tool_calls = [_tool_call_spec(call) for call in tool_calls or ()]
        self.calls: list[Messages] = []

    def __repr__(self) -> str:
        return f"MockAgent(name={self.name!r}, model={self.model!r})"

    def reset(self) -> None:
        """Forget recorded calls (ids restart too, so runs repeat exactly)."""
        self.calls.clear()

    async def run(self, messages: Sequence[Mapping[str, Any]] | str) -> MockRunResult:
        """Answer `messages` with a complete `chat.completion` in `final_output`."""
        run_number = self._record(messages)
        script = await self._script(self.calls[run_number], run_number)
        async for _ in self._paced(script):
            pass
        return MockRunResult(script.completion)

    def run_streamed(self, messages: Sequence[Mapping[str, Any]] | str) -> MockStreamedRun:
        """Answer `messages` as a stream; nothing runs until `stream_events()` is iterated."""
        run_number = self._record(messages)
        return MockStreamedRun(self, self.calls[run_number], run_number)

    # internals ------------------------------------------------------------------------

    def _record(self, messages: Sequence[Mapping[str, Any]] | str) -> int:
        if isinstance(messages, str):
            recorded = [{"role": "user", "content": messages}]
        else:
            recorded = [copy.deepcopy(dict(m)) for m in messages]
        self.calls.append(recorded)
        return len(self.calls) - 1

    def _digest(self, *parts: object) -> str:
        key = "\x00".join(str(p) for p in (self.name, *parts))
        return hashlib.sha256(key.encode()).hexdigest()

    async def _content(self, messages: Messages) -> str | None:
        if self.chunks is not None:
            return "".join(self.chunks)
        reply = self.reply
        if reply is None:
            if self.tool_calls:
                return None
            return f"{self.name} received: {_last_user_text(messages)}"
        if isinstance(reply, str):
            return reply
        text = reply(messages)
        if inspect.isawaitable(text):
            text = await text
        if not isinstance(text, str):
            raise TypeError(f"MockAgent reply function returned {type(text).__name__}, not str")
        return text

    async def _script(self, messages: Messages, run_number: int) -> _Script:
        content = await self._content(messages)
        created = int(time.time())
        cid = "chatcmpl-" + self._digest(run_number)[:29]
        head = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
        }
        calls: list[dict[str, Any]] = [
            {
                "id": call.get("id") or "call_" + self._digest(run_number, i)[:24],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for i, call in enumerate(self.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        usage = self._usage(messages, content, calls)

        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        completion: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
        }
        if usage is not None:
            completion["usage"] = usage

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**head, "choices": [choice]}

        texts = self.chunks if self.chunks is not None else split_words(content or "")
        pieces = [chunk({"content": text}) for text in texts]
        for i, call in enumerate(calls):
            function = call["function"]
            opening = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            pieces.append(chunk({"tool_calls": [opening]}))
            arguments = {"index": i, "function": {"arguments": function["arguments"]}}
            pieces.append(chunk({"tool_calls": [arguments]}))
        last = chunk({}, finish)
        if usage is not None:
            last["usage"] = dict(usage)
        first = chunk({"role": "assistant", "content": ""})
        return _Script(completion, first, pieces, last)

    def _usage(
        self, messages: Messages, content: str | None, calls: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if self.usage is None:
            return None
        if self.usage != "auto":
            assert isinstance(self.usage, Mapping)
            return dict(self.usage)
        prompt = sum(len(_text(m.get("content")).split()) for m in messages)
        completion = len((content or "").split())
        for call in calls:
            completion += 1 + len(call["function"]["arguments"].split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def _paced(self, script: _Script) -> AsyncIterator[dict[str, Any]]:
        """The script's pieces, each after `delay`, failing as `fail_after` says."""
        fail_after = self.fail_after
        for sent, piece in enumerate(script.pieces):
            if fail_after is not None and sent >= fail_after:
                raise self._failure(sent)
            if self.delay:
                await asyncio.sleep(self.delay)
            yield piece
        if fail_after is not None:
            raise self._failure(len(script.pieces))

    def _failure(self, sent: int) -> MockAgentError:
        return MockAgentError(
            f"MockAgent {self.name!r} failed on purpose after {sent} chunk(s) (fail_after={self.fail_after})"
        )


def _tool_call_spec(call: Mapping[str, Any]) -> dict[str, Any]:
    """Check one `tool_calls` entry and encode its arguments as a JSON string."""
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call["name"]:
        raise ValueError(f"each MockAgent tool call needs a 'name' string, got {call!r}")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"name": call["name"], "arguments": arguments, "id": call.get("id")}


def _text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list, joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _last_user_text(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""
