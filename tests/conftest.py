"""Fixtures for robutler's own tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from robutler.server import ServerBase


@pytest.fixture
def app() -> ServerBase:
    return ServerBase(title="test")


@pytest.fixture
def client(app: ServerBase) -> Any:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution's wheel, built once per test session from a copy of the sources
    (an in-tree build/ directory could hold files from an older build)."""
    root = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        shutil.copy(root / name, source / name)
    for package in ("robutler", "robutler_testing", "conformance"):  # the last is not shipped
        shutil.copytree(
            root / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp.glob("*.whl")
    return wheel
