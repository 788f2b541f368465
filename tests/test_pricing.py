"""@pricing: configuration, charges per request/call/token, caps, none on failure."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import post

from robutler.server import Server, ServerBase, get_context, pricing

USAGE = {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}


def recorder(app: ServerBase) -> list[dict[str, Any]]:
    usages: list[dict[str, Any]] = []

    @app.agent.finalize_request
    async def keep(request: Any, response: Any) -> None:
        usages.append(get_context().usage)  # type: ignore[union-attr]

    return usages


def test_decorator_keeps_function_and_stores_config() -> None:
    @pricing(credits_per_request=2, reason="Chat")
    async def agent(messages: list[dict[str, Any]], stream: bool = False) -> str:
        """Answers questions."""
        return "x"

    assert agent.__name__ == "agent" and agent.__doc__ == "Answers questions."
    assert inspect.iscoroutinefunction(agent)
    assert list(inspect.signature(agent).parameters) == ["messages", "stream"]
    assert agent._robutler_pricing["credits_per_request"] == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad", [{"credits_per_request": -1}, {"credits_per_token": "1"}, {"max_credits": -5}]
)
def test_bad_configuration_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="@pricing"):
        pricing(**bad)


def test_outside_a_request_it_just_runs() -> None:
    @pricing(credits_per_call=5)
    def tool(x: int) -> int:
        return x * 2

    assert tool(21) == 42


def test_per_request_charge_on_success_and_visible_in_info() -> None:
    app = ServerBase()
    usages = recorder(app)

    @app.agent("priced")
    @pricing(credits_per_request=3, reason="Chat")
    async def priced(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        yield "a"
        yield "b"

    with TestClient(app) as client:
        assert client.get("/priced").json()["pricing"]["credits_per_request"] == 3
        post(client, "priced")
        post(client, "priced", stream=True)
    assert [u["total_credits"] for u in usages] == [3, 3]
    assert usages[0]["records"][0]["reason"] == "Chat"


def test_per_token_charge_uses_real_usage_and_cap() -> None:
    app = ServerBase()
    usages = recorder(app)

    def completion() -> dict[str, Any]:
        message = {"role": "assistant", "content": "ok"}
        return {
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": USAGE,
        }

    @app.agent("tokens")
    @pricing(credits_per_token=0.5)
    async def tokens(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return completion()

    @app.agent("capped")
    @pricing(credits_per_request=1, credits_per_token=1, max_credits=25)
    async def capped(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return completion()

    @app.agent("nousage")
    @pricing(credits_per_token=1)
    async def nousage(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return "no usage reported"

    with TestClient(app) as client:
        post(client, "tokens")
        post(client, "tokens", stream=True)  # usage travels through the stream too
        post(client, "capped")
        post(client, "nousage")
    assert [u["total_credits"] for u in usages] == [20, 20, 25, 0]
    assert usages[2]["records"][0]["metadata"]["capped"] is True


def test_no_charge_on_failure() -> None:
    app = ServerBase()
    usages = recorder(app)

    @app.agent("fails")
    @pricing(credits_per_request=7)
    async def fails(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("no")

    @app.agent("fails-mid")
    @pricing(credits_per_request=7)
    async def fails_mid(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "a"
        raise RuntimeError("mid")

    with TestClient(app) as client:
        post(client, "fails")
        post(client, "fails-mid", stream=True)
    assert [u["total_credits"] for u in usages] == [0, 0]


def test_per_call_charges_each_call_of_a_tool() -> None:
    app = ServerBase()
    usages = recorder(app)

    @pricing(credits_per_call=2, reason="lookup")
    def lookup(q: str) -> str:
        return q.upper()

    @app.agent("tooling")
    async def tooling(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return lookup("a") + lookup("b") + lookup("c")

    with TestClient(app) as client:
        assert post(client, "tooling").json()["choices"][0]["message"]["content"] == "ABC"
    assert usages[0]["total_credits"] == 6
    assert [r["reason"] for r in usages[0]["records"]] == ["lookup"] * 3


def test_pricing_on_an_agent_objects_run() -> None:
    class Agent:
        name = "object"

        @pricing(credits_per_request=4)
        async def run(self, messages: list[dict[str, Any]]) -> str:
            return "ok"

        def run_streamed(self, messages: list[dict[str, Any]]) -> Any:
            return iter(["o", "k"])

    server = Server(agents=[Agent()])
    usages = recorder(server)
    with TestClient(server) as client:
        assert client.get("/object").json()["pricing"]["credits_per_request"] == 4
        post(client, "object")
        post(client, "object", stream=True)
    assert [u["total_credits"] for u in usages] == [4, 4]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("fails", [False, True], ids=["completes", "raises-midway"])
def test_per_call_charge_of_a_generator_agent_only_when_it_is_exhausted(
    kind: str, fails: bool
) -> None:
    app = ServerBase()
    usages = recorder(app)

    if kind == "sync":

        @pricing(credits_per_call=3)
        def gen(messages: list[dict[str, Any]], stream: bool = False) -> Any:
            yield "one "
            if fails:
                raise RuntimeError("the agent broke mid-stream")
            yield "two"

    else:

        @pricing(credits_per_call=3)
        async def gen(messages: list[dict[str, Any]], stream: bool = False) -> Any:  # type: ignore[misc]
            yield "one "
            if fails:
                raise RuntimeError("the agent broke mid-stream")
            yield "two"

    assert inspect.isgeneratorfunction(gen) == (kind == "sync")
    app.agent("gen")(gen)
    with TestClient(app) as client:
        streamed = post(client, "gen", stream=True)
    assert ("error" in streamed.text) is fails
    assert usages[0]["total_credits"] == (0 if fails else 3)
