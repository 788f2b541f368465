"""CPU per request of the bench apps driven in-process, without sockets or uvicorn.

    python -m benchmarks.inprocess [--app no_hooks|with_hooks] [--workload json|stream|responses]

A quick before/after check of robutler's own per-request work (routing, parsing, the
lifecycle, encoding): each request goes through the app's ASGI callable in this process,
on uvloop, and the best of five runs of process CPU time per request is printed. It leaves
out what a real server adds (HTTP parsing, sockets), so the full benchmark (`bench.py`)
stays the measure of record; compare two checkouts by running this in each.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from benchmarks.apps import robutler_app
from benchmarks.client import RESPONSES_PATH, request_body, responses_body

PATH = "/bench/chat/completions"
WORKLOADS = {
    "json": (PATH, lambda: request_body(1, False)),
    "stream": (PATH, lambda: request_body(100, True)),
    "responses": (RESPONSES_PATH, lambda: responses_body(1, False)),
}


async def _measure(app: Any, path: str, body: bytes, requests: int) -> float:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    statuses: list[int] = []

    async def one() -> None:
        read = False

        async def receive() -> dict[str, Any]:
            nonlocal read
            if not read:
                read = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays: only a cancellation ends this
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(dict(scope), receive, send)

    for _ in range(500):  # warm up
        await one()
    if set(statuses) != {200}:
        raise SystemExit(f"the app answered {sorted(set(statuses))}, not 200")
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(requests):
            await one()
        best = min(best, (time.process_time() - started) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="no_hooks", choices=["no_hooks", "with_hooks"])
    parser.add_argument("--workload", default="json", choices=sorted(WORKLOADS))
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    path, body = WORKLOADS[args.workload]
    app = getattr(robutler_app, args.app)()
    import uvloop

    us = uvloop.run(_measure(app, path, body(), args.requests))
    print(f"{args.app} {args.workload}: {us:.1f} us of CPU per request (best of 5)")


if __name__ == "__main__":
    main()
