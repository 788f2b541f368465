"""`robutler serve`: the demo and an example app in a subprocess, --help, bad APPs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """`robutler serve ARGS` on a free port until the block ends; the output lines after.
    `env`: the environment (default this one's), less OPENAI_API_KEY."""
    port = free_port()
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "robutler",
            "serve",
            *args,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.05)
        lines: list[str] = []
        yield base, lines
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        lines[:] = out.splitlines() if out else []


def test_serve_without_app_runs_the_demo_with_no_api_key() -> None:
    with serving() as (base, output):
        client = openai.OpenAI(base_url=f"{base}/echo", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "ping"}]
        )
        assert "ping" in (reply.choices[0].message.content or "")
        stream = openai.OpenAI(base_url=f"{base}/stream", api_key="unused", max_retries=0)
        pieces = [
            c.choices[0].delta.content
            for c in stream.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "cats"}], stream=True
            )
            if c.choices and c.choices[0].delta.content
        ]
        assert len(pieces) > 5 and "cats" in "".join(pieces)
        tools = openai.OpenAI(base_url=f"{base}/tools", api_key="unused", max_retries=0)
        call = tools.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "weather?"}]
        )
        assert call.choices[0].finish_reason == "tool_calls"
        assert call.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr, index]
    text = "\n".join(output)
    assert f"{base}/echo/chat/completions" in text
    assert "curl " in text and "from openai import OpenAI" in text


def test_serve_an_example_file() -> None:
    with serving("examples/basic_server.py") as (base, _):
        client = openai.OpenAI(base_url=f"{base}/assistant", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "You said: hi"


def test_serve_module_attribute_and_python_dash_m(tmp_path: Path) -> None:
    (tmp_path / "my_agents.py").write_text(
        "from robutler.server import ServerBase\n"
        "server = ServerBase()\n"
        "@server.agent('hello')\n"
        "async def hello(messages, stream=False):\n"
        "    return 'hello from a module'\n"
    )
    with serving("my_agents:server", cwd=tmp_path) as (base, _):
        reply = httpx.post(
            f"{base}/hello/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert reply.json()["choices"][0]["message"]["content"] == "hello from a module"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robutler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_help() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--workers", "--reload", "--env-file", "--log-level", "APP"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("app", "words"),
    [
        ("no_such_module_xyz:app", "cannot import 'no_such_module_xyz'"),
        ("missing/file.py", "no such file: missing/file.py"),
        ("examples/basic_server.py:nothing", "has no attribute 'nothing'"),
        ("json", "has no 'app' or 'server' attribute"),
    ],
)
def test_bad_app_is_one_line_error(app: str, words: str) -> None:
    result = run_cli("serve", app)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert words in result.stderr


def test_public_host_without_keys_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from robutler.cli import host_warning

    monkeypatch.delenv("ROBUTLER_API_KEYS", raising=False)
    app = SimpleNamespace(api_keys=None)
    assert host_warning(app, "127.0.0.1") is None
    assert "no API keys" in (host_warning(app, "0.0.0.0") or "")
    assert host_warning(SimpleNamespace(api_keys=["k"]), "0.0.0.0") is None
    monkeypatch.setenv("ROBUTLER_API_KEYS", "a,b")
    assert host_warning(app, "0.0.0.0") is None


LOGGING_APP = """
from agents import Agent

from robutler.server import Server


async def boom(messages, stream=False):
    raise RuntimeError("kaput")


app = Server(agents={"boom": boom, "sdk": Agent(name="sdk", instructions="Be brief.")})
"""


def test_serve_logs_robutler_records_like_uvicorn_and_a_missing_key_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "logging_app.py").write_text(LOGGING_APP)
    hi = {"messages": [{"role": "user", "content": "hi"}]}
    with serving("logging_app.py", cwd=tmp_path) as (base, output):
        health = httpx.get(f"{base}/health").json()
        rids = []
        for agent in ("boom", "sdk", "sdk"):
            reply = httpx.post(f"{base}/{agent}/chat/completions", json=hi)
            rids.append(reply.headers["x-request-id"])
            assert reply.status_code == (500 if agent == "boom" else 503)
        assert reply.json()["error"]["code"] == "upstream_key_missing"
    assert [w for w in health["warnings"] if "'sdk' needs an OpenAI API key" in w]
    text = "\n".join(output)
    startup = [
        line for line in output if "needs an OpenAI API key" in line and "request id" not in line
    ]
    assert len(startup) == 1 and startup[0].startswith("WARNING:"), text
    for rid, agent in zip(rids, ("boom", "sdk", "sdk"), strict=True):
        lines = [line for line in output if rid in line]
        assert len(lines) == 1, f"{agent}: {lines}\n{text}"
        assert lines[0].startswith("ERROR:") and lines[0].count(rid) == 1, lines[0]
    # the failing agent's traceback is logged; the missing key is one line per request
    assert text.count("Traceback") == 1 and "RuntimeError: kaput" in text, text


NOT_APPS = """
from robutler.server import Server


async def assistant(messages, stream=False):
    return "hi"


class MyAgents(Server):
    pass


settings = {"debug": True}
"""


@pytest.mark.parametrize(
    ("attr", "words"),
    [
        (
            "assistant",
            "not_apps:assistant is the function assistant(messages, stream), not an ASGI app",
        ),
        ("MyAgents", "not_apps:MyAgents is the class MyAgents, not an ASGI app"),
        ("settings", "not_apps:settings is a dict, not an ASGI app"),
    ],
)
def test_app_that_is_not_asgi_is_one_line_naming_what_was_found(
    tmp_path: Path, attr: str, words: str
) -> None:
    (tmp_path / "not_apps.py").write_text(NOT_APPS)
    result = subprocess.run(
        [sys.executable, "-m", "robutler", "serve", f"not_apps:{attr}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert words in result.stderr and "Server(agents=[...])" in result.stderr


def test_version_and_help_for_every_option() -> None:
    from robutler import __version__
    from robutler.cli import build_parser

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"robutler {__version__}"
    parser = build_parser()
    subparsers = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    for p in [parser, *(sub for action in subparsers for sub in action.choices.values())]:
        missing = [a.dest for a in p._actions if not a.help]
        assert not missing, f"{p.prog}: options without help: {missing}"


def banner_app(**attrs: object) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(**{"static_agents": {"echo": 1}, "dynamic_agents": [], **attrs})


def test_banner_with_api_keys_has_the_header_and_a_key_placeholder() -> None:
    from robutler.cli import _banner

    open_banner = _banner(banner_app(api_keys=None), "127.0.0.1", 8000)
    assert "Authorization" not in open_banner and 'api_key="unused"' in open_banner
    keyed = _banner(banner_app(api_keys=object()), "127.0.0.1", 8000)
    assert "-H 'Authorization: Bearer YOUR_API_KEY'" in keyed
    assert 'api_key="YOUR_API_KEY"' in keyed


def test_banner_without_agents_says_so() -> None:
    from robutler.cli import _banner

    text = _banner(banner_app(static_agents={}), "127.0.0.1", 8000)
    assert "no agents are registered" in text
    assert "NAME" not in text and "curl" not in text


def test_banner_notes_pip_install_openai_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from robutler.cli import _banner

    assert "pip install openai" not in _banner(banner_app(api_keys=None), "127.0.0.1", 8000)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openai" else real(name, *a)
    )
    text = _banner(banner_app(api_keys=None), "127.0.0.1", 8000)
    assert "from openai import OpenAI  # pip install openai" in text
