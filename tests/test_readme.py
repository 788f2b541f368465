"""The README's promises (the two commands, installing the right distribution) and the
snippets and tables it used to hold, now on the docs pages: each runs as written."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from helpers import documentation, run_downstream_tests

ROOT = Path(__file__).resolve().parent.parent
FRONT = (ROOT / "README.md").read_text()
README = documentation()  # the docs pages, where the README's snippets went


def test_readme_gives_the_serve_and_test_commands() -> None:
    for text in (FRONT, README):  # the front page and Getting started
        assert "python -m pip install -e . && robutler serve\n" in text
        assert 'python -m pip install -e ".[dev]" && python -m pytest\n' in text
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
        assert 'pip install ".[testing,agents]"' in intro, intro


def test_readme_installs_this_distribution_not_the_other_robutler() -> None:
    # "robutler" on the package index is another project: no line may install it
    assert not re.search(r"pip install [\"']?robutler\b(?!-sdk)", README)
    assert not re.search(r"pip install [\"']?robutler\b(?!-sdk)", FRONT)
    top = FRONT.split("## Quickstart")[0]
    assert 'pip install ".[testing]"' in top
    assert '"robutler-sdk[testing] @ git+' in top


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


# "Running in production": what finalize sees, and the headers nginx needs --------------------


def finalize_outcomes() -> dict[str, list[str]]:
    """The README's table of what finalize sees: outcome -> its other cells."""
    text = README.split("<!-- finalize-outcomes -->\n", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in text.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _row(outcome: str) -> list[str]:
    rows = finalize_outcomes()
    found = [cells for name, cells in rows.items() if name.startswith(outcome)]
    assert len(found) == 1, f"the README's finalize table has no row {outcome!r}: {list(rows)}"
    return found[0]


def _says(cell: str, response: Any) -> None:
    """The README cell describes `response` as finalize got it."""
    from robutler.server import StreamingWrapper

    if isinstance(response, StreamingWrapper):
        assert f'`"{response.status}"`' in cell, (response.status, cell)
    else:
        assert "Response" in cell and str(response.status_code) in cell, (
            response.status_code,
            cell,
        )


def test_readme_table_of_what_finalize_sees_matches_the_server() -> None:
    import asyncio
    import time
    from collections.abc import AsyncIterator

    import httpx
    from fastapi import HTTPException

    from robutler.server import ServerBase, StreamingWrapper, current_context, pricing
    from robutler_testing.live import LiveServer

    seen: list[tuple[Any, Any, float]] = []

    def build(**kwargs: Any) -> ServerBase:
        app = ServerBase(keepalive=0, **kwargs)

        @app.agent.before_request
        def gate(request: Any) -> None:
            if "x-reject" in request.headers:
                raise HTTPException(402, "Top up first.")

        @app.agent.finalize_request
        def record(request: Any, response: Any) -> None:
            ctx = current_context()
            seen.append((response, ctx.error, ctx.usage["total_credits"]))

        @app.agent("ok")
        @pricing(credits_per_request=1)
        async def ok(messages: Any, stream: bool = False) -> Any:
            return "fine"

        @app.agent("fails")
        @pricing(credits_per_request=1)
        async def fails(messages: Any, stream: bool = False) -> Any:
            raise RuntimeError("broken")

        @app.agent("fails-later")
        @pricing(credits_per_request=1)
        async def fails_later(messages: Any, stream: bool = False) -> AsyncIterator[str]:
            yield "a"
            raise RuntimeError("broken")

        @app.agent("waits")
        @pricing(credits_per_request=1)
        async def waits(messages: Any, stream: bool = False) -> AsyncIterator[str]:
            yield "a"
            await asyncio.Event().wait()
            yield "never"

        @app.agent("thinks")
        @pricing(credits_per_request=1)
        async def thinks(messages: Any, stream: bool = False) -> str:
            await asyncio.Event().wait()
            return "never"

        return app

    def outcome(url: str, body: Any, *, leave: bool = False, **kwargs: Any) -> tuple[Any, ...]:
        before = len(seen)
        if leave and body.get("stream"):
            with httpx.stream("POST", url, json=body, timeout=10) as response:
                next(line for line in response.iter_lines() if line.startswith("data: "))
        elif leave:
            with contextlib.suppress(httpx.ReadTimeout):  # the client gives up and leaves
                httpx.post(url, json=body, timeout=0.3)
        else:
            httpx.post(url, json=body, timeout=10, **kwargs)
        deadline = time.monotonic() + 10
        while len(seen) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) == before + 1, "finalize did not run exactly once"
        return seen[-1]

    def check(outcome_name: str, json_seen: tuple[Any, ...], stream_seen: tuple[Any, ...]) -> None:
        json_cell, stream_cell, error_cell, charged_cell = _row(outcome_name)
        _says(json_cell, json_seen[0])
        if stream_cell.startswith("the same `Response`"):
            assert not isinstance(stream_seen[0], StreamingWrapper)
            assert stream_seen[0].status_code == json_seen[0].status_code
        else:
            _says(stream_cell, stream_seen[0])
        for response, error, credits in (json_seen, stream_seen):
            if error is None:
                assert "`None`" in error_cell, error_cell
            elif f"`{type(error).__name__}`" not in error_cell:  # named, else "the exception"
                assert error_cell.startswith("the exception"), (error, error_cell)
                if "`.status`" in error_cell:
                    assert error.status == response.status_code, (error, error_cell)
            assert charged_cell == ("yes" if credits else "no"), (credits, charged_cell)

    messages = [{"role": "user", "content": "hi"}]
    json_body = {"messages": messages}
    stream_body = {"messages": messages, "stream": True}
    with LiveServer(build()) as live:
        url = f"{live.url}/%s/chat/completions"
        check("completed", outcome(url % "ok", json_body), outcome(url % "ok", stream_body))
        check(
            "the agent failed",
            outcome(url % "fails", json_body),
            outcome(url % "fails-later", stream_body),
        )
        failed_at_once = outcome(url % "fails", stream_body)  # before the stream opened
        assert _row("the agent failed")[1].startswith(
            "before the stream opened: the same `Response`"
        )
        assert not isinstance(failed_at_once[0], StreamingWrapper)
        assert failed_at_once[0].status_code == 500
        check(
            "the client disconnected",
            outcome(url % "thinks", json_body, leave=True),
            outcome(url % "waits", stream_body, leave=True),
        )
        rejected = {"headers": {"x-reject": "1"}}
        check(
            "rejected by a `before_request` hook",
            outcome(url % "ok", json_body, **rejected),
            outcome(url % "ok", stream_body, **rejected),
        )
        check(
            "4xx before the agent ran",
            outcome(url % "ok", {"messages": "not a list"}),
            outcome(url % "ok", {"messages": "not a list", "stream": True}),
        )
    with LiveServer(build(request_timeout=0.2)) as live:
        url = f"{live.url}/%s/chat/completions"
        check(
            "past `request_timeout`",
            outcome(url % "thinks", json_body),
            outcome(url % "waits", stream_body),
        )
        not_open = outcome(url % "thinks", stream_body)  # times out before the stream opens
        assert "a `Response` 504 if the stream had not opened" in _row("past `request_timeout`")[1]
        assert not_open[0].status_code == 504


