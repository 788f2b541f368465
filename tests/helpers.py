"""Helpers shared by robutler's own tests (import as `from helpers import ...`)."""

from __future__ import annotations

import json
from typing import Any

USER = [{"role": "user", "content": "hello"}]


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded except `[DONE]`."""
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-40:]!r}"
    out: list[Any] = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), f"not a data event: {block!r}"
        payload = block[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def stream_content(events: list[Any]) -> str:
    return "".join(
        (c.get("delta") or {}).get("content") or ""
        for e in events
        if isinstance(e, dict) and "choices" in e
        for c in e["choices"]
    )


def post(client: Any, name: str, messages: list[dict[str, Any]] | None = None, **body: Any) -> Any:
    return client.post(f"/{name}/chat/completions", json={"messages": messages or USER, **body})


class ASGICall:
    """Drives one HTTP request through an ASGI app by hand, recording what it sends.

    `disconnect_after=k` makes the client leave once k body messages were received,
    the way uvicorn reports a closed socket: `receive()` returns `http.disconnect`.
    """

    def __init__(
        self,
        app: Any,
        path: str,
        body: bytes,
        *,
        method: str = "POST",
        disconnect_after: int | None = None,
    ) -> None:
        import asyncio

        self.app = app
        self.body = body
        self.sent: list[dict[str, Any]] = []
        self.disconnect_after = disconnect_after
        self.left = asyncio.Event()
        self._body_sent = False
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.left.is_set():
            return  # like uvicorn: writes after a disconnect go nowhere
        self.sent.append(message)
        bodies = [m for m in self.sent if m["type"] == "http.response.body"]
        if self.disconnect_after is not None and len(bodies) >= self.disconnect_after:
            self.left.set()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.left.set()

    async def run(self) -> ASGICall:
        await self.app(self.scope, self.receive, self.send)
        return self

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def text(self) -> str:
        return b"".join(
            m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"
        ).decode()


def run_downstream_tests(
    directory: Any,
    name: str,
    source: str,
    timeout: float = 180,
    *,
    args: tuple[str, ...] = (),
    python_args: tuple[str, ...] = (),
    returncode: int = 0,
) -> Any:
    """Write `source` as test file `name` in `directory` and run pytest on it in a subprocess,
    as a user's project would (the plugin comes from the installed entry point).

    `args` go to pytest, `python_args` to the interpreter (e.g. `-X dev`); the run must
    exit with `returncode`."""
    import subprocess
    import sys

    (directory / name).write_text(source)
    command = [sys.executable, *python_args, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, *args, str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == returncode, result.stdout + result.stderr
    return result
