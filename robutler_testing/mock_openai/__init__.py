"""A fake upstream OpenAI API for running real Agents SDK agents offline.

``mock_openai()`` serves a scripted OpenAI API on ``127.0.0.1`` (uvicorn in a background
thread) and points the ``openai`` clients and the Agents SDK at it::

    with mock_openai() as upstream:
        upstream.add_text("Hello there", usage={"input_tokens": 12, "output_tokens": 3})
        upstream.add_tool_call("get_weather", {"city": "Paris"})
        upstream.add_error(500, "upstream failed")
        ...  # run agents, or a server that runs them
        upstream.requests  # the upstream request bodies, in order
        upstream.assert_all_used()

This fakes the *API*, not the model: the SDK's real model classes
(``OpenAIResponsesModel``, ``OpenAIChatCompletionsModel``), the ``openai`` client's HTTP
transport, SSE parsing, error mapping and retries all run under test, and anything that
talks HTTP - another process included, via ``OPENAI_BASE_URL`` - can use it. Use it to test
integration with the SDK: streaming events, usage accounting, tool round trips, upstream
failures and timeouts.

The Agents SDK's own ``agents.testing.ScriptedModel`` (present in openai-agents 0.24) fakes
the *model*: it replaces ``Model`` in-process, so no HTTP, client, or wire format is involved.
It is faster and simpler when only the agent's logic (tools, handoffs, guardrails) matters
and the transport does not.

Scripted replies are served one per upstream call, each in the shape the call asked for:
Responses (``POST /v1/responses``) or Chat Completions (``POST /v1/chat/completions``),
JSON or SSE (``"stream": true``). Without ``match=`` they are served in order; with
``match=Match(model=..., input=...)`` (or any callable taking the ``UpstreamCall``) a reply
waits for a call it accepts, so agents running at once each get their own answers::

    upstream.add_text("Sunny in Paris.", match=Match(input="Paris"))
    upstream.add_text("Rainy in Oslo.", match=Match(input="Oslo"))

A call with nothing to answer it gets a 500 naming it and is reported by
``assert_all_used()`` and on leaving the block. ``OPENAI_BASE_URL`` only reaches clients
built inside the block; requests from httpx / httpx2 clients to non-loopback hosts are
refused while the block is active.

Instead of a script, replies can come from recorded traffic: ``mock_openai(cassette=
"weather.yaml")`` (or ``@pytest.mark.mock_openai(cassette="weather")``) replays a cassette
offline, and with ``record=True`` (``pytest --record``, ``ROBUTLER_RECORD=1``) records it
from the real API, forwarding each call and keeping the request and the reply, secrets
scrubbed. A call that matches no recording fails naming the field that changed.

From the shell, ``python -m robutler_testing.mock_openai --port 9000`` serves it until
Ctrl-C: the ``--reply`` texts in order, then an echo of each call's last user message.

The package's rooms: `scripting` (replies, calls, matching), `responses` and `chat` (the
two wire formats), `http` (ASGI plumbing), `patching` (environment and SDK defaults),
`guard` (the network guard), `compat` (the private names of other libraries it needs),
`mock` (`MockOpenAI` itself); for cassettes, `cassette` (the file and scrubbing), `record`
(forwarding to the upstream), `replay` (matching and serving recordings) and `tape`
(options, and choosing between the two).
"""

from __future__ import annotations

from .cassette import CassetteError
from .guard import BlockedRequestError
from .mock import MockOpenAI, close_async_client, mock_openai
from .patching import MOCK_API_KEY
from .scripting import ErrorReply, Match, OutputReply, ToolCall, UpstreamCall, echo

__all__ = [
    "MOCK_API_KEY",
    "BlockedRequestError",
    "CassetteError",
    "ErrorReply",
    "Match",
    "MockOpenAI",
    "OutputReply",
    "ToolCall",
    "UpstreamCall",
    "close_async_client",
    "echo",
    "mock_openai",
]
