"""The playground: a chat page for trying a server's agents in a browser.

`GET /playground` and `GET /NAME/playground` (opening on agent NAME) answer one
self-contained HTML page. Its CSS and JavaScript are package data (`playground_ui/`),
read and inlined once at import; the page talks to the agents' Chat Completions routes
with `fetch` and parses their SSE streams itself, so it works offline with no CDN. A
Content-Security-Policy allows only that inline script and style and same-origin requests.

It is on by default, off by default when API keys are configured (the page itself is
public, only the agent routes want a key), and `ServerBase(playground=...)` decides
explicitly. When off, both paths answer an OpenAI-shaped 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from .agents import find_agent
from .protocol import RequestError, error_response

if TYPE_CHECKING:
    from .base import ServerBase

__all__ = ["PAGE_PATH", "Playground"]

PAGE_PATH = "/playground"


def _read(name: str) -> str:
    return (files(__package__) / "playground_ui" / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _build() -> tuple[bytes, bytes, bytes]:
    """The page split around its config JSON, and the CSP header that fits it."""
    style, script = _read("playground.css"), _read("playground.js")
    page = _read("playground.html").replace("{{style}}", style).replace("{{script}}", script)
    head, _, tail = page.partition("{{config}}")
    csp = (
        f"default-src 'none'; script-src {_digest(script)}; style-src {_digest(style)}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return head.encode(), tail.encode(), csp.encode()


_HEAD, _TAIL, _CSP = _build()
_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"content-security-policy", _CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def _script_json(value: Any) -> bytes:
    """JSON that is safe inside a <script> element (no '<' to close it)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").encode()


class Playground:
    """The ASGI app behind `/playground` and `/NAME/playground` of one server.

    `enabled=None` means on unless the server has API keys. The part of the page's
    config that describes the server (title, agents, keys, its `/v1/models` route) is
    worked out at the first page request, when every route is registered, and kept.
    """

    def __init__(self, server: ServerBase, enabled: bool | None = None) -> None:
        if enabled is not None and not isinstance(enabled, bool):
            raise TypeError(f"playground must be True, False or None, got {enabled!r}")
        self.server = server
        self.enabled: bool = enabled if enabled is not None else server.api_keys is None
        self._server_config: dict[str, Any] | None = None

    def _config(self) -> dict[str, Any]:
        if self._server_config is None:
            server = self.server
            self._server_config = {
                "title": server.title,
                "agents": sorted(server.static_agents),
                "dynamic": bool(server.dynamic_agents),
                "keys": server.api_keys is not None,
                "models": f"{server.openai_prefix}/models" if server.openai_prefix else None,
            }
        return self._server_config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, None)

    async def serve(self, scope: Scope, receive: Receive, send: Send, agent: str | None) -> None:
        """Answer the page, opening on `agent` when given (404 for an unknown agent)."""
        if not self.enabled:
            await error_response(
                404,
                "The playground is off on this server; ServerBase(playground=True) turns it on.",
                code="playground_off",
            )(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await error_response(
                405,
                f"Method {method} is not allowed on {scope['path']}; use GET.",
                code="method_not_allowed",
                headers={"allow": "GET"},
            )(scope, receive, send)
            return
        server = self.server
        # With keys, resolvers are not asked: that would tell an unauthenticated visitor
        # which names exist. Without dynamic agents an unknown name is a 404 either way.
        if (
            agent is not None
            and agent not in server.static_agents
            and (not server.dynamic_agents or server.api_keys is None)
        ):
            try:
                await find_agent(agent, server.dynamic_agents)
            except RequestError as exc:
                await exc.response()(scope, receive, send)
                return
        config = {**self._config(), "agent": agent, "base": scope.get("root_path", "")}
        body = b"".join((_HEAD, _script_json(config), _TAIL))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
