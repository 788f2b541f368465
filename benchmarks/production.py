"""The workloads that look like production: slow streams, the Agents SDK, workers.

- `slow_streams`: N concurrent streams of 20 deltas 250 ms apart (`benchmarks.streams`),
  (b) against (c), a fresh server per app and round (so that RSS growth is the streams'):
  every stream intact, (c)'s finalize count exact, server RSS per open stream, and a probe
  made while they are open: `/health` latency (event-loop lag) and the time to first byte
  of a 100-chunk stream (before the load too, for the figures with no load).
- `agents_sdk`: an Agents SDK agent with one tool behind (s) robutler's `Server` and (sb) a
  FastAPI route that calls `Runner.run` / `Runner.run_streamed` itself, the upstream model
  API being `apps/upstream.py` (the repo's mock_openai) on the load core; JSON and streamed
  throughput with wrk, and the server's CPU time per request.
- `workers`: the JSON workload through `robutler serve`, one worker (w1) against
  `--workers 2` (w2); server and wrk share both cores.

Each runs its apps interleaved, their order rotating every round, like `bench.throughput`.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from benchmarks.client import request_body
from benchmarks.harness import APPS, HOST, App, Cores, Server, run_client, run_wrk, spawn_client

SLOW_DELTAS = 20
STREAMS = "benchmarks.streams"

SLOW_APPS = tuple(a for a in APPS if a.key in ("b", "c"))
SDK_APPS = (
    App("sb", "FastAPI + Runner by hand", "benchmarks.apps.fastapi_sdk:app"),
    App("s", "robutler Server", "benchmarks.apps.robutler_sdk:app", factory=True),
)
UPSTREAM = App("u", "mock_openai upstream", "benchmarks.apps.upstream:app", factory=True)
SERVED = App("w", "robutler serve", "benchmarks.apps.robutler_served:app")
WORKERS = {"w1": 1, "w2": 2}
# (figure, connections, stream)
SDK_WORKLOADS = (("sdk_json_rps", 16, False), ("sdk_stream_rps", 16, True))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def rotate(items: list[Any], by: int) -> list[Any]:
    by %= len(items)
    return items[by:] + items[:by]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# many slow streams -------------------------------------------------------------------------


def finalized(server: Server) -> tuple[int, int]:
    """How many slow-agent requests (c)'s finalize hook has seen, and how many of those
    it saw completed (`GET /bench-stats`)."""
    url = f"http://{HOST}:{server.port}/bench-stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        stats = json.load(response)
    return int(stats["slow"]), int(stats["slow_completed"])


def slow_round(app: App, cores: Cores, streams: int, rate: float) -> dict[str, Any]:
    """One app, one fresh server: a probe alone for a second, then `streams` slow streams."""
    server = Server(app, cores)
    server.start()
    spawned: list[subprocess.Popen[str]] = []
    try:
        port = str(server.port)
        run_client(cores, "load", "--port", port, "--streams", "20", "--deltas", "2",
                   module=STREAMS, timeout=60)  # fmt: skip
        probe = spawn_client(cores, "probe", "--port", port, "--max-seconds", "300", module=STREAMS)
        spawned.append(probe)
        time.sleep(1.0)  # the probe's samples with no load
        counted = finalized(server) if app.key == "c" else None
        before = server.rss()
        load = spawn_client(
            cores, "load", "--port", port, "--streams", str(streams), "--rate", str(rate),
            "--deltas", str(SLOW_DELTAS), "--timeout", "240", module=STREAMS,
        )  # fmt: skip
        spawned.append(load)
        rss: list[tuple[float, float]] = [(time.monotonic(), before)]
        deadline = time.monotonic() + 300
        while load.poll() is None and time.monotonic() < deadline:
            rss.append((time.monotonic(), server.rss()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                load.wait(timeout=0.05)  # the RSS sampling interval
        if load.poll() is None:
            load.kill()
        out, err = load.communicate(timeout=30)
        probe.send_signal(signal.SIGINT)
        probe_out, probe_err = probe.communicate(timeout=30)
        if load.returncode != 0 or probe.returncode != 0:
            raise RuntimeError(f"slow streams on {app.key} failed:\n{err}\n{probe_err}")
        result = json.loads(out)
        samples = json.loads(probe_out)["samples"]
        exact = None
        if counted is not None:
            for _ in range(200):  # finalize runs after the last byte; give it a moment
                seen, completed = finalized(server)
                if seen - counted[0] >= streams:
                    break
                time.sleep(0.05)
            exact = {
                "finalized": seen - counted[0],
                "completed": completed - counted[1],
                "expected": streams,
            }
    finally:
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        server.stop()
    return summarize_slow(result, samples, rss, before, exact)


def summarize_slow(
    load: dict[str, Any],
    samples: dict[str, list[list[float]]],
    rss: list[tuple[float, float]],
    before: float,
    exact: dict[str, int] | None,
) -> dict[str, Any]:
    """The round's figures: the probe with no load and under load, RSS per open stream."""
    times = [t for t, _ in load["timeline"]]
    opened = [n for _, n in load["timeline"]]
    busy = max(1, int(load["max_open"] * 0.9))

    def open_at(t: float) -> int:
        i = bisect.bisect_right(times, t) - 1
        return opened[i] if i >= 0 else 0

    def split(kind: str) -> tuple[list[float], list[float]]:
        idle = [ms for t, ms in samples[kind] if t < load["started_at"]]
        loaded = [ms for t, ms in samples[kind] if open_at(t) >= busy]
        return idle, loaded

    health_idle, health_load = split("health")
    ttfb_idle, ttfb_load = split("ttfb")
    peak = max(mb for _, mb in rss)
    return {
        "streams": load["streams"],
        "intact": load["intact"],
        "problems": load["problems"],
        "max_open": load["max_open"],
        "finalize": exact,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_kib_per_stream": (peak - before) * 1024 / max(1, load["max_open"]),
        "health_idle_ms": _median(health_idle),
        "health_load_ms": _median(health_load),
        "ttfb_idle_ms": _median(ttfb_idle),
        "ttfb_load_ms": _median(ttfb_load),
        "probes_under_load": len(health_load) + len(ttfb_load),
        "slow_ttfb_median_ms": load["ttfb_median_ms"],
        "duration_median_s": load["duration_median_s"],
        "duration_max_s": load["duration_max_s"],
        "seconds": load["seconds"],
    }


