"""What the cases drive: the target server, and official clients whose answers are checked twice.

`Chat.complete` and `Chat.stream` send a request with the official client (strict
response validation, no retries), then run `robutler_testing`'s validators on the exact
bytes the client parsed. When the client itself rejects an answer, the validators are run
first so the failure names the problem rather than the client's generic message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from robutler_testing import StreamReport, validate_completion, validate_stream

from .reference import AGENTS
from .wire import Exchange, RecordingAsyncTransport, RecordingTransport, Wire

__all__ = ["Chat", "Streamed", "Target", "assert_error_shape", "user"]

TIMEOUT = 60.0

Message = Any  # a message dict, sent as given (the official types would reject invalid ones)


def user(content: Any) -> Any:
    """A user message (typed Any: the official param types do not admit every test body)."""
    return {"role": "user", "content": content}


@dataclass
class Target:
    """The server under test. The client's base URL for agent NAME is `{base_url}/{NAME}`."""

    base_url: str
    agent: str
    api_key: str
    model: str
    reference: Any = None  # the in-process reference Server, when the suite started it

    @property
    def is_reference(self) -> bool:
        return self.reference is not None

    def url(self, agent: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/{agent or self.agent}"

    def describe(self) -> str:
        if self.is_reference:
            return f"reference robutler server at {self.base_url} (MockAgent agents)"
        key = "with an API key" if self.api_key else "without an API key"
        return f"{self.base_url}, agent {self.agent!r}, model {self.model!r}, {key}"

    def special(self, name: str) -> str:
        """The reference agent `name`; skips the case against any other server."""
        if not self.is_reference:
            pytest.skip(
                f"reference server only: needs its agent {name!r}, which {AGENTS[name].does}"
            )
        return name

    def mock(self, name: str) -> Any:
        """The reference server's MockAgent `name` (to inspect `.calls`)."""
        self.special(name)
        for agent in self.reference.agents:
            if agent.name == name:
                return agent
        raise LookupError(name)


@dataclass
class Streamed:
    """A stream as the client iterated it, and the validators' report on its bytes."""

    chunks: list[ChatCompletionChunk]
    report: StreamReport
    exchange: Exchange
    first_at: float | None = None  # time.monotonic() of the first chunk (astream only)
    ended_at: float | None = None

    @property
    def content(self) -> str:
        """Choice 0's content, joined from the client's parsed deltas."""
        return "".join(
            choice.delta.content or ""
            for chunk in self.chunks
            for choice in chunk.choices
            if choice.index == 0
        )

    @property
    def finish_reason(self) -> str | None:
        reasons = [
            choice.finish_reason
            for chunk in self.chunks
            for choice in chunk.choices
            if choice.index == 0 and choice.finish_reason
        ]
        return reasons[-1] if reasons else None

    @property
    def usage(self) -> Any:
        with_usage = [chunk for chunk in self.chunks if chunk.usage is not None]
        return with_usage[-1].usage if with_usage else None

    def tool_calls(self) -> list[dict[str, Any]]:
        """Choice 0's tool calls, assembled from the client's parsed deltas by index."""
        calls: dict[int, dict[str, Any]] = {}
        for chunk in self.chunks:
            for choice in chunk.choices:
                for delta in (choice.delta.tool_calls or []) if choice.index == 0 else []:
                    call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = delta.id or call["id"]
                    if delta.function is not None:
                        call["name"] += delta.function.name or ""
                        call["arguments"] += delta.function.arguments or ""
        return [calls[i] for i in sorted(calls)]


def _client_problem(exc: openai.APIResponseValidationError) -> str:
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        found = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors()[:3]]
        return "the official client rejected the answer: " + "; ".join(found)
    return f"the official client rejected the answer: {exc}"


