"""The benchmarked apps; each answers `POST /bench/chat/completions` with the same bytes.

The request picks the size of the answer: the last message's content is a number `n`; the
reply is `n` deltas of `DELTA` (one SSE chunk each when `stream` is true, else joined).
(b) and (c) also answer `POST /slow/chat/completions`: `n` deltas `SLOW_GAP` seconds apart,
a model that takes its time (the many-slow-streams workload).

Importing this package raises the process's open-files limit to its hard limit: a server
holding thousands of streams needs a descriptor per connection.
"""

from __future__ import annotations

import atexit
import gc
import os
import resource
import sys
import time
from typing import Any

DELTA = "token "
MAX_CHUNKS = 1_000_000
SLOW_GAP = 0.25  # seconds between two deltas of a slow stream
MAX_SLOW_CHUNKS = 1_000


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def report_gc_at_exit() -> None:
    """With BENCH_GC_STATS set (the profile mode), print the collector's work at exit."""
    if not os.environ.get("BENCH_GC_STATS"):
        return
    counts = [0, 0, 0]
    spent = [0.0, 0.0]  # total seconds, start of the current collection

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]
            counts[info["generation"]] += 1

    def report() -> None:
        sys.stderr.write(
            f"BENCH_GC collections gen0={counts[0]} gen1={counts[1]} gen2={counts[2]} "
            f"seconds={spent[0]:.3f}\n"
        )

    gc.callbacks.append(on_gc)
    atexit.register(report)


report_gc_at_exit()
raise_open_files_limit()
