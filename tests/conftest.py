"""Fixtures for robutler's own tests."""

from __future__ import annotations

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
