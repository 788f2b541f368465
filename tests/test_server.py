"""Server(agents=[...]): duck-typed agents, callables, mappings, construction errors."""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import post, sse_events, stream_content

from robutler.server import Server
from robutler_testing import MockAgent


class RunOnlySync:
    name = "run-only-sync"

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def run(self, messages: list[dict[str, Any]]) -> str:
        self.calls.append(messages)
        return f"sync saw {len(messages)} messages"


class RunOnlyAsync:
    name = "run-only-async"

    async def run(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"role": "assistant", "content": "async message"}


class FinalOutput:
    name = "final"
    model = "final-model"

    async def run(self, messages: list[dict[str, Any]]) -> Any:
        return SimpleNamespace(final_output="from final_output")


class BothModes:
    """Streams with run_streamed, answers with run."""

    name = "both"

    def __init__(self) -> None:
        self.used: list[str] = []

    async def run(self, messages: list[dict[str, Any]]) -> str:
        self.used.append("run")
        return "whole answer"

    def run_streamed(self, messages: list[dict[str, Any]]) -> Any:
        self.used.append("run_streamed")

        async def events() -> AsyncIterator[Any]:
            for piece in ["whole ", "answer"]:
                chunk = {
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]
                }
                yield SimpleNamespace(type="chunk", data=SimpleNamespace(chunk=chunk))

        return SimpleNamespace(stream_events=events)


class NoName:
    def run(self, messages: list[dict[str, Any]]) -> str:
        return ""


async def plain_function(messages: list[dict[str, Any]], stream: bool = False) -> str:
    return "from a function"


def test_agents_list_is_kept_and_defaults_to_empty() -> None:
    agents = [RunOnlySync(), RunOnlyAsync()]
    assert Server(agents=agents).agents == agents
    assert Server().agents == []
    assert Server(agents=None).agents == []


def test_each_kind_of_agent_is_served_both_ways() -> None:
    sync_agent, both = RunOnlySync(), BothModes()
    server = Server(
        agents=[sync_agent, RunOnlyAsync(), FinalOutput(), both, plain_function],
        title="many",
    )
    assert server.title == "many"
    expected = {
        "run-only-sync": "sync saw 1 messages",
        "run-only-async": "async message",
        "final": "from final_output",
        "both": "whole answer",
        "plain_function": "from a function",
    }
    with TestClient(server) as client:
        for name, content in expected.items():
            body = post(client, name).json()
            assert body["choices"][0]["message"]["content"] == content, name
            events = sse_events(post(client, name, stream=True).text)
            assert stream_content(events[:-1]) == content, name
            assert events[-1] == "[DONE]"
        assert post(client, "final").json()["model"] == "final-model"
        assert (
            client.get("/both").json()["description"]
            == "Streams with run_streamed, answers with run."
        )
    assert both.used == ["run", "run_streamed"]
    assert len(sync_agent.calls) == 2


def test_mapping_names_the_routes() -> None:
    server = Server(agents={"renamed": RunOnlySync()})
    with TestClient(server) as client:
        assert post(client, "renamed").status_code == 200
        assert post(client, "run-only-sync").status_code == 404


@pytest.mark.parametrize(
    ("agents", "error", "words"),
    [
        ([42], TypeError, r"agents\[0\]: cannot serve 42 \(type int\).*Agents SDK Agent"),
        (["a string"], TypeError, r"agents\[0\]: cannot serve 'a string'"),
        (
            [RunOnlySync(), RunOnlySync()],
            ValueError,
            r"agents\[1\].*'run-only-sync' is already taken.*\{'run-only-sync-2': agent\}",
        ),
        (
            [SimpleNamespace(name="My Agent!", run=lambda m: "")],
            ValueError,
            r"'My Agent!' is not URL-safe. Name it like 'my-agent'.*\{'my-agent': agent\}",
        ),
        (
            [SimpleNamespace(name="health", run=lambda m: "")],
            ValueError,
            r"collides with the server route /health",
        ),
        ([SimpleNamespace(name="docs", run=lambda m: "")], ValueError, r"collides"),
        ({"openapi.json": RunOnlySync()}, ValueError, r"agents\['openapi.json'\].*collides"),
        (
            [MockAgent("")],
            ValueError,
            r"its name '' is empty. Name it like 'mock-agent'.*Server\(agents=\{'mock-agent': agent\}\)",
        ),
        (
            [NoName()],
            ValueError,
            r"a NoName .*it has no `name`.* Name it like 'no-name'.*\{'no-name': agent\}",
        ),
        ("not-a-list", TypeError, r"takes a list of agents or a mapping"),
    ],
)
def test_construction_errors_say_how_to_fix(
    agents: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        Server(agents=agents)


def test_naming_errors_never_suggest_a_repr_slug() -> None:
    for agents in ([MockAgent("")], [NoName()], [SimpleNamespace(name="__", run=len)]):
        with pytest.raises(ValueError) as caught:
            Server(agents=agents)
        suggestion = str(caught.value).split("Name it like ", 1)[1].split(" ", 1)[0]
        assert re.fullmatch(r"'[a-z][a-z-]*'", suggestion), caught.value


def test_object_without_name_uses_str() -> None:
    class Named:
        def __str__(self) -> str:
            return "by-str"

        def run(self, messages: list[dict[str, Any]]) -> str:
            return "ok"

    server = Server(agents=[Named()])
    assert list(server.static_agents) == ["by-str"]


def test_robutler_server_alias_warns() -> None:
    import robutler

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = robutler.RobutlerServer
    assert alias is Server
    assert any("use robutler.server.Server" in str(w.message) for w in caught)
    with pytest.raises(AttributeError):
        robutler.NoSuchThing  # noqa: B018


def test_server_core_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, robutler, robutler.server, robutler.cli;"
        "from robutler.server import Server; Server(agents={'x': lambda m, stream=False: 'x'});"
        "heavy = [m for m in ('agents', 'robutler_testing', 'hypothesis', 'respx', 'openai') if m in sys.modules];"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
