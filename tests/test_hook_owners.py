"""Hook-based auth separates users as API keys do (issue #24, item 4), live.

An app that authenticates in a `before_request` hook (the README's X-User example) and
names the user `current_context().owner`: its hooks run on the stored-response routes
too, and what one user stored is another user's 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import HTTPException

from robutler.server import ServerBase, current_context
from robutler_testing.live import LiveServer

SEEN: list[tuple[str, str]] = []  # (method, path) of every request the hook saw


def make_app() -> ServerBase:
    app = ServerBase()

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"{len(messages)} messages"

    @app.agent.before_request
    def user(request: Any) -> None:
        SEEN.append((request.method, request.url.path))
        name = request.headers.get("x-user")
        if not name:
            raise HTTPException(401, "Send an X-User header.")
        current_context().owner = name

    return app


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with LiveServer(make_app()) as server:
        yield server.url


def as_user(base: str, name: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base}/v1", api_key="unused", max_retries=0, default_headers={"x-user": name}
    )


@pytest.mark.parametrize("route", ["/v1/responses/{id}", "/echo/responses/{id}"])
def test_stored_responses_are_the_hook_users_own(live: str, route: str) -> None:
    alice, bob = as_user(live, "alice"), as_user(live, "bob")
    made = alice.responses.create(model="echo", input="secret plans")
    url = live + route.format(id=made.id)
    # Without the header the hook refuses every route, reads included.
    for method in ("GET", "DELETE"):
        assert httpx.request(method, url).status_code == 401
    assert ("GET", route.format(id=made.id)) in SEEN
    # Another user: not found, as with another key; the owner reads it.
    assert httpx.get(url, headers={"x-user": "bob"}).status_code == 404
    assert httpx.delete(url, headers={"x-user": "bob"}).status_code == 404
    assert httpx.get(url, headers={"x-user": "alice"}).json()["id"] == made.id
    with pytest.raises(openai.BadRequestError):
        bob.responses.create(model="echo", input="go on", previous_response_id=made.id)
    again = alice.responses.create(model="echo", input="go on", previous_response_id=made.id)
    assert again.output_text == "3 messages"
    assert httpx.delete(url, headers={"x-user": "alice"}).json()["deleted"] is True
    assert httpx.get(url, headers={"x-user": "alice"}).status_code == 404


def test_a_hook_that_sets_no_owner_leaves_the_key_owner() -> None:
    """With keys and a hook that names no owner, the key's owner still applies."""
    app = ServerBase(api_keys={"one": "sk-one-0123456789", "two": "sk-two-0123456789"})

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "ok"

    @app.agent.before_request
    def nothing(request: Any) -> None:
        SEEN.append((request.method, "keyed"))

    with LiveServer(app) as server:
        one = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-one-0123456789")
        made = one.responses.create(model="echo", input="hi")
        url = f"{server.url}/v1/responses/{made.id}"
        assert (
            httpx.get(url, headers={"authorization": "Bearer sk-two-0123456789"}).status_code == 404
        )
        assert (
            httpx.get(url, headers={"authorization": "Bearer sk-one-0123456789"}).status_code == 200
        )
        assert ("GET", "keyed") in SEEN
