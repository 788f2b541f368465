"""The README's promises: the two commands, and its example test file runs green."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import run_downstream_tests

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_gives_the_serve_and_test_commands() -> None:
    assert "python -m pip install -e . && robutler serve\n" in README
    assert 'python -m pip install -e ".[dev]" && python -m pytest\n' in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]" && python -m pytest' in ci


def test_readme_example_test_file_passes(tmp_path: Path) -> None:
    match = re.search(r"<!-- readme-test-file -->\n```python\n(.*?)```", README, re.S)
    assert match, "README lost its example test file"
    result = run_downstream_tests(tmp_path, "test_my_agents.py", match.group(1))
    assert "5 passed" in result.stdout


def block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", README, re.S)
    assert match, f"README lost its {marker} block"
    return match.group(1)


def test_readme_says_what_its_test_file_needs_installed() -> None:
    intro = README.split("<!-- readme-test-file -->")[0].strip().rsplit("\n\n", 1)[-1]
    if "from agents import" in block("readme-test-file"):
        assert 'pip install "robutler[testing,agents]"' in intro, intro


def test_readme_lifecycle_example_defines_what_it_imports(tmp_path: Path) -> None:
    (tmp_path / "my_agents.py").write_text(block("readme-lifecycle-app"))
    test = block("readme-lifecycle-test")
    assert "from my_agents import make_app" in test
    result = run_downstream_tests(tmp_path, "test_lifecycle.py", test)
    assert "3 passed" in result.stdout


def test_readme_pricing_example_answers_and_is_charged() -> None:
    from robutler.server import ServerBase, current_context
    from robutler_testing import create_test_client

    app = ServerBase()
    charged: list[float] = []

    @app.agent.finalize_request
    def record(request: object, response: object) -> None:
        charged.append(current_context().usage["total_credits"])

    exec(block("readme-pricing"), {"app": app})
    with create_test_client(app) as client:
        body = client.post("/pro/chat/completions", json={"messages": [{"role": "user"}]}).json()
    assert body["choices"][0]["message"]["content"]
    assert charged == [1 + 0.01 * body["usage"]["total_tokens"]]


def test_readme_documents_what_finalize_gets_when_a_json_client_left() -> None:
    assert "status code 499" in README and "ConnectionResetError" in README