SLOW_FIGURES = (
    ("slow_rss_kib", "rss_kib_per_stream"),
    ("slow_health_ms", "health_load_ms"),
    ("idle_health_ms", "health_idle_ms"),
    ("slow_ttfb_ms", "ttfb_load_ms"),
    ("idle_ttfb_ms", "ttfb_idle_ms"),
    ("slow_duration_s", "duration_median_s"),
)


def slow_streams(cores: Cores, rounds: int, streams: int, rate: float) -> dict[str, Any]:
    """Every round's summary per app, and the per-round figures."""
    keys = [a.key for a in SLOW_APPS]
    by_key = {a.key: a for a in SLOW_APPS}
    per_round: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for round_ in range(rounds):
        for key in rotate(keys, round_):
            summary = slow_round(by_key[key], cores, streams, rate)
            per_round[key].append(summary)
            fin = summary["finalize"]
            counts = f", finalized {fin['finalized']} ({fin['completed']} completed)" if fin else ""
            log(
                f"  round {round_ + 1}/{rounds} {key}: {summary['intact']}/{streams} intact"
                f"{counts}, {summary['max_open']} open"
                f" at once, {summary['rss_kib_per_stream']:.1f} KiB each, /health "
                f"{_fmt(summary['health_load_ms'])} ms under load ({_fmt(summary['health_idle_ms'])}"
                f" idle), streams took {_fmt(summary['duration_median_s'])} s"
            )
    figures = {
        name: {k: [r[field] for r in per_round[k] if r[field] is not None] for k in keys}
        for name, field in SLOW_FIGURES
    }
    return {"rounds": per_round, "figures": figures}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# the Agents SDK end to end ---------------------------------------------------------------


