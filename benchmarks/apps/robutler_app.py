"""(c) robutler serving one agent, with one async before and finalize hook; (c0) no hooks.

Served with `uvicorn --factory benchmarks.apps.robutler_app:with_hooks` (or `:no_hooks`).
A second agent, `slow`, streams its deltas `SLOW_GAP` seconds apart; with hooks,
`GET /bench-stats` tells how many requests the finalize hook saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.apps import DELTA, MAX_CHUNKS, MAX_SLOW_CHUNKS, SLOW_GAP
from robutler.server import ServerBase, get_context


async def deltas(n: int) -> AsyncIterator[str]:
    """`n` text deltas."""
    for _ in range(n):
        yield DELTA


def _build() -> ServerBase:
    app = ServerBase(title="robutler bench")

    @app.agent("bench")
    async def bench(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Answers `n` deltas, `n` being the last message's content."""
        n = min(int(messages[-1]["content"]), MAX_CHUNKS)
        if stream:
            return deltas(n)
        return "".join([d async for d in deltas(n)])

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        """A slow model: `n` deltas, `SLOW_GAP` seconds apart."""
        for i in range(min(int(messages[-1]["content"]), MAX_SLOW_CHUNKS)):
            if i:
                await asyncio.sleep(SLOW_GAP)
            yield DELTA

    return app


class _Tally:
    """What the finalize hook keeps: counts, so memory stays bounded."""

    finished = 0
    slow = 0  # requests to the slow agent finalized
    slow_completed = 0  # of which finalize saw a completed stream


def with_hooks() -> ServerBase:
    """(c): the agent plus one async before_request and one async finalize_request hook."""
    app = _build()

    @app.agent.before_request
    async def before(request: Any) -> None:
        ctx = get_context()
        if ctx is not None:
            ctx.set("user", request.headers.get("x-user", "anonymous"))

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        _Tally.finished += 1
        ctx = get_context()
        if ctx is not None and ctx.agent_name == "slow":
            _Tally.slow += 1
            if getattr(response, "status", None) == "completed":
                _Tally.slow_completed += 1

    @app.get("/bench-stats")
    async def stats() -> dict[str, int]:
        """How many requests were finalized so far (all, and the slow agent's)."""
        return {
            "finalized": _Tally.finished,
            "slow": _Tally.slow,
            "slow_completed": _Tally.slow_completed,
        }

    return app


def no_hooks() -> ServerBase:
    """(c0): the same agent, no hooks."""
    return _build()
