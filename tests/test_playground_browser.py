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
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
});
"""


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
        self.context = browser.new_context(
            viewport={"width": 720, "height": 480},
            permissions=["clipboard-read", "clipboard-write"],
        )
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        # A CSP violation is an error on the console (assert_clean fails on it).
        self.page.add_init_script(CSP_LISTENER)
        self.foreign: list[str] = []  # requests that left the server's origin
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
        self.page.on(
            "request",
            lambda r: (
                self.foreign.append(r.url)
                if not r.url.startswith("http://127.0.0.1:") and r.url != "about:blank"
                else None
            ),
        )
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

    def assert_clean(self, http_errors: bool = False) -> None:
        """No page error, console error (CSP violations among them), dialog or request
        elsewhere; with `http_errors`, the console's line for an error answer is allowed."""
        assert self.page_errors == [], self.page_errors
        console = [
            line
            for line in self.console
            if not (http_errors and "Failed to load resource: the server responded" in line)
        ]
        assert console == [], console
        assert self.dialogs == [], self.dialogs
        assert self.foreign == [], self.foreign

    def open_settings(self) -> None:
        if not self.page.locator("#settings").is_visible():
            self.page.click("#settings-toggle")
        expect(self.page.locator("#settings")).to_be_visible()

    def clipboard(self) -> str:
        return str(self.page.evaluate("navigator.clipboard.readText()"))


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


def test_a_hooks_refusal_names_its_cause_without_a_key_field(tab: Tab, serve: Any) -> None:
    app = Server(agents=[MockAgent("echo", reply="In.")])

    @app.agent.before_request
    async def gatekeeper(request: Any) -> None:
        if request.headers.get("x-user") != "alice":
            raise HTTPException(401, "Who are you?")

    tab.open(serve(app) + "/playground")
    expect(tab.page.locator("#settings")).to_be_hidden()
    tab.say("knock knock")
    answer = tab.wait_answered(1)
    expect(answer.locator(".error")).to_have_text("Error 401: Who are you?")
    expect(answer.locator(".hint")).to_have_text(
        re.compile(r"^This server has no API keys: its own checks \(a before_request hook\)")
    )
    expect(tab.page.locator("#key-row")).to_be_hidden()  # no key field on a server without keys
    expect(tab.page.locator("#settings")).to_be_visible()
    expect(tab.page.locator("#headers")).to_be_focused()
    tab.page.fill("#headers", "X-User: alice")
    expect(tab.page.locator("#input")).to_have_value("knock knock")  # taken back, to send again
    tab.page.press("#input", "Enter")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("In.")
    expect(tab.page.locator(".msg.user")).to_have_count(1)  # the refused one is not repeated
    expect(tab.page.locator("#key-row")).to_be_hidden()
    tab.assert_clean(http_errors=True)


def test_key_errors_point_at_the_key_and_a_hooks_refusal_does_not(tab: Tab, serve: Any) -> None:
    app = Server(agents=[MockAgent("echo", reply="In.")], api_keys=["sk-right"], playground=True)

    @app.agent.before_request
    async def only_alice(request: Any) -> None:
        if request.headers.get("x-user") != "alice":
            raise HTTPException(403, "Only alice.")

    tab.open(serve(app) + "/echo/playground")
    key = tab.page.locator("#api-key")
    tab.say("hi")
    answer = tab.wait_answered(1)
    expect(answer.locator(".error")).to_have_text(re.compile(r"^Error 401: Missing API key"))
    expect(answer.locator(".hint")).to_have_text(re.compile(r"^This server wants an API key"))
    expect(key).to_be_focused()
    key.fill("sk-wrong")
    tab.page.press("#input", "Enter")
    answer = tab.wait_answered(2)
    expect(answer.locator(".error")).to_have_text("Error 401: Incorrect API key provided.")
    expect(answer.locator(".hint")).to_have_text(re.compile("does not know this API key"))
    key.fill("sk-right")
    tab.page.press("#input", "Enter")
    answer = tab.wait_answered(3)
    expect(answer.locator(".error")).to_have_text("Error 403: Only alice.")
    expect(answer.locator(".hint")).to_have_text(re.compile(r"^Not an API key problem"))
    expect(tab.page.locator("#headers")).to_be_focused()
    tab.page.fill("#headers", "X-User: alice")
    tab.page.press("#input", "Enter")
    expect(tab.wait_answered(4).locator(".content")).to_have_text("In.")
    assert "sk-right" not in tab.page.evaluate("JSON.stringify(localStorage)")
    tab.page.locator(".msg.assistant").nth(3).locator(".raw-toggle").click()
    raw = tab.page.locator(".msg.assistant").nth(3).locator(".raw pre").first
    expect(raw).to_contain_text("authorization: ***")
    assert "sk-right" not in (raw.text_content() or "")
    assert tab.page_errors == []


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


