"""The playground page as the server serves it: routes, switches, headers, what it embeds.

What the page does in a browser is in test_playground_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from robutler.server import Server, ServerBase
from robutler_testing import MockAgent

ROOT = Path(__file__).resolve().parent.parent
UI_FILES = ("playground.html", "playground.css", "playground.js")


def make_app(**kwargs: Any) -> Server:
    app = Server(agents=[MockAgent("echo"), MockAgent("stream")], **kwargs)

    async def find(name: str) -> Any:
        return {"greeting": "Arr"} if name == "pirate" else False

    @app.agent(find)
    async def persona(messages: Any, stream: bool = False, agent_data: Any = None) -> str:
        return f"{agent_data['greeting']}!"

    return app


def config_of(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="robutler-config">(.*?)</script>', page, re.S
    )
    assert found, "the page has no config block"
    return json.loads(found.group(1))


def assert_openai_404(response: Any, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "not_found_error"
    assert error["code"] == code


@pytest.fixture
def client() -> Any:
    with TestClient(make_app()) as c:
        yield c


def test_playground_page_is_html_with_the_agents(client: Any) -> None:
    response = client.get("/playground")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text.startswith("<!doctype html>")
    config = config_of(response.text)
    assert config["agents"] == ["echo", "stream"]
    assert config["dynamic"] is True
    assert config["keys"] is False
    assert config["agent"] is None
    assert config["models"] == "/v1/models"  # the front door lists every agent
    assert config["base"] == ""


def test_playground_without_the_front_door_keeps_its_own_list() -> None:
    with TestClient(make_app(openai_prefix=None)) as c:
        assert config_of(c.get("/playground").text)["models"] is None


def test_agent_playground_opens_on_that_agent(client: Any) -> None:
    for name in ("stream", "pirate"):  # static and dynamic
        response = client.get(f"/{name}/playground")
        assert response.status_code == 200, name
        assert config_of(response.text)["agent"] == name


def test_unknown_agent_playground_is_an_openai_404(client: Any) -> None:
    assert_openai_404(client.get("/nobody/playground"), "agent_not_found")


def test_playground_false_turns_it_off() -> None:
    with TestClient(make_app(playground=False)) as c:
        for path in ("/playground", "/echo/playground", "/pirate/playground"):
            response = c.get(path)
            assert_openai_404(response, "playground_off")
            assert "playground=True" in response.json()["error"]["message"]
        # the agents still work
        body = {"messages": [{"role": "user", "content": "hi"}]}
        assert c.post("/echo/chat/completions", json=body).status_code == 200


def test_api_keys_turn_it_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(make_app(api_keys=["sk-test"])) as c:
        assert_openai_404(c.get("/playground"), "playground_off")
        assert_openai_404(c.get("/playground/server"), "playground_off")
    monkeypatch.setenv("ROBUTLER_API_KEYS", "sk-env")
    with TestClient(make_app()) as c:
        assert_openai_404(c.get("/playground"), "playground_off")
    with TestClient(make_app(playground=True)) as c:
        response = c.get("/playground")  # the page itself wants no key ...
        assert response.status_code == 200
        assert config_of(response.text)["keys"] is True  # ... and tells the page that routes do
        chat = c.post(
            "/echo/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert chat.status_code == 401
        # with keys, resolvers are not asked on behalf of an unauthenticated page visitor
        assert c.get("/anyone/playground").status_code == 200


SECRET_NAMES = ("zeta-secret-agent", "omega-hidden-bot")


def test_keyed_page_shows_nothing_of_the_server_until_a_key_is_given() -> None:
    asked: list[str] = []
    app = Server(
        agents=[MockAgent(name) for name in SECRET_NAMES],
        api_keys=["sk-right"],
        playground=True,
        title="Hidden Corp Internal",
    )

    async def find(name: str) -> Any:
        asked.append(name)
        return name == "pirate"

    app.agent(find)(lambda messages: "Arr")
    with TestClient(app) as c:
        names = (*SECRET_NAMES, "pirate", "nobody")
        pages = [c.get(path) for path in ("/playground", *(f"/{n}/playground" for n in names))]
        for page in pages:
            assert page.status_code == 200, page.text  # no answer tells that a name exists
            config = config_of(page.text)
            shown = page.text.replace(f'"agent":"{config["agent"]}"', "")
            for secret in (*SECRET_NAMES, "Hidden Corp"):
                assert secret not in shown
            assert config["agents"] == []
            assert config["title"] is None
            assert config["dynamic"] is False
            assert config["keys"] is True
            assert config["info"] == "/playground/server"
        assert config_of(pages[1].text)["agent"] == SECRET_NAMES[0]
        assert asked == []  # no resolver was asked on behalf of a visitor without a key
        # what the page learns once a key is entered
        missing = c.get("/playground/server")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_api_key"
        wrong = c.get("/playground/server", headers={"authorization": "Bearer sk-wrong"})
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        info = c.get("/playground/server", headers={"authorization": "Bearer sk-right"})
        assert info.status_code == 200
        assert info.headers["cache-control"] == "no-store"
        assert info.json() == {
            "title": "Hidden Corp Internal",
            "agents": sorted(SECRET_NAMES),
            "dynamic": True,
            "keys": True,
            "models": "/v1/models",
        }


def test_server_info_without_keys_is_the_page_config() -> None:
    with TestClient(make_app()) as c:
        info = c.get("/playground/server").json()
        config = config_of(c.get("/playground").text)
        assert info == {k: config[k] for k in ("title", "agents", "dynamic", "keys", "models")}
        assert c.post("/playground/server").status_code == 405


def test_agent_playground_checks_the_name_like_every_agent_route() -> None:
    asked: list[str] = []
    app = ServerBase()

    async def find(name: str) -> Any:
        asked.append(name)
        return False

    app.agent(find)(lambda messages: "x")
    bad = ["it's", "a%00b", "x" * 5000, "sp%20ace", "%22quoted%22", "-dash", "a<b"]
    with TestClient(app) as c:
        for name in bad:
            assert_openai_404(c.get(f"/{name}/playground"), "unknown_url")
            # what an agent route answers for that name
            chat = c.post(f"/{name}/chat/completions", json={"messages": []})
            assert chat.json()["error"]["code"] == "unknown_url", name
        assert asked == []  # no resolver saw any of them
        assert_openai_404(c.get("/nobody/playground"), "agent_not_found")
        assert asked == ["nobody"]


def test_playground_is_a_reserved_agent_name() -> None:
    app = ServerBase()
    with pytest.raises(ValueError, match="collides with the server route /playground"):
        app.agent("playground")(lambda messages: "x")
    with pytest.raises(ValueError, match="/playground"):
        Server(agents={"playground": MockAgent("x")})


def test_playground_option_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="playground must be True, False or None"):
        ServerBase(playground="yes")  # type: ignore[arg-type]


def test_only_get_and_head(client: Any) -> None:
    response = client.post("/playground")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
    head = client.head("/echo/playground")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(client.get("/echo/playground").content)


def test_page_has_no_external_references(client: Any) -> None:
    page = client.get("/playground").text
    assert "http://" not in page
    assert "https://" not in page
    for attr, value in re.findall(r'\b(src|href|action)\s*=\s*"([^"]*)"', page):
        assert value.startswith("data:"), f"{attr}={value!r} would load something"
    assert not re.search(r"url\(|@import|//cdn|<link[^>]+stylesheet", page)
    assert "<script src" not in page


def test_csp_allows_exactly_the_inline_script_and_style(client: Any) -> None:
    response = client.get("/playground")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.S)
    styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert f"script-src {digest(scripts[0])};" in csp
    assert f"style-src {digest(styles[0])};" in csp
    assert "unsafe-inline" not in csp


def test_config_is_escaped_inside_the_script_element() -> None:
    title = "</script><script>alert(1)</script>"
    with TestClient(Server(agents=[MockAgent("echo")], title=title)) as c:
        page = c.get("/playground").text
    assert title not in page
    assert config_of(page)["title"] == title


def test_models_route_and_root_path_reach_the_page() -> None:
    app = make_app()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": []}

    with TestClient(app, root_path="/api") as c:
        config = config_of(c.get("/playground").text)
    assert config["models"] == "/v1/models"
    assert config["base"] == "/api"


def test_ui_files_are_package_data_in_the_wheel(built_wheel: Path) -> None:
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in UI_FILES:
        assert f"robutler/server/playground_ui/{name}" in names


def test_serve_banner_prints_the_playground_url_when_it_is_on() -> None:
    from robutler.cli import _banner

    assert "  playground         http://127.0.0.1:8000/playground" in _banner(
        make_app(), "127.0.0.1", 8000
    )
    assert "/playground" not in _banner(make_app(playground=False), "127.0.0.1", 8000)
    assert "/playground" not in _banner(make_app(api_keys=["sk-x"]), "127.0.0.1", 8000)
