"""create_test_client, FinalizeRecorder, and the pytest plugin as a downstream project uses it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_downstream_tests

from robutler.server import ServerBase
from robutler_testing.client import create_test_client
from robutler_testing.recorder import FinalizeRecorder

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_test_client_keeps_one_event_loop_and_closes_cleanly() -> None:
    import asyncio
    from contextlib import asynccontextmanager

    loops: list[Any] = []
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = ServerBase(lifespan=lifespan)

    @app.agent("loop")
    async def loop_agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        loops.append(asyncio.get_running_loop())
        return "ok"

    client = create_test_client(app)
    assert events == ["startup"]
    for _ in range(3):
        assert client.post("/loop/chat/completions", json=BODY).status_code == 200
    assert len({id(loop) for loop in loops}) == 1
    client.close()
    client.close()
    assert events == ["startup", "shutdown"]
    with create_test_client(app) as again:
        assert again.post("/loop/chat/completions", json=BODY).status_code == 200
    assert events == ["startup", "shutdown", "startup", "shutdown"]


def test_finalize_recorder_passes_a_correct_server() -> None:
    app = ServerBase()

    @app.agent("gen")
    async def gen(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"
        yield "b"

    recorder = FinalizeRecorder(app)
    with create_test_client(app) as client:
        client.post("/gen/chat/completions", json=BODY)
        client.post("/gen/chat/completions", json={**BODY, "stream": True})
        client.post("/nobody/chat/completions", json=BODY)
    recorder.assert_exactly_once(expected_requests=3)
    records = list(recorder.records.values())
    assert [r.status_code for r in records] == [200, 200, 404]
    assert [r.outcome for r in records] == [None, "completed", None]


def test_finalize_recorder_catches_a_server_that_finalizes_twice() -> None:
    app = ServerBase()

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "ok"

    recorder = FinalizeRecorder(app)
    run_finalize = app.endpoint.hooks.run_finalize

    async def twice(state: Any, response: Any) -> None:  # a deliberately broken server
        await run_finalize(state, response)
        await run_finalize(state, response)

    app.endpoint.hooks.run_finalize = twice  # type: ignore[method-assign]
    with create_test_client(app) as client:
        client.post("/ok/chat/completions", json=BODY)
    with pytest.raises(AssertionError, match="finalize ran 2 times"):
        recorder.assert_exactly_once()


def test_finalize_recorder_catches_before_hooks_run_twice() -> None:
    app = ServerBase(api_keys=["k"])

    @app.agent("ok")
    async def ok(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "ok"

    recorder = FinalizeRecorder(app)
    with create_test_client(app) as client:
        refused = client.post("/ok/chat/completions", json=BODY)  # before hooks never run
        assert refused.status_code == 401
        recorder.assert_exactly_once(expected_requests=1)
        run_before = app.endpoint.hooks.run_before

        async def twice(state: Any) -> None:  # a deliberately broken server
            await run_before(state)
            await run_before(state)

        app.endpoint.hooks.run_before = twice  # type: ignore[method-assign]
        client.post("/ok/chat/completions", json=BODY, headers={"authorization": "Bearer k"})
    with pytest.raises(AssertionError, match="before_request ran 2 times"):
        recorder.assert_exactly_once()


def test_finalize_recorder_catches_finalize_before_stream_end() -> None:
    app = ServerBase()

    @app.agent("gen")
    async def gen(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"

    recorder = FinalizeRecorder(app)
    hooks = app.endpoint.hooks
    original = hooks.run_finalize

    async def early(state: Any, response: Any) -> None:
        response.status = "streaming"  # as if finalize ran while the stream was open
        await original(state, response)

    hooks.run_finalize = early  # type: ignore[method-assign]
    with create_test_client(app) as client:
        client.post("/gen/chat/completions", json={**BODY, "stream": True})
    with pytest.raises(AssertionError, match="before its stream ended"):
        recorder.assert_exactly_once()


DOWNSTREAM = """
from typing import Any

from robutler.server import ServerBase


def make_app() -> ServerBase:
    app = ServerBase()

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "echo: " + messages[-1]["content"]

    return app