# ---- round 2: a workbench (issue #28) ---------------------------------------------------


class Seen:
    """An agent that records each request (messages, JSON body, headers) and answers
    `reply(n)` for the n-th one; or a tool call when `tool` is set and the last message
    is the user's."""

    def __init__(self, reply: Any = "Noted.", tool: dict[str, Any] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.reply = reply
        self.tool = tool

    async def agent(self, messages: list[dict[str, Any]], request: Any) -> Any:
        self.calls.append(
            {
                "messages": messages,
                "body": json.loads(await request.body()),
                "headers": dict(request.headers),
            }
        )
        if self.tool is not None and messages[-1]["role"] == "user":
            return {"content": None, "tool_calls": [self.tool]}
        reply = self.reply
        return reply(len(self.calls), messages) if callable(reply) else reply

    def bodies(self) -> list[dict[str, Any]]:
        return [call["body"] for call in self.calls]


def seen_app(**agents: Seen) -> ServerBase:
    app = ServerBase()
    for name, seen in agents.items():
        app.agent(name)(seen.agent)
    return app


def test_conversations_are_kept_per_agent_across_switches_and_reloads(tab: Tab, serve: Any) -> None:
    alpha = Seen(lambda n, messages: f"alpha {n}")
    beta = Seen(lambda n, messages: f"beta {n}")
    url = serve(seen_app(alpha=alpha, beta=beta))
    tab.open(url + "/playground")
    tab.page.select_option("#agent", "alpha")
    tab.say("a1")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("alpha 1")
    tab.say("a2")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("alpha 2")
    tab.page.select_option("#agent", "beta")  # a conversation of its own ...
    expect(tab.answers()).to_have_count(0)
    tab.say("b1")
    expect(tab.wait_answered(1).locator(".content")).to_have_text("beta 1")
    tab.page.select_option("#agent", "alpha")  # ... and alpha's is still there
    expect(tab.answers().locator(".content")).to_have_text(["alpha 1", "alpha 2"])
    tab.say("a3")
    expect(tab.wait_answered(3).locator(".content")).to_have_text("alpha 3")
    assert alpha.calls[2]["messages"] == [
        {"role": "user", "content": "a1"},
        {"role": "assistant", "content": "alpha 1"},
        {"role": "user", "content": "a2"},
        {"role": "assistant", "content": "alpha 2"},
        {"role": "user", "content": "a3"},
    ]
    assert beta.calls[0]["messages"] == [{"role": "user", "content": "b1"}]
    tab.page.reload()  # the agent last talked to, with its conversation
    expect(tab.page.locator("#agent")).to_have_value("alpha")
    expect(tab.answers().locator(".content")).to_have_text(["alpha 1", "alpha 2", "alpha 3"])
    expect(tab.page.locator(".msg.user .content")).to_have_text(["a1", "a2", "a3"])
    tab.open(url + "/beta/playground")
    expect(tab.answers().locator(".content")).to_have_text(["beta 1"])
    tab.page.click("#new-chat")
    expect(tab.answers()).to_have_count(0)
    expect(tab.page.locator("#empty")).to_be_visible()
    tab.page.reload()
    expect(tab.page.locator("#agent")).to_have_value("beta")
    expect(tab.answers()).to_have_count(0)  # New chat forgot it for good
    tab.page.select_option("#agent", "alpha")
    expect(tab.answers()).to_have_count(3)
    tab.say("a4")  # the next turn continues the kept conversation
    expect(tab.wait_answered(4).locator(".content")).to_have_text("alpha 4")
    assert len(alpha.calls[3]["messages"]) == 7
    tab.assert_clean()


MARKDOWN = """## Weather *report*

It is **sunny** and *warm* with ~~no~~ `little` wind, snake_case_name stays.

- first
- second
  - nested

1. one
2. two

> quoted

| City | Temp |
|:-----|-----:|
| Paris | 21 |

See [the docs](https://example.com/docs) or [click me](javascript:alert(1)) or
[data](data:text/html,<script>alert(3)</script>) or https://example.org/x.
![a cat](https://example.com/cat.png)
<img src=x onerror=alert(1)> <script>alert(2)</script> <a href="javascript:alert(4)">raw</a>

```python
print("<b>hi</b>")
```
"""


def test_answers_are_markdown_rendered_safely(tab: Tab, serve: Any) -> None:
    app = Server(agents=[MockAgent("md", reply=MARKDOWN)])
    tab.open(serve(app) + "/md/playground")
    tab.say("weather?")
    content = tab.wait_answered(1).locator(".content")
    expect(content.locator("h2")).to_have_text("Weather report")
    expect(content.locator("h2 em")).to_have_text("report")
    expect(content.locator("p strong")).to_have_text("sunny")
    expect(content.locator("p > em")).to_have_text("warm")
    expect(content.locator("del")).to_have_text("no")
    expect(content.locator("p > code")).to_have_text("little")
    expect(content.locator("p").first).to_contain_text("snake_case_name stays.")
    expect(content.locator("> ul > li")).to_have_count(2)
    expect(content.locator("ul ul li")).to_have_text("nested")
    expect(content.locator("ol li")).to_have_text(["one", "two"])
    expect(content.locator("blockquote")).to_have_text("quoted")
    expect(content.locator("th")).to_have_text(["City", "Temp"])
    expect(content.locator("td.align-right")).to_have_text("21")
    docs = content.locator("a", has_text="the docs")
    expect(docs).to_have_attribute("href", "https://example.com/docs")
    expect(docs).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(content.locator("a", has_text="https://example.org/x")).to_have_attribute(
        "href", "https://example.org/x"
    )
    expect(content.locator("a", has_text="a cat")).to_have_attribute(
        "href",
        "https://example.com/cat.png",  # an image is a link, never loaded
    )
    expect(content.locator(".link-disabled")).to_have_text(["click me", "data"])
    hrefs = tab.page.evaluate("[...document.querySelectorAll('a')].map(a => a.href)")
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs), hrefs
    expect(content).to_contain_text(XSS + " <script>alert(2)</script> <a href=")
    counts = tab.page.evaluate(
        """[document.querySelectorAll('img').length,
            document.querySelectorAll('#log script, #log b, #log iframe').length,
            document.querySelectorAll('[onerror], [onclick], [style]').length]"""
    )
    assert counts == [0, 0, 0]
    code = content.locator(".code")
    expect(code.locator(".code-lang")).to_have_text("python")
    expect(code.locator("pre")).to_have_text('print("<b>hi</b>")')
    code.locator("button.copy").click()
    expect(code.locator("button.copy")).to_have_text("Copied")
    assert tab.clipboard() == 'print("<b>hi</b>")'
    content.locator(".link-disabled").first.click()  # a disabled link goes nowhere
    tab.page.set_viewport_size({"width": 390, "height": 700})  # a phone: nothing wider
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= 390
    tab.page.reload()  # rendered the same from the stored conversation
    expect(tab.answers().locator(".content h2")).to_have_text("Weather report")
    tab.assert_clean()  # no dialog, no CSP violation, nothing fetched from elsewhere


