"""`n`: one choice unless the agent was registered to answer `n` itself (`choices=True`)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from helpers import post

from robutler.server import ServerBase
from robutler_testing import LiveServer, validate_completion, validate_stream


def make_app(ran: list[int]) -> ServerBase:
    app = ServerBase()

    @app.agent("single")
    async def single(messages: list[dict[str, Any]], stream: bool = False) -> str:
        ran.append(1)
        return "one"

    @app.agent("many", choices=True)
    async def many(messages: list[dict[str, Any]], n: int = 1) -> list[str]:
        ran.append(n)
        return [f"choice {i}" for i in range(n)]

    async def as_completion(messages: list[dict[str, Any]], n: int = 1) -> dict[str, Any]:
        return {
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": f"c{i}"}} for i in range(n)
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": 1 + n},
        }

    app.add_agent("completion", as_completion, choices=True)

    @app.agent("miscounts", choices=True)
    async def miscounts(messages: list[dict[str, Any]], n: int = 1) -> list[str]:
        return ["just one"]

    return app


@pytest.mark.parametrize("stream", [False, True])
def test_n_above_one_is_rejected_before_an_ordinary_agent_runs(stream: bool) -> None:
    ran: list[int] = []
    with TestClient(make_app(ran)) as client:
        response = post(client, "single", n=3, stream=stream)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == ("n", "unsupported_value")
        assert "'n' must be 1, got 3" in error["message"]
        assert ran == []
        assert post(client, "single", n=1).status_code == 200
    assert ran == [1]


def test_the_official_client_sees_a_bad_request_for_n() -> None:
    with LiveServer(make_app([])) as server:
        client = openai.OpenAI(base_url=f"{server.url}/single", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], n=2
            )
        client.close()
    assert caught.value.param == "n"


@pytest.mark.parametrize("agent", ["many", "completion"])
def test_a_choices_agent_answers_n_choices_json_and_streamed(agent: str) -> None:
    with LiveServer(make_app([])) as server:
        client = openai.OpenAI(base_url=f"{server.url}/{agent}", api_key="x", max_retries=0)
        hi: Any = [{"role": "user", "content": "hi"}]
        completion = client.chat.completions.create(model="m", messages=hi, n=3)
        texts = [c.message.content for c in completion.choices]
        assert [c.index for c in completion.choices] == [0, 1, 2]
        assert len(set(texts)) == 3
        streamed: dict[int, str] = {}
        for chunk in client.chat.completions.create(model="m", messages=hi, n=3, stream=True):
            for choice in chunk.choices:
                streamed[choice.index] = streamed.get(choice.index, "") + (
                    choice.delta.content or ""
                )
        assert [streamed[i] for i in range(3)] == texts
        assert len(client.chat.completions.create(model="m", messages=hi).choices) == 1
        client.close()


def test_choices_answers_pass_the_validators() -> None:
    with TestClient(make_app([])) as client:
        body = validate_completion(post(client, "many", n=2).json())
        assert [c["message"]["content"] for c in body["choices"]] == ["choice 0", "choice 1"]
        report = validate_stream(post(client, "many", n=2, stream=True).text)
        assert report.content == "choice 0"


@pytest.mark.parametrize("stream", [False, True])
def test_a_choices_agent_answering_the_wrong_number_is_a_500(stream: bool) -> None:
    with TestClient(make_app([])) as client:
        response = post(client, "miscounts", n=2, stream=stream)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "unsupported_result"
    assert "asked for n=2 choices and returned a list of 1" in error["message"]


def test_choices_agent_without_an_n_parameter_fails_at_registration() -> None:
    app = ServerBase()

    async def no_n(messages: list[dict[str, Any]]) -> str:
        return ""

    with pytest.raises(TypeError, match=r"choices=True.*add a parameter `n: int = 1`"):
        app.agent("x", choices=True)(no_n)
    with pytest.raises(TypeError, match="choices=True"):
        app.add_agent("y", no_n, choices=True)
