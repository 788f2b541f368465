"""Profile one app's server under wrk load with py-spy, and summarise where the time goes.

    python -m benchmarks.profile --app c --workload nonstream
    nox -s bench -- --profile c --workload stream100

Writes py-spy's collapsed stacks and a summary (self and inclusive time per function)
under benchmarks/results/, and prints the summary.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.client import request_body
from benchmarks.harness import APPS, HERE, Cores, Server, ensure_wrk, run_wrk

WORKLOADS = {
    "nonstream": (32, 16, False),
    "stream100": (16, 100, True),
    "stream10k": (4, 10_000, True),
}
_LINE = re.compile(r":\d+\)")


def summarise(collapsed: str, top: int = 30) -> str:
    """Self and inclusive shares per function from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive time (frames resumed from the event loop start their own stacks):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def profile(app_key: str, workload: str, seconds: int, rate: int, out_dir: Path) -> Path:
    """Serve `app_key`, load it with `workload` for `seconds`, sample it with py-spy."""
    ensure_wrk()
    beside = Path(sys.executable).parent / "py-spy"
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: `pip install py-spy`")
    app = next(a for a in APPS if a.key == app_key)
    connections, chunks, stream = WORKLOADS[workload]
    cores = Cores.detect()
    cores.pin_self()
    server = Server(app, cores, env={"BENCH_GC_STATS": "1"})
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = out_dir / f"profile-{app_key}-{workload}-{stamp}.txt"
    load: dict[str, Any] = {}
    try:
        server.start()
        run_wrk(server, request_body(chunks, stream), seconds=2, connections=connections)
        thread = threading.Thread(
            target=lambda: load.update(
                run_wrk(
                    server,
                    request_body(chunks, stream),
                    seconds=seconds + 2,
                    connections=connections,
                )
            )
        )
        thread.start()
        cmd = [*cores.prefix(cores.load), py_spy, "record", "-p", str(server.pid)]
        cmd += ["-d", str(seconds), "-r", str(rate), "-f", "raw", "-o", str(raw)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
        thread.join(seconds + 120)
    finally:
        server.stop(signal.SIGINT)
    summary = summarise(raw.read_text())
    header = f"{app.label} ({app_key}), {workload}: {load.get('requests', 0)} requests in "
    header += f"{load.get('seconds', 0):.1f}s under py-spy at {rate} Hz\n"
    gc_lines = [x for x in server.log.read_text().splitlines() if x.startswith("BENCH_GC ")]
    if gc_lines:  # the whole server life: warm-up, load, shutdown
        header += "garbage collector over the server's life: " + gc_lines[-1][9:] + "\n"
        header += "(py-spy charges collector pauses to whatever line allocated)\n"
    header += "\n"
    (out_dir / f"{raw.stem}-summary.txt").write_text(header + summary + "\n")
    print(header + summary)
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="profile one benchmarked app with py-spy")
    parser.add_argument("--app", default="c", choices=[a.key for a in APPS])
    parser.add_argument("--workload", default="nonstream", choices=sorted(WORKLOADS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    profile(args.app, args.workload, args.seconds, args.rate, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