def test_settings_reach_the_agent_and_are_kept(tab: Tab, serve: Any) -> None:
    seen = Seen()
    tab.open(serve(seen_app(notes=seen)) + "/notes/playground")
    expect(tab.page.locator("#settings")).to_be_hidden()
    tab.open_settings()
    expect(tab.page.locator("#api")).to_have_value("chat")
    expect(tab.page.locator("#store-field")).to_be_hidden()  # a Responses setting
    tab.page.fill("#system", "Answer in French.")
    tab.page.fill("#temperature", "0.3")
    tab.page.fill("#max-tokens", "42")
    tab.page.fill("#headers", "X-User: alice\nX-Trace:  7 ")
    tab.say("hello")
    tab.wait_answered(1)
    (call,) = seen.calls
    assert call["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hello"},
    ]
    assert call["body"]["temperature"] == 0.3
    assert call["body"]["max_tokens"] == 42
    assert call["headers"]["x-user"] == "alice"
    assert call["headers"]["x-trace"] == "7"
    tab.page.reload()
    tab.open_settings()
    expect(tab.page.locator("#system")).to_have_value("Answer in French.")
    expect(tab.page.locator("#temperature")).to_have_value("0.3")
    expect(tab.page.locator("#max-tokens")).to_have_value("42")
    expect(tab.page.locator("#headers")).to_have_value("X-User: alice\nX-Trace:  7 ")
    stored = tab.page.evaluate("[JSON.stringify(localStorage), JSON.stringify(sessionStorage)]")
    assert "alice" not in stored[0]  # header values: this tab's session storage only
    assert "X-User: alice" in json.loads(stored[1])["robutler.playground.headers"]
    tab.page.fill("#headers", "X-User alice")  # not Name: value
    expect(tab.page.locator("#headers-error")).to_have_text(
        'Request headers, line 1: "X-User alice" is not "Name: value".'
    )
    tab.say("again")
    expect(tab.page.locator("#headers")).to_be_focused()
    assert len(seen.calls) == 1  # nothing sent with a header it could not send
    tab.assert_clean()


