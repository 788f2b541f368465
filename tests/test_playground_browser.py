"""The playground in a real browser: the system's headless Chromium driven by Playwright,
against uvicorn on 127.0.0.1.

Playwright only drives the browser the operating system installed (Debian: `apt-get
install chromium`); it never downloads one. Without Chromium these tests are skipped,
except in CI (CI=true), where they must run: `.ci/run` installs Chromium when missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from robutler.server import Server, ServerBase
from robutler_testing import FinalizeRecorder, MockAgent
from robutler_testing.demo import demo_app
from robutler_testing.live import LiveServer

CHROMIUM = os.environ.get("ROBUTLER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # every browser wait is bounded by this
WAIT_S = WAIT_MS / 1000
XSS = "<img src=x onerror=alert(1)>"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _require_browser() -> Any:
    """The Playwright sync API, or a skip (outside CI) saying what is missing."""
    missing = None
    if not os.path.isfile(CHROMIUM):
        missing = f"Chromium is not installed ({CHROMIUM}; Debian: apt-get install chromium)"
    else:
        try:
            from playwright import sync_api
        except ImportError:
            missing = "playwright is not installed (it comes with the dev extra)"
    if missing is not None:
        if _in_ci():
            pytest.fail(f"{missing}: CI must run the browser tests (.ci/run installs Chromium)")
        pytest.skip(f"{missing}; CI runs these tests")
    return sync_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = _require_browser()
    sync_api.expect.set_options(timeout=WAIT_MS)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        yield chromium
        chromium.close()


class Tab:
    """A page in a fresh browser context, with what went wrong in it recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 720, "height": 480})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.console: list[str] = []  # console messages of type error or warning
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.bad_responses: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.console.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on(
            "response",
            lambda r: self.bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, url: str) -> Tab:
        self.page.goto(url)
        return self

    def say(self, text: str) -> None:
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")

    def answers(self) -> Any:
        return self.page.locator(".msg.assistant")

    def wait_answered(self, count: int) -> Any:
        """The `count`-th answer, once it has finished."""
        answer = self.answers().nth(count - 1)
        expect(answer).not_to_have_class(re.compile(r"\bstreaming\b"))
        return answer

    def assert_clean(self) -> None:
        assert self.page_errors == [], self.page_errors
        assert self.console == [], self.console
        assert self.dialogs == [], self.dialogs


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    opened.context.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(app) -> base URL of uvicorn serving app on 127.0.0.1 (stopped at teardown)."""
    servers: list[LiveServer] = []

    def start(app: Any) -> str:
        servers.append(LiveServer(app).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


class Gate:
    """A streaming agent whose pieces the test releases one by one (no sleeps).

    The agent waits on an asyncio queue in the server's loop; `release(piece)` puts a
    piece there from the test's thread, `release(None)` ends the answer.
    """

    def __init__(self) -> None:
        self.messages: list[list[dict[str, Any]]] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[str | None] | None = None

    async def agent(
        self, messages: list[dict[str, Any]], stream: bool = False
    ) -> AsyncIterator[str]:
        self.messages.append(messages)
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._ready.set()
        while (piece := await self._queue.get()) is not None:
            yield piece

    def release(self, piece: str | None) -> None:
        assert self._ready.wait(WAIT_S), "the agent was not called"
        assert self._loop is not None and self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, piece)


def gated_app(gate: Gate, **kwargs: Any) -> ServerBase:
    app = ServerBase(**kwargs)
    app.agent("gated")(gate.agent)
    return app


# ---- tests --------------------------------------------------------------------------------


def test_demo_page_loads_and_chats_with_no_console_errors(tab: Tab, serve: Any) -> None:
    tab.open(serve(demo_app()) + "/playground")
    options = tab.page.locator("#agent option")
    expect(options).to_have_text(["echo", "stream", "tools"])
    tab.page.select_option("#agent", "stream")
    tab.say("robots")
    answer = tab.wait_answered(1)
    expect(answer.locator(".content")).to_have_text(
        re.compile(r"^Here is a short story about robots\.")
    )
    expect(answer.locator(".fact-finish")).to_have_text("finish stop")
    tab.assert_clean()
    assert tab.bad_responses == []


def test_answer_streams_in_piece_by_piece(tab: Tab, serve: Any) -> None:
    gate = Gate()
    app = gated_app(gate)
    recorder = FinalizeRecorder(app)
    tab.open(serve(app) + "/gated/playground")
    expect(tab.page.locator("#agent")).to_have_value("gated")
    tab.say("Hello?")
    answer = tab.answers().first
    content = answer.locator(".content")
    stop = tab.page.locator("#stop")
    expect(stop).to_be_enabled()
    for seen in ("Hel", "Hello, ", "Hello, world"):  # each state is on screen before the next piece
        gate.release(seen[len(content.text_content() or "") :])
        expect(content).to_have_text(seen)
        expect(answer).to_have_class(re.compile(r"\bstreaming\b"))
        expect(stop).to_be_enabled()
    gate.release(None)
    tab.wait_answered(1)
    expect(stop).to_be_disabled()
    assert recorder.wait_for(1, timeout=WAIT_S)
    (record,) = recorder.records.values()
    assert record.outcome == "completed"  # the page read the stream to its end
    expect(answer.locator(".fact-request-id")).to_have_text(f"request id {record.request_id}")
    expect(answer.locator(".fact-ttft")).to_have_text(re.compile(r"^first token \d+ ms$"))
    assert gate.messages == [[{"role": "user", "content": "Hello?"}]]
    tab.assert_clean()


def test_second_turn_sends_the_history_and_a_screenshot_is_saved(
    tab: Tab, serve: Any, tmp_path: Path
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def counting(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return f"Answer number {len(seen)}."

    app = ServerBase()
    app.agent("assistant")(counting)
    tab.open(serve(app) + "/assistant/playground")
    tab.page.fill("#input", "First line")
    tab.page.press("#input", "Shift+Enter")  # a new line, not a send
    tab.page.type("#input", "second line")
    assert seen == []
    tab.page.press("#input", "Enter")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("Answer number 1.")
    tab.say("And again")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("Answer number 2.")
    assert seen[0] == [{"role": "user", "content": "First line\nsecond line"}]
    assert seen[1] == [
        {"role": "user", "content": "First line\nsecond line"},
        {"role": "assistant", "content": "Answer number 1."},
        {"role": "user", "content": "And again"},
    ]
    shot = tmp_path / "playground.png"
    tab.page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    tab.page.click("#new-chat")
    tab.say("Fresh start")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("Answer number 3.")
    assert seen[2] == [{"role": "user", "content": "Fresh start"}]
    tab.assert_clean()


def test_stop_aborts_and_finalize_records_a_disconnect(tab: Tab, serve: Any) -> None:
    gate = Gate()
    app = gated_app(gate)
    recorder = FinalizeRecorder(app)
    tab.open(serve(app) + "/gated/playground")
    tab.say("Tell me everything")
    answer = tab.answers().first
    gate.release("Once upon")
    expect(answer.locator(".content")).to_have_text("Once upon")
    tab.page.click("#stop")
    expect(answer.locator(".fact-note")).to_have_text("stopped")
    expect(tab.page.locator("#send")).to_be_enabled()
    assert recorder.wait_for(1, timeout=WAIT_S), "finalize did not run after Stop"
    recorder.assert_exactly_once(expected_requests=1)
    (record,) = recorder.records.values()
    assert record.outcome == "disconnected"
    assert tab.page_errors == []


def test_agent_output_is_text_never_html(tab: Tab, serve: Any) -> None:
    app = Server(
        agents=[
            MockAgent("html", reply=XSS),
            MockAgent("tool-html", tool_calls=[{"name": "show", "arguments": {"html": XSS}}]),
        ]
    )
    tab.open(serve(app) + "/html/playground")
    tab.say("hi")
    expect(tab.wait_answered(1).locator(".content")).to_have_text(XSS)
    tab.page.select_option("#agent", "tool-html")
    tab.say("hi")
    args = tab.wait_answered(1).locator(".tool-args")
    assert json.loads(args.text_content() or "") == {"html": XSS}
    assert tab.page.locator("#log img").count() == 0
    assert tab.page.evaluate("document.querySelectorAll('img').length") == 0
    tab.assert_clean()  # among others: no dialog opened


def test_tool_calls_usage_and_a_mid_stream_error_are_shown(tab: Tab, serve: Any) -> None:
    app = Server(
        agents=[
            MockAgent(
                "weather",
                tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
                usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            ),
            MockAgent("flaky", reply="one two three", fail_after=1),
        ]
    )
    tab.open(serve(app) + "/weather/playground")
    tab.say("Weather?")
    answer = tab.wait_answered(1)
    expect(answer.locator(".tool-name")).to_have_text("get_weather")
    assert json.loads(answer.locator(".tool-args").text_content() or "") == {"city": "Paris"}
    expect(answer.locator(".fact-usage")).to_have_text("tokens 7 in, 3 out, 10 total")
    expect(answer.locator(".fact-finish")).to_have_text("finish tool_calls")
    tab.page.select_option("#agent", "flaky")
    tab.say("Count")
    answer = tab.wait_answered(1)
    expect(answer.locator(".content")).to_have_text("one ")
    expect(answer.locator(".error")).to_have_text(
        re.compile(r"^The agent failed\. \(request id \w+\)$")
    )
    tab.assert_clean()


def test_keyed_server_shows_nothing_until_a_key_then_works(tab: Tab, serve: Any) -> None:
    app = Server(
        agents=[MockAgent("zeta-secret", reply="Welcome!")],
        api_keys=["sk-right"],
        playground=True,
        title="Hidden Corp",
    )
    tab.open(serve(app) + "/playground")
    key = tab.page.locator("#api-key")
    expect(key).to_be_visible()  # the server said it wants a key
    expect(tab.page.locator("#empty")).to_have_text(re.compile("enter it above"))
    expect(tab.page.locator("#agent option")).to_have_count(0)
    html = tab.page.content()
    assert "zeta-secret" not in html and "Hidden Corp" not in html
    key.fill("sk-wrong")
    expect(tab.page.locator("#empty")).to_have_text("Error 401: Incorrect API key provided.")
    expect(tab.page.locator("#agent option")).to_have_count(0)
    key.fill("sk-right")
    expect(tab.page.locator("#agent option")).to_have_text(["zeta-secret"])
    assert tab.page.title() == "Hidden Corp - playground"
    tab.say("hello")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("Welcome!")
    storage = tab.page.evaluate("[JSON.stringify(sessionStorage), localStorage.length]")
    assert "sk-right" in storage[0]
    assert "sk-right" not in tab.page.evaluate("JSON.stringify(localStorage)")
    # a reload with the key in this tab's session storage asks the server again at once
    tab.page.reload()
    expect(tab.page.locator("#agent option")).to_have_text(["zeta-secret"])
    assert tab.page_errors == []


def test_keyed_server_with_a_wrong_key_says_so_and_keeps_the_message(tab: Tab, serve: Any) -> None:
    app = Server(
        agents=[MockAgent("echo", reply="Welcome!")], api_keys=["sk-right"], playground=True
    )
    tab.open(serve(app) + "/echo/playground")
    key = tab.page.locator("#api-key")
    key.fill("sk-wrong")
    tab.say("hello")
    answer = tab.wait_answered(1)
    expect(answer.locator(".error")).to_have_text("Error 401: Incorrect API key provided.")
    expect(tab.page.locator("#input")).to_have_value("hello")  # kept, to send again
    key.fill("sk-right")
    tab.page.press("#input", "Enter")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("Welcome!")
    assert tab.page_errors == []


def test_a_401_from_a_hook_reveals_the_key_field(tab: Tab, serve: Any) -> None:
    app = Server(agents=[MockAgent("echo", reply="In.")])

    @app.agent.before_request
    async def gatekeeper(request: Any) -> None:
        if request.headers.get("authorization") != "Bearer letmein":
            raise HTTPException(401, "Say the password.")

    tab.open(serve(app) + "/playground")
    key = tab.page.locator("#api-key")
    expect(key).to_be_hidden()
    tab.say("knock knock")
    expect(tab.wait_answered(1).locator(".error")).to_have_text("Error 401: Say the password.")
    expect(key).to_be_visible()
    expect(key).to_be_focused()
    key.fill("letmein")
    tab.page.press("#input", "Enter")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("In.")


def test_dynamic_agents_and_the_models_list(tab: Tab, serve: Any) -> None:
    app = ServerBase()

    async def find(name: str) -> Any:
        return {"greeting": "Arr"} if name == "pirate" else False

    # the page prefers the server's /v1/models list, where dynamic agents can be listed
    @app.agent(find, list=lambda: ["pirate", "parrot"])
    async def persona(messages: Any, stream: bool = False, agent_data: Any = None) -> str:
        return f"{agent_data['greeting']}! You said: {messages[-1]['content']}"

    url = serve(app)
    tab.open(url + "/pirate/playground")
    expect(tab.page.locator("#agent option")).to_have_text(["pirate", "parrot"])
    expect(tab.page.locator("#agent")).to_have_value("pirate")
    expect(tab.page.locator("#agent-other")).to_be_visible()
    tab.say("ahoy")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("Arr! You said: ahoy")
    tab.page.fill("#agent-other", "nobody")
    tab.page.dispatch_event("#agent-other", "change")
    tab.say("hello?")
    expect(tab.wait_answered(1).locator(".error")).to_have_text(
        "Error 404: Agent 'nobody' not found."
    )


def _chunk(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-sse",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        }
    ).encode()


# The SSE corners the official client's decoder handles: comments, other fields, CRLF and
# lone CR line ends (also split across writes), an event split across writes, data on
# several lines, no space after the colon, and whatever follows [DONE]. (No `id:` field:
# the official client keeps the last id, and then dispatches an empty event at every
# blank line.)
TRICKY_SSE = [
    b": a comment, ignored\n\n",
    b"retry: 3000\nevent: message\r\ndata: " + _chunk("Hel") + b"\r\n\r\n",
    b"data: " + _chunk("lo")[:20],
    _chunk("lo")[20:] + b"\n\n",
    _chunk(", wor").replace(b'"choices"', b'\ndata: "choices"').join([b"data: ", b"\n\n"]),
    b"\r",
    b"\ndata:" + _chunk("l") + b"\r\rdata: " + _chunk("d") + b"\r\r",
    b": ping\n\n",
    b"data: [DONE]\n\n",
    b"data: " + _chunk(" IGNORED") + b"\n\n",
]


def test_sse_is_parsed_like_the_official_client(tab: Tab, serve: Any, openai_client: Any) -> None:
    from starlette.responses import StreamingResponse

    async def pieces() -> AsyncIterator[bytes]:
        for piece in TRICKY_SSE:
            yield piece

    app = ServerBase()

    @app.agent("raw")
    async def raw(messages: Any, stream: bool = False) -> StreamingResponse:
        return StreamingResponse(pieces(), media_type="text/event-stream")

    url = serve(app)
    stream = openai_client(url, "raw").chat.completions.create(
        model="raw", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    official = "".join(c.choices[0].delta.content or "" for c in stream)
    assert official == "Hello, world"
    tab.open(url + "/raw/playground")
    tab.say("hi")
    expect(tab.wait_answered(1).locator(".content")).to_have_text(official)
    tab.assert_clean()


def test_robutler_serve_prints_the_playground_url_and_it_chats(tab: Tab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "robutler", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        url, seen = None, []
        while url is None:
            try:
                seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                pytest.fail("robutler serve printed no playground URL:\n" + "".join(seen))
            found = re.search(r"^  playground +(http://127\.0\.0\.1:\d+/playground)\b", seen[-1])
            url = found.group(1) if found else None
        while True:  # the banner comes before uvicorn listens
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "robutler serve did not come up"
            time.sleep(0.05)
        tab.open(url)
        tab.page.select_option("#agent", "stream")
        tab.say("cats")
        answer = tab.wait_answered(1)
        expect(answer.locator(".content")).to_have_text(
            re.compile(r"^Here is a short story about cats\. .+ everyone was pleased\.$")
        )
        tab.assert_clean()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