def test_robutler_client(robutler_client):
    client = robutler_client(make_app())
    body = client.post("/echo/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).json()
    assert body["choices"][0]["message"]["content"] == "echo: x"


def test_live_server_and_openai_client(live_server, openai_client, finalize_recorder):
    app = make_app()
    recorder = finalize_recorder(app)
    url = live_server(app)
    assert url.startswith("http://127.0.0.1:")
    client = openai_client(url, "echo")
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "y"}])
    assert reply.choices[0].message.content == "echo: y"
    assert recorder.wait_for(1)
    recorder.assert_exactly_once(expected_requests=1)


def test_mock_agent_fixture(mock_agent):
    assert mock_agent.name == "mock-agent"
"""


def test_plugin_fixtures_work_in_a_downstream_project(tmp_path: Path) -> None:
    result = run_downstream_tests(tmp_path, "test_downstream.py", textwrap.dedent(DOWNSTREAM))
    assert "3 passed" in result.stdout


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, robutler_testing.plugin;"
        "print([m for m in ('agents', 'openai', 'hypothesis', 'respx', 'fastapi', 'uvicorn') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr


MOCK_OPENAI_OPTIONS = """
import pytest
from agents import Agent, Runner


def test_unused_reply_fails_at_teardown(mock_openai):
    mock_openai.add_text("never asked for")


@pytest.mark.mock_openai(assert_all_used=False)
def test_unused_reply_allowed_by_the_marker(mock_openai):
    mock_openai.add_text("never asked for")


@pytest.mark.mock_openai(max_retries=0, strict=False)
def test_marker_sets_retries_and_strictness(mock_openai):
    assert mock_openai.max_retries == 0 and mock_openai.strict is False
    mock_openai.add_text("Salut")
    assert Runner.run_sync(Agent(name="fr", instructions="x"), "hi").final_output == "Salut"


def test_defaults(mock_openai):
    assert mock_openai.max_retries is None and mock_openai.strict is True
"""


def test_mock_openai_fixture_fails_on_unused_replies_and_takes_a_marker(tmp_path: Path) -> None:
    result = run_downstream_tests(
        tmp_path,
        "test_options.py",
        MOCK_OPENAI_OPTIONS,
        args=("-W", "error::pytest.PytestUnknownMarkWarning", "-rE"),
        returncode=1,
    )
    out = result.stdout
    assert "4 passed, 1 error" in out, out
    assert "ERROR at teardown of test_unused_reply_fails_at_teardown" in out, out
    assert "mock_openai: the test left scripted replies unused: text 'never asked for'" in out
    assert "assert_all_used=False" in out
    assert "plugin.py" not in out, "the failure shows the plugin's source"


def test_mock_openai_marker_rejects_unknown_options(tmp_path: Path) -> None:
    source = (
        "import pytest\n\n@pytest.mark.mock_openai(retry=3)\ndef test_x(mock_openai):\n    pass\n"
    )
    result = run_downstream_tests(tmp_path, "test_bad_marker.py", source, returncode=1)
    assert "unknown option(s) ['retry']" in result.stdout + result.stderr


NO_SOCKETS_LEFT = """
import asyncio
import gc

from agents import Agent, Runner

from robutler.server import Server
from robutler_testing import MockAgent


def test_async_client_in_a_sync_test(live_server, openai_client):
    client = openai_client(live_server(Server(agents=[MockAgent("m")])), "m", asynchronous=True)

    async def ask():
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content

    assert asyncio.run(ask()) == "m received: hi"
    assert asyncio.run(ask()) == "m received: hi"  # from another event loop