def validate_sdk(servers: dict[str, Server], cores: Cores) -> None:
    """Both SDK apps answer the upstream's text, as JSON and as a stream."""
    from benchmarks.apps.upstream import REPLY

    for key, server in servers.items():
        for stream in (False, True):
            args = ["fetch", "--port", str(server.port), "--chunks", "1"]
            got = run_client(cores, *args, *(["--stream"] if stream else []), timeout=60)
            if got["status"] != 200:
                raise SystemExit(f"{key}: status {got['status']}: {got['payload'][:200]}")
            payload = got["payload"]
            if stream:
                events = [e[len("data: ") :] for e in payload.split("\n\n") if e]
                if events[-1] != "[DONE]":
                    raise SystemExit(f"{key}: the SDK stream does not end with [DONE]")
                chunks = [json.loads(e) for e in events[:-1]]
                text = "".join(
                    c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
                )
            else:
                text = json.loads(payload)["choices"][0]["message"]["content"]
            if text != REPLY:
                raise SystemExit(f"{key} answers {text!r}, not the upstream's {REPLY!r}")


def agents_sdk(cores: Cores, rounds: int, seconds: int) -> dict[str, Any]:
    """SDK throughput per app and workload, per round; server CPU per request."""
    upstream = Server(UPSTREAM, cores, args=("--lifespan", "off"), on=cores.load)
    upstream.start()
    env = {
        "OPENAI_BASE_URL": f"http://{HOST}:{upstream.port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
    servers = {a.key: Server(a, cores, env=env) for a in SDK_APPS}
    names = [w[0] for w in SDK_WORKLOADS]
    figures: dict[str, dict[str, list[float]]] = {
        n: {k: [] for k in servers} for f in names for n in (f, f.replace("_rps", "_cpu_us"))
    }
    try:
        for server in servers.values():
            server.start()
        validate_sdk(servers, cores)
        for server in servers.values():
            for _, connections, stream in SDK_WORKLOADS:
                run_wrk(server, request_body(1, stream), seconds=1, connections=connections)
        keys = list(servers)
        for round_ in range(rounds):
            for figure, connections, stream in SDK_WORKLOADS:
                line = []
                for key in rotate(keys, round_):
                    summary = run_wrk(
                        servers[key], request_body(1, stream), seconds=seconds,
                        connections=connections, what=f"{key} {figure}",
                    )  # fmt: skip
                    rps = summary["requests"] / summary["seconds"]
                    figures[figure][key].append(rps)
                    cpu = summary["server_cpu_s"] / max(1, summary["requests"]) * 1e6
                    figures[figure.replace("_rps", "_cpu_us")][key].append(cpu)
                    line.append(f"{key}={rps:,.1f}")
                log(f"  round {round_ + 1}/{rounds} {figure}: {' '.join(line)}")
    finally:
        for server in servers.values():
            server.stop()
        upstream.stop()
    return {"figures": figures}


# robutler serve --workers ----------------------------------------------------------------


@dataclass
class Served(Server):
    """`robutler serve APP --workers N` (its defaults otherwise; warnings only in the log)."""

    workers: int = 1

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "robutler", "serve", self.app.target, "--host", HOST,
            "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning",
        ]  # fmt: skip


def workers(cores: Cores, rounds: int, seconds: int, chunks: int) -> dict[str, Any]:
    """JSON throughput (`chunks` deltas joined) of one worker and of two, server and wrk
    sharing every core."""
    shared = cores.shared()
    servers = {k: Served(SERVED, shared, workers=n) for k, n in WORKERS.items()}
    body = request_body(chunks, stream=False)
    figures: dict[str, dict[str, list[float]]] = {"workers_rps": {k: [] for k in servers}}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            run_wrk(server, body, seconds=2, connections=32)  # every worker up and warm
        keys = list(servers)
        for round_ in range(rounds):
            line = []
            for key in rotate(keys, round_):
                summary = run_wrk(
                    servers[key], body, seconds=seconds, connections=32, what=f"{key} workers"
                )
                rps = summary["requests"] / summary["seconds"]
                figures["workers_rps"][key].append(rps)
                line.append(f"{key}={rps:,.0f}")
            log(f"  round {round_ + 1}/{rounds} workers_rps: {' '.join(line)}")
    finally:
        for server in servers.values():
            server.stop()
    return {"figures": figures}
