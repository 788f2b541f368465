"""The Responses API's routes besides creating a response, under `/responses/...`.

Under an agent (`/NAME/responses/...`) and the front door (`/v1/responses/...`) alike:

- `GET /responses/{id}`: the stored response (`?stream=true`: 400, there is no
  background response to stream again); `DELETE /responses/{id}`;
- `GET /responses/{id}/input_items`: its input as a list of items (`items.py`);
- `POST /responses/{id}/cancel`: 400, only background responses can be cancelled and
  this server runs none;
- `POST /responses/compact`: the conversation sealed into a `compaction` item
  (`compaction.py`);
- `POST /responses/input_tokens`: the agent's own count (`app.agent.input_tokens`), else
  400: counting input tokens is not offered.

Each answers for the API key's owner only; any other method is a 405 naming the allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..protocol import RequestError, encode, not_allowed
from .compaction import compact, count_input_tokens
from .items import input_items, item_list, list_params

if TYPE_CHECKING:
    from ..base import ServerBase

__all__ = ["serve_stored"]


def _not_found(response_id: str) -> RequestError:
    return RequestError(
        404,
        f"Response with id {response_id!r} not found.",
        param="response_id",
        code="response_not_found",
    )


# sub-route -> the methods it answers
_METHODS: dict[str, tuple[str, ...]] = {
    "": ("GET", "DELETE"),
    "input_items": ("GET",),
    "cancel": ("POST",),
    "compact": ("POST",),
    "input_tokens": ("POST",),
}


def route_of(rest: str) -> tuple[str, str] | None:
    """`(response id, sub-route)` of what follows `/responses/`, or None for no route."""
    if rest in ("compact", "input_tokens"):
        return "", rest
    response_id, _, sub = rest.partition("/")
    if not response_id or sub not in _METHODS or sub in ("compact", "input_tokens"):
        return None
    return response_id, sub


async def _json(body: Mapping[str, Any], scope: Scope, receive: Receive, send: Send) -> None:
    await Response(encode(body), media_type="application/json")(scope, receive, send)


async def serve_stored(
    server: ServerBase,
    scope: Scope,
    receive: Receive,
    send: Send,
    owner: str | None,
    agent: str | None = None,
) -> None:
    """Answer one of the routes above (the path parameter `response_id` holds what
    follows `/responses/`) for agent `agent` (None under the front door: `model` names
    it); raises `RequestError` for the caller to send."""
    found = route_of(scope["path_params"]["response_id"])
    if found is None:
        raise RequestError(
            404,
            f"Invalid URL ({scope['method']} {scope['path']}): under /responses/ there are "
            "{id}, {id}/input_items, {id}/cancel, compact and input_tokens.",
            code="unknown_url",
        )
    response_id, sub = found
    method = scope["method"]
    refusal = not_allowed(method, scope["path"], _METHODS[sub])
    if refusal is not None:
        await refusal(scope, receive, send)
        return
    wire = server.responses_wire
    store = wire.store
    if sub in ("compact", "input_tokens"):
        from ..endpoint import AgentRequest

        request = AgentRequest(scope, receive)
        request.max_body_size = server.endpoint.max_body_size
        limits = {
            "max_messages": server.endpoint.max_messages,
            "max_depth": server.endpoint.max_depth,
        }
        answer = compact if sub == "compact" else count_input_tokens
        body = await answer(wire, await request.body(), owner, agent, **limits)
        await _json(body, scope, receive, send)
        return
    if sub == "cancel":
        raise RequestError(
            400,
            f"Response {response_id!r} cannot be cancelled: only background responses can, "
            "and this server does not run background responses (a streamed response is "
            "cancelled by closing its connection).",
            param="response_id",
            code="unsupported_parameter",
        )
    if method == "DELETE":
        if not await store.delete(response_id, owner):
            raise _not_found(response_id)
        await _json(
            {"id": response_id, "object": "response", "deleted": True}, scope, receive, send
        )
        return
    query = QueryParams(scope.get("query_string", b""))
    if sub == "" and query.get("stream", "false").lower() not in ("false", "0", ""):
        raise RequestError(
            400,
            "Streaming a stored response (stream=true) is only for background responses, "
            "which this server does not run; GET it without stream to read it.",
            param="stream",
            code="unsupported_parameter",
        )
    record = await store.get(response_id, owner)
    if record is None:
        raise _not_found(response_id)
    if sub == "":
        await _json(record["response"], scope, receive, send)
        return
    after, before, limit, order = list_params(query)
    items = input_items(record.get("input") or record.get("messages") or [], response_id)
    await _json(item_list(items, after, before, limit, order), scope, receive, send)
