"""The conformance suite itself: it must fail, by name, against servers that break the format.

Small servers run under `LiveServer`; `python -m pytest conformance --base-url URL` runs
against each in a subprocess (all at once, to keep this quick), and the tests read the
table the suite prints at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from robutler.server import Server
from robutler_testing import LiveServer, MockAgent

ROOT = Path(__file__).resolve().parent.parent
CASES = (
    "non_streaming_reply_is_parsed or streaming_reply_is_iterated"
    " or stream_usage_totals or raw_response_stream_headers"
)


def broken_app(flaw: str) -> Starlette:
    """An OpenAI-compatible echo server whose streams have one `flaw`.

    `"no-done"` ends streams without `data: [DONE]`; `"wrong-object"` labels chunks
    `chat.completion`. Non-streaming answers are correct.
    """

    async def chat(request: Request) -> Response:
        body = await request.json()
        text = f"echo received: {body['messages'][-1]['content']}"
        head = {"id": "chatcmpl-broken", "created": int(time.time()), "model": "broken"}
        usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            return JSONResponse(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        kind = "chat.completion" if flaw == "wrong-object" else "chat.completion.chunk"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**head, "object": kind, "choices": [choice]}

        chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": text})]
        chunks.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**head, "object": kind, "choices": [], "usage": usage})

        async def frames() -> AsyncIterator[bytes]:
            for item in chunks:
                yield f"data: {json.dumps(item)}\n\n".encode()
            if flaw != "no-done":
                yield b"data: [DONE]\n\n"

        return StreamingResponse(
            frames(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    return Starlette(routes=[Route("/{agent}/chat/completions", chat, methods=["POST"])])


def openai_like_app() -> Starlette:
    """An echo server that answers invalid bodies 400, as OpenAI does (robutler answers 422)."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        messages = body.get("messages")
        bad = None
        if not messages:
            bad = "messages"
        elif messages[0].get("role") not in ("system", "user", "assistant", "tool"):
            bad = "messages[0].role"
        elif not isinstance(messages[0].get("content"), str):
            bad = "messages[0].content"
        elif body.get("temperature", 1) > 2:
            bad = "temperature"
        if bad:
            error = {"message": f"Invalid '{bad}'.", "type": "invalid_request_error"}
            return JSONResponse({"error": {**error, "param": bad, "code": None}}, status_code=400)
        message = {"role": "assistant", "content": "ok"}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return JSONResponse(
            {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m"}
            | {"choices": [choice]}
        )

    return Starlette(routes=[Route("/{agent}/chat/completions", chat, methods=["POST"])])


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q", *args]


def _module_command(*args: str) -> list[str]:
    """The suite as an installed `robutler-sdk[testing]` runs it (started outside the checkout)."""
    return [sys.executable, "-m", "robutler_testing.conformance", *args]


def _env(extra: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROBUTLER_CONFORMANCE_")}
    return {**clean, **extra, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[int, str, str]]]:
    """Run the suite against each server at once (subprocesses); name -> (code, output, url)."""
    conforming = Server(agents=[MockAgent("assistant")], api_keys=["secret-key"])
    servers = {
        "no-done": broken_app("no-done"),
        "wrong-object": broken_app("wrong-object"),
        "conforming": conforming,
        "no-usage": Server(agents=[MockAgent("quiet", usage=None)]),
        "openai-like": openai_like_app(),
    }
    with ExitStack() as stack:
        urls = {name: stack.enter_context(LiveServer(app)).url for name, app in servers.items()}
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            name: (_command("--base-url", urls[name], "--agent", "broken", "-k", CASES), {})
            for name in ("no-done", "wrong-object")
        }
        commands["conforming"] = (
            _command(),
            {
                "ROBUTLER_CONFORMANCE_BASE_URL": urls["conforming"],
                "ROBUTLER_CONFORMANCE_AGENT": "assistant",
                "ROBUTLER_CONFORMANCE_API_KEY": "secret-key",
            },
        )
        commands["unreachable"] = (_command("--base-url", "http://127.0.0.1:9", "--agent", "a"), {})
        commands["no-agent"] = (_command("--base-url", urls["no-done"]), {})
        commands["no-usage"] = (_module_command("--base-url", urls["no-usage"]), {})
        commands["openai-like"] = (
            _module_command(
                "--base-url", urls["openai-like"], "--agent", "m", "-k", "invalid_body"
            ),
            {},
        )
        elsewhere = tmp_path_factory.mktemp("elsewhere")  # not the checkout: no conftest here
        processes = {
            name: subprocess.Popen(
                command,
                cwd=ROOT if command[2] == "pytest" else elsewhere,
                env=_env(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name, (command, env) in commands.items()
        }
        results = {}
        try:
            for name, process in processes.items():
                output, _ = process.communicate(timeout=180)
                results[name] = (process.returncode, output, urls.get(name, ""))
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    yield results


def table(output: str) -> dict[str, tuple[str, str]]:
    """The suite's end-of-run table: case -> (result, first problem)."""
    assert "conformance report" in output, f"the suite printed no table:\n{output}"
    rows: dict[str, tuple[str, str]] = {}
    for line in output.split("conformance report", 1)[1].splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] in ("PASS", "FAIL", "ERROR", "SKIP"):
            rows[parts[0]] = (parts[1], parts[2] if len(parts) == 3 else "")
    return rows


@pytest.mark.parametrize(
    ("flaw", "problem"),
    [
        ("no-done", "stream: the stream does not end with data: [DONE]"),
        ("wrong-object", "stream: chunk 0: object is 'chat.completion', expected"),
    ],
    ids=["no-done", "wrong-object"],
)
def test_a_broken_server_fails_the_named_cases(
    runs: dict[str, tuple[int, str, str]], flaw: str, problem: str
) -> None:
    code, output, _ = runs[flaw]
    assert code == 1, f"the suite did not fail against a {flaw} server:\n{output}"
    rows = table(output)
    assert rows["non_streaming_reply_is_parsed_by_the_client"][0] == "PASS", output
    for case in (
        "streaming_reply_is_iterated_by_the_client",
        "stream_usage_totals_add_up_with_include_usage",
        "raw_response_stream_headers_are_event_stream_and_no_cache",
    ):
        result, detail = rows[case]
        assert result == "FAIL", f"{case} did not fail against a {flaw} server:\n{output}"
        assert detail.startswith(problem), f"{case}: the table says {detail!r}, not {problem!r}"
    assert "FAILED conformance/test_replies.py::test_streaming_reply_is_iterated" in output


def test_a_conforming_external_server_passes_and_reference_cases_skip(
    runs: dict[str, tuple[int, str, str]],
) -> None:
    code, output, url = runs["conforming"]
    assert code == 0, output
    rows = table(output)
    assert f"target: {url}, agent 'assistant'" in output
    for case in (
        "non_streaming_reply_is_parsed_by_the_client",
        "streaming_reply_is_iterated_by_the_client",
        "missing_api_key_is_an_authentication_error",
        "wrong_api_key_is_an_authentication_error",
        "invalid_body_is_rejected_naming_the_field[role]",
        "unknown_agent_is_not_found",
        "models_list_names_the_model",
    ):
        assert rows[case][0] == "PASS", f"{case}: {rows[case]}\n{output}"
    result, reason = rows["tool_calls_are_parsed_by_the_client"]
    assert result == "SKIP" and "needs its agent 'tools'" in reason, reason


def test_base_url_without_agent_is_a_usage_error(runs: dict[str, tuple[int, str, str]]) -> None:
    code, output, _ = runs["no-agent"]
    assert code == 4, output
    assert "--base-url needs --agent NAME" in output


def test_an_unreachable_base_url_is_one_failure_up_front(
    runs: dict[str, tuple[int, str, str]],
) -> None:
    code, output, _ = runs["unreachable"]
    assert code == 4, output
    assert output.count("cannot reach the server under test at http://127.0.0.1:9/a") == 1, output
    assert "Is it running, and is --base-url right?" in output
    assert "conformance report" not in output and "FAILED" not in output, output


def test_installed_suite_runs_outside_the_checkout_and_skips_usage_totals_without_usage(
    runs: dict[str, tuple[int, str, str]],
) -> None:
    code, output, url = runs["no-usage"]
    assert code == 0, output
    assert f"target: {url}, agent 'quiet'" in output  # the one agent /health names
    rows = table(output)
    result, reason = rows["stream_usage_totals_add_up_with_include_usage"]
    assert result == "SKIP", output
    assert "reports no token usage" in reason, reason
    assert rows["non_streaming_reply_is_parsed_by_the_client"][0] == "PASS"
    assert rows["invalid_body_is_rejected_naming_the_field[role]"] == (
        "PASS",
        "answered 422 (OpenAI answers 400)",
    )


def test_invalid_bodies_answered_400_like_openai_pass_and_the_table_says_so(
    runs: dict[str, tuple[int, str, str]],
) -> None:
    code, output, _ = runs["openai-like"]
    assert code == 0, output
    rows = table(output)
    invalid = {case: row for case, row in rows.items() if case.startswith("invalid_body")}
    assert len(invalid) == 4, output
    assert set(invalid.values()) == {("PASS", "answered 400")}, output


def test_the_suite_ships_in_the_wheel(built_wheel: Path) -> None:
    import zipfile

    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    suite = {n for n in names if n.startswith("robutler_testing/conformance/")}
    for module in ("__main__", "plugin", "driver", "test_replies", "test_failures"):
        assert f"robutler_testing/conformance/{module}.py" in suite, sorted(suite)
    assert not [n for n in names if n.startswith("conformance/")], "the repo wrapper shipped"
