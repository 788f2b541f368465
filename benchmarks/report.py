"""The benchmark's table and its targets, from a run's result dict."""

from __future__ import annotations

import statistics
from typing import Any

KEYS = ("a", "b", "c", "c0")
ROBUTLER = ("c", "c0")

# (figure, label, higher is better)
FIGURES = (
    ("nonstream_rps", "JSON completion, req/s", True),
    ("stream100_rps", "SSE stream of 100 chunks, req/s", True),
    ("stream10k_chunks_s", "SSE stream of 10,000 chunks, chunks/s", True),
    ("ttfb_ms", "time to first SSE byte, ms (median)", False),
    ("nonstream_cpu_us", "server CPU per JSON completion, µs", False),
    ("stream100_cpu_us", "server CPU per 100-chunk stream, µs", False),
    ("stream10k_cpu_ns", "server CPU per chunk of a 10,000-chunk stream, ns", False),
)
CPU_OF = {
    "nonstream_rps": "nonstream_cpu_us",
    "stream100_rps": "stream100_cpu_us",
    "stream10k_chunks_s": "stream10k_cpu_ns",
}
# The Responses API rows (robutler only), each against the chat workload it mirrors.
RESPONSES_FIGURES = (
    ("responses_json_rps", "/v1/responses JSON, req/s", "nonstream_rps"),
    ("responses_stream100_rps", "/v1/responses SSE stream of 100 deltas, req/s", "stream100_rps"),
    ("responses_json_cpu_us", "server CPU per /v1/responses JSON, µs", "nonstream_cpu_us"),
    ("responses_stream100_cpu_us", "server CPU per /v1/responses stream, µs", "stream100_cpu_us"),
)
MAX_HOOK_COST = 0.10
MAX_RESPONSES_COST = 0.10
MAX_GROWTH_MB = 10.0
MIN_WORKERS_SPEEDUP = 1.4  # 2 workers on 2 cores, wrk taking its share

# The production workloads: (figure, label, reference key, robutler key, higher is better,
# the target's bound on robutler / reference or None for a row that gives context).
PRODUCTION = (
    ("slow_rss_kib", "server RSS per open slow stream, KiB", "b", "c", False, 1.0),
    ("slow_health_ms", "`/health` while the slow streams are open, ms (p50)", "b", "c", False, 1.5),
    ("idle_health_ms", "`/health` with no load, ms (p50)", "b", "c", False, None),
    ("slow_ttfb_ms", "time to first SSE byte while the slow streams are open, ms (median)",
     "b", "c", False, 1.5),
    ("idle_ttfb_ms", "time to first SSE byte with no load, ms (median)", "b", "c", False, 1.0),
    ("slow_duration_s", "a slow stream from first to last byte, s (median; 4.75 on time)",
     "b", "c", False, None),
    ("sdk_json_rps", "Agents SDK agent with one tool, JSON, req/s", "sb", "s", True, 0.95),
    ("sdk_stream_rps", "Agents SDK agent with one tool, streamed, req/s", "sb", "s", True, 0.95),
    ("sdk_json_cpu_us", "server CPU per SDK JSON request, µs", "sb", "s", False, None),
    ("sdk_stream_cpu_us", "server CPU per SDK stream, µs", "sb", "s", False, None),
    ("workers_rps", "JSON completion through `robutler serve`, req/s: 1 worker, `--workers 2`",
     "w1", "w2", True, MIN_WORKERS_SPEEDUP),
)  # fmt: skip


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(value: float, a: float, b: float) -> str:
    return f"{_num(value)} ({value / b:.2f}x b, {value / a:.2f}x a)"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issues with what was measured and whether it holds."""
    out = core_targets(result) if "memory_requests" in result else []
    if "websocket_loop" in result:
        from benchmarks.websocket_loop import target

        out.append(target(result["websocket_loop"]))
    return out + production_targets(result)


def core_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the four apps' workloads."""
    med = result["medians"]
    out: list[dict[str, Any]] = []
    for figure, label, _ in FIGURES[:3]:
        ratios = {k: med[figure][k] / med[figure]["b"] for k in ROBUTLER}
        out.append(
            {
                "target": f"{label}: robutler >= 1.0x FastAPI (b)",
                "measured": f"c0 {ratios['c0']:.2f}x, c (hooks) {ratios['c']:.2f}x",
                "holds": all(r >= 1.0 for r in ratios.values()),
            }
        )
    for figure, label, _ in FIGURES[:3]:
        cost = 1 - med[figure]["c"] / med[figure]["c0"]
        cpu = med[CPU_OF[figure]]
        out.append(
            {
                "target": f"{label}: hooks cost <= {MAX_HOOK_COST:.0%} (c against c0)",
                "measured": f"{cost:+.1%} (server CPU {cpu['c'] / cpu['c0'] - 1:+.1%})",
                "holds": cost <= MAX_HOOK_COST,
            }
        )
    for figure, label, chat in RESPONSES_FIGURES[:2]:
        if figure not in med:
            continue
        ratios = {k: paired_ratio(result, figure, chat, k) for k in ROBUTLER}
        of_medians = {k: med[figure][k] / med[chat][k] for k in ROBUTLER}
        out.append(
            {
                "target": f"{label}: within {MAX_RESPONSES_COST:.0%} of its chat completions row",
                "measured": f"c0 {ratios['c0']:.2f}x, c (hooks) {ratios['c']:.2f}x (median of "
                f"the rounds' ratios; ratio of the medians c0 {of_medians['c0']:.2f}x, "
                f"c {of_medians['c']:.2f}x)",
                "holds": all(r >= 1 - MAX_RESPONSES_COST for r in ratios.values()),
            }
        )
    plan = result["plan"]
    for section, what in (
        ("memory_requests", f"RSS growth over {plan['rss_requests']:,} requests"),
        ("memory_stream", f"RSS growth during one {plan['huge_stream']:,}-chunk stream"),
    ):
        growth = {k: result[section][k]["growth_mb"] for k in ROBUTLER}
        out.append(
            {
                "target": f"{what} < {MAX_GROWTH_MB:.0f} MiB",
                "measured": f"c0 {growth['c0']:+.1f} MiB, c {growth['c']:+.1f} MiB",
                "holds": all(g < MAX_GROWTH_MB for g in growth.values()),
            }
        )
    return out


