"""The reference server the suite drives by default: one `MockAgent` per behaviour.

Every agent is deterministic, so cases can compare what the client got with what the
agent was scripted to say, and inspect what the agent received (`MockAgent.calls`).
"""

from __future__ import annotations

from dataclasses import dataclass

from robutler.server import Server
from robutler_testing import MockAgent

__all__ = [
    "AGENTS",
    "API_KEY",
    "BIG_REPLY",
    "MIDWAY_REPLY",
    "TOOL_CALLS",
    "ReferenceAgent",
    "keyed_app",
    "reference_app",
]

API_KEY = "conformance-key"
"""The one key the keyed reference server accepts."""

_BLOCK = "".join(f"{i:05d} conformance bytes. " for i in range(745))[: 16 * 1024]
BIG_REPLY = _BLOCK * 64
"""Exactly 1 MiB of ASCII, streamed in 64 chunks of 16 KiB."""
assert len(BIG_REPLY.encode()) == 1024 * 1024

MIDWAY_REPLY = "alpha beta gamma delta epsilon zeta"
"""What `fails-midway` would say; it fails after its third piece."""

TOOL_CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
]


@dataclass(frozen=True)
class ReferenceAgent:
    """What a reference agent does, for skip reasons and for the table."""

    name: str
    does: str


AGENTS = {
    a.name: a
    for a in (
        ReferenceAgent("echo", "echoes the last user message"),
        ReferenceAgent("echo-slow", "echoes, 20 ms per piece"),
        ReferenceAgent("quiet", "reports no usage"),
        ReferenceAgent("tools", "answers with two tool calls"),
        ReferenceAgent("big", "answers with exactly 1 MiB"),
        ReferenceAgent("fails-early", "fails before its first chunk"),
        ReferenceAgent("fails-midway", "fails after three chunks"),
    )
}


def _agents() -> list[MockAgent]:
    return [
        MockAgent("echo"),
        MockAgent("echo-slow", delay=0.02),
        MockAgent("quiet", usage=None),
        MockAgent("tools", tool_calls=TOOL_CALLS),
        MockAgent("big", chunks=[_BLOCK] * 64),
        MockAgent("fails-early", fail_after=0),
        MockAgent("fails-midway", reply=MIDWAY_REPLY, fail_after=3, usage=None),
    ]


def reference_app() -> Server:
    """The open reference server; `app.agents` are its MockAgents."""
    app = Server(agents=_agents(), title="robutler conformance reference")
    assert [a.name for a in app.agents] == list(AGENTS)
    return app


def keyed_app() -> Server:
    """A reference server that accepts only `Authorization: Bearer API_KEY`."""
    return Server(agents=[MockAgent("echo")], api_keys=[API_KEY], title="keyed reference")
