"""The seam between the request flow and an API's wire format.

The request flow (`endpoint.py`) is the same for every API an agent is served through:
keys, hooks, resolution, the agent, disconnects, finalize. What differs is how a body is
read and how an answer is written, and that is a `WireFormat`:

- `parse(body, exchange)` validates the request body and says what the agent gets
  (`Parsed`: the chat `messages`, whether to stream, `include_usage`, the asked-for
  `model`, `n`);
- `json_body(completion, parsed, exchange)` writes a non-streamed answer from the
  chat.completion the agent's result was turned into;
- `encoder(...)` makes the stream encoder, which turns the agent's stream items (str
  deltas and chat.completion.chunk dicts) into SSE frames: `start()` (what opens every
  stream), `opening()` (what opens a stream before the agent's first item, when the
  agent has to wait for it), `item()`, `finish()`, `error()`, and the `usage` it saw.

A wire format that must do something once the answer is complete and before the client
has all of it (the Responses API stores the response, so that a client that continues
the conversation at once finds it) sets `Parsed.on_answer`: the flow awaits it right
before it sends the JSON body or the stream's last frames.

`CHAT` is the Chat Completions wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import encode, parse_request
from .results import ChunkEncoder

if TYPE_CHECKING:
    from .endpoint import Exchange

__all__ = ["CHAT", "ChatWire", "Parsed", "StreamEncoder", "WireFormat"]


@dataclass(slots=True, eq=False)
class Parsed:
    """What a request body asks for, in the terms the agent is called with."""

    messages: list[dict[str, Any]]
    _: KW_ONLY
    stream: bool = False
    include_usage: bool = False
    model: str | None = None
    n: int = 1
    data: Mapping[str, Any] | None = None  # the body as JSON, every field kept
    request: Any = None  # the validated request model (or the wire's own state)
    on_answer: Callable[[], Awaitable[None]] | None = None  # awaited before the last bytes
    # Awaited after the before hooks, before the agent: what depends on who asks (the
    # owner a hook may name), such as a Responses request's stored earlier turns; it
    # sets `messages` (and the context's) to the conversation the agent gets.
    prepare: Callable[[], Awaitable[None]] | None = None


class StreamEncoder(Protocol):
    """Turns stream items into the SSE frames of one streamed answer."""

    usage: Any

    def set_model(self, model: str) -> None: ...
    def start(self) -> bytes: ...
    def opening(self) -> bytes: ...
    def item(self, item: Any) -> bytes | None: ...
    def finish(self) -> bytes: ...
    def error(self, body: Mapping[str, Any]) -> bytes: ...


class WireFormat(Protocol):
    """How one API reads requests and writes answers; see the module docstring."""

    id_prefix: str

    async def parse(self, body: bytes, exchange: Exchange) -> Parsed: ...
    def json_body(
        self, completion: dict[str, Any], parsed: Parsed, exchange: Exchange
    ) -> bytes: ...
    def encoder(
        self, answer_id: str, created: int, model: str, parsed: Parsed, exchange: Exchange
    ) -> StreamEncoder: ...


class ChatWire:
    """OpenAI's Chat Completions: `messages` in, a chat.completion or chunks out."""

    id_prefix = "chatcmpl-"

    async def parse(self, body: bytes, exchange: Exchange) -> Parsed:
        endpoint = exchange.endpoint
        data, req = parse_request(
            body, max_messages=endpoint.max_messages, max_depth=endpoint.max_depth
        )
        return Parsed(
            data["messages"],
            stream=req.stream is True,
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
            model=req.model,
            n=req.n or 1,
            data=data,
            request=req,
        )

    def json_body(self, completion: dict[str, Any], parsed: Parsed, exchange: Exchange) -> bytes:
        return encode(completion)

    def encoder(
        self, answer_id: str, created: int, model: str, parsed: Parsed, exchange: Exchange
    ) -> StreamEncoder:
        return ChunkEncoder(answer_id, created, model, parsed.include_usage)


CHAT = ChatWire()