def paired_ratio(result: dict[str, Any], figure: str, chat: str, key: str) -> float:
    """`figure` over `chat` for app `key`: the median of the rounds' ratios. Each round
    measures a Responses row right after its chat row, so a round's ratio compares the two
    under the same conditions of the machine, which drift from round to round."""
    rounds = result.get("rounds", {})
    ours, theirs = rounds.get(figure, {}).get(key), rounds.get(chat, {}).get(key)
    if ours and theirs and len(ours) == len(theirs):
        return float(statistics.median(a / b for a, b in zip(ours, theirs, strict=True)))
    med = result["medians"]
    return float(med[figure][key] / med[chat][key])


def _ratio(med: dict[str, Any], figure: str, ref: str, rob: str) -> float | None:
    values = med.get(figure, {})
    if ref not in values or rob not in values or not values[ref]:
        return None
    return float(values[rob] / values[ref])


def slow_intact(result: dict[str, Any]) -> dict[str, Any] | None:
    """Streams intact per app over all rounds, and robutler's finalize counts."""
    rounds = result.get("slow_streams")
    if not rounds:
        return None
    out: dict[str, Any] = {}
    for key, summaries in rounds.items():
        out[key] = {
            "intact": sum(r["intact"] for r in summaries),
            "streams": sum(r["streams"] for r in summaries),
            "max_open": min(r["max_open"] for r in summaries),
        }
        fins = [r["finalize"] for r in summaries if r["finalize"]]
        if fins:
            out[key]["exact"] = all(f["finalized"] == f["expected"] == f["completed"] for f in fins)
            out[key]["finalized"] = sum(f["finalized"] for f in fins)
            out[key]["completed"] = sum(f["completed"] for f in fins)
    return out


