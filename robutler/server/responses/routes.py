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

Each runs the server's before hooks first, as an agent request does (a hook may reject
it, and one that authenticates users names the owner, `current_context().owner`), and
answers for that owner only (else the API key's); any other method is a 405 naming the
allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..context import RequestState, _current, store_owner
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


class _Sent:
    """`send`, noting what went out, for the finalize hooks' `response`."""

    __slots__ = ("body", "send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 499  # nothing was sent (nginx's "client closed request")
        self.body = b""

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
        await self.send(message)

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, media_type="application/json")


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
    api_key_name: str | None,
    agent_name: str | None = None,
) -> None:
    """Answer one of the routes above (the path parameter `response_id` holds what
    follows `/responses/`) for the request's owner, through the lifecycle of an agent
    request: its state current, the before hooks (they may reject it, and name the
    owner), the answer (an error in OpenAI's shape), then the finalize hooks, once."""
    from ..endpoint import AgentRequest, incoming_request_id  # it imports the wire formats

    request = AgentRequest(scope, receive)
    request.max_body_size = server.endpoint.max_body_size
    state = RequestState(request, agent_name, incoming_request_id(scope))
    state.api_key_name = api_key_name
    hooks = server.hooks
    sent = _Sent(send) if hooks.finalize else send
    token = _current.set(state)
    try:
        try:
            if hooks.before:
                await hooks.run_before(state)
            await _serve(server, scope, receive, sent, state)
        except Exception as exc:
            state.error = exc
            error = server.endpoint.failure(exc, state)
            await error.response(state.request_id)(scope, receive, sent)
    finally:
        try:
            if isinstance(sent, _Sent):
                state.response = sent.response()
                await hooks.run_finalize(state, state.response)
        finally:
            _current.reset(token)


async def _serve(
    server: ServerBase, scope: Scope, receive: Receive, send: Send, state: RequestState
) -> None:
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
    owner = store_owner(state)
    wire = server.responses_wire
    store = wire.store
    if sub in ("compact", "input_tokens"):
        assert state.request is not None
        limits = {
            "max_messages": server.endpoint.max_messages,
            "max_depth": server.endpoint.max_depth,
        }
        answer = compact if sub == "compact" else count_input_tokens
        body = await answer(wire, await state.request.body(), owner, state.agent_name, **limits)
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
