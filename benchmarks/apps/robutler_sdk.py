"""(s) robutler `Server` serving the Agents SDK agent of `sdk_agent.py`, nothing else.

Served with `uvicorn --factory benchmarks.apps.robutler_sdk:app`.
"""

from __future__ import annotations

from robutler.server import Server


def app() -> Server:
    """The server: `POST /bench/chat/completions` runs the agent (JSON or streamed)."""
    from benchmarks.apps.sdk_agent import agent

    return Server(agents=[agent], title="robutler SDK bench")