def test_responses_api_chains_stored_turns_and_shows_the_response_id(tab: Tab, serve: Any) -> None:
    seen = Seen(lambda n, messages: f"Answer {n}.")
    tab.open(serve(seen_app(notes=seen)) + "/notes/playground")
    tab.open_settings()
    tab.page.select_option("#api", "responses")
    expect(tab.page.locator("#store")).to_be_checked()
    tab.page.fill("#system", "Be brief.")
    tab.say("one")
    first = tab.wait_answered(1)
    expect(first.locator(".content")).to_have_text("Answer 1.")
    expect(first.locator(".fact-response-id")).to_have_text(re.compile(r"^response id resp_\w+$"))
    first_id = (first.locator(".fact-response-id").text_content() or "").split()[-1]
    expect(first.locator(".fact-finish")).to_have_text("status completed")
    tab.say("two")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("Answer 2.")
    one, two = seen.bodies()
    assert one["input"] == [{"role": "user", "content": "one"}]
    assert one["instructions"] == "Be brief." and one["store"] is True
    assert "previous_response_id" not in one
    assert two["previous_response_id"] == first_id  # only the new turn is sent
    assert two["input"] == [{"role": "user", "content": "two"}]
    assert seen.calls[1]["messages"][-3:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Answer 1."},
        {"role": "user", "content": "two"},
    ]
    tab.page.uncheck("#store")  # not stored: the whole conversation each time
    tab.say("three")
    third = tab.wait_answered(3)
    expect(third.locator(".content")).to_have_text("Answer 3.")
    three = seen.bodies()[2]
    assert "previous_response_id" not in three and three["store"] is False
    assert three["input"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Answer 1."},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Answer 2."},
        {"role": "user", "content": "three"},
    ]
    tab.assert_clean()


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_tool_calls_are_answered_with_their_results(tab: Tab, serve: Any, api: str) -> None:
    seen = Seen(
        lambda n, messages: f"It is {messages[-1]['content']} in Paris.",
        tool={"name": "get_weather", "arguments": {"city": "Paris"}},
    )
    tab.open(serve(seen_app(weather=seen)) + "/weather/playground")
    tab.open_settings()
    tab.page.select_option("#api", api)
    tab.say("Weather?")
    answer = tab.wait_answered(1)
    expect(answer.locator(".tool-name")).to_have_text("get_weather")
    result = answer.locator(".tool-result")
    expect(result).to_be_visible()
    expect(result).to_be_focused()
    tab.say("And tomorrow?")  # the call is not answered yet: nothing goes out
    expect(answer.locator(".hint")).to_have_text(re.compile(r"^Answer each tool call first"))
    expect(result).to_be_focused()
    assert len(seen.calls) == 1
    result.fill("sunny")
    tab.page.fill("#input", "")
    answer.locator(".send-results").click()
    expect(tab.wait_answered(2).locator(".content")).to_have_text("It is sunny in Paris.")
    expect(tab.page.locator(".msg.tool .tool-output")).to_have_text("sunny")
    expect(result).to_be_hidden()  # answered
    call_id = seen.calls[0]["messages"] and _call_id(seen, api)
    body = seen.bodies()[1]
    if api == "chat":
        assert body["messages"][-2:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
    else:
        assert body["input"] == [
            {"type": "function_call_output", "call_id": call_id, "output": "sunny"}
        ]
        assert body["previous_response_id"].startswith("resp_")
    assert seen.calls[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call_id,
        "content": "sunny",
    }
    # results and a message together: the tool message first, as the APIs want
    tab.say("Thanks")
    tab.wait_answered(3)
    assert seen.calls[2]["messages"][-1] == {"role": "user", "content": "Thanks"}
    tab.assert_clean()


def _call_id(seen: Seen, api: str) -> str:
    """The id of the tool call the agent's first answer made, as the page sent it back."""
    body = seen.bodies()[1]
    if api == "chat":
        return str(body["messages"][1]["tool_calls"][0]["id"])
    return str(body["input"][0]["call_id"])


def test_raw_view_shows_the_exchange_and_regenerate_asks_again(tab: Tab, serve: Any) -> None:
    calls: list[list[dict[str, Any]]] = []

    async def counter(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        calls.append(messages)
        for piece in ("Answer ", f"{len(calls)}."):
            yield piece

    app = ServerBase()
    app.agent("counter")(counter)
    tab.open(serve(app) + "/counter/playground")
    tab.say("hi")
    answer = tab.wait_answered(1)
    expect(answer.locator(".content")).to_have_text("Answer 1.")
    expect(answer.locator(".raw")).to_be_hidden()
    answer.locator(".raw-toggle").click()
    request, response = answer.locator(".raw pre").all()
    text = request.text_content() or ""
    head, _, body = text.partition("\n\n")
    assert head.splitlines()[0] == "POST /counter/chat/completions"
    assert "content-type: application/json" in head.splitlines()
    assert json.loads(body)["messages"] == [{"role": "user", "content": "hi"}]
    events = response.text_content() or ""
    assert events.startswith("HTTP 200  text/event-stream")
    assert re.search(r"^\+\d+ ms$", events, re.M), events
    assert '"object":"chat.completion.chunk"' in events
    assert '"content":"Answer "' in events
    assert "data: [DONE]" in events
    assert re.search(r"^\+\d+ ms  end of stream$", events, re.M)
    answer.locator(".raw-part").first.locator("button.copy").click()
    assert tab.clipboard() == text
    answer.locator(".actions button.copy").click()
    assert tab.clipboard() == "Answer 1."
    expect(answer.locator(".regenerate")).to_be_visible()
    answer.locator(".regenerate").click()
    expect(tab.answers()).to_have_count(1)
    expect(tab.wait_answered(1).locator(".content")).to_have_text("Answer 2.")
    assert calls == [[{"role": "user", "content": "hi"}]] * 2
    tab.say("more")
    expect(tab.wait_answered(2).locator(".content")).to_have_text("Answer 3.")
    assert calls[2][1] == {"role": "assistant", "content": "Answer 2."}  # the kept answer
    expect(tab.answers().nth(0).locator(".regenerate")).to_be_hidden()  # the last only
    expect(tab.answers().nth(1).locator(".regenerate")).to_be_visible()
    tab.page.reload()  # the raw view is kept with the conversation
    last = tab.answers().nth(1)
    last.locator(".raw-toggle").click()
    expect(last.locator(".raw pre").nth(1)).to_contain_text('"content":"3."')
    tab.assert_clean()


def test_screenshot_of_a_workbench_conversation(tab: Tab, serve: Any, tmp_path: Path) -> None:
    """Saves the screenshot; ROBUTLER_UPDATE_SCREENSHOT=1 writes docs/playground.png."""
    reply = (
        "Here is a **haiku** about robots, and the code that prints it:\n\n"
        "- written by the `poet` agent\n- streamed as it was made\n\n"
        "```python\nprint('Gears hum in the dark')\n```\n\n"
        "More in [the docs](https://example.com/robots)."
    )
    app = Server(
        agents=[
            MockAgent(
                "poet",
                reply=reply,
                usage={"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
            ),
            MockAgent(
                "weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
            ),
        ]
    )
    tab.page.set_viewport_size({"width": 960, "height": 760})
    tab.open(serve(app) + "/poet/playground")
    tab.open_settings()
    tab.page.select_option("#api", "responses")
    tab.page.fill("#system", "You are a poet.")
    tab.page.fill("#headers", "X-User: alice")
    tab.say("A haiku about robots, please")
    expect(tab.wait_answered(1).locator(".code")).to_be_visible()
    shot = tmp_path / "playground.png"
    tab.page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("ROBUTLER_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, Path(__file__).resolve().parent.parent / "docs" / "playground.png")
    tab.assert_clean()
