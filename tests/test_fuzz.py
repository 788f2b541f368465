"""Fuzzing agent routes: any body and headers get a well-formed answer, never a 5xx.

The CI profile runs a few hundred derandomized examples; `nox -s fuzz` sets
ROBUTLER_FUZZ_EXAMPLES for a deep run.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from helpers import ASGICall, sse_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robutler.server import ServerBase

EXAMPLES = int(os.environ.get("ROBUTLER_FUZZ_EXAMPLES", "300"))
KEY = "sk-fuzz"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "robot", ""])
content = st.one_of(
    st.text(max_size=30),
    st.none(),
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image_url"]), "text": st.text(max_size=10)}
        ),
        max_size=3,
    ),
    json_values,
)
message = st.fixed_dictionaries(
    {"role": roles, "content": content},
    optional={"name": st.text(max_size=5), "tool_call_id": json_values},
)
valid_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=30)}
)
valid_body = st.fixed_dictionaries(
    {"messages": st.lists(valid_message, min_size=1, max_size=4)},
    optional={
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "model": st.text(max_size=10),
        "temperature": st.floats(0, 2),
        "unknown": json_values,
    },
)
near_valid = st.builds(
    lambda body, key, value: {**body, key: value},
    valid_body,
    st.sampled_from(
        ["messages", "stream", "stream_options", "temperature", "n", "tools", "model", "max_tokens"]
    ),
    json_values,
)
bodies = st.one_of(
    valid_body.map(lambda b: json.dumps(b).encode()),
    near_valid.map(lambda b: json.dumps(b).encode()),
    st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=3)}, optional={"stream": json_values}
    ).map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "",
                "application/json; charset=latin-1",
            ]
        ),
        "authorization": st.sampled_from(
            [f"Bearer {KEY}", "Bearer wrong", "Basic abc", "Bearer", ""]
        ),
    },
)
paths = st.sampled_from(
    [
        "/echo/chat/completions",
        "/stream/chat/completions",
        "/nobody/chat/completions",
        "/echo/chat/completions",
    ]
)


def make_app() -> tuple[ServerBase, dict[str, int]]:
    app = ServerBase(api_keys=[KEY], max_body_size=64 * 1024)
    counts = {"finalize": 0}

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"echo {len(messages)}"

    @app.agent("stream")
    async def stream_agent(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        for i in range(3):
            yield f"{i} "

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        counts["finalize"] += 1

    return app, counts


APP, COUNTS = make_app()


def check_answer(call: ASGICall) -> None:
    status = call.status
    assert status < 500, (status, call.text)
    text = call.text
    content_type = dict(call.sent[0]["headers"]).get(b"content-type", b"").decode()
    if content_type.startswith("text/event-stream"):
        assert sse_events(text)[-1] == "[DONE]", text[-80:]
    else:
        body = json.loads(text)
        if status >= 400:
            assert set(body) == {"error"} and set(body["error"]) == {
                "message",
                "type",
                "param",
                "code",
            }
            assert body["error"]["message"]
        else:
            assert body["object"] == "chat.completion"


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(body=bodies, extra_headers=headers, path=paths)
def test_any_request_gets_a_well_formed_non_5xx_answer(
    body: bytes, extra_headers: dict[str, str], path: str
) -> None:
    async def run() -> None:
        before = COUNTS["finalize"]
        call = ASGICall(APP, path, body)
        call.scope["headers"] = [(b"content-length", str(len(body)).encode())] + [
            (k.encode(), v.encode("latin-1")) for k, v in extra_headers.items()
        ]
        await call.run()
        check_answer(call)
        assert COUNTS["finalize"] == before + 1, "finalize must run exactly once"
        valid = ASGICall(
            APP, "/echo/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}'
        )
        valid.scope["headers"].append((b"authorization", f"Bearer {KEY}".encode()))
        await valid.run()
        assert valid.status == 200, "the server must still answer a valid request"

    asyncio.run(run())
