"""Recording what went over the wire, so every answer the client parsed is validated too.

`RecordingTransport` (and its async twin) wraps the real transport and copies each
response body as the client reads it, so a case can run `robutler_testing`'s validators
on exactly the bytes the client parsed. The official client (3.x) sends through `httpx2`;
older ones sent through `httpx`, which has the same API.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

try:
    import httpx2
except ImportError:  # openai < 3 sends through httpx
    import httpx as httpx2  # type: ignore[no-redef]

from ..sse import decode_sse

__all__ = [
    "Exchange",
    "RecordingAsyncTransport",
    "RecordingTransport",
    "Wire",
    "sse_data",
]

LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50)


@dataclass
class Exchange:
    """One request and its response; `raw` grows while the client reads the body."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    headers: dict[str, str]
    raw: bytearray = field(default_factory=bytearray)
    response: httpx2.Response | None = field(default=None, repr=False, compare=False)

    @property
    def body(self) -> bytes:
        """The response body as the client saw it (gzip/deflate undone)."""
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            return zlib.decompress(bytes(self.raw), 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return zlib.decompress(bytes(self.raw))
        return bytes(self.raw)

    def request_json(self) -> Any:
        """The request body, decoded."""
        return json.loads(self.request_body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class Wire:
    """The exchanges of one test case, in order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def last(self, path_suffix: str = "/chat/completions") -> Exchange:
        """The most recent exchange whose URL path ends with `path_suffix`."""
        for exchange in reversed(self.exchanges):
            if httpx2.URL(exchange.url).path.endswith(path_suffix):
                return exchange
        raise AssertionError(f"no request to a URL ending in {path_suffix!r} was recorded")

    def of(self, response: httpx2.Response) -> Exchange:
        """The exchange that produced `response`."""
        for exchange in self.exchanges:
            if exchange.response is response:
                return exchange
        raise LookupError("that response was not recorded")

    def _record(self, request: httpx2.Request, response: httpx2.Response) -> Exchange:
        exchange = Exchange(
            method=request.method,
            url=str(request.url),
            request_headers={k.lower(): v for k, v in request.headers.items()},
            request_body=request.content,
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            response=response,
        )
        self.exchanges.append(exchange)
        return exchange


class _TeeStream(httpx2.SyncByteStream):
    def __init__(self, inner: Any, sink: bytearray) -> None:
        self._inner = inner
        self._sink = sink

    def __iter__(self) -> Iterator[bytes]:
        for part in self._inner:
            self._sink.extend(part)
            yield part

    def close(self) -> None:
        self._inner.close()


class _AsyncTeeStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, sink: bytearray) -> None:
        self._inner = inner
        self._sink = sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            self._sink.extend(part)
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingTransport(httpx2.BaseTransport):
    """A real HTTP transport that records every exchange into `wire`."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self._inner = httpx2.HTTPTransport(limits=LIMITS)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        response = self._inner.handle_request(request)
        exchange = self.wire._record(request, response)
        response.stream = _TeeStream(response.stream, exchange.raw)
        return response

    def close(self) -> None:
        self._inner.close()


class RecordingAsyncTransport(httpx2.AsyncBaseTransport):
    """The async twin of `RecordingTransport`."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self._inner = httpx2.AsyncHTTPTransport(limits=LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        response = await self._inner.handle_async_request(request)
        exchange = self.wire._record(request, response)
        response.stream = _AsyncTeeStream(response.stream, exchange.raw)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def sse_data(body: bytes) -> list[str]:
    """The `data` of each SSE event in `body`, read by the harness's one SSE decoder."""
    return [event.data for event in decode_sse(body)]
