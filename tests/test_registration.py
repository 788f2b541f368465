"""Registration mistakes surface at decoration or construction, with the fix in the message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import post

from robutler.server import Server, ServerBase
from robutler_testing import MockAgent, create_test_client


def test_agent_decorator_without_parentheses_serves_the_function_under_its_name() -> None:
    app = ServerBase()

    @app.agent
    async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "bare decorator"

    @app.agent
    async def _streamer(messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        yield "streamed"

    assert callable(assistant) and assistant.__name__ == "assistant"  # the function is kept
    assert sorted(app.static_agents) == ["assistant", "streamer"]
    with create_test_client(app) as client:
        body = post(client, "assistant").json()
        assert body["choices"][0]["message"]["content"] == "bare decorator"
        assert post(client, "streamer").json()["choices"][0]["message"]["content"] == "streamed"


def test_a_resolver_is_still_a_resolver() -> None:
    app = ServerBase()

    @app.agent(lambda name: name == "pirate" and {"greeting": "Arr"})
    async def persona(messages: list[dict[str, Any]], agent_data: Any = None) -> str:
        return agent_data["greeting"]

    assert app.static_agents == {} and len(app.dynamic_agents) == 1
    with create_test_client(app) as client:
        assert post(client, "pirate").json()["choices"][0]["message"]["content"] == "Arr"
        assert post(client, "parrot").status_code == 404


async def no_params() -> str:
    return "never"


async def extra_required(messages: list[Any], user_id: str) -> str:
    return "never"


async def stream_first(stream: bool, messages: list[Any]) -> str:
    return "never"


async def kw_only_unknown(messages: list[Any], *, tenant: str) -> str:
    return "never"


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (no_params, "no_params() cannot be served: it takes no positional parameter"),
        (extra_required, "its required parameter 'user_id' would never be given"),
        (stream_first, "its first parameter 'stream' would receive the messages"),
        (kw_only_unknown, "its required parameter 'tenant' would never be given"),
    ],
)
def test_a_handler_that_cannot_take_messages_fails_at_registration(
    handler: Any, words: str
) -> None:
    app = ServerBase()
    with pytest.raises(TypeError, match="cannot be served") as caught:
        app.agent("bad")(handler)
    assert words in str(caught.value)
    assert "async def agent(messages, stream=False)" in str(caught.value)
    assert "bad" not in app.static_agents
    with pytest.raises(TypeError, match=r"agents\[0\]: agent handler no_params\(\)"):
        Server(agents=[no_params])


def test_handlers_naming_only_documented_parameters_are_accepted() -> None:
    app = ServerBase()

    def sync_all(messages: Any, stream: bool, context: Any, request: Any, agent_data: Any) -> str:
        return "ok"

    async def star_args(*args: Any, **kwargs: Any) -> str:
        return "ok"

    for i, fn in enumerate((sync_all, star_args, MockAgent("m").run)):
        app.agent(f"ok-{i}")(fn)
    assert len(app.static_agents) == 3
