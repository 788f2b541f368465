"""Every path answers in OpenAI's shape: the model object, unknown paths under an agent, `/`."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Match, NoMatchFound, Route

from robutler.server import ServerBase
from robutler.server.routes import RouteTable
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


# the route table: robutler's own routes, looked up -----------------------------------


def test_static_routes_are_one_table_first_in_the_router() -> None:
    app = make_app()
    for i in range(20):

        @app.agent(f"extra-{i}")
        async def extra(messages: list[dict[str, Any]]) -> str:
            return "x"

    table = app.router.routes[0]
    assert isinstance(table, RouteTable)
    # every agent route is in the table, none in the list the router walks
    assert not [r for r in app.router.routes if "agent:" in (getattr(r, "name", "") or "")]
    assert app.url_path_for("agent:extra-7:chat") == "/extra-7/chat/completions"
    assert app.url_path_for("agent:assistant:stored", response_id="resp_1") == (
        "/assistant/responses/resp_1"
    )
    with pytest.raises(NoMatchFound):
        app.url_path_for("agent:assistant:stored")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/a/chat/completions", {}),
        ("/a/responses/resp_1", {"response_id": "resp_1"}),
        ("/a/models/org/model-x", {"model_id": "org/model-x"}),
        ("/a/models/", {"model_id": ""}),
        ("/api/v1/responses/r2", {"response_id": "r2"}),
        ("/api/v1/models/m/n", {"model_id": "m/n"}),
    ],
)
def test_the_table_matches_like_starlettes_patterns(path: str, params: dict[str, str]) -> None:
    table, routes = _table_and_routes()
    scope = {"type": "http", "path": path, "root_path": "", "path_params": {}}
    match, child = table.matches(scope)
    assert match == Match.FULL and child.get("path_params", {}) == params
    expected = [r for r in routes if r.matches(scope)[0] == Match.FULL]
    assert child["endpoint"] is expected[0].endpoint


@pytest.mark.parametrize(
    "path", ["/a/responses/", "/a/responses/x/y", "/a/chat", "/b/chat/completions", "/", "/a"]
)
def test_the_table_leaves_other_paths_to_the_router(path: str) -> None:
    table, routes = _table_and_routes()
    scope = {"type": "http", "path": path, "root_path": "", "path_params": {}}
    assert table.matches(scope)[0] == Match.NONE
    assert not [r for r in routes if r.matches(scope)[0] == Match.FULL]
    assert table.matches({"type": "websocket", "path": "/a/chat/completions"})[0] == Match.NONE


def _table_and_routes() -> tuple[RouteTable, list[Route]]:
    """A table and the Starlette routes it stands for, with the same apps."""
    table = RouteTable()
    routes = []
    for path in (
        "/a/chat/completions",
        "/a/responses/{response_id}",
        "/a/models/{model_id:path}",
        "/api/v1/responses/{response_id}",
        "/api/v1/models/{model_id:path}",
    ):

        async def app(scope: Any, receive: Any, send: Any) -> None:  # one object per path
            raise AssertionError("not called")

        table.add(path, app, path)
        routes.append(Route(path, _Asgi(app)))
    for route in routes:
        route.endpoint = route.app.app  # compare the apps themselves
    return table, routes


class _Asgi:
    """An ASGI app object (so that Starlette's Route does not wrap it as an endpoint)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def test_a_table_parameter_is_only_the_last_segment() -> None:
    table = RouteTable()
    with pytest.raises(ValueError, match="last segment"):
        table.add("/{name}/chat", _Asgi(None), "x")
    with pytest.raises(ValueError, match="name:path"):
        table.add("/a/{n:int}", _Asgi(None), "y")


def test_user_routes_and_health_still_answer_next_to_the_table() -> None:
    app = make_app()

    @app.get("/custom/{item}")
    async def custom(item: str) -> dict[str, str]:
        return {"item": item}

    with TestClient(app) as client:
        assert client.get("/custom/7").json() == {"item": "7"}
        assert client.get("/health").status_code == 200
        assert client.get("/assistant").json()["name"] == "assistant"
        assert client.get("/assistant/models/assistant").json()["id"] == "assistant"
        missing = client.get("/assistant/models/org/m")
        assert missing.status_code == 404 and "'org/m'" in missing.json()["error"]["message"]
        assert client.get("/dyn-x/models/dyn-x").json()["id"] == "dyn-x"
