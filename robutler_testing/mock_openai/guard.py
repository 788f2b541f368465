"""The network guard: while a mock is active, httpx/httpx2 requests to other hosts fail.

It wraps the public transport methods (`HTTPTransport.handle_request`,
`AsyncHTTPTransport.handle_async_request`) of whichever of httpx and httpx2 are installed,
once for all active mocks, and puts them back when the last one leaves. Each refusal is
reported to every active mock (`report`), so a test that swallowed the error still fails.
A mock recording a cassette lets its upstream's host through (`allow`).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["GUARD", "BlockedRequestError", "NetworkGuard", "is_loopback"]

_LOOPBACK_HOSTS = {"localhost", "::1", "[::1]"}

Report = Callable[[str], None]


class BlockedRequestError(RuntimeError):
    """Raised for an HTTP request to a non-loopback host inside ``mock_openai()``."""


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


class NetworkGuard:
    """Refuses transport requests to non-loopback hosts while any `report` is installed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: list[Report] = []
        self._allowed: list[tuple[Report, frozenset[str]]] = []
        self._originals: list[tuple[type, str, Any]] = []

    def install(self, report: Report, allow: Collection[str] = ()) -> None:
        """Refuse non-loopback requests, reporting them to `report`, except to `allow`'s hosts."""
        with self._lock:
            self._reports.append(report)
            if allow:
                self._allowed.append((report, frozenset(allow)))
            if len(self._reports) == 1:
                self._wrap_all()

    def uninstall(self, report: Report) -> None:
        with self._lock:
            if report in self._reports:
                self._reports.remove(report)
            self._allowed = [(r, hosts) for r, hosts in self._allowed if r != report]
            if not self._reports:
                for cls, name, original in reversed(self._originals):
                    setattr(cls, name, original)
                self._originals.clear()

    def _wrap_all(self) -> None:
        for name in ("httpx2", "httpx"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            self._wrap(module.HTTPTransport, "handle_request", is_async=False)
            self._wrap(module.AsyncHTTPTransport, "handle_async_request", is_async=True)

    def _wrap(self, cls: type, name: str, *, is_async: bool) -> None:
        original = cls.__dict__[name]
        self._originals.append((cls, name, original))
        check = self.check
        if is_async:

            async def guarded_async(transport: Any, request: Any) -> Any:
                check(request)
                return await original(transport, request)

            setattr(cls, name, guarded_async)
        else:

            def guarded(transport: Any, request: Any) -> Any:
                check(request)
                return original(transport, request)

            setattr(cls, name, guarded)

    def check(self, request: Any) -> None:
        """Raise `BlockedRequestError` (and report it) unless `request` goes to loopback."""
        host = request.url.host
        if is_loopback(host) or any(host in hosts for _, hosts in self._allowed):
            return
        problem = (
            f"blocked {request.method} {request.url}: mock_openai() only lets requests reach "
            "loopback hosts (point the client at upstream.base_url, or pass block_network=False)"
        )
        if "respx" in sys.modules:
            problem += (
                "; to answer an httpx request with respx, mock it at the client: "
                '@pytest.mark.respx(using="httpx") or respx.mock(using="httpx")'
            )
        with self._lock:
            reports = list(self._reports)
        for report in reports:
            report(problem)
        raise BlockedRequestError(problem)


GUARD = NetworkGuard()
