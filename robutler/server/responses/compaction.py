"""Compaction: `POST /responses/compact` and the `compaction` items it hands out.

A compacted conversation comes back to the client as one `compaction` item whose
`encrypted_content` is the conversation itself (its Chat Completions messages), sealed
with AES-GCM under a key derived from the server's compaction secret. No server-side
record is kept: any worker or replica configured with the same secret opens the item
when a later request's `input` holds it, and the agent gets the conversation it stands
for. The API key's owner is bound in as associated data, so an item made for one key is
a 400 for another, as is any item changed by a single bit.

The secret is the server's Responses secret (`ROBUTLER_RESPONSES_SECRET`, see
`secret.py`); without it each process makes a random one, and its items open only there.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from ..protocol import RequestError, encode
from .objects import responses_usage
from .request import parse_responses_request
from .secret import derive

if TYPE_CHECKING:
    from .wire import ResponsesWire

__all__ = ["Sealer", "compact", "compaction_response", "conversation_of", "count_input_tokens"]

_VERSION = b"\x01"
_NONCE = 12
_PREFIX = "rbc1."  # what every robutler compaction token starts with


class Sealer:
    """Seals conversations into `compaction` items and opens them again.

    `secret` (str or bytes, at least 16 bytes of it; default the server's Responses
    secret, see `secret.py`) is stretched with HKDF-SHA256 into the AES-256-GCM key.
    `cryptography` is imported here, where it is used.
    """

    def __init__(self, secret: str | bytes | None = None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(derive(b"compaction v1", secret))

    @staticmethod
    def _bound(owner: str | None) -> bytes:
        return b"robutler-compaction:" + (b"\x00" if owner is None else b"\x01" + owner.encode())

    def seal(self, messages: Sequence[Mapping[str, Any]], owner: str | None) -> str:
        """The conversation `messages` sealed for `owner`, as `encrypted_content`."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, encode(list(messages)), self._bound(owner))
        return _PREFIX + base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def open(self, content: Any, owner: str | None, param: str) -> list[dict[str, Any]]:
        """The messages sealed in `content`; a 400 naming `param` when it is not an item
        this server sealed for `owner` (tampered, foreign, or another key's)."""
        from cryptography.exceptions import InvalidTag

        if not isinstance(content, str) or not content.startswith(_PREFIX):
            raise _foreign(param)
        try:
            raw = base64.urlsafe_b64decode(content[len(_PREFIX) :])
        except (binascii.Error, ValueError):
            raise _foreign(param) from None
        if raw[:1] != _VERSION or len(raw) < 1 + _NONCE + 16:
            raise _foreign(param)
        nonce, sealed = raw[1 : 1 + _NONCE], raw[1 + _NONCE :]
        try:
            plain = self._aead.decrypt(nonce, sealed, self._bound(owner))
        except InvalidTag:
            raise _foreign(param) from None
        messages: list[dict[str, Any]] = from_json(plain)
        return messages


def _foreign(param: str) -> RequestError:
    return RequestError(
        400,
        f"Invalid value for '{param}': the compaction item's encrypted_content was not made "
        "by this server for this API key, or was changed; send the item as "
        "/responses/compact returned it.",
        param=param,
        code="invalid_encrypted_content",
    )


def compaction_response(encrypted_content: str, compaction_id: str) -> dict[str, Any]:
    """The `response.compaction` object answering a compact request: one `compaction`
    item. Usage is zero: sealing a conversation uses no model tokens."""
    return {
        "id": compaction_id,
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [
            {
                "id": "cmp_" + compaction_id.removeprefix("resp_"),
                "type": "compaction",
                "encrypted_content": encrypted_content,
                "created_by": "robutler",
            }
        ],
        "usage": responses_usage({"input_tokens": 0, "output_tokens": 0}),
    }


async def conversation_of(
    wire: ResponsesWire,
    body: bytes,
    owner: str | None,
    *,
    max_messages: int = 10_000,
    max_depth: int = 64,
    fields: tuple[str, ...] = ("input", "previous_response_id"),
) -> tuple[str, list[dict[str, Any]]]:
    """The `model` and the conversation a compact (or token count) request names: the
    response of `previous_response_id`, if any, then `input` (read like a Responses
    request's, items that stand for others resolved for `owner`). `model` is required
    (400 without it, as on OpenAI)."""
    from ..protocol import load_json_object
    from .request import Pending, chat_messages

    data = load_json_object(body, "'model' and 'input'")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(
            400,
            "Missing required parameter: 'model' (it names the model, as in a response request)."
            if model is None
            else f"Invalid value for 'model': must be a non-empty string, got {model!r}",
            param="model",
            code="missing_required_parameter" if model is None else "invalid_value",
        )
    pending: list[Pending] = []
    request = {k: data[k] for k in fields if k in data}
    request.setdefault("input", [])
    _, parsed, messages = parse_responses_request(
        encode(request), max_messages=max_messages, max_depth=max_depth, pending=pending
    )
    messages = await wire.resolve(messages, pending, owner)
    previous = await wire.previous(parsed.previous_response_id, owner)
    return model, chat_messages(parsed, messages, previous, copy=False)


async def _call(fn: Callable[..., Any], messages: list[dict[str, Any]]) -> Any:
    result = fn(messages)
    return await result if inspect.isawaitable(result) else result


async def compact(
    wire: ResponsesWire,
    body: bytes,
    owner: str | None,
    agent: str | None = None,
    *,
    max_messages: int = 10_000,
    max_depth: int = 64,
) -> dict[str, Any]:
    """Answer `POST /responses/compact`: the conversation (see `conversation_of`) sealed
    into one `compaction` item; through the agent's own compactor first, when it has one
    (`agent`, else the one `model` names: see `AgentDecorator.compactor`)."""
    from .objects import new_response_id

    model, messages = await conversation_of(
        wire, body, owner, max_messages=max_messages, max_depth=max_depth
    )
    compactor = wire.compactors.get(agent or model)
    if compactor is not None:
        compacted = await _call(compactor, messages)
        if isinstance(compacted, str):
            compacted = [{"role": "system", "content": compacted}]
        if not isinstance(compacted, list) or not all(isinstance(m, dict) for m in compacted):
            raise TypeError(
                f"the compactor of agent {agent or model!r} returns a list of messages or a "
                f"str, got {type(compacted).__name__}"
            )
        messages = compacted
    return compaction_response(wire.sealer.seal(messages, owner), new_response_id())


async def count_input_tokens(
    wire: ResponsesWire,
    body: bytes,
    owner: str | None,
    agent: str | None = None,
    *,
    max_messages: int = 10_000,
    max_depth: int = 64,
) -> dict[str, Any]:
    """Answer `POST /responses/input_tokens` with the agent's own counter (see
    `AgentDecorator.input_tokens`); a 400 when the agent has none."""
    model, messages = await conversation_of(
        wire,
        body,
        owner,
        max_messages=max_messages,
        max_depth=max_depth,
        fields=("input", "previous_response_id", "instructions"),
    )
    counter = wire.token_counters.get(agent or model)
    if counter is None:
        raise RequestError(
            400,
            f"Counting input tokens is not offered for agent {agent or model!r}: it says what "
            "it used in each response's usage.",
            code="unsupported_endpoint",
        )
    count = await _call(counter, messages)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise TypeError(
            f"the input token counter of agent {agent or model!r} returns an int >= 0, "
            f"got {count!r}"
        )
    return {"object": "response.input_tokens", "input_tokens": count}
