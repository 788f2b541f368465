"""Every path answers in OpenAI's shape: the model object, unknown paths under an agent, `/`."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from robutler.server import ServerBase
from robutler_testing import LiveServer


def make_app() -> ServerBase:
    app = ServerBase()

    @app.agent("assistant")
    async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "hi"

    @app.agent(lambda name: name.startswith("dyn-") and {"name": name})
    async def dynamic(messages: list[dict[str, Any]], agent_data: Any = None) -> str:
        return agent_data["name"]

    return app


@pytest.mark.parametrize("agent", ["assistant", "dyn-one"])
def test_models_retrieve_answers_the_model_object(agent: str) -> None:
    with LiveServer(make_app()) as server:
        client = openai.OpenAI(base_url=f"{server.url}/{agent}", api_key="unused", max_retries=0)
        model = client.models.retrieve(agent)
        assert (model.id, model.object, model.owned_by) == (agent, "model", "robutler")
        assert [m.id for m in client.models.list()] == [agent]
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("gpt-unknown")
        client.close()
    error: Any = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-unknown'" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("POST", "/"),
        ("GET", "/assistant/nothing"),
        ("POST", "/assistant/chat"),
        ("GET", "/assistant/chat/completions/extra"),
        ("GET", "/dyn-one/embeddings"),
        ("POST", "/a/b/c/d"),
        ("GET", "/health/x"),
    ],
)
def test_unknown_paths_answer_an_openai_shaped_404(method: str, path: str) -> None:
    with TestClient(make_app()) as client:
        response = client.request(method, path)
    assert response.status_code == 404, response.text
    body = response.json()
    assert set(body) == {"error"}, f"not OpenAI's shape: {body!r}"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "unknown_url"
    assert f"({method} {path})" in body["error"]["message"]
    assert "/NAME/chat/completions" in body["error"]["message"]
