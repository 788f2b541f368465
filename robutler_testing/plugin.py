"""The robutler pytest plugin (registered through the `pytest11` entry point).

Fixtures: `mock_agent`, `robutler_client`, `live_server`, `openai_client`,
`finalize_recorder`, `mock_openai`. Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = [
    "finalize_recorder",
    "live_server",
    "mock_agent",
    "mock_openai",
    "openai_client",
    "robutler_client",
]


@pytest.fixture
def mock_agent() -> Any:
    """A fresh `MockAgent("mock-agent")`."""
    from robutler_testing.mock_agent import MockAgent

    return MockAgent("mock-agent")


@pytest.fixture
def robutler_client() -> Iterator[Callable[..., Any]]:
    """Factory: `robutler_client(app)` -> a started test client, closed at teardown."""
    from robutler_testing.client import create_test_client

    clients: list[Any] = []

    def make(app: Any, **kwargs: Any) -> Any:
        client = create_test_client(app, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.close()


@pytest.fixture
def live_server() -> Iterator[Callable[..., str]]:
    """Factory: `live_server(app)` -> base URL of uvicorn serving app on 127.0.0.1, stopped at teardown."""
    from robutler_testing.live import LiveServer

    servers: list[Any] = []

    def start(app: Any, **uvicorn_kwargs: Any) -> str:
        server = LiveServer(app, **uvicorn_kwargs).start()
        servers.append(server)
        return server.url

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def openai_client() -> Iterator[Callable[..., Any]]:
    """Factory: `openai_client(base_url, agent, api_key="test", asynchronous=False)` -> official client.

    The client has `max_retries=0`, so a failure shows at once instead of being retried.
    """
    import openai

    clients: list[Any] = []

    def make(
        base_url: str, agent: str, api_key: str = "test", asynchronous: bool = False, **kwargs: Any
    ) -> Any:
        cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        client = cls(
            base_url=f"{base_url.rstrip('/')}/{agent}", api_key=api_key, max_retries=0, **kwargs
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        if isinstance(client, openai.OpenAI):
            client.close()


@pytest.fixture
def finalize_recorder() -> Callable[[Any], Any]:
    """Factory: `finalize_recorder(app)` -> a `FinalizeRecorder` hooked onto app."""
    from robutler_testing.recorder import FinalizeRecorder

    return FinalizeRecorder


@pytest.fixture
def mock_openai() -> Iterator[Any]:
    """The upstream OpenAI API, mocked on 127.0.0.1 for the test (see `robutler_testing.mock_openai`)."""
    from robutler_testing.mock_openai import mock_openai as make_mock

    with make_mock() as upstream:
        yield upstream
