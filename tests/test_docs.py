"""The documentation site: it builds strictly (a broken link or reference fails), offline,
and its code blocks run: every Python block compiles, the marked ones run as written, and
the table of what agents may return matches the server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robutler.server import ServerBase
from robutler_testing import create_test_client

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def block(marker: str) -> str:
    """The Python block after `<!-- marker -->` on whichever page has it."""
    for page in pages():
        match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", page.read_text(), re.S)
        if match:
            return match.group(1)
    raise AssertionError(f"the docs lost their {marker} block")


def test_the_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    assert (site / "reference" / "api" / "index.html").is_file()
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "max_body_size" in api  # ServerBase's docstring, rendered by mkdocstrings
    assert "exactly once" in (site / "guide" / "hooks" / "index.html").read_text()
    html = "".join(p.read_text() for p in site.rglob("*.html"))
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html


def test_every_python_block_compiles() -> None:
    found = 0
    for page in pages():
        for number, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            compile(code, f"{page.relative_to(ROOT)} block {number + 1}", "exec")
            found += 1
    assert found >= 12, found


def test_the_metrics_example_serves_a_metrics_page() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("docs-metrics"), "docs-metrics", "exec"), namespace)
    with create_test_client(namespace["app"]) as client:
        answer = client.post(
            "/greeter/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer.json()["choices"][0]["message"]["content"] == "Hello"
        page = client.get("/metrics").text
    assert 'robutler_requests_total{agent="greeter",api="chat",outcome="completed",' in page


def test_the_tracing_example_collects_a_span_per_request() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("docs-tracing"), "docs-tracing", "exec"), namespace)
    app = namespace["app"]

    @app.agent("assistant")
    async def assistant(messages: Any) -> str:
        return "Hello"

    with create_test_client(app) as client:
        client.post("/assistant/chat/completions", json={"messages": [{"role": "user"}]})
    names = [span.name for span in namespace["exporter"].get_finished_spans()]
    assert names == ["invoke_agent assistant", "chat assistant"]


# the table of what an agent may return ----------------------------------------------------


def return_table() -> dict[str, list[str]]:
    text = (DOCS / "guide" / "agents.md").read_text()
    table = text.split("| the agent returns | JSON answer | streamed answer |\n", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines()[1:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


class _Run:
    """An object with `final_output`, like an Agents SDK run result."""

    final_output = "from a run"


class _Streamed:
    """An object with `stream_events()`, like an Agents SDK streamed run."""

    async def stream_events(self) -> Any:
        for text in ("stre", "amed"):
            yield {"type": "raw_response_event", "data": {"chunk": text}}


def _generator() -> Any:
    yield "gen"
    yield {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "erated"}}],
    }


def _client_completion() -> Any:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "from the client"},
                }
            ],
        }
    )


def _response() -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("its own")


EXAMPLES: dict[str, tuple[Callable[[], Any], int, str | None]] = {
    # row (its start) -> (makes what the agent returns, status, the content a client reads)
    "a `str`": (lambda: "plain", 200, "plain"),
    "a message dict": (lambda: {"role": "assistant", "content": "a message"}, 200, "a message"),
    "a `chat.completion` dict": (
        lambda: {"choices": [{"message": {"role": "assistant", "content": "a completion"}}]},
        200,
        "a completion",
    ),
    "an iterator or async iterator": (_generator, 200, "generated"),
    "an object with `stream_events()`": (_Streamed, 200, "streamed"),
    "an object with `final_output`": (_Run, 200, "from a run"),
    "what the official `openai` client returned": (_client_completion, 200, "from the client"),
    "a Starlette `Response`": (_response, 200, None),
    "anything else": (lambda: 42, 500, None),
}


def test_the_return_table_has_a_row_for_each_kind_and_each_row_holds() -> None:
    from helpers import sse_events, stream_content

    rows = return_table()
    assert len(rows) == len(EXAMPLES), list(rows)
    app = ServerBase()
    for index, (start, (make, status, content)) in enumerate(EXAMPLES.items()):
        (row,) = [name for name in rows if name.startswith(start)]

        def agent(messages: Any, stream: bool = False, make: Any = make) -> Any:
            return make()

        app.add_agent(f"kind{index}", agent)
        with create_test_client(app) as client:
            body = {"messages": [{"role": "user", "content": "hi"}]}
            path = f"/kind{index}/chat/completions"
            plain = client.post(path, json=body)
            streamed = client.post(path, json={**body, "stream": True})
        assert plain.status_code == status, (row, plain.text)
        if start == "a Starlette `Response`":
            assert plain.text == streamed.text == "its own"
            continue
        if status >= 500:
            assert plain.json()["error"]["code"] == "unsupported_result"
            assert "unsupported_result" in rows[row][0] and "unsupported_result" in rows[row][1]
            continue
        assert plain.json()["choices"][0]["message"]["content"] == content, row
        assert stream_content(sse_events(streamed.text)) == content, row


@pytest.mark.parametrize("name", ["getting-started.md", "guide/agents.md", "guide/hooks.md"])
def test_key_pages_exist(name: str) -> None:
    assert (DOCS / name).is_file()
