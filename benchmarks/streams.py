"""Many slow streams: an asyncio load generator and a probe, each run as its own process.

    python -m benchmarks.streams load --port P --streams N [--deltas 20] [--rate R]
    python -m benchmarks.streams probe --port P [--max-seconds S]

`load` opens N streams to `POST /slow/chat/completions`, R a second (fewer while 1,024 of
them wait for an answer: the server's accept queue must not overflow), and reads each to its
end: raw sockets through asyncio protocols (on uvloop when it is installed), so that one
process on one core holds thousands. Each stream is checked: status 200, `deltas` chunks
plus the finish chunk and `[DONE]`, no error event, the chunked body properly ended. It
prints one JSON object: the counts, the first problems, the time to first byte of the
slow streams and a timeline of how many were open (every 50 ms).

`probe`, until SIGINT or `--max-seconds`: every 10 ms, alternately `GET /health` and a
100-chunk stream of `POST /bench/chat/completions` (time to its first body byte), each on a
kept-alive connection of its own; prints every sample with its time.

Times are `time.monotonic()`, which Linux shares between processes, so the caller can line
up the probe's samples, the load's timeline and its own RSS samples. Only 127.0.0.1 is
contacted; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import signal
import statistics
import sys
import time
from typing import Any

from benchmarks.apps import raise_open_files_limit
from benchmarks.client import HOST, request_body

SLOW_PATH = "/slow/chat/completions"
MARKER = b"data: "
ERROR = b'"error"'
END = b"data: [DONE]\n\n\r\n0\r\n\r\n"  # the last event, then the end of the chunked body
TAIL = 32


def slow_request(deltas: int) -> bytes:
    """A request for a slow stream of `deltas` deltas; the server closes after it."""
    body = request_body(deltas, stream=True)
    head = (
        f"POST {SLOW_PATH} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Load:
    """The state of one load run: how many streams are open, done, intact."""

    def __init__(self, streams: int, deltas: int) -> None:
        self.streams = streams
        self.expected_events = deltas + 2  # the deltas, the finish chunk, [DONE]
        self.open = 0
        self.waiting = 0  # launched, no byte of an answer yet
        self.max_open = 0
        self.done = 0
        self.intact = 0
        self.connect_errors = 0
        self.problems: list[str] = []
        self.ttfb: list[float] = []
        self.durations: list[float] = []  # first byte to end, per stream
        self.first_done_at: float | None = None
        self.all_open_at: float | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def opened(self, ttfb: float) -> None:
        self.waiting -= 1
        self.open += 1
        self.ttfb.append(ttfb)
        if self.open > self.max_open:
            self.max_open = self.open
        if len(self.ttfb) == self.streams:
            self.all_open_at = time.monotonic()

    def ended(self, stream: SlowStream, problem: str | None) -> None:
        now = time.monotonic()
        if stream.first is not None:
            self.open -= 1
            self.durations.append(now - stream.first)
        else:
            self.waiting -= 1
        if self.first_done_at is None:
            self.first_done_at = now
        if problem is None:
            self.intact += 1
        elif len(self.problems) < 5:
            self.problems.append(problem)
        self.settle()

    def failed_to_connect(self, exc: BaseException) -> None:
        self.waiting -= 1
        self.connect_errors += 1
        if len(self.problems) < 5:
            self.problems.append(f"connect: {exc!r}")
        self.settle()

    def settle(self) -> None:
        self.done += 1
        if self.done == self.streams and not self.finished.done():
            self.finished.set_result(None)


class SlowStream(asyncio.Protocol):
    """One stream: sends the request, counts events as they arrive, checks the end."""

    __slots__ = ("errors", "events", "first", "head", "load", "request", "sent", "status", "tail")

    def __init__(self, load: Load, request: bytes) -> None:
        self.load = load
        self.request = request
        self.sent = 0.0
        self.first: float | None = None
        self.head = b""
        self.status: int | None = None
        self.events = 0
        self.errors = 0
        self.tail = b""

    def connection_made(self, transport: Any) -> None:
        self.sent = time.monotonic()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.monotonic()
            self.load.opened(self.first - self.sent)
        if self.status is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            self.head = b""
        window = self.tail + data
        self.events += window.count(MARKER) - self.tail.count(MARKER)
        self.errors += window.count(ERROR) - self.tail.count(ERROR)
        self.tail = window[-TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        problem = None
        if self.status != 200:
            problem = f"status {self.status}" + (f" ({exc!r})" if exc else "")
        elif self.errors:
            problem = "an error event"
        elif self.events != self.load.expected_events:
            problem = f"{self.events} events, {self.load.expected_events} expected"
        elif not self.tail.endswith(END):
            problem = f"cut off: ends with {self.tail[-20:]!r}"
        self.load.ended(self, problem)


async def run_load(
    port: int, streams: int, deltas: int, rate: float, timeout: float, max_waiting: int
) -> dict:
    """Open `streams` slow streams at `rate` a second, never more than `max_waiting` at a
    time without an answer yet; read them all; the summary.

    The bound keeps the server's accept queue from overflowing when it falls behind: on
    Linux, a connection the queue drops looks connected to the client, which then sends its
    request and, long after, is reset without an answer (the server never saw it).
    """
    loop = asyncio.get_running_loop()
    load = Load(streams, deltas)
    request = slow_request(deltas)
    transports: list[Any] = []
    timeline: list[tuple[float, int]] = []

    async def connect() -> None:
        try:
            transport, _ = await loop.create_connection(
                lambda: SlowStream(load, request), HOST, port
            )
        except OSError as exc:
            load.failed_to_connect(exc)
            return
        transports.append(transport)

    async def sample() -> None:
        while True:
            timeline.append((time.monotonic(), load.open))
            await asyncio.sleep(0.05)  # the timeline's resolution

    started = time.monotonic()
    deadline = started + timeout
    sampler = asyncio.ensure_future(sample())
    connecting: set[asyncio.Task[None]] = set()
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    for begin in range(0, streams, per_tick):
        while load.waiting >= max_waiting and time.monotonic() < deadline:
            await asyncio.sleep(tick)  # the server is behind: let it accept what it has
        for _ in range(begin, min(begin + per_tick, streams)):
            load.waiting += 1
            task = asyncio.ensure_future(connect())
            connecting.add(task)
            task.add_done_callback(connecting.discard)
        await asyncio.sleep(tick)  # paces the opening of connections, not the streams
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(load.finished), max(1.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        timed_out = True
        for transport in transports:
            transport.abort()
    sampler.cancel()
    timeline.append((time.monotonic(), load.open))
    seconds = time.monotonic() - started
    ttfb = sorted(load.ttfb)
    durations = sorted(load.durations)
    return {
        "streams": streams,
        "deltas": deltas,
        "rate": rate,
        "max_waiting": max_waiting,
        "intact": load.intact,
        "connect_errors": load.connect_errors,
        "problems": load.problems,
        "timed_out": timed_out,
        "max_open": load.max_open,
        "started_at": started,
        "all_open_at": load.all_open_at,
        "first_done_at": load.first_done_at,
        "seconds": seconds,
        "ttfb_median_ms": statistics.median(ttfb) * 1000 if ttfb else None,
        "ttfb_p99_ms": ttfb[int(len(ttfb) * 0.99) - 1] * 1000 if len(ttfb) >= 100 else None,
        "duration_median_s": statistics.median(durations) if durations else None,
        "duration_max_s": durations[-1] if durations else None,
        "timeline": timeline,
    }


def probe(port: int, max_seconds: float, interval: float = 0.01) -> dict[str, Any]:
    """Alternate /health and a 100-chunk stream's first byte until SIGINT; every sample."""
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    health = http.client.HTTPConnection(HOST, port, timeout=30)
    streams = http.client.HTTPConnection(HOST, port, timeout=30)
    body = request_body(100, stream=True)
    headers = {"Content-Type": "application/json"}
    samples: dict[str, list[tuple[float, float]]] = {"health": [], "ttfb": []}
    deadline = time.monotonic() + max_seconds
    turn = 0
    try:
        while not stop["now"] and time.monotonic() < deadline:
            start = time.perf_counter()
            if turn % 2 == 0:
                health.request("GET", "/health")
                response = health.getresponse()
                response.read()
                elapsed = time.perf_counter() - start
                kind = "health"
            else:
                streams.request("POST", "/bench/chat/completions", body, headers)
                response = streams.getresponse()
                response.read1(65536)
                elapsed = time.perf_counter() - start
                response.read()
                kind = "ttfb"
            if response.status != 200:
                raise RuntimeError(f"probe {kind}: status {response.status}")
            samples[kind].append((time.monotonic(), elapsed * 1000))
            turn += 1
            time.sleep(interval)  # the probe's own pace
    finally:
        health.close()
        streams.close()
    return {"samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=["load", "probe"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2500.0, help="streams opened a second")
    parser.add_argument(
        "--max-waiting", type=int, default=1024, help="streams launched and not answered yet"
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    args = parser.parse_args(argv)
    if args.mode == "probe":
        result = probe(args.port, args.max_seconds)
    else:
        limit = raise_open_files_limit()
        if limit < args.streams + 64:
            raise SystemExit(f"the open-files limit is {limit}: too low for {args.streams} streams")
        try:
            import uvloop
        except ImportError:
            runner: Any = asyncio.run
        else:
            runner = uvloop.run
        result = runner(
            run_load(
                args.port, args.streams, args.deltas, args.rate, args.timeout, args.max_waiting
            )
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