def test_mock_openai_in_a_sync_test(mock_openai, robutler_client):
    mock_openai.add_text("Bonjour")
    mock_openai.add_text("Salut")
    assert Runner.run_sync(Agent(name="fr", instructions="x"), "hi").final_output == "Bonjour"
    client = robutler_client(Server(agents=[Agent(name="fr", instructions="x")]))
    body = client.post("/fr/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert body.json()["choices"][0]["message"]["content"] == "Salut"


def test_collect_what_the_others_left():
    gc.collect()
"""


def test_sync_tests_leave_no_unclosed_socket(tmp_path: Path) -> None:
    run_downstream_tests(
        tmp_path,
        "test_sockets.py",
        NO_SOCKETS_LEFT,
        python_args=("-X", "dev"),
        args=(
            "-W",
            "error::ResourceWarning",
            "-W",
            "error::pytest.PytestUnraisableExceptionWarning",
        ),
    )


FINALIZE_TWICE = """
from robutler.server import ServerBase


def make_app():
    app = ServerBase()

    @app.agent("ok")
    async def ok(messages, stream=False):
        return "ok"

    run_finalize = app.chat_handler.hooks.run_finalize

    async def twice(state, response):  # a deliberately broken server
        await run_finalize(state, response)
        await run_finalize(state, response)

    app.chat_handler.hooks.run_finalize = twice
    return app


def test_the_recorder_checks_at_teardown(finalize_recorder, robutler_client):
    app = make_app()
    finalize_recorder(app)
    robutler_client(app).post("/ok/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})


def test_check_false_leaves_it_to_the_test(finalize_recorder, robutler_client):
    app = make_app()
    recorder = finalize_recorder(app, check=False)
    robutler_client(app).post("/ok/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert recorder.records
"""


def test_finalize_recorder_fixture_checks_at_teardown(tmp_path: Path) -> None:
    result = run_downstream_tests(tmp_path, "test_twice.py", FINALIZE_TWICE, returncode=1)
    out = result.stdout
    assert "2 passed, 1 error" in out, out
    assert "ERROR at teardown of test_the_recorder_checks_at_teardown" in out
    assert "During handling" not in out
    assert "finalize ran 2 times" in out


ASYNC_DEFAULTS = """
import pytest
from agents import Agent, Runner

from robutler.server import Server
from robutler_testing import MockAgent


@pytest.mark.asyncio
async def test_an_async_test_with_the_fixtures(mock_openai, live_server, openai_client):
    mock_openai.add_text("Salut")
    assert (await Runner.run(Agent(name="fr", instructions="x"), "hi")).final_output == "Salut"
    client = openai_client(live_server(Server(agents=[MockAgent("m")])), "m", asynchronous=True)
    reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "m received: hi"
"""


def test_plugin_is_clean_under_pytest_asyncio_defaults(tmp_path: Path) -> None:
    result = run_downstream_tests(
        tmp_path,
        "test_async_defaults.py",
        ASYNC_DEFAULTS,
        python_args=("-X", "dev"),
        args=("-W", "error", "-W", "error::ResourceWarning"),
    )
    assert "1 passed" in result.stdout
    assert "Deprecation" not in result.stdout + result.stderr, result.stdout


HIDDEN_FRAMES = """
from robutler.server import ServerBase
from robutler_testing import FinalizeRecorder, mock_openai, validate_chunk, validate_completion, validate_stream


def test_completion():
    validate_completion({"object": "chat.completion"})  # USER-LINE-completion


def test_chunk():
    validate_chunk({"object": "nope"})  # USER-LINE-chunk


def test_stream():
    validate_stream("data: [DONE]")  # USER-LINE-stream


def test_recorder():
    recorder = FinalizeRecorder(ServerBase())
    recorder.assert_exactly_once(expected_requests=1)  # USER-LINE-recorder


def test_mock_openai_leftovers():
    with mock_openai() as upstream:
        upstream.add_text("unused")
        upstream.assert_all_used()  # USER-LINE-mock
"""


def test_validator_and_recorder_failures_show_the_users_line_not_ours(tmp_path: Path) -> None:
    result = run_downstream_tests(
        tmp_path, "test_hidden.py", HIDDEN_FRAMES, args=("--tb=long",), returncode=1
    )
    out = result.stdout
    assert "5 failed" in out, out
    for name in ("completion", "chunk", "stream", "recorder", "mock"):
        assert f"USER-LINE-{name}" in out, f"{name}: the user's line is not shown\n{out}"
    for module in ("validators.py:", "recorder.py:", "sse.py:", "mock_openai/"):
        assert f"robutler_testing/{module}" not in out, f"{module}'s frames are shown\n{out}"
    assert "does not conform to the OpenAI wire format" in out
