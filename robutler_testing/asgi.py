"""`ASGIExchange`: one HTTP request driven by hand through an ASGI app, in this event loop.

The client behaves the way uvicorn reports a real one: once it has gone, the app's sends
go nowhere and `receive()` says `http.disconnect` (it says so too once the answer is
complete). How the client behaves is set per exchange: it reads everything (the default),
leaves after some body frames (`leave_after`), hangs up before the body is read
(`vanish`), never reads so the connection fills after `buffer` bytes and the app's writes
block until it gives up, hangs up while the last frame is on its way (`lost_at_end`), or
sits behind a connection whose every write waits a loop turn (`slow_writes`). The app
must follow ASGI: one `http.response.start`, then body messages until `more_body` is
false; anything else is recorded in `problems` and raised, as uvicorn does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

__all__ = ["ASGIExchange"]

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class ASGIExchange:
    """One request through `app` (see the module docstring for the client's behaviours).

    `headers` replace the default `content-type: application/json`; `content-length` and
    `host` are added. `on_close(complete)` hears when the client closes its end, before
    the whole answer unless `complete`. After `run()`: `status`, `headers`, `body`,
    `text`, and `sent` (every message the client received, the start first).
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        body: bytes = b"",
        *,
        method: str = "POST",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        leave_after: int | None = None,
        vanish: bool = False,
        buffer: int | None = None,
        lost_at_end: bool = False,
        grace_turns: int = 50,
        slow_writes: bool = False,
        on_close: Callable[[bool], None] | None = None,
    ) -> None:
        self.app = app
        self.request_body = body
        self.leave_after = leave_after
        self.buffer = buffer
        self.lost_at_end = lost_at_end
        self.grace_turns = grace_turns
        self.slow_writes = slow_writes
        self.on_close = on_close
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        pairs = [("content-type", "application/json")] if pairs is None else list(pairs)
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
            + [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        self.sent: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.complete = False
        self.gone = vanish
        self.frames = 0  # non-empty body messages received
        self.buffered = 0
        self.ended = asyncio.Event()  # the client is gone or has the whole answer
        self.stuck = asyncio.Event()  # a write blocks on a client that never reads
        self._body_read = False
        if vanish:
            self.ended.set()
            self._closed(complete=False)

    async def run(self) -> ASGIExchange:
        """Run the app for this request to its end."""
        await self.app(self.scope, self.receive, self.send)
        return self

    def leave(self) -> None:
        """The client closes its end now (gone, unless it had the whole answer).

        `on_close` hears it before the app's waits on the client end: a host that cancels
        the request when the connection closes does so before the app hears of it.
        """
        if not self.complete:
            self.gone = True
        self._closed(self.complete)
        self.ended.set()

    def _closed(self, complete: bool) -> None:
        if self.on_close is not None:
            self.on_close(complete)

    async def receive(self) -> dict[str, Any]:
        if not self._body_read and not self.gone:
            self._body_read = True
            if self.leave_after == 0:
                self.leave()
            return {"type": "http.request", "body": self.request_body, "more_body": False}
        await self.ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.slow_writes:
            await asyncio.sleep(0)  # one loop turn, as on a server that queues its writes
        kind = message.get("type")
        body = bytes(message.get("body", b"")) if kind == "http.response.body" else b""
        final = kind == "http.response.body" and not message.get("more_body", False)
        await self._transport(body, final)
        if self.gone:
            return  # like uvicorn: writes after a disconnect go nowhere
        self._check_order(kind)
        self.sent.append(message)
        if kind != "http.response.body":
            return
        self.buffered += len(body)
        self.frames += 1 if body else 0
        if final:
            self.complete = True
            self._closed(complete=True)
            self.ended.set()
        elif self.leave_after is not None and self.frames >= self.leave_after:
            self.leave()

    async def _transport(self, body: bytes, final: bool) -> None:
        """What the connection does with a write: block when full, drop at the end."""
        full = body and self.buffered + len(body) > (self.buffer or 0)
        if self.buffer is not None and not self.gone and full:
            self.stuck.set()
            await self.ended.wait()  # like uvicorn's drain(): until the client goes
        if self.lost_at_end and final and not self.gone:
            self.leave()  # the connection drops while the last frame is on its way
            for _ in range(self.grace_turns):
                await asyncio.sleep(0)

    def _check_order(self, kind: Any) -> None:
        if self.complete:
            self.problems.append(f"the app sent {kind} after the response was complete")
            raise RuntimeError(f"Unexpected ASGI message {kind!r} after the response completed")
        if (kind == "http.response.start") == bool(self.sent):
            self.problems.append(f"the app sent {kind} out of order")
            raise RuntimeError(f"Unexpected ASGI message {kind!r}")

    @property
    def status(self) -> int | None:
        """The response status (None before the app started its answer)."""
        return int(self.sent[0]["status"]) if self.sent else None

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, names lowercased."""
        start = self.sent[0] if self.sent else {}
        return {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in start.get("headers") or ()
        }

    @property
    def body(self) -> bytes:
        """The response body the client received."""
        return b"".join(bytes(m.get("body", b"")) for m in self.sent[1:])

    @property
    def text(self) -> str:
        return self.body.decode()
