"""Run the benchmark: the apps, interleaved rounds, medians, the tables, one JSON file.

    python -m benchmarks.bench            # the full run (about 20 minutes on 2 cores)
    python -m benchmarks.bench --quick    # a short run (about 4 minutes)
    python -m benchmarks.bench --only slow,sdk   # some of the workloads
    python -m benchmarks.bench --profile c --workload nonstream   # py-spy profile of (c)

The apps (see benchmarks/apps/): (a) raw ASGI, (b) FastAPI by hand, (c) robutler with one
async before_request and one async finalize_request hook, (c0) robutler without hooks.
Each runs under its own uvicorn (one worker, httptools, uvloop, no access log) pinned to
one core; wrk and the Python clients run pinned to the other. The workloads that look
like production (many slow streams, the Agents SDK, `robutler serve --workers 2`) are in
`production.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import production, report, websocket_loop
from benchmarks.client import RESPONSES_PATH, request_body, responses_body
from benchmarks.harness import (
    APPS,
    HERE,
    Cores,
    Server,
    ensure_wrk,
    loadavg,
    machine,
    run_client,
    run_wrk,
    spawn_client,
)

NON_STREAM_CHUNKS = 16  # the JSON answer joins 16 deltas
SHORT_STREAM = 100
LONG_STREAM = 10_000


@dataclass(frozen=True)
class Plan:
    """How much of everything a run does."""

    rounds: int
    seconds: int  # per wrk run
    ttfb_requests: int
    rss_requests: int
    huge_stream: int
    slow_streams: int  # concurrent slow streams
    slow_rounds: int
    slow_rate: float = 2500.0  # slow streams opened a second
    warmup_seconds: int = 1


FULL = Plan(
    rounds=5,
    seconds=8,
    ttfb_requests=500,
    rss_requests=100_000,
    huge_stream=1_000_000,
    slow_streams=5_000,
    slow_rounds=3,
)
QUICK = Plan(
    rounds=2,
    seconds=3,
    ttfb_requests=200,
    rss_requests=20_000,
    huge_stream=200_000,
    slow_streams=1_000,
    slow_rounds=2,
)
SECTIONS = ("core", "slow", "sdk", "workers", "websocket")

# (workload, connections, chunks, stream, its server-CPU figure)
THROUGHPUT = (
    ("nonstream_rps", 32, NON_STREAM_CHUNKS, False, "nonstream_cpu_us"),
    ("stream100_rps", 16, SHORT_STREAM, True, "stream100_cpu_us"),
    ("stream10k_chunks_s", 4, LONG_STREAM, True, "stream10k_cpu_ns"),
)

# The Responses API through robutler's /v1 front door, next to the chat workload it mirrors:
# (workload, connections, chunks, stream, its server-CPU figure, the chat workload)
RESPONSES = (
    ("responses_json_rps", 32, NON_STREAM_CHUNKS, False, "responses_json_cpu_us", "nonstream_rps"),
    ("responses_stream100_rps", 16, SHORT_STREAM, True, "responses_stream100_cpu_us", "stream100_rps"),
)  # fmt: skip
ROBUTLER_APPS = ("c", "c0")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def validate(servers: dict[str, Server], cores: Cores) -> dict[str, Any]:
    """Check that every app answers the same JSON and the same SSE events; sizes per app."""
    sizes: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    for key, server in servers.items():
        entry: dict[str, Any] = {}
        for label, chunks, stream in (
            ("json", NON_STREAM_CHUNKS, False),
            ("stream100", SHORT_STREAM, True),
            ("stream10k", LONG_STREAM, True),
        ):
            args = ["fetch", "--port", str(server.port), "--chunks", str(chunks)]
            got = run_client(cores, *args, *(["--stream"] if stream else []), timeout=120)
            if got["status"] != 200:
                raise SystemExit(f"{key}: status {got['status']} for {label}")
            payload = got["payload"]
            if stream:
                events = [e[len("data: ") :] for e in payload.split("\n\n") if e]
                if events[-1] != "[DONE]":
                    raise SystemExit(f"{key}: the {label} stream does not end with [DONE]")
                chunks_ = [json.loads(e) for e in events[:-1]]
                text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks_)
                shape: tuple[Any, ...] = (
                    len(events),
                    text,
                    chunks_[-1]["choices"][0]["finish_reason"],
                )
            else:
                answer = json.loads(payload)
                shape = (answer["choices"][0]["message"]["content"], answer["model"])
            if label in reference and reference[label] != shape:
                raise SystemExit(f"{key} answers {label} differently from the other apps")
            reference.setdefault(label, shape)
            entry[label] = {"payload_bytes": len(payload.encode()), "wire_bytes": got["wire_bytes"]}
        if key in ROBUTLER_APPS:
            validate_responses(key, server, cores, reference)
        sizes[key] = entry
    return sizes


def validate_responses(key: str, server: Server, cores: Cores, reference: dict[str, Any]) -> None:
    """The Responses API answers carry the same text as the chat answers."""
    for label, chunks, stream, chat in (
        ("responses-json", NON_STREAM_CHUNKS, False, "json"),
        ("responses-stream100", SHORT_STREAM, True, "stream100"),
    ):
        args = ["fetch", "--responses", "--port", str(server.port), "--chunks", str(chunks)]
        got = run_client(cores, *args, *(["--stream"] if stream else []), timeout=120)
        if got["status"] != 200:
            raise SystemExit(f"{key}: status {got['status']} for {label}")
        if stream:
            events = [
                json.loads(block.split("\ndata: ", 1)[1])
                for block in got["payload"].split("\n\n")
                if block.startswith("event: ")
            ]
            text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
            if events[-1]["type"] != "response.completed":
                raise SystemExit(f"{key}: the {label} stream does not end with response.completed")
            expected = reference[chat][1]
        else:
            answer = json.loads(got["payload"])
            text = answer["output"][0]["content"][0]["text"]
            expected = reference[chat][0]
        if text != expected:
            raise SystemExit(f"{key} answers {label} with other text than its chat answer")


def rotate(items: list[Any], by: int) -> list[Any]:
    by %= len(items)
    return items[by:] + items[:by]


def memory_over_requests(servers: dict[str, Server], plan: Plan) -> dict[str, Any]:
    """RSS before and after `plan.rss_requests` requests (JSON and 10-chunk streams, alternating)."""
    out: dict[str, Any] = {}
    body = request_body(NON_STREAM_CHUNKS, stream=False)
    alt = request_body(10, stream=True)
    for key, server in servers.items():
        before = server.rss()
        summary = run_wrk(
            server,
            body,
            alt_body=alt,
            seconds=max(60, plan.rss_requests // 500),
            connections=16,
            stop_after=plan.rss_requests,
        )
        after = server.rss()
        out[key] = {
            "before_mb": before,
            "after_mb": after,
            "growth_mb": after - before,
            "requests": summary["requests"],
            "errors": summary["errors"],
        }
        log(f"  {key}: {summary['requests']} requests, RSS {before:.1f} -> {after:.1f} MiB")
    return out


def memory_over_stream(servers: dict[str, Server], cores: Cores, chunks: int) -> dict[str, Any]:
    """RSS sampled every 50 ms while one client drains one `chunks`-chunk stream."""
    out: dict[str, Any] = {}
    for key, server in servers.items():
        before = server.rss()
        samples = [before]
        proc = spawn_client(cores, "drain", "--port", str(server.port), "--chunks", str(chunks))
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            samples.append(server.rss())
            try:
                proc.wait(timeout=0.05)  # the sampling interval; the stream itself is unpaced
            except Exception:
                continue
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"drain failed for {key}:\n{stderr}")
        result = json.loads(stdout)
        after = server.rss()
        samples.append(after)
        out[key] = {
            "before_mb": before,
            "max_mb": max(samples),
            "after_mb": after,
            "growth_mb": max(samples) - before,
            "samples": len(samples),
            "chunks_per_s": result["chunks_per_s"],
            "complete": result["complete"],
            "seconds": result["seconds"],
        }
        log(
            f"  {key}: {chunks} chunks in {result['seconds']:.1f}s, RSS {before:.1f} -> max "
            f"{max(samples):.1f} MiB over {len(samples)} samples"
        )
    return out


def throughput(
    servers: dict[str, Server], plan: Plan, sizes: dict[str, Any]
) -> dict[str, dict[str, list[float]]]:
    """Every throughput workload, apps interleaved (rotated each round); per-round figures.

    Besides throughput, each run records the server's CPU time per request (per chunk for
    the long stream): it is far less sensitive than throughput to other load on the machine.
    """
    names = [w[0] for w in THROUGHPUT] + [w[4] for w in THROUGHPUT]
    figures: dict[str, dict[str, list[float]]] = {n: {k: [] for k in servers} for n in names}
    robutler = [k for k in servers if k in ROBUTLER_APPS]
    for workload, _, _, _, cpu_figure, _ in RESPONSES:
        figures[workload] = {k: [] for k in robutler}
        figures[cpu_figure] = {k: [] for k in robutler}
    keys = list(servers)
    for round_ in range(plan.rounds):
        for workload, connections, chunks, stream, cpu_figure in THROUGHPUT:
            line = []
            for key in rotate(keys, round_):
                summary = run_wrk(
                    servers[key],
                    request_body(chunks, stream),
                    seconds=plan.seconds,
                    connections=connections,
                    what=f"{key} {workload}",
                )
                if workload == "stream10k_chunks_s":
                    # Count partial responses too: bytes read over bytes per whole response.
                    per_response = sizes[key]["stream10k"]["wire_bytes"]
                    done = summary["bytes"] / per_response * chunks
                    cpu = summary["server_cpu_s"] / done * 1e9  # ns per chunk
                else:
                    done = summary["requests"]
                    cpu = summary["server_cpu_s"] / done * 1e6  # µs per request
                value = done / summary["seconds"]
                figures[workload][key].append(value)
                figures[cpu_figure][key].append(cpu)
                line.append(f"{key}={value:,.0f}")
            log(f"  round {round_ + 1}/{plan.rounds} {workload}: {' '.join(line)}")
            # The Responses rows that mirror this workload run right after it, so that each
            # is measured beside its chat row, under the same conditions of the machine.
            for row in RESPONSES:
                if row[5] == workload:
                    responses_row(servers, plan, robutler, round_, row, figures)
    return figures


def responses_row(
    servers: dict[str, Server],
    plan: Plan,
    robutler: list[str],
    round_: int,
    row: tuple[str, int, int, bool, str, str],
    figures: dict[str, dict[str, list[float]]],
) -> None:
    """One round of a Responses API workload (`RESPONSES` row) on robutler's apps."""
    workload, connections, chunks, stream, cpu_figure, _ = row
    line = []
    for key in rotate(robutler, round_):
        summary = run_wrk(
            servers[key],
            responses_body(chunks, stream),
            seconds=plan.seconds,
            connections=connections,
            path=RESPONSES_PATH,
            what=f"{key} {workload}",
        )
        done = summary["requests"]
        figures[workload][key].append(done / summary["seconds"])
        figures[cpu_figure][key].append(summary["server_cpu_s"] / done * 1e6)
        line.append(f"{key}={done / summary['seconds']:,.0f}")
    log(f"  round {round_ + 1}/{plan.rounds} {workload}: {' '.join(line)}")


