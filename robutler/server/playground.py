"""The playground: a chat page for trying a server's agents in a browser.

`GET /playground` and `GET /NAME/playground` (opening on agent NAME) answer one
self-contained HTML page. Its CSS and JavaScript are package data (`playground_ui/`),
read and inlined once at import; the page talks to the agents' Chat Completions and
Responses routes with `fetch`, parses their SSE streams and renders Markdown itself (as
DOM nodes, never HTML), and keeps conversations in the browser's storage, so it works
offline with no CDN. A Content-Security-Policy allows only that inline script and style
and same-origin requests.

It is on by default, off by default when API keys are configured, and
`ServerBase(playground=...)` decides explicitly. When off, every path answers an
OpenAI-shaped 404. With keys the page itself is public but tells nothing of the server:
no title, no agent names, the same page for any well-formed `/NAME/playground` (no
resolver asked); once a key is entered it reads `GET /playground/server` (behind the key)
for what the page shows.
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

__all__ = ["INFO_PATH", "PAGE_PATH", "Playground"]

PAGE_PATH = "/playground"
INFO_PATH = "/playground/server"  # the server facts the page shows, behind the keys


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
_INFO_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]
# The page's config on a server with keys, before a key is entered.
_KEYED: dict[str, Any] = {
    "title": None,
    "agents": [],
    "dynamic": False,
    "keys": True,
    "info": INFO_PATH,
}


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

    def routes(self) -> list[tuple[str, Any, str]]:
        """(path, ASGI app, route name) of the page and of the server facts it reads."""
        return [(PAGE_PATH, self, "playground"), (INFO_PATH, self.info, "playground_server")]

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

    async def _refused(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the 404 (off) or 405 (not GET/HEAD) and say so, or return False."""
        if not self.enabled:
            await error_response(
                404,
                "The playground is off on this server; ServerBase(playground=True) turns it on.",
                code="playground_off",
            )(scope, receive, send)
            return True
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await error_response(
                405,
                f"Method {method} is not allowed on {scope['path']}; use GET.",
                code="method_not_allowed",
                headers={"allow": "GET"},
            )(scope, receive, send)
            return True
        return False

    async def serve(self, scope: Scope, receive: Receive, send: Send, agent: str | None) -> None:
        """Answer the page, opening on `agent` when given (a name the caller checked with
        `is_agent_name`; 404 for an unknown agent on a server without keys)."""
        if await self._refused(scope, receive, send):
            return
        server = self.server
        if server.api_keys is not None:
            # Nothing of the server for a visitor without a key: no resolver is asked and
            # every name gets the same page, so no answer tells which names exist.
            config = {**_KEYED, "models": self._config()["models"]}
        else:
            config = {**self._config(), "info": INFO_PATH}
            if agent is not None and agent not in server.static_agents:
                try:
                    await find_agent(agent, server.dynamic_agents)
                except RequestError as exc:
                    await exc.response()(scope, receive, send)
                    return
        config.update(agent=agent, base=scope.get("root_path", ""))
        await self._send(scope, send, b"".join((_HEAD, _script_json(config), _TAIL)), _HEADERS)

    async def info(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /playground/server`: the server facts the page shows (behind the keys)."""
        if await self._refused(scope, receive, send):
            return
        if self.server.api_keys is not None:
            try:
                self.server.api_keys.check(scope)
            except RequestError as exc:
                await exc.response()(scope, receive, send)
                return
        body = json.dumps(self._config(), separators=(",", ":")).encode()
        await self._send(scope, send, body, _INFO_HEADERS)

    @staticmethod
    async def _send(
        scope: Scope, send: Send, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})
