"""The mock's WebSocket mode of the Responses API, and its compaction endpoint.

`serve_socket` answers a WebSocket on ``/v1/responses`` as OpenAI does: each
``response.create`` message is one upstream call, matched to a scripted reply like a
``POST /v1/responses`` with ``"stream": true`` (its body is the message without
``type``), and answered with the same events, one JSON message each; an error reply or
an unscripted call is an ``error`` message (``{"type": "error", "status": ...,
"error": {...}}``). ``disconnect_after`` closes the socket after that many deltas.
``response.steer`` is answered ``response.steer.failed``.

`compaction` answers ``POST /v1/responses/compact`` without a scripted reply: one
``compaction`` item whose ``encrypted_content`` is the input, base64-encoded (a mock:
nothing is secret here), recorded in ``upstream.requests`` like any call.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .responses import events
from .scripting import ErrorReply, UpstreamCall

if TYPE_CHECKING:
    from .mock import MockOpenAI

__all__ = ["compaction", "serve_socket"]


async def _send(send: Any, payload: Any) -> None:
    await send({"type": "websocket.send", "text": json.dumps(payload)})


def _error(status: int, message: str, code: str | None, kind: str) -> dict[str, Any]:
    error = {"type": kind, "code": code, "message": message, "param": None}
    return {"type": "error", "status": status, "error": error}


async def serve_socket(
    mock: MockOpenAI,
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Any,
) -> None:
    """One WebSocket connection to the mock (see the module docstring)."""
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"].rstrip("/") != "/v1/responses":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            event = json.loads(message.get("text") or message.get("bytes") or b"")
        except ValueError:
            await _send(
                send, _error(400, "mock_openai: not JSON", "invalid_json", "invalid_request_error")
            )
            continue
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "response.steer":
            await _send(
                send,
                {
                    "type": "response.steer.failed",
                    "sequence_number": 0,
                    "error": {
                        "code": "steering_not_supported",
                        "message": "mock_openai does not steer responses",
                        "type": "invalid_request_error",
                    },
                    "steer": {
                        "id": "steer_mock",
                        "previous_response_id": str(event.get("previous_response_id") or ""),
                        "input": event.get("input") or "",
                    },
                },
            )
            continue
        if kind != "response.create":
            await _send(
                send,
                _error(
                    400,
                    f"mock_openai: unknown message type {kind!r}",
                    "invalid_value",
                    "invalid_request_error",
                ),
            )
            continue
        body = {k: v for k, v in event.items() if k != "type"}
        body["stream"] = True
        if not await _turn(mock, send, UpstreamCall("POST", "/v1/responses", headers, body)):
            await send({"type": "websocket.close", "code": 1011})
            return


async def _turn(mock: MockOpenAI, send: Any, call: UpstreamCall) -> bool:
    """Answer one ``response.create``; False when the script says to drop the socket."""
    reply = mock._take(call)
    if isinstance(reply, str):
        await _send(send, _error(500, f"mock_openai: {reply}", "mock_openai_error", "server_error"))
        return True
    if reply.delay and not await mock._sleep(reply.delay):
        return False
    if isinstance(reply, ErrorReply):
        body = reply.body()
        await _send(
            send, {"type": "error", "status": reply.status, "error": body.get("error", body)}
        )
        return True
    deltas = 0
    for frame in events(reply, call.body, mock._script.next_id):
        if frame.delta and reply.disconnect_after is not None:
            if deltas >= reply.disconnect_after:
                return False
            deltas += 1
        data = frame.text.split("\ndata: ", 1)[1].rstrip("\n")
        await send({"type": "websocket.send", "text": data})
        if frame.delta and reply.chunk_delay and not await mock._sleep(reply.chunk_delay):
            return False
    return True


def compaction(call: UpstreamCall, next_id: Callable[[], int]) -> dict[str, Any]:
    """The ``response.compaction`` answering ``POST /v1/responses/compact``."""
    body = call.body if isinstance(call.body, dict) else {}
    sealed = base64.b64encode(json.dumps(body.get("input")).encode()).decode()
    number = next_id()
    return {
        "id": f"resp_mock_{number}",
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [{"id": f"cmp_mock_{number}", "type": "compaction", "encrypted_content": sealed}],
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
    }