def time_to_first_byte(
    servers: dict[str, Server], cores: Cores, plan: Plan
) -> dict[str, list[float]]:
    """Median time to the first SSE byte of a 100-chunk stream, per round."""
    figures: dict[str, list[float]] = {k: [] for k in servers}
    keys = list(servers)
    for round_ in range(plan.rounds):
        for key in rotate(keys, round_):
            result = run_client(
                cores,
                "ttfb",
                "--port",
                str(servers[key].port),
                "--requests",
                str(plan.ttfb_requests),
                "--chunks",
                str(SHORT_STREAM),
            )
            figures[key].append(result["median_ms"])
        log(
            f"  round {round_ + 1}/{plan.rounds} ttfb_ms: "
            + " ".join(f"{k}={figures[k][-1]:.3f}" for k in keys)
        )
    return figures


def warm_up(servers: dict[str, Server], plan: Plan) -> None:
    for server in servers.values():
        for _, connections, chunks, stream, _ in THROUGHPUT[:2]:
            run_wrk(
                server,
                request_body(chunks, stream),
                seconds=plan.warmup_seconds,
                connections=connections,
            )


def run(
    plan: Plan, quick: bool, out_dir: Path, sections: tuple[str, ...] = SECTIONS
) -> dict[str, Any]:
    """The whole benchmark (or its `sections`); returns what is written to the JSON file."""
    ensure_wrk()
    cores = Cores.detect()
    cores.pin_self()
    started = time.monotonic()
    result: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "plan": asdict(plan),
        "machine": machine(cores),
        "apps": {a.key: {"label": a.label, "target": a.target} for a in APPS},
        "sections": list(sections),
        "loadavg": {"start": loadavg()},
    }
    log(f"{result['mode']} run on {result['machine']['cpu']}, pinning {cores}")
    figures: dict[str, Any] = {}
    if "core" in sections:
        core(plan, cores, result, figures)
    if "slow" in sections:
        log(
            f"many slow streams: {plan.slow_rounds} rounds of {plan.slow_streams:,} streams "
            f"({production.SLOW_DELTAS} deltas, 250 ms apart), a fresh server each"
        )
        slow = production.slow_streams(cores, plan.slow_rounds, plan.slow_streams, plan.slow_rate)
        result["slow_streams"] = slow["rounds"]
        figures.update(slow["figures"])
    if "sdk" in sections:
        # ~40 requests a second: twice the time per run, or one round's noise (±10%) hides
        # the few percent robutler's overhead is
        sdk_seconds = plan.seconds * 2
        log(f"Agents SDK end to end: {plan.rounds} rounds of {sdk_seconds}s per app and workload")
        figures.update(production.agents_sdk(cores, plan.rounds, sdk_seconds)["figures"])
    if "workers" in sections:
        log(f"robutler serve, 1 worker and --workers 2: {plan.rounds} rounds of {plan.seconds}s")
        figures.update(
            production.workers(cores, plan.rounds, plan.seconds, NON_STREAM_CHUNKS)["figures"]
        )
    if "websocket" in sections:
        log(f"20-turn agent loops, WebSocket and HTTP: {plan.rounds} rounds of {plan.seconds}s")
        result["websocket_loop"] = websocket_loop.measure(cores, plan.rounds, plan.seconds)
    result["rounds"] = figures
    result["medians"] = {
        w: {k: statistics.median(v) for k, v in f.items() if v} for w, f in figures.items()
    }
    result["loadavg"]["end"] = loadavg()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["targets"] = report.targets(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"bench-{stamp}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    result["path"] = str(path)
    return result


def core(plan: Plan, cores: Cores, result: dict[str, Any], figures: dict[str, Any]) -> None:
    """The four apps on the JSON and stream workloads: throughput, CPU, TTFB, memory."""
    servers = {app.key: Server(app, cores) for app in APPS}
    try:
        for server in servers.values():
            server.start()
        result["rss_idle_mb"] = {k: s.rss() for k, s in servers.items()}
        log("validating: every app gives the same answers")
        sizes = validate(servers, cores)
        result["sizes"] = sizes
        log("warming up")
        warm_up(servers, plan)
        log(f"memory over {plan.rss_requests:,} requests")
        result["memory_requests"] = memory_over_requests(servers, plan)
        log(f"throughput: {plan.rounds} rounds of {plan.seconds}s per app and workload")
        figures.update(throughput(servers, plan, sizes))
        log("time to first byte")
        figures["ttfb_ms"] = time_to_first_byte(servers, cores, plan)
        log(f"memory during one {plan.huge_stream:,}-chunk stream")
        result["memory_stream"] = memory_over_stream(servers, cores, plan.huge_stream)
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="robutler load benchmark")
    parser.add_argument("--quick", action="store_true", help="a short run (~4 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated workloads to run, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--streams", type=int, help="override the number of slow streams")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--seconds", type=int, help="override the seconds per wrk run")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="JSON output folder")
    parser.add_argument(
        "--profile", metavar="APP", help="instead: profile APP (a, b, c, c0) with py-spy"
    )
    parser.add_argument("--workload", default="nonstream", help="with --profile: the workload")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.profile:
        from benchmarks import profile

        seconds = ["--seconds", str(args.seconds)] if args.seconds else []
        return profile.main(
            ["--app", args.profile, "--workload", args.workload, "--out", str(args.out), *seconds]
        )
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        rounds=args.rounds or plan.rounds,
        seconds=args.seconds or plan.seconds,
        slow_streams=args.streams or plan.slow_streams,
    )
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"--only takes some of {','.join(SECTIONS)}, got {args.only!r}")
    result = run(plan, args.quick, args.out, sections)
    print()
    print(report.markdown(result))
    print(f"\nwritten to {result['path']} in {result['elapsed_s']:.0f}s")
    missed = [t["target"] for t in result["targets"] if not t["holds"]]
    if missed:
        print(f"targets missed: {len(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
