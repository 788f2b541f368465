"""Tests for robutler_testing.asgi.ASGIExchange, the one hand-driven ASGI client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from robutler_testing.asgi import ASGIExchange


async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, then sends five frames unless the client leaves."""
    request = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-n", b"5")]})
    for i in range(5):
        await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
    await send({"type": "http.response.body", "body": request["body"], "more_body": False})
    assert (await receive())["type"] == "http.disconnect"


def test_reads_the_whole_answer() -> None:
    closes: list[bool] = []
    call = asyncio.run(ASGIExchange(counting_app, "/x", b"end", on_close=closes.append).run())
    assert (call.status, call.headers, call.text) == (200, {"x-n": "5"}, "01234end")
    assert call.complete and not call.gone and closes == [True]
    assert dict(call.scope["headers"])[b"content-length"] == b"3"


def test_leave_after_drops_the_rest_like_uvicorn() -> None:
    closes: list[bool] = []
    call = asyncio.run(
        ASGIExchange(counting_app, "/x", leave_after=2, on_close=closes.append).run()
    )
    assert call.text == "01" and call.gone and not call.complete and closes == [False]


def test_a_client_that_vanishes_never_sends_the_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.disconnect"

    call = asyncio.run(ASGIExchange(app, "/x", b"body", vanish=True).run())
    assert call.gone and call.sent == [] and call.status is None


def test_a_client_that_never_reads_blocks_the_app_until_it_gives_up() -> None:
    async def run() -> ASGIExchange:
        call = ASGIExchange(counting_app, "/x", buffer=2)
        task = asyncio.ensure_future(call.run())
        await call.stuck.wait()
        assert not task.done()
        call.leave()
        await task
        return call

    assert asyncio.run(run()).text == "01"


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"type": "http.response.body", "body": b"x"}], "out of order"),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body", "body": b""},
                {"type": "http.response.body", "body": b"late"},
            ],
            "after the response was complete",
        ),
    ],
)
def test_messages_out_of_order_are_recorded_and_raised(
    messages: list[dict[str, Any]], problem: str
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    call = ASGIExchange(app, "/x")
    with pytest.raises(RuntimeError, match="Unexpected ASGI message"):
        asyncio.run(call.run())
    assert problem in call.problems[0]
