"""Helpers shared by robutler's own tests (import as `from helpers import ...`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from robutler_testing.asgi import ASGIExchange as ASGICall
from robutler_testing.sse import SSEDecoder, decode_sse

__all__ = [
    "JSON_TYPE",
    "USER",
    "ASGICall",
    "documentation",
    "post",
    "run_downstream_tests",
    "sse_events",
    "stream_content",
    "streaming",
    "wait_for",
]

USER = [{"role": "user", "content": "hello"}]
JSON_TYPE = {"content-type": "application/json"}  # for bodies sent as raw bytes


def documentation() -> str:
    """The documentation site's pages (docs/), in the order of its navigation, as one text:
    where the README's tested snippets and tables live now."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    nav = re.findall(r":\s+(\S+\.md)\s*$", (root / "mkdocs.yml").read_text(), re.M)
    return "\n\n".join((root / "docs" / page).read_text() for page in nav)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextmanager
def streaming(url: str) -> Iterator[None]:
    """A client that asks `url` (a chat completions URL) for a stream, reads its first
    event and stays, still reading, until the block ends; then it leaves."""
    import httpx

    body = {"messages": USER, "stream": True}
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        lines = response.iter_lines()  # kept open: the client is still reading
        assert next(line for line in lines if line.startswith("data: "))
        yield


def sse_events(text: str | bytes) -> list[Any]:
    """The `data` payloads of an SSE body, JSON-decoded except `[DONE]`; the framing must be
    clean (every line a field or comment, the last event ended by a blank line)."""
    decoder = SSEDecoder()
    events = decode_sse(text, decoder)
    assert not decoder.problems, [str(p) for p in decoder.problems]
    assert events and events[-1].terminated, (
        f"stream does not end with a blank line: {text[-40:]!r}"
    )
    return [e.data if e.data == "[DONE]" else e.json() for e in events]


def stream_content(events: list[Any]) -> str:
    return "".join(
        (c.get("delta") or {}).get("content") or ""
        for e in events
        if isinstance(e, dict) and "choices" in e
        for c in e["choices"]
    )


def post(client: Any, name: str, messages: list[dict[str, Any]] | None = None, **body: Any) -> Any:
    return client.post(f"/{name}/chat/completions", json={"messages": messages or USER, **body})


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
