"""Connection limits for uvicorn that `robutler serve` turns on by default.

uvicorn's fast HTTP parser (httptools) accepts request headers of any size and waits for
them forever: one client can make the server buffer a 128 MiB `Authorization` header, and
a few thousand slow clients ("slowloris") can hold every connection open. `GuardedHttp`
is uvicorn's httptools protocol with two limits added:

- `max_header_size` bytes for a request line and headers: beyond, the client gets
  `431 Request Header Fields Too Large` and the connection is closed;
- `header_timeout` seconds for the headers to arrive once a request began (or the
  connection opened): beyond, the connection is closed.

Both are read from `ROBUTLER_MAX_HEADER_SIZE` and `ROBUTLER_HEADER_TIMEOUT` when a
connection opens, so worker processes started by uvicorn get the values `robutler serve`
set. With plain uvicorn: `uvicorn.run(app, http=GuardedHttp, limit_concurrency=1000,
timeout_keep_alive=5)` (uvicorn's command line only offers its own protocols).
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .server.config import env_number

__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_HEADER_SIZE", "GuardedHttp"]

DEFAULT_MAX_HEADER_SIZE = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n\r\n"
    b"Request header fields too large"
)


def _env_number(name: str, default: float) -> float:
    value = env_number(name, f"{name} must be a number")
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {os.environ[name].strip()!r}")
    return value


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a header timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_size = int(_env_number("ROBUTLER_MAX_HEADER_SIZE", DEFAULT_MAX_HEADER_SIZE))
        self.header_timeout = _env_number("ROBUTLER_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._header_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            # Count the bytes up to the blank line that ends the headers, before the parser
            # buffers them; `_tail` keeps the end of the last read for a split terminator.
            end = (self._tail + data).find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            self._tail = data[-3:]
            if self._header_bytes > self.max_header_size:
                self._disarm()
                if not self.transport.is_closing():
                    self.transport.write(_431)
                    self.transport.close()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._tail = b""
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # What arrives next on this connection is the next request's head.
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self.transport.close()
