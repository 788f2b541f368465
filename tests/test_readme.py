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
    assert "4 passed" in result.stdout
