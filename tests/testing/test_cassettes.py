"""Cassettes: upstream traffic recorded through mock_openai and replayed offline.

The "real upstream" here is a scripted `MockOpenAI` served by uvicorn on 127.0.0.1 (never
entered as a block, so it changes nothing in the process): recording forwards to it over
HTTP exactly as it would to the OpenAI API, and replay runs with it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from agents import Agent, Runner, function_tool

from robutler_testing.live import LiveServer
from robutler_testing.mock_openai import MockOpenAI, mock_openai
from robutler_testing.mock_openai.cassette import Cassette, CassetteError, split_events
from robutler_testing.mock_openai.replay import body_diff, ignore_paths, without

FAKE_KEY = "sk-proj-FAKEKEY0123456789abcdef"


@contextmanager
def local_upstream(script: Callable[[MockOpenAI], Any]) -> Iterator[tuple[MockOpenAI, str]]:
    """A scripted OpenAI API on a 127.0.0.1 port, standing in for the real one."""
    upstream = MockOpenAI()
    script(upstream)
    server = LiveServer(upstream.app, access_log=False, lifespan="off", interface="asgi3")
    server.start(timeout=10)
    try:
        yield upstream, server.url + "/v1"
    finally:
        server.stop(timeout=10)


@pytest.fixture(autouse=True)
def _no_traces_from_earlier_tests() -> None:
    """Drop the Agents SDK traces earlier tests of the suite left queued (tests that run an
    agent outside mock_openai leave tracing on); exported during one of these tests they
    would be blocked by its guard and fail it. The guard blocks them here, unreported."""
    from agents.tracing import get_trace_provider

    from robutler_testing.mock_openai.guard import GUARD

    def ignore(problem: str) -> None:
        pass

    GUARD.install(ignore)
    try:
        get_trace_provider().force_flush()
    finally:
        GUARD.uninstall(ignore)


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("ROBUTLER_RECORD", raising=False)
    monkeypatch.delenv("ROBUTLER_RECORD_UPSTREAM", raising=False)
    monkeypatch.delenv("ROBUTLER_RECORD_API_KEY", raising=False)
    return FAKE_KEY


HI = [{"role": "user", "content": "hi"}]
EXCHANGES = [  # path, body: JSON and SSE on both APIs
    ("/chat/completions", {"model": "gpt-4o", "messages": HI}),
    ("/chat/completions", {"model": "gpt-4o", "messages": HI, "stream": True}),
    ("/responses", {"model": "gpt-4o", "input": "hi"}),
    ("/responses", {"model": "gpt-4o", "input": "weather?", "stream": True}),
]


def send_all(base_url: str, exchanges: list[tuple[str, Any]]) -> list[tuple[int, str, bytes]]:
    with httpx.Client(timeout=30) as client:
        out = []
        for path, body in exchanges:
            response = client.post(base_url + path, json=body)
            out.append((response.status_code, response.headers["content-type"], response.content))
        return out


def four_replies(upstream: MockOpenAI) -> None:
    upstream.add_text("Hello there")
    upstream.add_text(["Streamed ", "words ", "here"])
    upstream.add_tool_call("get_weather", {"city": "Paris"})
    upstream.add_tool_call("get_weather", {"city": "Oslo"}, usage={"input_tokens": 9})


def record(
    path: Path,
    exchanges: list[tuple[str, Any]],
    script: Callable[[MockOpenAI], Any],
    **options: Any,
) -> list[tuple[int, str, bytes]]:
    with (
        local_upstream(script) as (_, url),
        mock_openai(cassette=path, record=True, upstream=url, **options) as mock,
    ):
        assert mock.recording
        return send_all(mock.base_url, exchanges)


# -- round trip ------------------------------------------------------------------------------


def test_json_and_sse_round_trip_byte_equal(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "round.yaml"
    recorded = record(path, EXCHANGES, four_replies)
    assert [r[0] for r in recorded] == [200] * 4
    assert [r[1].split(";")[0] for r in recorded] == ["application/json", "text/event-stream"] * 2
    with mock_openai(cassette=path) as mock:
        assert not mock.recording
        replayed = send_all(mock.base_url, EXCHANGES)
        assert mock.requests == [body for _, body in EXCHANGES]
    assert replayed == recorded  # status, content type and every byte of every body
    data = yaml.safe_load(path.read_text())
    streamed = data["interactions"][3]["response"]
    assert "".join(streamed["events"]).encode() == recorded[3][2]
    assert streamed["events"][0].startswith("event: response.created\n")
    assert len(streamed["times"]) == len(streamed["events"])
    assert data["interactions"][2]["request"]["body"] == {"model": "gpt-4o", "input": "hi"}
    assert json.loads(data["interactions"][0]["response"]["body"])["object"] == "chat.completion"


def test_the_official_client_streams_a_replayed_stream(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "stream.yaml"
    record(path, EXCHANGES[1:2], lambda up: up.add_text(["a ", "b ", "c"]))
    with mock_openai(cassette=path) as mock:
        stream = mock.client().chat.completions.create(model="gpt-4o", messages=HI, stream=True)  # type: ignore[arg-type]
        deltas = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
    assert deltas == ["a ", "b ", "c"]  # one chunk per recorded event, as the API sent them


def test_upstream_errors_are_recorded_and_replayed(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "error.yaml"

    def script(up: MockOpenAI) -> None:
        up.add_error(429, "slow down", headers={"x-should-retry": "false"})

    recorded = record(path, EXCHANGES[2:3], script)
    assert recorded[0][0] == 429
    with mock_openai(cassette=path, max_retries=0) as mock:
        import openai

        with pytest.raises(openai.RateLimitError, match="slow down"):
            mock.client().responses.create(model="gpt-4o", input="hi")


def test_split_events_keeps_every_byte() -> None:
    text = "event: a\ndata: 1\n\ndata: 2\r\n\r\n: comment\n\ndata: tail"
    events = split_events(text)
    assert events == ["event: a\ndata: 1\n\n", "data: 2\r\n\r\n", ": comment\n\n", "data: tail"]
    assert "".join(events) == text


# -- secrets -----------------------------------------------------------------------------------


def test_a_fake_key_leaves_no_trace_in_the_cassette(
    tmp_path: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-FAKEORG42")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_FAKEPROJ42")
    path = tmp_path / "secret.yaml"
    team_token = "team-token-FAKE-777"
    headers = {
        "Authorization": f"Bearer {FAKE_KEY}",  # a client that was given the real key
        "OpenAI-Organization": "org-FAKEORG42",
        "OpenAI-Project": "proj_FAKEPROJ42",
        "X-Team-Token": team_token,
        "Cookie": "session=FAKECOOKIE",
    }
    with local_upstream(lambda up: up.add_text("ok")) as (upstream, url):
        with mock_openai(cassette=path, record=True, upstream=url, scrub=["x-team-token"]) as mock:
            body = {"model": "gpt-4o", "input": f"my key is {FAKE_KEY}, keep it safe"}
            httpx.post(mock.base_url + "/responses", json=body, headers=headers, timeout=30)
        seen = upstream.calls[0].headers
    assert seen["authorization"] == f"Bearer {FAKE_KEY}"  # the key did go upstream
    assert seen["x-team-token"] == team_token
    text = path.read_text()
    for secret in (FAKE_KEY, "FAKEKEY", "FAKEORG42", "FAKEPROJ42", "FAKE-777", "FAKECOOKIE"):
        assert secret not in text, secret
    request = yaml.safe_load(text)["interactions"][0]["request"]
    assert request["headers"]["authorization"] == "<scrubbed>"
    assert request["headers"]["x-team-token"] == "<scrubbed>"
    assert request["body"]["input"] == "my key is <scrubbed>, keep it safe"


def test_recording_without_a_key_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ROBUTLER_RECORD_API_KEY", raising=False)
    with (
        pytest.raises(CassetteError, match="OPENAI_API_KEY"),
        mock_openai(cassette=tmp_path / "x.yaml", record=True),
    ):
        pass


# -- matching ----------------------------------------------------------------------------------


def test_volatile_fields_and_key_order_are_ignored(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "volatile.yaml"
    body = {
        "model": "gpt-4o",
        "input": [{"id": "msg_1", "role": "user", "content": "hi"}],
        "user": "alice",
        "metadata": {"run": "1"},
        "instructions": "It is 10:00.",
    }
    record(path, [("/responses", body)], lambda up: up.add_text("ok"))
    changed = {
        "instructions": "It is 11:00.",
        "metadata": {"run": "2"},
        "user": "bob",
        "input": [{"content": "hi", "role": "user", "id": "msg_2"}],
        "model": "gpt-4o",
    }
    with mock_openai(cassette=path, ignore=["instructions"]) as mock:
        assert send_all(mock.base_url, [("/responses", changed)])[0][0] == 200


def test_an_unmatched_request_fails_naming_the_changed_field(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "weather.yaml"
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": "Weather in Paris?"}]}
    record(path, [("/responses", body)], lambda up: up.add_text("Sunny"))
    other = {"model": "gpt-4o", "input": [{"role": "user", "content": "Weather in Oslo?"}]}
    with (
        pytest.raises(AssertionError) as failure,
        mock_openai(cassette=path, max_retries=0) as mock,
    ):
        status, _, content = send_all(mock.base_url, [("/responses", other)])[0]
        assert status == 500
        assert (
            "input[0].content: recorded 'Weather in Paris?', now 'Weather in Oslo?'"
            in content.decode()
        )
    message = str(failure.value)
    assert "POST /v1/responses matches no recorded interaction" in message
    assert "input[0].content: recorded 'Weather in Paris?', now 'Weather in Oslo?'" in message
    assert "Re-record the cassette with --record" in message


def test_unused_interactions_are_pending_and_fail_assert_all_used(
    tmp_path: Path, fake_key: str
) -> None:
    path = tmp_path / "two.yaml"
    record(path, EXCHANGES[:2], lambda up: up.add_text("a").add_text("b"))
    with mock_openai(cassette=path) as mock:
        send_all(mock.base_url, EXCHANGES[:1])
        assert mock.pending == ["recorded interaction #2: POST /v1/chat/completions ('hi')"]
        with pytest.raises(AssertionError, match="recorded interaction #2"):
            mock.assert_all_used()


def test_a_repeated_request_takes_the_next_recording_and_then_fails(
    tmp_path: Path, fake_key: str
) -> None:
    path = tmp_path / "repeat.yaml"
    same = EXCHANGES[2]
    first = record(path, [same, same], lambda up: up.add_text("one").add_text("two"))
    with mock_openai(cassette=path, strict=False) as mock:
        again = send_all(mock.base_url, [same, same, same])
        assert again[:2] == first
        assert again[2][0] == 500
        assert "already replayed" in mock.unexpected[0]


def test_matching_helpers() -> None:
    paths = ignore_paths(["user", "input.*.id", "**.secret"])
    body = {"user": "u", "input": [{"id": 1, "x": 2}], "deep": {"a": [{"secret": 3, "b": 4}]}}
    assert without(body, paths) == {"input": [{"x": 2}], "deep": {"a": [{"b": 4}]}}
    assert body_diff({"a": 1, "b": [1, 2]}, {"b": [1, 3], "a": 1.0}) == [("b[1]", 2, 3)]
    assert body_diff({"a": True}, {"a": 1}) == [("a", True, 1)]
    with pytest.raises(ValueError, match="dot-separated"):
        ignore_paths(["a..b"])


# -- options and mistakes ---------------------------------------------------------------------


def test_a_missing_cassette_says_how_to_record_it(tmp_path: Path, fake_key: str) -> None:
    with (
        pytest.raises(CassetteError, match="--record"),
        mock_openai(cassette=tmp_path / "none.yaml"),
    ):
        pass


def test_a_cassette_mock_refuses_scripted_replies(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "empty.yaml"
    record(path, [], lambda up: None)
    assert Cassette.load(path).interactions == []
    with mock_openai(cassette=path) as mock, pytest.raises(RuntimeError, match="cassette mode"):
        mock.add_text("no")


def test_cassette_options_need_a_cassette() -> None:
    with pytest.raises(TypeError, match="need a cassette"):
        mock_openai(ignore=["user"])
    with pytest.raises(TypeError, match="list of strings"):
        mock_openai(cassette="x.yaml", ignore="user")


def test_recording_is_not_written_when_the_block_raises(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "broken.yaml"
    with (
        pytest.raises(ZeroDivisionError),
        local_upstream(lambda up: up.add_text("a")) as (_, url),
        mock_openai(cassette=path, record=True, upstream=url) as mock,
    ):
        send_all(mock.base_url, EXCHANGES[:1])
        1 / 0  # noqa: B018
    assert not path.exists()


def test_pacing_replays_the_recorded_times(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "paced.yaml"
    record(path, EXCHANGES[1:2], lambda up: up.add_text(["a ", "b"]))
    cassette = Cassette.load(path)
    events = cassette.interactions[0].reply.events
    assert events is not None
    cassette.interactions[0].reply.times = [0.0] * (len(events) - 1) + [0.4]
    cassette.save()
    with mock_openai(cassette=path, pacing=True) as mock:
        started = time.monotonic()
        send_all(mock.base_url, EXCHANGES[1:2])
        assert time.monotonic() - started >= 0.4  # waited for the recorded time (a lower bound)


# -- a real Agents SDK agent: recorded once, replayed in a new process -----------------------

AGENT_SCRIPT = textwrap.dedent(
    """
    import sys
    from agents import Agent, Runner, function_tool
    from robutler_testing.mock_openai import mock_openai

    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        \"\"\"The weather in a city.\"\"\"
        calls.append(city)
        return f"Sunny in {city}"

    agent = Agent(name="forecaster", instructions="Use the tool.", tools=[get_weather])
    with mock_openai(cassette=sys.argv[1]) as upstream:
        result = Runner.run_sync(agent, "Weather in Paris?")
    print(repr(result.final_output), calls, len(upstream.calls))
    """
)


def test_an_agents_sdk_agent_with_tools_recorded_once_replays_in_a_new_process(
    tmp_path: Path, fake_key: str
) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    def script(up: MockOpenAI) -> None:
        up.add_tool_call("get_weather", {"city": "Paris"})
        up.add_text("It is sunny in Paris.")

    path = tmp_path / "agent.yaml"
    agent = Agent(name="forecaster", instructions="Use the tool.", tools=[get_weather])
    with local_upstream(script) as (upstream, url):
        with mock_openai(cassette=path, record=True, upstream=url):
            result = Runner.run_sync(agent, "Weather in Paris?")
        upstream.assert_all_used()
    assert result.final_output == "It is sunny in Paris." and calls == ["Paris"]
    (tmp_path / "replay.py").write_text(AGENT_SCRIPT)
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("OPENAI_", "ROBUTLER_"))
    }
    done = subprocess.run(
        [sys.executable, str(tmp_path / "replay.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "'It is sunny in Paris.' ['Paris'] 2"


# -- the pytest marker, in a downstream project ------------------------------------------------

MARKED_TESTS = textwrap.dedent(
    """
    import pytest

    QUESTION = "hi"


    @pytest.mark.mock_openai(cassette="greeting")
    def test_greeting(mock_openai):
        answer = mock_openai.client().responses.create(model="gpt-4o", input=QUESTION)
        assert answer.output_text == "Hello there"


    @pytest.mark.mock_openai(cassette=True)
    def test_streamed(mock_openai):
        stream = mock_openai.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b"
    """
)


def test_the_marker_records_with_the_option_and_replays_without(
    tmp_path: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import run_downstream_tests

    def script(up: MockOpenAI) -> None:
        up.add_text("Hello there").add_text(["a ", "b"])

    with local_upstream(script) as (upstream, url):
        monkeypatch.setenv("ROBUTLER_RECORD_UPSTREAM", url)
        done = run_downstream_tests(tmp_path, "test_marked.py", MARKED_TESTS, args=("--record",))
        assert "2 passed" in done.stdout
        upstream.assert_all_used()
    greeting = tmp_path / "cassettes" / "greeting.yaml"
    streamed = tmp_path / "cassettes" / "test_marked" / "test_streamed.yaml"
    assert greeting.exists() and streamed.exists()
    assert FAKE_KEY not in greeting.read_text() + streamed.read_text()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ROBUTLER_RECORD_UPSTREAM")
    done = run_downstream_tests(tmp_path, "test_marked.py", MARKED_TESTS)  # upstream gone
    assert "2 passed" in done.stdout
    changed = MARKED_TESTS.replace('QUESTION = "hi"', 'QUESTION = "hello"')
    done = run_downstream_tests(tmp_path, "test_marked.py", changed, returncode=1)
    assert "input: recorded 'hi', now 'hello'" in done.stdout
    assert "messages[0].content: recorded 'hi', now 'hello'" in done.stdout


def test_the_marker_fails_a_test_that_leaves_recorded_interactions_unused(
    tmp_path: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import run_downstream_tests

    with local_upstream(lambda up: up.add_text("Hello there")) as (_, url):
        monkeypatch.setenv("ROBUTLER_RECORD", "1")  # the environment's way to ask for it
        monkeypatch.setenv("ROBUTLER_RECORD_UPSTREAM", url)
        run_downstream_tests(tmp_path, "test_marked.py", MARKED_TESTS, args=("-k", "greeting"))
    monkeypatch.delenv("ROBUTLER_RECORD")
    lazy = MARKED_TESTS.replace(
        'answer = mock_openai.client().responses.create(model="gpt-4o", input=QUESTION)',
        "return",
    ).replace('assert answer.output_text == "Hello there"', "")
    done = run_downstream_tests(
        tmp_path, "test_marked.py", lazy, args=("-k", "greeting"), returncode=1
    )
    assert (
        "the test left scripted replies unused: recorded interaction #1: POST /v1/responses ('hi')"
        in done.stdout
    )


# -- a downstream project with robutler installed from its wheel (non-editable) --------------

WHEEL_PROJECT_TEST = textwrap.dedent(
    """
    import robutler_testing
    from agents import Agent, Runner, function_tool
    import pytest


    @function_tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b


    @pytest.mark.mock_openai(cassette="sum")
    def test_agent(mock_openai):
        print("robutler_testing from", robutler_testing.__file__)
        agent = Agent(name="calc", instructions="Use the tool.", tools=[add])
        assert Runner.run_sync(agent, "2+3?").final_output == "5"
    """
)


@pytest.mark.timeout(600)
def test_a_downstream_project_installed_from_the_wheel_records_and_replays(
    tmp_path: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch, built_wheel: Path
) -> None:
    """Slow-ish (builds a wheel): robutler installed non-editable into a fresh venv whose
    other dependencies come from this one, a project recording then replaying offline."""
    import sysconfig
    import venv

    wheel = built_wheel
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # robutler's dependencies from this environment, after the venv's own site-packages
    # (a path in a .pth file adds the directory, not the editable install's .pth hooks)
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_calc.py").write_text(WHEEL_PROJECT_TEST)

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def script(up: MockOpenAI) -> None:
        up.add_tool_call("add", {"a": 2, "b": 3})
        up.add_text("5")

    with local_upstream(script) as (upstream, url):
        monkeypatch.setenv("ROBUTLER_RECORD_UPSTREAM", url)
        done = pytest_run("--record")
        assert done.returncode == 0, done.stdout + done.stderr
        upstream.assert_all_used()
    assert f"robutler_testing from {site}" in done.stdout, done.stdout
    cassette = project / "cassettes" / "sum.yaml"
    assert FAKE_KEY not in cassette.read_text()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ROBUTLER_RECORD_UPSTREAM")
    done = pytest_run()  # the upstream is gone
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# -- any endpoint: embeddings from a small upstream of its own -----------------------------


async def embeddings_api(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny OpenAI-shaped embeddings API (pretty-printed JSON, as the real API sends)."""
    message = await receive()
    body = json.loads(message.get("body") or b"{}")
    payload = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
        "model": body.get("model"),
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    content = json.dumps(payload, indent=2).encode()
    headers = [(b"content-type", b"application/json"), (b"openai-organization", b"org-FAKEORG42")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def test_embeddings_are_recorded_and_replayed(tmp_path: Path, fake_key: str) -> None:
    path = tmp_path / "embeddings.yaml"
    server = LiveServer(embeddings_api, access_log=False, lifespan="off", interface="asgi3")
    server.start(timeout=10)
    try:
        with mock_openai(cassette=path, record=True, upstream=server.url + "/v1") as mock:
            recorded = mock.client().embeddings.create(model="text-embedding-3-small", input="hi")
    finally:
        server.stop(timeout=10)
    assert recorded.data[0].embedding == [0.25, -0.5, 0.125]
    text = path.read_text()
    assert "FAKEORG42" not in text  # the organization the API names in its reply headers
    assert '    body: |-\n      {\n        "object": "list",' in text  # readable as sent
    with mock_openai(cassette=path) as mock:
        replayed = mock.client().embeddings.create(model="text-embedding-3-small", input="hi")
    assert replayed == recorded


def test_a_websocket_connection_to_a_cassette_mock_is_refused_naming_why(
    tmp_path: Path, fake_key: str
) -> None:
    path = tmp_path / "empty.yaml"
    record(path, [], lambda up: None)
    with pytest.raises(AssertionError, match="not the Responses WebSocket mode"):  # noqa: SIM117
        with mock_openai(cassette=path) as mock:
            with pytest.raises(Exception):  # noqa: B017 - the handshake is refused
                with mock.client().responses.connect() as conn:
                    conn.send({"type": "response.create", "model": "gpt-4o", "input": "hi"})
                    conn.recv()
