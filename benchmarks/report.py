"""The benchmark's table and its targets, from a run's result dict."""

from __future__ import annotations

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


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(value: float, a: float, b: float) -> str:
    return f"{_num(value)} ({value / b:.2f}x b, {value / a:.2f}x a)"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with what was measured and whether it holds."""
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
        ratios = {k: med[figure][k] / med[chat][k] for k in ROBUTLER}
        out.append(
            {
                "target": f"{label}: within {MAX_RESPONSES_COST:.0%} of its chat completions row",
                "measured": f"c0 {ratios['c0']:.2f}x, c (hooks) {ratios['c']:.2f}x",
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


def markdown(result: dict[str, Any]) -> str:
    """The results table, the targets table and the machine, as markdown."""
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
    lines += ["", "| target | measured | holds |", "|---|---|---|"]
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
    lines += [
        "",
        f"{result['mode']} run, {plan['rounds']} interleaved rounds of {plan['seconds']}s per "
        f"app and workload, medians; ratios are to (b) and to (a). Started {result['started']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores ({pinned}), {m['python']}, {m['wrk']}; {pkgs}.",
        f"Load average at start {load['start']}, at end {load.get('end')}.",
    ]
    return "\n".join(lines)
