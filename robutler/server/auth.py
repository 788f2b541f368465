"""Bearer API keys for agent routes, compared in constant time.

Keys come from `ServerBase(api_keys=...)` (a list, or a mapping of name to key) or the
`ROBUTLER_API_KEYS` environment variable (comma-separated). A request's context records
which key was used by its name (the mapping's key, or its index), never the key itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .config import env_list
from .protocol import RequestError

__all__ = ["ApiKeys"]

_CHALLENGE = {"www-authenticate": "Bearer"}


class ApiKeys:
    """The keys a server accepts; `check(scope)` returns the key's name or raises 401."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[str] | Mapping[str, str]) -> None:
        pairs = (
            list(keys.items())
            if isinstance(keys, Mapping)
            else [(str(i), k) for i, k in enumerate(keys)]
        )
        for name, key in pairs:
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"API key {name!r} must be a non-empty string")
        self._keys = [(name, key.strip().encode()) for name, key in pairs]

    @classmethod
    def configure(cls, keys: Iterable[str] | Mapping[str, str] | None) -> ApiKeys | None:
        """From the constructor argument, else ROBUTLER_API_KEYS; None when neither is set."""
        if keys is None:
            keys = env_list("ROBUTLER_API_KEYS")
        if isinstance(keys, str):
            raise TypeError(
                "api_keys takes a list of keys (or a mapping of name to key), not a str"
            )
        keys = keys if isinstance(keys, Mapping) else list(keys)
        return cls(keys) if keys else None

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never show the keys
        return f"<ApiKeys: {len(self._keys)} key(s)>"

    def check(self, scope: Any) -> str:
        """The name of the key presented in `Authorization: Bearer KEY`, or RequestError(401)."""
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, token = header.partition(b" ")
        if not header or scheme.lower() != b"bearer" or not token.strip():
            raise RequestError(
                401,
                "Missing API key: send 'Authorization: Bearer YOUR_KEY'.",
                code="missing_api_key",
                headers=_CHALLENGE,
            )
        token = token.strip()
        found = None
        for key_name, key in self._keys:  # compare with every key: no early exit
            if hmac.compare_digest(token, key) and found is None:
                found = key_name
        if found is None:
            raise RequestError(
                401, "Incorrect API key provided.", code="invalid_api_key", headers=_CHALLENGE
            )
        return found

    def guard(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the keys: a request without one of them gets the 401."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                self.check(scope)
            except RequestError as exc:
                await exc.response()(scope, receive, send)
                return
            await app(scope, receive, send)

        return guarded