class Chat:
    """Official clients for the target; every answer they parse is also validated."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.wire = Wire()
        self._clients: list[openai.OpenAI] = []

    def client(
        self, agent: str | None = None, *, api_key: str | None = None, target: Target | None = None
    ) -> openai.OpenAI:
        """A sync client for `agent` (default: the target's), recording into `self.wire`."""
        target = target or self.target
        client = openai.OpenAI(
            base_url=target.url(agent),
            api_key=api_key if api_key is not None else (target.api_key or "unused"),
            max_retries=0,
            timeout=TIMEOUT,
            http_client=openai.DefaultHttpxClient(
                transport=RecordingTransport(self.wire),
                headers={"accept-encoding": "identity"},
            ),
            _strict_response_validation=True,
        )
        self._clients.append(client)
        return client

    def async_client(self, agent: str | None = None) -> openai.AsyncOpenAI:
        """An async client; use it as `async with` inside the event loop that drives it."""
        return openai.AsyncOpenAI(
            base_url=self.target.url(agent),
            api_key=self.target.api_key or "unused",
            max_retries=0,
            timeout=TIMEOUT,
            http_client=openai.DefaultAsyncHttpxClient(
                transport=RecordingAsyncTransport(self.wire),
                headers={"accept-encoding": "identity"},
            ),
            _strict_response_validation=True,
        )

    def close(self) -> None:
        for client in self._clients:
            client.close()

    # requests -------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Message],
        *,
        agent: str | None = None,
        client: openai.OpenAI | None = None,
        **kwargs: Any,
    ) -> tuple[ChatCompletion, dict[str, Any]]:
        """A non-streaming completion: the client's parse, and the validated JSON body."""
        client = client or self.client(agent)
        try:
            completion = client.chat.completions.create(
                model=self.target.model, messages=list(messages), **kwargs
            )
        except openai.APIResponseValidationError as exc:
            validate_completion(self.wire.last().body)
            raise AssertionError(_client_problem(exc)) from exc
        body = validate_completion(self.wire.last().body)
        return completion, body

    def stream(
        self,
        messages: Sequence[Message],
        *,
        agent: str | None = None,
        client: openai.OpenAI | None = None,
        expect_usage: bool | None = None,
        **kwargs: Any,
    ) -> Streamed:
        """A stream iterated by the client, then its bytes validated by `validate_stream`."""
        client = client or self.client(agent)
        stream = client.chat.completions.create(
            model=self.target.model, messages=list(messages), stream=True, **kwargs
        )
        return self.consume(
            cast("openai.Stream[ChatCompletionChunk]", stream), expect_usage=expect_usage
        )

    def consume(
        self, stream: openai.Stream[ChatCompletionChunk], *, expect_usage: bool | None = None
    ) -> Streamed:
        """Iterate a client's stream to the end, then validate the bytes it parsed."""
        exchange = self.wire.of(stream.response)
        chunks: list[ChatCompletionChunk] = []
        try:
            with stream:
                chunks.extend(stream)
        except (openai.APIResponseValidationError, openai.APIError) as exc:
            validate_stream(exchange.body, expect_usage=expect_usage)  # names the problem
            if isinstance(exc, openai.APIResponseValidationError):
                raise AssertionError(_client_problem(exc)) from exc
            raise
        report = validate_stream(exchange.body, expect_usage=expect_usage)
        return Streamed(chunks, report, exchange)

    async def astream(
        self, client: openai.AsyncOpenAI, messages: Sequence[Message], **kwargs: Any
    ) -> Streamed:
        """`stream` for an async client; the exchange is found by the client's response."""
        stream = cast(
            "openai.AsyncStream[ChatCompletionChunk]",
            await client.chat.completions.create(
                model=self.target.model, messages=list(messages), stream=True, **kwargs
            ),
        )
        chunks: list[ChatCompletionChunk] = []
        first_at = None
        async for chunk in stream:
            first_at = first_at or time.monotonic()
            chunks.append(chunk)
        ended_at = time.monotonic()
        exchange = self.wire.of(stream.response)
        return Streamed(chunks, validate_stream(exchange.body), exchange, first_at, ended_at)


def assert_error_shape(exc: openai.APIStatusError | openai.APIError, status: int | None) -> None:
    """The error body has OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    if status is not None:
        assert isinstance(exc, openai.APIStatusError), f"expected an HTTP {status}, got {exc!r}"
        assert exc.status_code == status, f"status is {exc.status_code}, expected {status}"
        raw = json.loads(exc.response.content or b"null")
        assert isinstance(raw, dict) and isinstance(raw.get("error"), dict), (
            f'the body is not {{"error": {{...}}}}: {exc.response.text[:200]!r}'
        )
        error = raw["error"]
    else:
        error = exc.body
    assert isinstance(error, dict), f"the error is not an object: {error!r}"
    missing = [k for k in ("message", "type", "param", "code") if k not in error]
    assert not missing, f"the error object lacks {missing}: {error!r}"
    assert isinstance(error["message"], str) and error["message"], (
        f"error.message must be a non-empty string: {error!r}"
    )
    assert isinstance(error["type"], str) and error["type"], (
        f"error.type must be a non-empty string: {error!r}"
    )
