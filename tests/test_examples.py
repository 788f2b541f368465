"""Each example in examples/ runs and does what its docstring says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient
from helpers import post, sse_events

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested() -> None:
    tested = {"basic_server", "hooks", "context_usage", "dynamic_agents"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_basic_server() -> None:
    app = load("basic_server").app
    with TestClient(app) as client:
        assert (
            post(client, "assistant").json()["choices"][0]["message"]["content"]
            == "You said: hello"
        )
        assert post(client, "counter").json()["choices"][0]["message"]["content"] == "1 2 3 "
        events = sse_events(post(client, "counter", stream=True).text)
        assert [e["choices"][0]["delta"].get("content") for e in events[:-1]] == [
            "1 ",
            "2 ",
            "3 ",
            None,
        ]


def test_hooks() -> None:
    module = load("hooks")
    with TestClient(module.app) as client:
        assert post(client, "greeter").status_code == 401
        response = client.post(
            "/greeter/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
            headers={"x-user": "Ada"},
        )
        text = "".join(
            e["choices"][0]["delta"].get("content") or "" for e in sse_events(response.text)[:-1]
        )
    assert text == "Hello, Ada!"
    assert [(f["user"], f["outcome"]) for f in module.finished] == [
        (None, 401),
        ("Ada", "completed"),
    ]


def test_context_usage() -> None:
    module = load("context_usage")
    with TestClient(module.app) as client:
        content = post(client, "weather", [{"role": "user", "content": "Oslo"}]).json()["choices"][
            0
        ]["message"]["content"]
    assert content == "Sunny in Oslo"
    assert module.bills == [{"agent": "weather", "credits": 6, "records": 2}]


def test_dynamic_agents() -> None:
    app: Any = load("dynamic_agents").app
    with TestClient(app) as client:
        assert (
            post(client, "pirate").json()["choices"][0]["message"]["content"]
            == "Arr! You said: hello"
        )
        assert post(client, "robot").status_code == 404


def test_examples_run_as_scripts_import_cleanly() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        code = f"import runpy; runpy.run_path({str(path)!r}, run_name='not_main')"
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_recorded_agent_replays_its_cassette_offline() -> None:
    """examples/recorded_agent: a real Agents SDK agent replays cassettes/weather.yaml with
    no upstream and no key (its tool really runs on the recorded tool call)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ROBUTLER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "recorded_agent"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
