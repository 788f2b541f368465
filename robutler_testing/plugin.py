"""The robutler pytest plugin (registered through the `pytest11` entry point).

Fixtures: `mock_agent`, `robutler_client`, `live_server`, `openai_client`,
`finalize_recorder`, `mock_openai`; the marker `@pytest.mark.mock_openai(...)` configures
the last one, and `--record` makes its cassettes record instead of replay. Nothing heavy is
imported until a fixture is used.

Under pytest-asyncio, a project that leaves `asyncio_default_fixture_loop_scope` unset gets
`"function"` (pytest-asyncio's announced default) instead of its deprecation warning. Async
tests still need pytest-asyncio's one line of configuration, `asyncio_mode = "auto"` (or a
`@pytest.mark.asyncio` on each test).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
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

MOCK_OPENAI_OPTIONS = (
    "max_retries",
    "strict",
    "assert_all_used",
    "block_network",
    "configure_agents",
    "cassette",
    "ignore",
    "scrub",
    "pacing",
)
_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mock_openai(max_retries=None, strict=True, assert_all_used=True, block_network=True, "
        "configure_agents=True, cassette=None, ignore=(), scrub=(), pacing=False): options of "
        "the mock_openai fixture",
    )
    _default_asyncio_loop_scope(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("robutler").addoption(
        "--record",
        action="store_true",
        default=False,
        help="mock_openai: record the cassettes of @pytest.mark.mock_openai(cassette=...) "
        "from the real upstream (OPENAI_API_KEY; ROBUTLER_RECORD_UPSTREAM or OPENAI_BASE_URL) "
        "instead of replaying them (same as ROBUTLER_RECORD=1)",
    )


def _default_asyncio_loop_scope(config: pytest.Config) -> None:
    """Give pytest-asyncio its future default loop scope when the project sets none."""
    if not config.pluginmanager.has_plugin("asyncio"):
        return
    try:
        scope = config.getini("asyncio_default_fixture_loop_scope")
    except ValueError:  # a pytest-asyncio without this setting
        return
    if not scope:
        config._inicache["asyncio_default_fixture_loop_scope"] = "function"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_CALL_FAILED] = True
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(_CALL_FAILED, False)


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
    Every client it made is closed at teardown. Async clients keep no idle connections,
    so they work from any event loop (pytest-asyncio's, or `asyncio.run` in a sync test)
    and leave no socket open.
    """
    import openai

    clients: list[Any] = []

    def make(
        base_url: str, agent: str, api_key: str = "test", asynchronous: bool = False, **kwargs: Any
    ) -> Any:
        if asynchronous:
            kwargs.setdefault("http_client", _async_http_client())
        cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        client = cls(
            base_url=f"{base_url.rstrip('/')}/{agent}", api_key=api_key, max_retries=0, **kwargs
        )
        clients.append(client)
        return client

    yield make
    from robutler_testing.mock_openai import close_async_client

    for client in clients:
        if isinstance(client, openai.AsyncOpenAI):
            close_async_client(client)
        else:
            client.close()


def _async_http_client() -> Any:
    import openai

    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - openai < 3 sends through httpx
        import httpx  # type: ignore[no-redef]
    factory = getattr(openai, "DefaultAsyncHttpx2Client", None) or openai.DefaultAsyncHttpxClient
    return factory(limits=httpx.Limits(max_connections=100, max_keepalive_connections=0))


@pytest.fixture
def finalize_recorder(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Factory: `finalize_recorder(app)` -> a `FinalizeRecorder` hooked onto app.

    At teardown (unless the test already failed) it waits, bounded, for the requests it saw
    to be finalized and fails the test if any broke exactly-once finalize; pass
    `check=False` to check only where the test calls `assert_exactly_once()` itself.
    """
    from robutler_testing.recorder import FinalizeRecorder

    recorders: list[FinalizeRecorder] = []

    def make(app: Any, *, check: bool = True) -> FinalizeRecorder:
        recorder = FinalizeRecorder(app)
        if check:
            recorders.append(recorder)
        return recorder

    yield make
    if _test_failed(request):
        return
    problems = []
    for recorder in recorders:
        recorder.wait_for(len(recorder.records))
        try:
            recorder.assert_exactly_once()
        except AssertionError as exc:
            problems.append(str(exc))
    if problems:
        pytest.fail("finalize_recorder: " + "\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _mock_openai_cassette(request: pytest.FixtureRequest) -> None:
    """A test marked `@pytest.mark.mock_openai(cassette=...)` gets the `mock_openai` fixture
    even when it does not ask for it (the cassette is the point of the marker)."""
    marker = request.node.get_closest_marker("mock_openai")
    if marker is not None and marker.kwargs.get("cassette") is not None:
        request.getfixturevalue("mock_openai")


@pytest.fixture
def mock_openai(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The upstream OpenAI API, mocked on 127.0.0.1 for the test (see `robutler_testing.mock_openai`).

    Scripted replies the test left unused fail it at teardown. Configure with the marker
    `@pytest.mark.mock_openai(max_retries=..., strict=..., assert_all_used=False, ...)`.
    With `cassette="name"` it replays `cassettes/name.yaml` beside the test file
    (`cassette=True`: `cassettes/<module>/<test>.yaml`), or records it with `--record`.
    """
    from robutler_testing.mock_openai import mock_openai as make_mock

    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("mock_openai"))):  # closest wins
        if marker.args:
            raise pytest.UsageError(
                "@pytest.mark.mock_openai takes keyword arguments only: "
                + ", ".join(MOCK_OPENAI_OPTIONS)
            )
        unknown = sorted(set(marker.kwargs) - set(MOCK_OPENAI_OPTIONS))
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.mock_openai got unknown option(s) {unknown}; "
                f"it takes {', '.join(MOCK_OPENAI_OPTIONS)}"
            )
        options.update(marker.kwargs)
    assert_all_used = options.pop("assert_all_used", True)
    if options.get("cassette") is not None:
        options["cassette"] = _cassette_path(request, options["cassette"])
        if request.config.getoption("record", False):
            options["record"] = True
    with make_mock(**options) as upstream:
        yield upstream
    if assert_all_used and upstream.pending and not _test_failed(request):
        pytest.fail(
            "mock_openai: the test left scripted replies unused: "
            + "; ".join(upstream.pending)
            + " (allow this with @pytest.mark.mock_openai(assert_all_used=False))",
            pytrace=False,
        )


def _cassette_path(request: pytest.FixtureRequest, cassette: Any) -> Path:
    """Where the marker's `cassette=` lives: `cassettes/` beside the test file."""
    folder = request.node.path.parent / "cassettes"
    if cassette is True:
        name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
        return folder / request.node.path.stem / f"{name}.yaml"
    if not isinstance(cassette, (str, os.PathLike)) or not str(cassette):
        raise pytest.UsageError(
            f"@pytest.mark.mock_openai(cassette=...) takes a name, a path or True, got {cassette!r}"
        )
    path = Path(cassette)
    if path.is_absolute():
        return path
    return folder / (
        path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")
    )
