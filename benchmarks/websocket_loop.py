"""An agent loop over the Responses API: 20 turns on one WebSocket against 20 HTTP requests.

Each turn is a small `response.create` (`{"model": "bench", "input": "1"}`) continuing
the last one (`previous_response_id`), as an agent loop sends them; each loop starts a new
chain. The same loop runs over one WebSocket (`/v1/responses`, WebSocket mode), over HTTP
with a streamed answer (`"stream": true`, one keep-alive connection) and over HTTP with a
JSON answer, against robutler's app (c0) under uvicorn (`--ws websockets`), the rows
interleaved round by round. Reported: turns per second of each, and the WebSocket loop's
ratio to each HTTP loop (target: >= 1.3x the streamed HTTP loop, which answers with the
same events).

    python -m benchmarks.websocket_loop            # 5 rounds of 3 s per row
    python -m benchmarks.websocket_loop --rounds 1 --seconds 1   # a smoke run

`nox -s bench -- --only websocket` runs it as a section of the full benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from benchmarks.harness import APPS, HOST, Cores, Server

TURNS = 20
TARGET = 1.3  # the WebSocket loop's turns/s over the streamed HTTP loop's
ROWS = ("ws_loop_turns_s", "http_stream_loop_turns_s", "http_json_loop_turns_s")


def _create(previous: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "bench", "input": "1"}
    if previous is not None:
        body["previous_response_id"] = previous
    return body


async def ws_loops(port: int, seconds: float) -> float:
    """Turns per second of 20-turn loops, each on a WebSocket of its own."""
    from websockets.asyncio.client import connect

    turns = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        async with connect(f"ws://{HOST}:{port}/v1/responses", max_size=None) as ws:
            previous = None
            for _ in range(TURNS):
                await ws.send(json.dumps({"type": "response.create", **_create(previous)}))
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "response.completed":
                        previous = event["response"]["id"]
                        break
                    if event["type"] in ("error", "response.failed"):
                        raise RuntimeError(f"the WebSocket loop failed: {event}")
                turns += 1
    return turns / (time.perf_counter() - started)


async def http_loops(port: int, seconds: float, stream: bool) -> float:
    """Turns per second of 20-turn loops over HTTP (one keep-alive connection a loop)."""
    import httpx

    turns = 0
    started = time.perf_counter()
    url = f"http://{HOST}:{port}/v1/responses"
    while time.perf_counter() - started < seconds:
        async with httpx.AsyncClient(timeout=30) as client:
            previous = None
            for _ in range(TURNS):
                body = {**_create(previous), "stream": stream}
                if stream:
                    async with client.stream("POST", url, json=body) as answer:
                        last = b""
                        async for line in answer.aiter_lines():
                            if line.startswith("data: ") and '"response.completed"' in line:
                                last = line[6:].encode()
                    previous = json.loads(last)["response"]["id"]
                else:
                    answer = await client.post(url, json=body)
                    previous = answer.json()["id"]
                turns += 1
    return turns / (time.perf_counter() - started)


def measure(cores: Cores, rounds: int, seconds: float) -> dict[str, Any]:
    """The three rows, interleaved over `rounds`; per-round figures and medians."""
    server = Server(APPS[3], cores, args=("--ws", "websockets"))
    server.start()
    figures: dict[str, list[float]] = {row: [] for row in ROWS}
    runs = {
        "ws_loop_turns_s": lambda s: ws_loops(server.port, s),
        "http_stream_loop_turns_s": lambda s: http_loops(server.port, s, True),
        "http_json_loop_turns_s": lambda s: http_loops(server.port, s, False),
    }
    try:
        for run in runs.values():  # warm up, and check each loop works (one loop each)
            asyncio.run(run(0.01))
        for round_ in range(rounds):
            order = ROWS[round_ % 3 :] + ROWS[: round_ % 3]
            for row in order:
                figures[row].append(asyncio.run(runs[row](seconds)))
            line = " ".join(f"{row}={figures[row][-1]:,.1f}" for row in ROWS)
            print(f"  round {round_ + 1}/{rounds}: {line}", flush=True)
    finally:
        server.stop()
    medians = {row: statistics.median(values) for row, values in figures.items()}
    ratios = [
        ws / http
        for ws, http in zip(
            figures["ws_loop_turns_s"], figures["http_stream_loop_turns_s"], strict=True
        )
    ]
    return {
        "figures": figures,
        "medians": medians,
        "ws_over_http_stream": statistics.median(ratios),
    }


def target(result: dict[str, Any]) -> dict[str, Any]:
    """The target row of the benchmark report."""
    med = result["medians"]
    ratio = result["ws_over_http_stream"]
    return {
        "target": f"20-turn agent loop: WebSocket >= {TARGET}x HTTP (streamed)",
        "measured": f"{ratio:.2f}x (median of the rounds' ratios; WebSocket "
        f"{med['ws_loop_turns_s']:,.0f} turns/s, HTTP streamed "
        f"{med['http_stream_loop_turns_s']:,.0f}, HTTP JSON {med['http_json_loop_turns_s']:,.0f})",
        "holds": ratio >= TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    cores = Cores.detect()
    cores.pin_self()
    result = measure(cores, args.rounds, args.seconds)
    row = target(result)
    print(f"{row['target']}: {row['measured']} -> {'holds' if row['holds'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
