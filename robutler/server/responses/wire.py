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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol import RequestError, encode
from ..wire import Parsed
from .encoder import ResponsesEncoder
from .items import referenced_input
from .objects import new_response_id, response_json_from_completion, response_of
from .request import (
    Pending,
    ResponsesRequest,
    chat_messages,
    check_calls_answered,
    items_to_messages,
    parse_responses_request,
    splice,
)

if TYPE_CHECKING:
    from ..endpoint import Exchange
    from ..store import ResponseStore
    from .compaction import Sealer

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
    """OpenAI's Responses API over the same agents; `store` keeps stored responses,
    `sealer` seals and opens compaction items."""

    id_prefix = "resp_"

    # Where a `store: false` response is kept: nowhere over HTTP; a WebSocket
    # connection's own memory for its continuations (`websocket.ConnectionWire`).
    unstored: ResponseStore | None = None

    def __init__(self, store: ResponseStore, sealer: Sealer | None = None) -> None:
        self.store = store
        self._sealer = sealer
        # agents' own compactors and input token counters, by agent name (app.agent...)
        self.compactors: dict[str, Callable[..., Any]] = {}
        self.token_counters: dict[str, Callable[..., Any]] = {}

    @property
    def sealer(self) -> Sealer:
        """The compaction sealer: the one given, else one keyed by the server's Responses
        secret (`secret.py`)."""
        if self._sealer is None:
            from .compaction import Sealer

            self._sealer = Sealer()
        return self._sealer

    @sealer.setter
    def sealer(self, sealer: Sealer) -> None:
        self._sealer = sealer

    async def resolve(
        self, messages: list[dict[str, Any]], pending: list[Pending], owner: str | None
    ) -> list[dict[str, Any]]:
        """`messages` with the items that stand for others replaced: a `compaction`
        item by the conversation it seals, an `item_reference` by the output item of a
        stored response (the owner's only) it names. 400 naming `input[i]...` otherwise."""
        if not pending:
            return messages
        expansions: dict[int, list[dict[str, Any]]] = {}
        for slot, item, path in pending:
            if item.get("type") == "compaction":
                content = item.get("encrypted_content")
                expansions[id(slot)] = self.sealer.open(content, owner, f"{path}.encrypted_content")
            else:
                expansions[id(slot)] = await self.referenced(item, owner, path)
        return splice(messages, expansions)

    async def referenced(
        self, item: Mapping[str, Any], owner: str | None, path: str
    ) -> list[dict[str, Any]]:
        """The messages of the stored item an `item_reference` names."""
        item_id = item.get("id")
        if not isinstance(item_id, str):
            raise RequestError(
                422,
                f"Invalid value for '{path}.id': an item_reference names an item by its id "
                "(a string)",
                param=f"{path}.id",
                code="invalid_value",
            )
        found = response_of(item_id)
        if found is not None:
            record = await self.store.get(found[0], owner)
            index = found[1]
            if record is not None and index.isdigit():
                output = (record.get("response") or {}).get("output") or []
                if int(index) < len(output) and output[int(index)].get("id") == item_id:
                    return items_to_messages([output[int(index)]], path)
            elif record is not None:  # an item of its input (see items.input_items)
                messages = referenced_input(record.get("input") or [], index)
                if messages is not None:
                    return messages
        raise RequestError(
            400,
            f"Invalid value for '{path}.id': no stored item with id {item_id!r} (items of "
            "stored responses of this API key can be referenced).",
            param=f"{path}.id",
            code="item_not_found",
        )

    async def previous(self, response_id: str | None, owner: str | None) -> list[dict[str, Any]]:
        """The conversation up to and including stored response `response_id` (none for
        None); 400 `previous_response_not_found` when `owner` has no such response."""
        if response_id is None:
            return []
        record = await self.store.get(response_id, owner)
        if record is None:
            raise RequestError(
                400,
                f"Previous response with id {response_id!r} not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return conversation(record)

    async def parse(self, body: bytes, exchange: Exchange) -> Parsed:
        endpoint = exchange.endpoint
        pending: list[Pending] = []
        data, request, input_messages = parse_responses_request(
            body, max_messages=endpoint.max_messages, max_depth=endpoint.max_depth, pending=pending
        )
        owner = exchange.state.api_key_name
        if pending:
            input_messages = await self.resolve(input_messages, pending, owner)
        previous = await self.previous(request.previous_response_id, owner)
        if previous or isinstance(request.input, list):
            # the calls of the earlier turns and of the input (referenced items included)
            check_calls_answered(request, [*previous, *input_messages])
        if previous:
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
        target = self.store if request.store is not False else self.unstored
        call = ResponsesCall(request, owner, self.store if target is None else target)
        if target is not None or previous:  # encoded now: the agent may change its messages
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
            on_answer=None if target is None else call.save,
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
