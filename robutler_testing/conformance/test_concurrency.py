"""Fifty streams at once through `AsyncOpenAI`, each getting only its own content."""

from __future__ import annotations

import asyncio

from .driver import Chat, Streamed, Target, user

STREAMS = 50


def test_fifty_concurrent_streams_each_get_their_own_content(chat: Chat, target: Target) -> None:
    agent = target.special("echo-slow")
    prompts = [f"stream {i} of {STREAMS} token-{i * 7919:06d}" for i in range(STREAMS)]

    async def main() -> list[Streamed]:
        async with chat.async_client(agent) as client:
            return await asyncio.gather(*(chat.astream(client, [user(p)]) for p in prompts))

    results = asyncio.run(main())
    wrong = [
        (prompt, streamed.content)
        for prompt, streamed in zip(prompts, results, strict=True)
        if streamed.content != f"{agent} received: {prompt}"
    ]
    assert not wrong, f"{len(wrong)} stream(s) got someone else's content, e.g. {wrong[0]!r}"
    ids = {streamed.report.id for streamed in results}
    assert len(ids) == STREAMS, f"{STREAMS} streams share {len(ids)} completion id(s)"
    # The streams really overlapped: most had their first chunk before any one finished.
    first_end = min(s.ended_at or 0.0 for s in results)
    overlapping = sum((s.first_at or first_end) < first_end for s in results)
    assert overlapping >= STREAMS // 2, f"only {overlapping} of {STREAMS} streams were open at once"
