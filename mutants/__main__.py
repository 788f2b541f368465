"""`python -m mutants [-j JOBS] [-k NAME] [--timeout S]`: the catalogue's kill rate.

Each mutant is applied to a copy of `robutler/` in a temporary directory (the real source is
never touched); a subprocess with that copy first on PYTHONPATH runs the lifecycle properties
(ASGI, live, state machine; CI profile) until one catches it. The unmutated copy runs first
and must pass. Prints caught/survived per mutant, the kill rate and the run time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .catalogue import DROPPED, MUTANTS, Mutant
from .mutate import apply

REPO = Path(__file__).resolve().parent.parent
CHECK = Path(__file__).resolve().parent / "check.py"


def _copy(root: Path) -> None:
    shutil.copytree(
        REPO / "robutler", root / "robutler", ignore=shutil.ignore_patterns("__pycache__")
    )


def _run(root: Path, timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("ROBUTLER_LIFECYCLE_PROFILE", None)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(CHECK), str(root)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:g} s", time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = (
        lines[-1] if lines else f"error: no verdict (exit {done.returncode}): {done.stderr[-300:]}"
    )
    return last, time.monotonic() - started


def _one(mutant: Mutant | None, timeout: float) -> tuple[str, float]:
    with tempfile.TemporaryDirectory(prefix="robutler-mutant-") as tmp:
        root = Path(tmp)
        _copy(root)
        if mutant is not None:
            path = root / "robutler" / "server" / mutant.file
            path.write_text(apply(mutant, path.read_text()))
        return _run(root, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutants", description=__doc__)
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (2)")
    parser.add_argument("-k", dest="select", help="only mutants whose name contains this")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant (240)")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTANTS if not args.select or args.select in m.name]
    for mutant in chosen:  # drift fails the run before anything runs
        apply(mutant, (REPO / "robutler" / "server" / mutant.file).read_text())
    started = time.monotonic()
    verdict, took = _one(None, args.timeout)
    print(f"unmutated server: {verdict} ({took:.1f} s)", flush=True)
    if verdict != "survived":
        print("the unmutated server must pass the properties first")
        return 2

    caught = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(lambda m: (m, *_one(m, args.timeout)), chosen)
        for mutant, verdict, took in results:
            # caught means a LifecycleViolation; a timeout or a crash is not a catch
            killed = verdict.startswith("caught")
            caught += killed
            mark = "caught" if killed else verdict.split(" ")[0].rstrip(":")
            print(f"{mark:9}{mutant.name} ({took:.1f} s): {mutant.bug}", flush=True)
            print(f"         -> {verdict}", flush=True)
    total = len(chosen)
    rate = 100.0 * caught / total if total else 100.0
    print(
        f"\n{caught} of {total} mutants caught ({rate:.0f}%), "
        f"{len(DROPPED)} dropped as equivalent; {time.monotonic() - started:.0f} s"
    )
    return 0 if caught == total else 1


if __name__ == "__main__":
    sys.exit(main())
