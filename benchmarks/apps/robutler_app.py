"""(c) robutler serving one agent, with one async before and finalize hook; (c0) no hooks.

Served with `uvicorn --factory benchmarks.apps.robutler_app:with_hooks` (or `:no_hooks`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from benchmarks.apps import DELTA, MAX_CHUNKS
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

    return app


class _Tally:
    """What the finalize hook keeps: a count, so memory stays bounded."""

    finished = 0


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

    return app


def no_hooks() -> ServerBase:
    """(c0): the same agent, no hooks."""
    return _build()
