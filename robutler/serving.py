"""Connection limits for uvicorn that `robutler serve` turns on by default.

uvicorn's fast HTTP parser (httptools) accepts request headers of any size and waits for
them, and for a body, forever: one client can make the server buffer a 128 MiB
`Authorization` header, and a thousand slow clients ("slowloris", or a body sent a byte
at a time) can hold every connection open. `GuardedHttp` is uvicorn's httptools protocol
with these limits added:

- `max_header_size` bytes for a request line and headers: beyond, the client gets
  `431 Request Header Fields Too Large` and the connection is closed;
- `header_timeout` seconds for the headers to arrive once a request began (or the
  connection opened): beyond, the connection is closed;
- `body_timeout` seconds for the body to arrive once the headers have, plus a second for
  every `min_body_rate` bytes received (a large body sent at a fair rate has time; one
  dribbled a byte at a time does not): beyond, the client gets `408 Request Timeout` (or,
  when an answer has begun, the connection is closed);
- uvicorn's `limit_concurrency` counts requests in progress, from a request's whole body
  to its answer's end, rather than connections: idle sockets and bodies still arriving
  (bounded by the timeouts above) cannot crowd out requests that are ready to run.

They are read from `ROBUTLER_MAX_HEADER_SIZE`, `ROBUTLER_HEADER_TIMEOUT`,
`ROBUTLER_BODY_TIMEOUT` and `ROBUTLER_MIN_BODY_RATE` when a connection opens, so worker
processes started by uvicorn get the values `robutler serve` set. With plain uvicorn:
`uvicorn.run(app, http=GuardedHttp, limit_concurrency=1000, timeout_keep_alive=5)`
(uvicorn's command line only offers its own protocols).
"""

from __future__ import annotations

import os
from typing import Any
from weakref import WeakKeyDictionary

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .server.config import env_number

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MIN_BODY_RATE",
    "GuardedHttp",
]

DEFAULT_MAX_HEADER_SIZE = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MIN_BODY_RATE = 1024.0  # bytes a second, beyond the body timeout

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n\r\n"
    b"Request header fields too large"
)
_408_BODY = (
    b'{"error":{"message":"The request body did not arrive in time (the server\'s body '
    b'timeout).","type":"invalid_request_error","param":null,"code":"request_timeout"}}'
)
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n%b" % (len(_408_BODY), _408_BODY)
)


def _env_number(name: str, default: float) -> float:
    value = env_number(name, f"{name} must be a number")
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {os.environ[name].strip()!r}")
    return value


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body limits, and a concurrency limit
    that counts requests in progress rather than connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_size = int(_env_number("ROBUTLER_MAX_HEADER_SIZE", DEFAULT_MAX_HEADER_SIZE))
        self.header_timeout = _env_number("ROBUTLER_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)
        self.body_timeout = _env_number("ROBUTLER_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)
        self.min_body_rate = _env_number("ROBUTLER_MIN_BODY_RATE", DEFAULT_MIN_BODY_RATE)
        # uvicorn's check counts connections: turned off here, and done in
        # `on_headers_complete` against the requests in progress instead.
        self.request_limit = self.limit_concurrency
        self.limit_concurrency = None
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._header_timer: Any = None
        self._body_timer: Any = None
        self._body_started = 0.0
        self._body_bytes = 0
        self._awaiting_body = False
        self._counted = 0  # this connection's requests counted as in progress
        _in_progress.setdefault(self.server_state, 0)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        if self._counted:
            _in_progress[self.server_state] -= self._counted
            self._counted = 0
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
        # A body that did not come with its headers gets a timer (most bodies come whole
        # in the same read, and cost none).
        if self._awaiting_body and self._body_timer is None and not self.transport.is_closing():
            left = self._body_started + self.body_timeout - self.loop.time()
            self._body_timer = self.loop.call_later(left, self._body_too_slow)

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
        limit = self.request_limit
        busy = limit is not None and _in_progress[self.server_state] >= limit
        if busy:
            self.limit_concurrency = 0  # uvicorn answers this one 503 and logs it
        cycle = self.cycle
        try:
            super().on_headers_complete()
        finally:
            self.limit_concurrency = None
        if self.cycle is not cycle:  # a request (not an upgrade): its body must follow
            self._body_started = self.loop.time()
            self._body_bytes = 0
            self._awaiting_body = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._awaiting_body = False
        self._disarm_body()
        self._counted += 1
        _in_progress[self.server_state] += 1
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._counted:
            self._counted -= 1
            _in_progress[self.server_state] -= 1
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

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self.transport.close()

    def _body_too_slow(self) -> None:
        """The body timer: more time for the bytes that came at `min_body_rate`, else a
        408 (or, when an answer has begun, the connection closed)."""
        self._body_timer = None
        allowed = self.body_timeout + self._body_bytes / self.min_body_rate
        left = self._body_started + allowed - self.loop.time()
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_too_slow)
            return
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(_408)
        self.transport.close()


# Requests in progress per server (a body received, the answer not yet complete): what
# `limit_concurrency` counts. Keyed by uvicorn's ServerState, one per server.
_in_progress: WeakKeyDictionary[Any, int] = WeakKeyDictionary()
