"""What a web page the user visits must not be able to do to a server on their machine.

A page can post to `http://127.0.0.1:8000` without asking: an HTML form or a `no-cors`
fetch sends `text/plain` (or form) bodies with no CORS preflight, and a DNS name the
attacker rebinds to 127.0.0.1 reaches the server as a "same-origin" site, which may then
read the answers. So:

- a POST body must be `application/json` (`check_json_body`, 415 otherwise): a browser
  sends that type across sites only after a preflight the server does not grant;
- a server reached on a loopback address answers only to loopback Host names
  (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`) and the names in `allowed_hosts`
  (`HostCheck`, 400 `invalid_host` otherwise): a rebound name is refused before any
  route sees the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import Receive, Scope, Send

from .protocol import RequestError, error_response

__all__ = ["HostCheck", "check_json_body"]

_IPV4_LOOPBACK = re.compile(r"127(?:\.\d{1,3}){3}")


def _is_json(value: bytes) -> bool:
    return value.split(b";", 1)[0].strip().lower() == b"application/json"


def check_json_body(scope: Scope) -> None:
    """415 unless the request says its body is `application/json` (parameters such as
    `charset` allowed)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            if _is_json(value):
                return
            got = f"got {value.decode('latin-1')[:100]!r}"
            break
    else:
        got = "no Content-Type was sent"
    raise RequestError(
        415,
        f"The request body must be JSON, sent with 'Content-Type: application/json' ({got}).",
        code="unsupported_media_type",
    )


def _loopback_address(host: str) -> bool:
    return host == "::1" or host.startswith("127.") or host == "localhost"


def _name(host: str) -> str:
    """A Host header's name, without its port, lowercased (`[::1]` keeps its brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


class HostCheck:
    """Refuses requests that reached a loopback address under another Host name."""

    __slots__ = ("allowed", "any", "known")

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        names = {_name(h) for h in allowed if h.strip()}
        self.any = "*" in names
        self.allowed = frozenset(names)
        self.known: set[bytes] = set()  # Host values seen to pass: a set lookup next time

    def passes(self, host: str) -> bool:
        name = _name(host)
        return bool(
            name
            and (
                name in ("localhost", "[::1]")
                or name.endswith(".localhost")
                or _IPV4_LOOPBACK.fullmatch(name)
                or name in self.allowed
            )
        )

    def refused(self, scope: Scope) -> str | None:
        """The Host the request names when the server must refuse it, else None."""
        if self.any:
            return None
        server = scope.get("server")
        if not server or not _loopback_address(str(server[0])):
            return None
        for name, value in scope["headers"]:
            if name == b"host":
                if value in self.known:
                    return None
                host = value.decode("latin-1")
                if not self.passes(host):
                    return host
                if len(self.known) < 64:
                    self.known.add(value)
                return None
        return None  # no Host at all (HTTP/1.0): no browser sends that

    async def refuse(self, host: str, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"The Host {host[:200]!r} is not a name of this server: a server on a loopback "
            "address answers only to localhost, 127.0.0.1 and [::1] (a rebound DNS name must "
            "not reach it). Behind a proxy that passes another Host, list it in "
            "ServerBase(allowed_hosts=[...]) or ROBUTLER_ALLOWED_HOSTS."
        )
        if scope["type"] == "http":
            await error_response(400, message, code="invalid_host")(scope, receive, send)
        else:  # a websocket: closed before it is accepted
            await send({"type": "websocket.close", "code": 1008})
