"""The upstream model API of the Agents SDK workload: the repo's `mock_openai`, scripted
per call so that it answers forever with the same two replies and never sleeps.

A call whose input has no tool result yet gets a `get_weather` tool call; a call that
carries the tool's output gets the fixed text `REPLY`. Served by uvicorn in a process of
its own: `uvicorn --factory benchmarks.apps.upstream:app`.
"""

from __future__ import annotations

from typing import Any

from robutler_testing.mock_openai import MockOpenAI

REPLY = "It is sunny and 21C in Paris today."


def _has_tool_output(body: Any) -> bool:
    items = body.get("input") if isinstance(body, dict) else None
    if isinstance(items, list):
        return any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items)
    messages = body.get("messages") if isinstance(body, dict) else None  # Chat Completions
    return isinstance(messages, list) and any(m.get("role") == "tool" for m in messages)


def app() -> Any:
    """The ASGI app: MockOpenAI's, with one reply scripted just before each call."""
    import json

    mock = MockOpenAI(strict=False, configure_agents=False)

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        for _ in range(100_000):
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        path = scope["path"].rstrip("/")
        if scope["method"] == "POST" and path.endswith(("/responses", "/chat/completions")):
            # Only a call the mock answers takes a scripted reply.
            if _has_tool_output(parsed):
                mock.add_text(REPLY)
            else:
                mock.add_tool_call("get_weather", {"city": "Paris"})
        mock.calls.clear()  # the mock records every call; a benchmark makes millions
        mock.unexpected.clear()

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        # No await between scripting the reply and the mock taking it (`replay` returns at
        # once), so concurrent calls each get their own.
        await mock.app(scope, replay, send)

    return serve
