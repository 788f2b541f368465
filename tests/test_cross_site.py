"""Cross-site posts and DNS rebinding on a loopback server (issue #24, item 6), live.

A web page the user visits can post a `text/plain` form or a `no-cors` fetch to
127.0.0.1 without a CORS preflight, and a rebound DNS name reaches it with its own Host.
Bodies must be `application/json` (which browsers only send cross-site after a
preflight), and a server on a loopback address answers only to loopback Host names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from robutler.server import ServerBase
from robutler_testing.live import LiveServer

RUNS: list[str] = []


def make_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(**kwargs)

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        RUNS.append(str(messages[-1]["content"]))
        return "ok"

    return app


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with LiveServer(make_app(allowed_hosts=["robutler.example"])) as server:
        yield server.url


BODY = b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "input": "x"}'


@pytest.mark.parametrize("path", ["/echo/chat/completions", "/v1/responses", "/echo/responses"])
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ],
)
def test_a_post_body_must_be_json(live: str, path: str, content_type: str | None) -> None:
    before = len(RUNS)
    headers = {"content-type": content_type} if content_type else {}
    request = httpx.Request("POST", f"{live}{path}", content=BODY, headers=headers)
    assert request.headers.get("content-type") == content_type  # httpx adds none of its own
    response = httpx.Client().send(request)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    assert len(RUNS) == before, "the agent ran"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_bodies_are_served(live: str, content_type: str) -> None:
    response = httpx.post(
        f"{live}/echo/chat/completions", content=BODY, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/echo/chat/completions", "/health", "/v1/models"])
@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example", ""],
)
def test_a_loopback_server_refuses_other_host_names(live: str, path: str, host: str) -> None:
    before = len(RUNS)
    method = "POST" if path.endswith("completions") else "GET"
    response = httpx.request(
        method,
        f"{live}{path}",
        content=BODY,
        headers={"host": host, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_host" and "allowed_hosts" in error["message"]
    assert len(RUNS) == before


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "app.localhost:{port}",
        "[::1]:{port}",
        "robutler.example",
        "robutler.example:{port}",
    ],
)
def test_loopback_names_and_allowed_hosts_are_served(live: str, host: str) -> None:
    port = live.rsplit(":", 1)[1]
    response = httpx.post(
        f"{live}/echo/chat/completions",
        content=BODY,
        headers={"host": host.format(port=port), "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_a_stored_response_is_not_read_through_a_rebound_name(live: str) -> None:
    made = httpx.post(
        f"{live}/v1/responses", content=BODY, headers={"content-type": "application/json"}
    )
    rid = made.json()["id"]
    assert httpx.get(f"{live}/v1/responses/{rid}").status_code == 200
    rebound = httpx.get(f"{live}/v1/responses/{rid}", headers={"host": "evil.example"})
    assert rebound.status_code == 400


def test_the_in_process_test_client_is_not_a_loopback_bind() -> None:
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as client:  # its Host is "testserver"
        assert client.get("/health").status_code == 200