def production_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the production workloads that ran."""
    med = result["medians"]
    out: list[dict[str, Any]] = []
    intact = slow_intact(result)
    if intact:
        n = result["plan"]["slow_streams"]
        rob = intact["c"]
        out.append(
            {
                "target": f"{n:,} slow streams: every stream intact (both apps), robutler's "
                "finalize ran once per stream and saw it completed",
                "measured": f"b {intact['b']['intact']:,}/{intact['b']['streams']:,}, c "
                f"{rob['intact']:,}/{rob['streams']:,} intact; finalize {rob['finalized']:,} "
                f"({rob['completed']:,} completed)",
                "holds": all(v["intact"] == v["streams"] for v in intact.values())
                and bool(rob.get("exact")),
            }
        )
    for figure, label, ref, rob_key, higher, bound in PRODUCTION:
        ratio = _ratio(med, figure, ref, rob_key)
        if ratio is None or bound is None:
            continue
        sign = ">=" if higher else "<="
        measured = f"{ratio:.2f}x"
        if figure.startswith("sdk_") and figure.endswith("_rps"):
            cpu = _ratio(med, figure.replace("_rps", "_cpu_us"), ref, rob_key)
            if cpu is not None:
                measured += f" (server CPU per request {cpu - 1:+.1%})"
        if figure == "slow_health_ms":
            idle = _ratio(med, "idle_health_ms", ref, rob_key)
            if idle is not None:
                measured += f" (with no load {idle:.2f}x)"
        whom = "one worker" if ref == "w1" else f"({ref})"
        out.append(
            {
                "target": f"{label}: robutler {sign} {bound:g}x {whom}",
                "measured": measured,
                "holds": ratio >= bound if higher else ratio <= bound,
            }
        )
    return out


def production_table(result: dict[str, Any]) -> list[str]:
    """The production workloads' rows: reference, robutler, their ratio."""
    med = result["medians"]
    labels = {
        "b": "(b) FastAPI by hand",
        "c": "(c) robutler + hooks",
        "sb": "FastAPI + Runner by hand",
        "s": "robutler Server",
        "w1": "1 worker",
        "w2": "--workers 2",
    }
    rows = []
    intact = slow_intact(result)
    if intact:
        b, c = intact["b"], intact["c"]
        rows.append(
            f"| {result['plan']['slow_streams']:,} slow streams of 20 deltas 250 ms apart: "
            f"intact over all rounds (fewest open at once) | (b) {b['intact']:,}/{b['streams']:,}"
            f" ({b['max_open']:,}) | (c) {c['intact']:,}/{c['streams']:,} ({c['max_open']:,}),"
            f" finalize {c['finalized']:,} | |"
        )
    for figure, label, ref, rob, higher, _ in PRODUCTION:
        values = med.get(figure)
        if not values or ref not in values or rob not in values:
            continue
        suffix = "" if higher else " (lower is better)"
        rows.append(
            f"| {label}{suffix} | {labels[ref]} {_num(values[ref])} | {labels[rob]} "
            f"{_num(values[rob])} | {values[rob] / values[ref]:.2f}x |"
        )
    if not rows:
        return []
    return [
        "",
        "| production workload | reference | robutler | ratio |",
        "|---|---|---|---|",
        *rows,
    ]


def markdown(result: dict[str, Any]) -> str:
    """The results tables, the targets table and the machine, as markdown."""
    lines = core_table(result) if "memory_requests" in result else []
    lines += production_table(result)
    return "\n".join([*lines, *closing(result)]).lstrip("\n")


def core_table(result: dict[str, Any]) -> list[str]:
    """The four apps' rows."""
    med = result["medians"]
    apps = result["apps"]
    plan = result["plan"]
    head = "| workload | " + " | ".join(f"({k}) {apps[k]['label']}" for k in KEYS) + " |"
    lines = [head, "|---" * (len(KEYS) + 1) + "|"]
    for figure, label, higher in FIGURES:
        values = med[figure]
        cells = [_cell(values[k], values["a"], values["b"]) for k in KEYS]
        suffix = "" if higher else " (lower is better)"
        lines.append(f"| {label}{suffix} | " + " | ".join(cells) + " |")
    for figure, label, chat in RESPONSES_FIGURES:
        if figure not in med:
            continue
        cells = ["—", "—"] + [
            f"{_num(med[figure][k])} ({med[figure][k] / med[chat][k]:.2f}x chat)" for k in ROBUTLER
        ]
        suffix = " (lower is better)" if "cpu" in figure else ""
        lines.append(f"| {label}{suffix} | " + " | ".join(cells) + " |")
    for section, label, peak in (
        ("memory_requests", f"RSS before → after {plan['rss_requests']:,} requests, MiB", "after_mb"),
        ("memory_stream", f"RSS before → max during a {plan['huge_stream']:,}-chunk stream, MiB", "max_mb"),
    ):  # fmt: skip
        mem = result[section]
        cells = [
            f"{mem[k]['before_mb']:.1f} → {mem[k][peak]:.1f} ({mem[k]['growth_mb']:+.1f})"
            for k in KEYS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def closing(result: dict[str, Any]) -> list[str]:
    """The targets table and what the run was, on what."""
    plan = result["plan"]
    lines = ["", "| target | measured | holds |", "|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['holds'] else 'NO'} |")
    m = result["machine"]
    pins = m["pinning"]
    pinned = (
        f"server on core {pins['server_core']}, load on core {pins['load_core']}"
        if pins["server_core"] is not None
        else "not pinned"
    )
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    load = result["loadavg"]
    slow = ""
    if result.get("slow_streams"):
        slow = (
            f" Slow streams: {plan['slow_rounds']} rounds of {plan['slow_streams']:,} streams "
            f"opened {plan['slow_rate']:,.0f} a second, a fresh server per app and round."
        )
    lines += [
        "",
        f"{result['mode']} run ({', '.join(result.get('sections', ['core']))}), "
        f"{plan['rounds']} interleaved rounds of {plan['seconds']}s per app and workload, "
        f"medians; ratios are to (b) and to (a), in the production table to the reference."
        f"{slow} Started {result['started']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores ({pinned}), {m['python']}, {m['wrk']}; {pkgs}.",
        f"Load average at start {load['start']}, at end {load.get('end')}.",
    ]
    return lines
