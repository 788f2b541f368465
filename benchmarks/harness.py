"""The machinery of a run: the apps, their uvicorn servers, wrk, RSS, the machine."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk.lua"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class App:
    """One benchmarked app and how uvicorn serves it."""

    key: str
    label: str
    target: str
    factory: bool = False


APPS = (
    App("a", "raw ASGI", "benchmarks.apps.raw_asgi:app"),
    App("b", "FastAPI by hand", "benchmarks.apps.fastapi_app:app"),
    App("c", "robutler + hooks", "benchmarks.apps.robutler_app:with_hooks", factory=True),
    App("c0", "robutler", "benchmarks.apps.robutler_app:no_hooks", factory=True),
)


@dataclass
class Cores:
    """Which cores the server and the load generator are pinned to, if any.

    A core is a number, or a `taskset` list such as "0,1" (`shared()`: both on every core).
    """

    server: int | str | None = None
    load: int | str | None = None

    @classmethod
    def detect(cls) -> Cores:
        """Pin to two distinct cores when there are two and `taskset` exists."""
        try:
            allowed = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return cls()
        if len(allowed) >= 2 and shutil.which("taskset"):
            return cls(server=allowed[0], load=allowed[1])
        return cls()

    def shared(self) -> Cores:
        """Server and load on all the cores this run has (for several server workers)."""
        if self.server is None:
            return Cores()
        every = ",".join(sorted({str(self.server), str(self.load)}))
        return Cores(server=every, load=every)

    def prefix(self, core: int | str | None) -> list[str]:
        return ["taskset", "-c", str(core)] if core is not None else []

    def pin_self(self) -> None:
        """Keep this orchestrating process off the server's core."""
        if isinstance(self.load, int):
            os.sched_setaffinity(0, {self.load})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc/PID/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time `pid` has used so far: /proc/PID/schedstat (ns), else /proc/PID/stat (ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A uvicorn process serving one app: one worker, httptools, uvloop, no access log.

    `on` says which core it is pinned to (default: `cores.server`), `env` adds to its
    environment, `args` to uvicorn's command line.
    """

    app: App
    cores: Cores
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    on: int | str | None = -1

    def command(self) -> list[str]:
        """The command that serves the app on `self.port`."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.app.target,
            *(["--factory"] if self.app.factory else []),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--no-access-log",
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--app-dir",
            str(ROOT),
            *self.args,
        ]

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        core = self.cores.server if self.on == -1 else self.on
        cmd = [*self.cores.prefix(core), *self.command()]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app.label} exited at start:\n{self.log.read_text()}")
            if _answers_http(self.port):
                return
            time.sleep(0.05)  # waiting for the server to listen, not pacing any load
        raise RuntimeError(f"{self.app.label} did not answer within {timeout}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> float:
        return rss_mb(self.pid)

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server; SIGINT lets its atexit handlers run (uvicorn re-raises SIGTERM)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _answers_http(port: int) -> bool:
    """Whether something on `port` answers an HTTP request (any status) within a second."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1.0) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(16).startswith(b"HTTP/1.1 ")
    return False


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its children (a server with workers)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            with contextlib.suppress(OSError):
                total += tree_cpu_seconds(int(child))
    return total


def run_wrk(
    server: Server,
    body: bytes,
    *,
    seconds: int,
    connections: int,
    alt_body: bytes | None = None,
    stop_after: int = 0,
    path: str = "/bench/chat/completions",
    what: str | None = None,
) -> dict[str, Any]:
    """One wrk run (one thread) against `server`; the JSON summary printed by wrk.lua.

    With `what` (the run's name in the message), a run in which wrk saw errors raises.
    """
    env = dict(os.environ)
    env["BENCH_PATH"] = path
    env["BENCH_BODY"] = body.decode()
    env["BENCH_BODY_ALT"] = alt_body.decode() if alt_body else ""
    env["BENCH_STOP_AFTER"] = str(stop_after)
    cmd = [
        *server.cores.prefix(server.cores.load),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        f"http://{HOST}:{server.port}{path}",
    ]
    cpu_before = server.cpu()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when wrk exits: by itself after -d, or on SIGINT
            lines.append(line)
            if line.startswith("BENCH_STOPPED"):
                proc.send_signal(signal.SIGINT)  # wrk then prints its summary and exits
        _, stderr = proc.communicate(timeout=seconds + 90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for line in lines:
        if line.startswith("BENCH_JSON "):
            summary: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            summary["errors"] = sum(
                summary[k]
                for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
            )
            summary["seconds"] = summary["duration_us"] / 1e6
            summary["server_cpu_s"] = server.cpu() - cpu_before
            if what is not None and summary["errors"]:
                raise RuntimeError(f"{what}: wrk saw errors: {summary}")
            return summary
    raise RuntimeError(f"wrk printed no summary:\n{''.join(lines)}\n{stderr}")


def run_client(
    cores: Cores, *args: str, timeout: float = 900.0, module: str = "benchmarks.client"
) -> dict[str, Any]:
    """Run `python -m MODULE ARGS` on the load core and return its JSON."""
    cmd = [*cores.prefix(cores.load), sys.executable, "-m", module, *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"client {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def spawn_client(
    cores: Cores, *args: str, module: str = "benchmarks.client"
) -> subprocess.Popen[str]:
    """Start `python -m MODULE ARGS` on the load core; the caller waits for it."""
    cmd = [*cores.prefix(cores.load), sys.executable, "-m", module, *args]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install -y wrk` (nox -s bench installs it)"
        )
    return path


def loadavg() -> list[float]:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return []


def machine(cores: Cores) -> dict[str, Any]:
    """What the numbers were taken on."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as info:
        mem_gb = round(int(info.readline().split()[1]) / 1024 / 1024, 1)
    packages: dict[str, str | None] = {}
    for name in ("robutler-sdk", "fastapi", "starlette", "uvicorn", "httptools", "uvloop",
                 "pydantic", "pydantic-core"):  # fmt: skip
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": packages,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].strip(),
        "pinning": {"server_core": cores.server, "load_core": cores.load},
    }
