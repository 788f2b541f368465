"""The Responses API as a wire format of the request flow (see `robutler.server.wire`).

`ResponsesWire.parse` validates the body, loads the conversation of
`previous_response_id` from the server's `ResponseStore` (for the API key that made it)
and gives the agent the whole conversation as chat `messages`. Answers become `response`
objects (`json_body`) or Responses events (`encoder`). With `store` (the default), the
response and its conversation are stored before the client has the whole answer, so a
client that continues at once finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol import RequestError, encode
from ..wire import Parsed
from .encoder import ResponsesEncoder
from .objects import new_response_id, response_json_from_completion
from .request import (
    ResponsesRequest,
    chat_messages,
    check_calls_answered,
    items_to_messages,
    parse_responses_request,
)

if TYPE_CHECKING:
    from ..endpoint import Exchange
    from ..store import ResponseStore

__all__ = ["ResponsesCall", "ResponsesWire"]

logger = logging.getLogger("robutler")


@dataclass(slots=True, eq=False)
class ResponsesCall:
    """One Responses request's own state: its id, where it is stored, and what."""

    request: ResponsesRequest
    owner: str | None
    store: ResponseStore
    conversation: bytes = b"[]"  # the input before the response, encoded as it came
    response_id: str = field(default_factory=new_response_id)
    body: bytes | None = None  # the JSON answer, encoded once for the client and the store
    encoder: ResponsesEncoder | None = None

    async def save(self) -> None:
        """Store the response with the conversation before it (without the instructions,
        which a later turn does not inherit); `conversation` adds the response's own
        output when a later turn asks for it. A store that fails is logged; the client
        still gets its answer."""
        response = self.body
        if response is None and self.encoder is not None:
            response = self.encoder.response_json
        if response is None:
            return
        record = b"".join((b'{"response":', response, b',"input":', self.conversation, b"}"))
        try:
            await self.store.put_json(self.response_id, record, self.owner)
        except Exception:
            logger.exception("storing response %s failed", self.response_id)


def conversation(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A stored response's whole conversation as Chat Completions messages: what came
    before it, then its output (turned into messages only when a later turn needs them)."""
    if "input" not in record:  # stored before the output was kept as output alone
        return list(record.get("messages") or [])
    response = record.get("response") or {}
    return [*record["input"], *items_to_messages(response.get("output") or [], "output")]


class ResponsesWire:
    """OpenAI's Responses API over the same agents; `store` keeps stored responses."""

    id_prefix = "resp_"

    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def parse(self, body: bytes, exchange: Exchange) -> Parsed:
        endpoint = exchange.endpoint
        data, request, input_messages = parse_responses_request(
            body, max_messages=endpoint.max_messages, max_depth=endpoint.max_depth
        )
        owner = exchange.state.api_key_name
        previous: list[dict[str, Any]] = []
        if request.previous_response_id is not None:
            record = await self.store.get(request.previous_response_id, owner)
            if record is None:
                raise RequestError(
                    400,
                    f"Previous response with id {request.previous_response_id!r} not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            previous = conversation(record)
            check_calls_answered(request, previous)
            limit = endpoint.max_messages
            if len(previous) + len(input_messages) > limit:
                raise RequestError(
                    400,
                    f"The conversation is too long: {len(previous)} messages of earlier turns "
                    f"(previous_response_id) and {len(input_messages)} of input make more "
                    f"than the limit of {limit} messages (max_messages). Start a new "
                    "conversation, or send the part that matters as input.",
                    param="previous_response_id",
                    code="too_many_messages",
                )
        elif isinstance(request.input, list):
            check_calls_answered(request, ())
        call = ResponsesCall(request, owner, self.store)
        store = request.store is not False
        if store or previous:  # encoded now: the agent gets these messages and may change them
            call.conversation = encode([*previous, *input_messages])
            limit = endpoint.max_conversation_size
            if len(call.conversation) > limit:
                raise RequestError(
                    400,
                    f"The conversation is too large: {len(call.conversation)} bytes of messages"
                    f"{' with the earlier turns (previous_response_id)' if previous else ''}, "
                    f"more than the limit of {limit} bytes (max_conversation_size). Start a "
                    "new conversation, or send the part that matters as input.",
                    param="previous_response_id" if previous else "input",
                    code="conversation_too_large",
                )
        return Parsed(
            chat_messages(request, input_messages, previous, copy=False),
            stream=request.stream is True,
            model=request.model,
            data=data,
            request=call,
            on_answer=call.save if store else None,
        )

    def json_body(self, completion: dict[str, Any], parsed: Parsed, exchange: Exchange) -> bytes:
        call: ResponsesCall = parsed.request
        call.body = response_json_from_completion(
            completion,
            response_id=call.response_id,
            created_at=completion["created"],
            model=completion["model"],
            request=call.request,
        )
        return call.body

    def encoder(
        self, answer_id: str, created: int, model: str, parsed: Parsed, exchange: Exchange
    ) -> ResponsesEncoder:
        call: ResponsesCall = parsed.request
        call.encoder = ResponsesEncoder(call.response_id, created, model, call.request)
        return call.encoder
