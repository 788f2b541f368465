"""The conformance suite's pytest plugin: target selection, official clients, the table.

By default the suite starts the reference server (`reference.py`) under uvicorn on a free
127.0.0.1 port. To check another OpenAI-compatible server instead give `--base-url URL`
and `--agent NAME` (or ROBUTLER_CONFORMANCE_BASE_URL / _AGENT / _API_KEY / _MODEL). The
client's base URL is `URL/NAME` (robutler serves agent NAME at `/NAME/chat/completions`);
without `--agent`, a robutler server with exactly one agent (its `/health` says which) is
checked with that one. A server that cannot be reached is one usage error before any case
runs. Cases that need a scripted reference agent are skipped against other servers, with
the reason in the table.

`python -m robutler_testing.conformance` loads this plugin; the repository's
`conformance/conftest.py` re-exports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .driver import Chat, Target
from .report import Reporter

__all__ = [
    "chat",
    "keyed_target",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
    "pytest_sessionstart",
    "target",
]

PACKAGE = __name__.rsplit(".", 1)[0]  # robutler_testing.conformance
MODULE_ORDER = ["replies", "messages", "tools", "endpoints", "failures", "concurrency"]
OPTIONS = {  # flag: (environment variable, help)
    "--base-url": (
        "ROBUTLER_CONFORMANCE_BASE_URL",
        "check the server at URL instead of starting the reference server",
    ),
    "--agent": ("ROBUTLER_CONFORMANCE_AGENT", "agent name: the client's base URL is URL/NAME"),
    "--api-key": (
        "ROBUTLER_CONFORMANCE_API_KEY",
        "bearer key the server accepts; also enables the auth cases",
    ),
    "--model": ("ROBUTLER_CONFORMANCE_MODEL", "the request's `model` (default: the agent name)"),
}
_TARGET = pytest.StashKey["Target | None"]()
PROBE_TIMEOUT = 10.0


def pytest_addoption(parser: pytest.Parser) -> None:
    # Another plugin may own one of these names (pytest-base-url has --base-url, with the
    # same meaning and dest): then share its option instead of clashing with it.
    taken = {
        name
        for group in [*getattr(parser, "_groups", []), getattr(parser, "_anonymous", None)]
        for option in getattr(group, "options", [])
        for name in option.names()
    }
    group = parser.getgroup("conformance", "robutler conformance suite")
    for flag, (env, help_text) in OPTIONS.items():
        if flag not in taken:
            group.addoption(flag, dest=_dest(flag), help=f"{help_text} (env {env})")


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _setting(config: pytest.Config, flag: str) -> str | None:
    """The option's value, else its environment variable's, else None."""
    value = config.getoption(_dest(flag), default=None)
    return value if value is not None else os.environ.get(OPTIONS[flag][0]) or None


def _external(config: pytest.Config) -> Target | None:
    """The server given with --base-url (checked to answer, once), or None."""
    if _TARGET in config.stash:
        return config.stash[_TARGET]
    base_url = _setting(config, "--base-url")
    target = None
    if base_url is not None:
        base_url = base_url.rstrip("/")
        agent = _setting(config, "--agent") or _only_agent(base_url)
        target = Target(
            base_url=base_url,
            agent=agent,
            api_key=_setting(config, "--api-key") or "",
            model=_setting(config, "--model") or agent,
        )
    config.stash[_TARGET] = target
    return target


def _http() -> Any:
    try:
        import httpx2
    except ImportError:  # openai < 3 sends through httpx
        import httpx as httpx2  # type: ignore[no-redef]
    return httpx2


def _get(url: str) -> Any:
    """GET `url`; a server that cannot be reached is a UsageError saying so."""
    http = _http()
    try:
        return http.get(url, timeout=PROBE_TIMEOUT)
    except http.TransportError as exc:
        raise pytest.UsageError(
            f"cannot reach the server under test at {url}: {type(exc).__name__}: {exc}. "
            "Is it running, and is --base-url right?"
        ) from None


def _only_agent(base_url: str) -> str:
    """The agent of a robutler server with exactly one, from its /health; else UsageError."""
    response = _get(f"{base_url}/health")
    try:
        agents = response.json().get("agents")
    except (ValueError, AttributeError):
        agents = None
    if isinstance(agents, list) and len(agents) == 1 and isinstance(agents[0], str):
        return agents[0]
    listed = f" (its /health lists {json.dumps(agents)})" if isinstance(agents, list) else ""
    raise pytest.UsageError(
        "--base-url needs --agent NAME (or ROBUTLER_CONFORMANCE_AGENT): the client's base "
        f"URL is BASE_URL/NAME{listed}"
    )


def pytest_configure(config: pytest.Config) -> None:
    reporter = Reporter(config, lambda: _table_header(config))
    config.pluginmanager.register(reporter, "robutler-conformance-report")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Check once, before any case, that the server under test answers at all."""
    config = session.config
    target = _external(config)
    if target is not None and not config.option.collectonly:
        _get(f"{target.url()}/models")  # any HTTP answer will do; only no answer fails


def is_case(item: pytest.Item) -> bool:
    """True for a test function of this suite (wherever it was collected from)."""
    module = getattr(getattr(item, "function", None), "__module__", "") or ""
    return module.startswith(f"{PACKAGE}.test_")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run (and list) the cases from the basics to the hard ones, not alphabetically."""
    places = [i for i, item in enumerate(items) if is_case(item)]

    def rank(item: pytest.Item) -> int:
        name = item.function.__module__.rsplit(".", 1)[-1].removeprefix("test_")  # type: ignore[attr-defined]
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    ordered = sorted((items[i] for i in places), key=rank)
    for place, item in zip(places, ordered, strict=True):
        items[place] = item
    reporter = config.pluginmanager.get_plugin("robutler-conformance-report")
    if isinstance(reporter, Reporter):
        reporter.cases.update(item.nodeid for item in ordered)


def pytest_report_header(config: pytest.Config) -> str:
    target = _external(config)
    where = target.describe() if target else "the reference server (started on 127.0.0.1)"
    return f"conformance target: {where}"


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under test: `--base-url`, else the reference server, started here."""
    external = _external(request.config)
    if external is not None:
        yield external
        return
    from robutler_testing import LiveServer

    from .reference import reference_app

    app = reference_app()
    with LiveServer(app) as server:
        yield Target(
            base_url=server.url, agent="echo", api_key="unused", model="echo", reference=app
        )


@pytest.fixture(scope="session")
def keyed_target(target: Target) -> Iterator[Target]:
    """A server that requires an API key: the reference keyed server, or `--api-key` given."""
    if not target.is_reference:
        if not target.api_key:
            pytest.skip("needs --api-key: the key the server accepts (it must require one)")
        yield target
        return
    from robutler_testing import LiveServer

    from .reference import API_KEY, keyed_app

    app = keyed_app()
    with LiveServer(app) as server:
        yield Target(
            base_url=server.url, agent="echo", api_key=API_KEY, model="echo", reference=app
        )


@pytest.fixture
def chat(target: Target) -> Iterator[Chat]:
    """Official clients for the target; what they parse is recorded in `chat.wire`."""
    driver = Chat(target)
    yield driver
    driver.close()


# the end-of-run table ------------------------------------------------------------------


def _table_header(config: pytest.Config) -> list[str]:
    import openai

    target = _external(config)
    where = target.describe() if target else "the reference server (robutler + MockAgent)"
    return [
        f"target: {where}",
        f"client: openai {openai.__version__}, strict response validation, no retries",
    ]
