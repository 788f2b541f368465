"""Small load-side clients, run as their own process (pinned away from the server).

    python -m benchmarks.client ttfb --port P --requests N --chunks C
    python -m benchmarks.client drain --port P --chunks C
    python -m benchmarks.client fetch --port P --body JSON

Each prints one JSON object on stdout. Only 127.0.0.1 is ever contacted; every loop is
bounded in count and in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import time
from typing import Any

HOST = "127.0.0.1"
PATH = "/bench/chat/completions"
RESPONSES_PATH = "/v1/responses"  # robutler's front door: the agent named by `model`
MAX_RESPONSE_BYTES = 1 << 30


def request_body(chunks: int, stream: bool, model: str = "bench-model") -> bytes:
    """The benchmark's request: the last user message names the number of chunks."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": str(chunks)}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def responses_body(chunks: int, stream: bool) -> bytes:
    """The same request in the Responses API: `input` names the number of chunks."""
    body: dict[str, Any] = {"model": "bench", "input": str(chunks)}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def raw_request(body: bytes, *, close: bool, path: str = PATH) -> bytes:
    """An HTTP/1.1 POST of `body` to the benchmark path."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def dechunk(data: bytes) -> bytes:
    """The payload of a chunked transfer-encoded body."""
    out = bytearray()
    pos = 0
    for _ in range(len(data) + 1):
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)


def fetch(port: int, body: bytes, timeout: float = 120.0, path: str = PATH) -> dict[str, Any]:
    """One request on a fresh connection, read to the end: status, sizes, payload."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(raw_request(body, close=True, path=path))
        while time.monotonic() < deadline and len(received) < MAX_RESPONSE_BYTES:
            part = sock.recv(1 << 20)
            if not part:
                break
            received += part
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    payload = dechunk(rest) if chunked else rest
    return {
        "status": status,
        "headers": headers,
        "wire_bytes": len(received),
        "payload": payload.decode(),
    }


def ttfb(port: int, requests: int, chunks: int, warmup: int = 20, timeout: float = 120.0) -> dict:
    """Median time from sending a stream request to its first body byte, over `requests`."""
    body = request_body(chunks, stream=True)
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    samples: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        for i in range(warmup + requests):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            conn.request("POST", PATH, body, headers)
            response = conn.getresponse()
            first = response.read1(65536)
            elapsed = time.perf_counter() - start
            rest = response.read()
            if response.status != 200 or not first.startswith(b"data: "):
                raise RuntimeError(f"unexpected answer: {response.status} {first[:80]!r}")
            frames = (first + rest).count(b"data: ")
            if frames != chunks + 2:  # the chunks, the finish chunk, [DONE]
                raise RuntimeError(f"expected {chunks + 2} SSE events, got {frames}")
            if i >= warmup:
                samples.append(elapsed)
    finally:
        conn.close()
    if not samples:
        raise RuntimeError("no sample taken before the deadline")
    samples.sort()
    return {
        "requests": len(samples),
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": samples[int(len(samples) * 0.9) - 1] * 1000,
        "min_ms": samples[0] * 1000,
    }


def drain(port: int, chunks: int, timeout: float = 600.0) -> dict[str, Any]:
    """Read one stream of `chunks` chunks as fast as possible, counting its SSE events."""
    marker = b"data: "
    events = 0
    total = 0
    tail = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=60) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        start = time.perf_counter()
        sock.sendall(raw_request(request_body(chunks, stream=True), close=True))
        first_byte = None
        while time.monotonic() < deadline and total < 64 * MAX_RESPONSE_BYTES:
            part = sock.recv(1 << 20)
            if not part:
                break
            if first_byte is None:
                first_byte = time.perf_counter() - start
            total += len(part)
            window = tail + part
            events += window.count(marker) - tail.count(marker)
            tail = window[-(len(marker) - 1) :]
        seconds = time.perf_counter() - start
    return {
        "events": events,
        "complete": events == chunks + 2,
        "wire_bytes": total,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds if seconds else 0.0,
        "first_byte_ms": (first_byte or 0.0) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=["ttfb", "drain", "fetch"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--responses", action="store_true", help="fetch: POST /v1/responses instead"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.mode == "ttfb":
        result = ttfb(args.port, args.requests, args.chunks, timeout=args.timeout)
    elif args.mode == "drain":
        result = drain(args.port, args.chunks, timeout=args.timeout)
    elif args.responses:
        body = responses_body(args.chunks, args.stream)
        result = fetch(args.port, body, timeout=args.timeout, path=RESPONSES_PATH)
    else:
        result = fetch(args.port, request_body(args.chunks, args.stream), timeout=args.timeout)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
