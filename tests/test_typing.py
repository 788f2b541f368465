"""User code written like the README and examples/ passes mypy without ignores."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import documentation

from robutler.server import ServerBase, current_context, get_context

ROOT = Path(__file__).resolve().parent.parent


def test_current_context_raises_a_clear_error_outside_a_request() -> None:
    assert get_context() is None
    with pytest.raises(RuntimeError, match=r"current_context\(\) was called outside a request"):
        current_context()


def test_current_context_is_the_request_state_inside_one() -> None:
    from robutler_testing import create_test_client

    app = ServerBase()
    seen: list[object] = []

    @app.agent("who")
    async def who(messages: list[dict[str, object]], stream: bool = False) -> str:
        seen.append(current_context())
        return current_context().request_id

    with create_test_client(app) as client:
        response = client.post("/who/chat/completions", json={"messages": [{"role": "user"}]})
    assert seen and seen[0] is not None
    assert response.json()["choices"][0]["message"]["content"] == response.headers["x-request-id"]


def readme_server_code() -> str:
    """The README's server snippets, which continue the first one's file, as one module."""
    readme = documentation()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    first = next(b for b in blocks if b.startswith("# my_agents.py"))
    rest = [b for b in blocks if b is not first and "@app.agent" in b]
    assert rest, "the README lost its hook and agent snippets"
    return "\n\n".join([first, *rest])


def test_readme_and_examples_pass_mypy_without_ignores(tmp_path: Path) -> None:
    snippet = tmp_path / "readme_snippets.py"
    snippet.write_text(readme_server_code())
    files = [snippet, *sorted((ROOT / "examples").glob("*.py"))]
    assert not [f for f in files if "type: ignore" in f.read_text()], "ignores left in"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--check-untyped-defs",
            "--warn-unused-ignores",
            "--no-error-summary",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # the checkout, as an installed package
    )
    assert result.returncode == 0, result.stdout + result.stderr
