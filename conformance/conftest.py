"""Target selection, official clients, and the end-of-run table for the conformance suite.

By default the suite starts the reference server (`conformance/reference.py`) under
uvicorn on a free 127.0.0.1 port. To check another OpenAI-compatible server instead:

    python -m pytest conformance --base-url URL --agent NAME [--api-key KEY] [--model M]

or set ROBUTLER_CONFORMANCE_BASE_URL / _AGENT / _API_KEY / _MODEL. The client's base URL
is `URL/NAME` (robutler serves agent NAME at `/NAME/chat/completions`). Cases that need a
scripted reference agent are skipped against other servers, with the reason in the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .driver import Chat, Target
from .report import Reporter

HERE = Path(__file__).parent
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
    base_url = _setting(config, "--base-url")
    if base_url is None:
        return None
    agent = _setting(config, "--agent")
    if not agent:
        raise pytest.UsageError(
            "--base-url needs --agent NAME (or ROBUTLER_CONFORMANCE_AGENT): "
            "the client's base URL is BASE_URL/NAME"
        )
    return Target(
        base_url=base_url.rstrip("/"),
        agent=agent,
        api_key=_setting(config, "--api-key") or "",
        model=_setting(config, "--model") or agent,
    )


def pytest_configure(config: pytest.Config) -> None:
    reporter = Reporter(config, HERE.resolve(), lambda: _table_header(config))
    config.pluginmanager.register(reporter, "robutler-conformance-report")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run (and list) the cases from the basics to the hard ones, not alphabetically."""
    places = [i for i, item in enumerate(items) if HERE in item.path.parents]

    def rank(item: pytest.Item) -> int:
        name = item.path.stem.removeprefix("test_")
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    ordered = sorted((items[i] for i in places), key=rank)
    for place, item in zip(places, ordered, strict=True):
        items[place] = item


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
