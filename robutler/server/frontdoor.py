"""The OpenAI front door: one base URL (`/v1`) where `model` picks the agent, and stored
responses.

Tools that speak to an OpenAI-compatible server (chat UIs, gateways, agent frameworks)
expect one base URL with `GET /models`, `POST /chat/completions` and `POST /responses`.
Under the server's `openai_prefix` (default `/v1`) these routes serve every agent, picked
by the body's `model`, through the same request flow as the agent's own routes. Stored
responses are read and deleted here too, under the prefix and under each agent
(`/NAME/responses/{id}`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .agents import AgentSpec, find_agent, is_agent_name
from .endpoint import model_not_found
from .protocol import RequestError, encode, not_allowed
from .responses.routes import serve_stored
from .wire import CHAT

if TYPE_CHECKING:
    from .base import ServerBase

__all__ = ["FrontDoor", "check_prefix", "model_object"]

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")

MODELS, MODEL, CHAT_ROUTE, RESPONSES, STORED = "models", "model", "chat", "responses", "stored"
_ALLOWED = {
    MODELS: ("GET",),
    MODEL: ("GET",),
    CHAT_ROUTE: ("POST",),
    RESPONSES: ("POST",),
    STORED: ("GET", "DELETE"),
}


def check_prefix(prefix: Any) -> str | None:
    """`openai_prefix` as given (`/v1`, `/api/v1`), or None; a clear error otherwise."""
    if prefix is None:
        return None
    if not isinstance(prefix, str):
        raise TypeError(
            f"openai_prefix must be a str like '/v1', or None, got {type(prefix).__name__}"
        )
    parts = prefix.strip("/").split("/")
    if (
        not prefix.startswith("/")
        or prefix.endswith("/")
        or not all(_SEGMENT.fullmatch(p) for p in parts)
    ):
        raise ValueError(
            f"openai_prefix {prefix!r} must be a path like '/v1' or '/api/v1': a leading "
            "'/', URL-safe segments, no trailing '/' (or None to turn the front door off)"
        )
    return prefix


def model_object(name: str, created: int) -> dict[str, Any]:
    """An agent as an OpenAI model object."""
    return {"id": name, "object": "model", "created": created, "owned_by": "robutler"}


async def _json(body: Any, scope: Scope, receive: Receive, send: Send, status: int = 200) -> None:
    await Response(encode(body), status_code=status, media_type="application/json")(
        scope, receive, send
    )


class FrontDoor:
    """The routes under `openai_prefix` of one server."""

    def __init__(self, server: ServerBase, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.listers: list[Callable[[], Any]] = []

    def routes(self) -> list[tuple[str, Any, str]]:
        """Its routes as (path, ASGI app, name), for the server's route table."""
        p = self.prefix
        return [
            (f"{p}/models", _FrontRoute(self, MODELS), "openai:models"),
            (f"{p}/models/{{model_id:path}}", _FrontRoute(self, MODEL), "openai:model"),
            (f"{p}/chat/completions", _FrontRoute(self, CHAT_ROUTE), "openai:chat"),
            (f"{p}/responses", _FrontRoute(self, RESPONSES), "openai:responses"),
            (f"{p}/responses/{{response_id:path}}", _FrontRoute(self, STORED), "openai:stored"),
        ]

    def specs_for(self, model: str) -> list[AgentSpec]:
        """The specs that may serve agent `model`: the static one, else the dynamic ones."""
        server = self.server
        spec = server.static_agents.get(model)
        if spec is not None:
            return [spec]
        if server.dynamic_agents and is_agent_name(model) and model not in server.reserved_names:
            return server.dynamic_agents
        raise model_not_found(model)

    async def model_names(self) -> list[str]:
        """Every static agent, then the names the dynamic agents' listers give."""
        names = list(self.server.static_agents)
        seen = set(names)
        for lister in self.listers:
            listed = lister()
            if inspect.isawaitable(listed):
                listed = await listed
            for name in _names(listed):
                if name not in seen and is_agent_name(name):
                    seen.add(name)
                    names.append(name)
        return names

    async def serve(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        method = scope["method"]
        refusal = None if kind == STORED else not_allowed(method, scope["path"], _ALLOWED[kind])
        if refusal is not None:  # (a stored response's sub-routes say their own methods)
            await refusal(scope, receive, send)
            return
        if kind == CHAT_ROUTE:
            await server.endpoint(scope, receive, send, None, None, CHAT)
            return
        if kind == RESPONSES:
            await server.endpoint(scope, receive, send, None, None, server.responses_wire)
            return
        owner = None
        try:
            if server.api_keys is not None:
                owner = server.api_keys.check(scope)
            if kind == STORED:
                await serve_stored(server, scope, receive, send, owner)
            elif kind == MODELS:
                data = [model_object(n, server.started) for n in await self.model_names()]
                await _json({"object": "list", "data": data}, scope, receive, send)
            else:
                model = scope["path_params"]["model_id"]
                try:
                    await find_agent(model, self.specs_for(model))
                except RequestError as exc:
                    if exc.status != 404:
                        raise
                    raise model_not_found(model) from None
                await _json(model_object(model, server.started), scope, receive, send)
        except RequestError as exc:
            await exc.response()(scope, receive, send)


def _names(listed: Any) -> Iterable[str]:
    if isinstance(listed, str) or not isinstance(listed, Iterable):
        raise TypeError(
            f"a dynamic agent's list= function returns agent names (a list of str), got "
            f"{type(listed).__name__}"
        )
    return [n for n in listed if isinstance(n, str)]


class _FrontRoute:
    """The ASGI app behind one front-door route."""

    __slots__ = ("door", "kind")

    def __init__(self, door: FrontDoor, kind: str) -> None:
        self.door = door
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.door.serve(self.kind, scope, receive, send)
