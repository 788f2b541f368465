"""Recording a cassette: the mock forwards each request to the real upstream, passes the
reply through to the client as it arrives (streams stay streams), and keeps both.

The request goes out as the client sent it (same body bytes, same headers but the
transport's own) with the recording key as ``Authorization: Bearer ...`` (or as
``api-key`` when the client sent one, as Azure clients do). What is kept is scrubbed by the
`Scrubber` before it is held, so a secret is never written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .cassette import Cassette, Interaction, RecordedReply, RecordedRequest, Scrubber, body_value
from .cassette import split_events as split_sse
from .http import DropConnection, send_json
from .scripting import UpstreamCall, error_body

__all__ = ["Recorder"]

Report = Callable[[str], None]
_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "accept-encoding",
        "authorization",
        "api-key",
    }
)
_NOT_PASSED_BACK = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}
)


class Recorder:
    """Forwards requests to `upstream` (a base URL ending like the mock's ``/v1``) with
    `api_key`, and keeps each exchange for the cassette written by `finish`."""

    def __init__(self, cassette: Cassette, upstream: str, api_key: str, scrubber: Scrubber) -> None:
        self.cassette = cassette
        self.upstream = upstream.rstrip("/")
        self._api_key = api_key
        self._scrubber = scrubber
        self._lock = threading.Lock()
        self._slots: list[Interaction | None] = []

    @property
    def host(self) -> str:
        import httpx

        return httpx.URL(self.upstream).host

    def url(self, target: str) -> str:
        """The upstream URL for a path of the mock (``/v1/responses`` -> upstream + ``/responses``)."""
        suffix = target[3:] if target == "/v1" or target.startswith(("/v1/", "/v1?")) else target
        return self.upstream + suffix

    def pending(self) -> list[str]:
        return []

    def finish(self, ok: bool) -> None:
        """Write the cassette (not when the block raised: a half recording would mislead)."""
        if not ok:
            return
        with self._lock:
            self.cassette.interactions = [i for i in self._slots if i is not None]
        self.cassette.save()

    def _headers(self, call: UpstreamCall) -> dict[str, str]:
        headers = {k: v for k, v in call.headers.items() if k.lower() not in _NOT_FORWARDED}
        if any(k.lower() == "api-key" for k in call.headers):
            headers["api-key"] = self._api_key
        else:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    async def serve(
        self, call: UpstreamCall, target: str, raw: bytes, send: Any, report: Report
    ) -> None:
        """Forward `call`, stream the reply back, and keep the exchange."""
        import httpx

        with self._lock:
            slot = len(self._slots)
            self._slots.append(None)
        url = self.url(target)
        started = False
        chunks: list[bytes] = []
        marks: list[tuple[int, float]] = []  # (bytes so far, seconds since the reply began)
        try:
            timeout = httpx.Timeout(600.0, connect=30.0)
            async with httpx.AsyncClient(timeout=timeout) as client:
                request = client.build_request(
                    call.method, url, content=raw, headers=self._headers(call)
                )
                response = await client.send(request, stream=True)
                try:
                    began = time.monotonic()
                    headers = [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.multi_items()
                        if k.lower() not in _NOT_PASSED_BACK
                    ]
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status_code,
                            "headers": headers,
                        }
                    )
                    started = True
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        chunks.append(chunk)
                        marks.append((size, time.monotonic() - began))
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                finally:
                    await response.aclose()
        except (httpx.HTTPError, OSError) as exc:
            problem = f"recording {call.method} {target}: the upstream {url} failed ({exc!r})"
            report(problem)
            if started:
                raise DropConnection(problem) from None
            await send_json(
                send,
                502,
                error_body(problem, "mock_openai_error", None),
                {"x-should-retry": "false"},
            )
            return
        interaction = Interaction(
            RecordedRequest(
                call.method,
                target,
                self._scrubber.value(body_value(raw)),
                self._scrubber.header_map(call.headers.items()),
            ),
            self._reply(response, b"".join(chunks), marks),
        )
        with self._lock:
            self._slots[slot] = interaction

    def _reply(
        self, response: Any, content: bytes, marks: list[tuple[int, float]]
    ) -> RecordedReply:
        scrub = self._scrubber
        text = content.decode("utf-8", "replace")
        reply = RecordedReply(
            response.status_code, scrub.header_map(response.headers.multi_items())
        )
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            reply.body = scrub.text(text)
            return reply
        events = split_sse(text)
        reply.events = [scrub.text(event) for event in events]
        reply.times = []
        end = 0
        for event in events:
            end += len(event.encode())
            reply.times.append(
                next((t for size, t in marks if size >= end), marks[-1][1] if marks else 0.0)
            )
        return reply