def test_streams_tell_nginx_not_to_buffer_them() -> None:
    from robutler.server import ServerBase
    from robutler_testing import create_test_client

    app = ServerBase()

    @app.agent("ok")
    async def ok(messages: Any, stream: bool = False) -> str:
        return "fine"

    with create_test_client(app) as client:
        response = client.post(
            "/ok/chat/completions", json={"messages": [{"role": "user"}], "stream": True}
        )
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"
    assert "`X-Accel-Buffering: no`" in README and "proxy_buffering off" in README


def test_the_front_pages_python_blocks_are_on_the_docs_pages_where_they_are_tested() -> None:
    blocks = re.findall(r"```python\n(.*?)```", FRONT, re.S)
    assert blocks, "the README lost its first agent"
    for code in blocks:
        assert code in README, code[:80]


def test_the_front_page_links_into_the_docs() -> None:
    for page in re.findall(r"\]\((docs/[^)#]+)", FRONT):
        assert (ROOT / page).is_file(), page
    assert FRONT.count("](docs/") >= 15
    assert len(FRONT.splitlines()) < 150


def test_readme_cassette_example_is_the_tested_example() -> None:
    """The README's cassette test is examples/recorded_agent/test_weather.py's, which
    tests/test_examples.py replays."""
    example = (ROOT / "examples" / "recorded_agent" / "test_weather.py").read_text()
    assert block("readme-cassette") in example
