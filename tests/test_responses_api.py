"""The Responses API per agent and the /v1 front door, through the ASGI app.

Every answer is checked with robutler_testing's strict Responses validators; the request
flow is the one chat completions use (keys, hooks, resolution, finalize exactly once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from helpers import JSON_TYPE, ASGICall
from starlette.responses import JSONResponse

from robutler.server import Server, ServerBase, StreamingWrapper, current_context, pricing
from robutler.server.store import MemoryStore, ResponseStore
from robutler_testing import (
    MockAgent,
    validate_completion,
    validate_response,
    validate_response_stream,
)

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


async def agen_str() -> AsyncIterator[str]:
    for piece in ["Hel", "lo", " world"]:
        yield piece


def gen_chunks() -> Iterator[dict[str, Any]]:
    yield chunk("")
    yield chunk("Hello")
    yield chunk(" world")
    yield chunk(finish="stop", usage=USAGE)


class Events:
    def stream_events(self) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[Any]:
            for c in gen_chunks():
                yield SimpleNamespace(type="chunk", data=SimpleNamespace(chunk=c))

        return events()


RESULTS = {
    "text": (lambda: "Hello world", "Hello world", None),
    "message": (lambda: {"role": "assistant", "content": "Hello world"}, "Hello world", None),
    "completion": (
        lambda: {
            "choices": [{"message": {"role": "assistant", "content": "Hello world"}}],
            "usage": USAGE,
        },
        "Hello world",
        USAGE,
    ),
    "async-iter-str": (agen_str, "Hello world", None),
    "iter-chunks": (gen_chunks, "Hello world", USAGE),
    "stream-events": (Events, "Hello world", USAGE),
    "final-output": (lambda: SimpleNamespace(final_output="Hello world"), "Hello world", None),
}


def make_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(**kwargs)
    for name, (make, _, _) in RESULTS.items():
        app.add_agent(name, lambda messages, stream=False, make=make: make())
    return app


@pytest.fixture
def client() -> Any:
    with TestClient(make_app()) as c:
        yield c


def respond(client: Any, path: str, **body: Any) -> Any:
    body.setdefault("input", "hi")
    return client.post(path, json=body)


# every result kind, JSON and streamed -----------------------------------------------------


@pytest.mark.parametrize("name", list(RESULTS))
def test_every_result_kind_as_a_response(client: Any, name: str) -> None:
    _, text, usage = RESULTS[name]
    got = respond(client, f"/{name}/responses")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/json"
    body = validate_response(got.content)
    assert body["id"].startswith("resp_") and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == text
    if usage is None:
        assert body["usage"] is None
    else:
        assert body["usage"]["input_tokens"] == 3 and body["usage"]["total_tokens"] == 5


@pytest.mark.parametrize("name", list(RESULTS))
def test_every_result_kind_as_a_stream(client: Any, name: str) -> None:
    _, text, usage = RESULTS[name]
    with client.stream("POST", f"/{name}/responses", json={"input": "hi", "stream": True}) as got:
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/event-stream")
        parts = list(got.iter_bytes())
    report = validate_response_stream(parts, expect_usage=usage is not None)
    assert report.text == text and report.status == "completed"


def test_text_deltas_pass_through_as_the_agent_yields_them(client: Any) -> None:
    got = respond(client, "/async-iter-str/responses", stream=True)
    report = validate_response_stream(got.text)
    deltas = [e["delta"] for e in report.events if e["type"] == "response.output_text.delta"]
    assert deltas == ["Hel", "lo", " world"]


def test_tool_calls_become_function_call_items() -> None:
    app = ServerBase()

    @app.agent("caller")
    async def caller(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return {"role": "assistant", "content": None, "tool_calls": [CALL]}

    with TestClient(app) as c:
        body = validate_response(respond(c, "/caller/responses").content)
        report = validate_response_stream(respond(c, "/caller/responses", stream=True).text)
    assert [(i["type"], i["call_id"], i["name"]) for i in body["output"]] == [
        ("function_call", "call_1", "lookup")
    ]
    assert report.tool_calls[0]["arguments"] == '{"q": "x"}'


def test_a_starlette_response_passes_through() -> None:
    app = ServerBase()

    @app.agent("raw")
    async def raw(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        return JSONResponse({"mine": True}, status_code=201)

    with TestClient(app) as c:
        got = respond(c, "/raw/responses")
    assert (got.status_code, got.json()) == (201, {"mine": True})


def test_the_handler_gets_the_conversation_as_chat_messages() -> None:
    app = ServerBase()
    seen: list[Any] = []

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> str:
        seen.append(messages)
        return "ok"

    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    with TestClient(app) as c:
        assert (
            respond(c, "/echo/responses", input=items, instructions="Be brief.").status_code == 200
        )
    assert seen == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
    ]


def test_the_agents_model_names_the_response() -> None:
    app = Server(agents=[MockAgent("mocky", reply="hi there")])
    with TestClient(app) as c:
        body = validate_response(respond(c, "/mocky/responses", model="ignored").content)
        report = validate_response_stream(respond(c, "/mocky/responses", stream=True).text)
    assert body["model"] == "mock-model" and report.model == "mock-model"
    assert report.text == "hi there"


# errors --------------------------------------------------------------------------------


def assert_error(got: Any, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert got.status_code == status, got.text
    error = got.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def test_invalid_body_is_a_422_naming_the_field(client: Any) -> None:
    assert_error(client.post("/text/responses", json={"input": 5}), 422, param="input")
    bad = {"input": [{"role": "user", "content": [{"type": "nope"}]}]}
    assert_error(client.post("/text/responses", json=bad), 422, param="input[0].content[0].type")
    assert_error(
        client.post("/text/responses", content=b"{", headers=JSON_TYPE), 422, code="invalid_json"
    )


def test_unknown_agent_and_wrong_method(client: Any) -> None:
    assert_error(respond(client, "/nobody/responses"), 404, code="agent_not_found")
    error = assert_error(client.get("/text/responses"), 405, code="method_not_allowed")
    assert "POST" in error["message"]


def test_failure_before_the_first_event_is_an_http_500() -> None:
    app = ServerBase()

    @app.agent("broken")
    async def broken(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        raise RuntimeError("secret detail")

    with TestClient(app) as c:
        for stream in (False, True):
            error = assert_error(respond(c, "/broken/responses", stream=stream), 500, "agent_error")
            assert "secret" not in error["message"]


def test_failure_mid_stream_is_response_failed() -> None:
    app = ServerBase()

    @app.agent("half")
    async def half(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        yield "Half an "
        raise RuntimeError("boom")

    with TestClient(app) as c:
        report = validate_response_stream(respond(c, "/half/responses", stream=True).text)
    assert report.status == "failed" and report.event_types[-1] == "response.failed"
    assert report.error is not None and report.error["code"] == "server_error"
    assert "The agent failed." in report.error["message"]
    assert report.text == "Half an "


def test_api_keys_guard_the_responses_routes() -> None:
    with TestClient(make_app(api_keys={"alice": "sk-a"})) as c:
        assert_error(respond(c, "/text/responses"), 401, "missing_api_key")
        assert_error(c.get("/text/responses/resp_x"), 401, "missing_api_key")
        assert_error(respond(c, "/v1/responses", model="text"), 401, "missing_api_key")
        assert_error(c.get("/v1/models"), 401, "missing_api_key")
        ok = c.post(
            "/v1/responses",
            json={"model": "text", "input": "hi"},
            headers={"authorization": "Bearer sk-a"},
        )
        assert ok.status_code == 200


# stored responses -------------------------------------------------------------------------


def conversation_app(**kwargs: Any) -> tuple[ServerBase, list[Any]]:
    app = ServerBase(**kwargs)
    seen: list[Any] = []

    @app.agent("count")
    async def count(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        seen.append(messages)
        reply = f"turn {sum(m['role'] == 'user' for m in messages)}"
        if stream:
            return (piece for piece in [reply[:2], reply[2:]])
        return reply

    return app, seen


@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_continues_the_conversation(stream: bool) -> None:
    app, seen = conversation_app()

    def turn(c: Any, text: str, **body: Any) -> dict[str, Any]:
        got = respond(c, "/count/responses", input=text, stream=stream, **body)
        if stream:
            report = validate_response_stream(got.text)
            assert report.response is not None
            return report.response
        return validate_response(got.content)

    with TestClient(app) as c:
        first = turn(c, "one", instructions="Count the turns.")
        second = turn(c, "two", previous_response_id=first["id"])
        third = turn(c, "three", previous_response_id=second["id"], instructions="Still.")
    assert [r["output"][0]["content"][0]["text"] for r in (first, second, third)] == [
        "turn 1",
        "turn 2",
        "turn 3",
    ]
    assert second["previous_response_id"] == first["id"]
    assert seen[1] == [  # instructions are not carried over to the next turn
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "turn 1"},
        {"role": "user", "content": "two"},
    ]
    assert seen[2][0] == {"role": "system", "content": "Still."}
    assert [m["content"] for m in seen[2][1:]] == ["one", "turn 1", "two", "turn 2", "three"]


@pytest.mark.parametrize("stream", [False, True])
def test_an_agent_that_changes_its_messages_changes_nothing_stored(stream: bool) -> None:
    """The agent gets the request's own messages, not copies: what is stored of them was
    taken before it ran."""
    app = ServerBase()
    seen: list[Any] = []

    @app.agent("scribbler")
    def scribbler(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        seen.append([dict(m) for m in messages])
        for message in messages:
            message["content"] = "scribbled"
        messages.append({"role": "user", "content": "added by the agent"})
        return iter(["ok"]) if stream else "ok"

    with TestClient(app) as c:
        first = respond(c, "/scribbler/responses", input="one", stream=stream)
        rid = (validate_response_stream(first.text).response or {}) if stream else first.json()
        respond(c, "/scribbler/responses", input="two", previous_response_id=rid["id"])
    assert seen[1] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "two"},
    ]


class DictStore(ResponseStore):
    """A store written to the interface's three methods only (no `put_json`)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str | None, dict[str, Any]]] = {}

    async def get(self, response_id: str, owner: str | None = None) -> dict[str, Any] | None:
        entry = self.records.get(response_id)
        return json.loads(json.dumps(entry[1])) if entry and entry[0] == owner else None

    async def put(self, response_id: str, record: Any, owner: str | None = None) -> None:
        assert isinstance(record, dict), "put gets the record decoded"
        self.records[response_id] = (owner, json.loads(json.dumps(record)))

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        return self.records.pop(response_id, None) is not None


def test_a_store_with_only_get_put_and_delete_serves_every_stored_route() -> None:
    store = DictStore()
    app, seen = conversation_app(response_store=store)
    with TestClient(app) as c:
        first = respond(c, "/count/responses", input="one").json()
        assert set(store.records) == {first["id"]}
        assert store.records[first["id"]][1]["response"] == first
        assert c.get(f"/v1/responses/{first['id']}").json() == first
        second = respond(c, "/count/responses", input="two", previous_response_id=first["id"])
        assert second.json()["output"][0]["content"][0]["text"] == "turn 2"
        assert c.delete(f"/count/responses/{first['id']}").json()["deleted"] is True
    assert [m["content"] for m in seen[1]] == ["one", "turn 1", "two"]


def test_retrieve_and_delete_a_stored_response() -> None:
    app, _ = conversation_app()
    with TestClient(app) as c:
        created = respond(c, "/count/responses").json()
        rid = created["id"]
        for path in (f"/count/responses/{rid}", f"/v1/responses/{rid}"):
            got = c.get(path)
            assert got.status_code == 200
            assert validate_response(got.content) == created
        deleted = c.delete(f"/v1/responses/{rid}")
        assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
        assert_error(c.get(f"/count/responses/{rid}"), 404, "response_not_found")
        assert_error(c.delete(f"/count/responses/{rid}"), 404, "response_not_found")
        error = assert_error(
            respond(c, "/count/responses", previous_response_id=rid),
            400,
            "previous_response_not_found",
            "previous_response_id",
        )
        assert rid in error["message"]


def test_store_false_keeps_nothing() -> None:
    store = MemoryStore()
    app, _ = conversation_app(response_store=store)
    with TestClient(app) as c:
        rid = respond(c, "/count/responses", store=False).json()["id"]
        assert_error(c.get(f"/count/responses/{rid}"), 404, "response_not_found")
    assert len(store) == 0


def test_a_stored_response_is_visible_only_to_the_key_that_made_it() -> None:
    app, _ = conversation_app(api_keys={"alice": "sk-alice", "bob": "sk-bob"})
    alice = {"authorization": "Bearer sk-alice"}
    bob = {"authorization": "Bearer sk-bob"}
    with TestClient(app) as c:
        rid = c.post("/count/responses", json={"input": "hi"}, headers=alice).json()["id"]
        assert c.get(f"/count/responses/{rid}", headers=alice).status_code == 200
        assert_error(c.get(f"/count/responses/{rid}", headers=bob), 404, "response_not_found")
        assert_error(c.delete(f"/v1/responses/{rid}", headers=bob), 404, "response_not_found")
        follow = {"input": "more", "previous_response_id": rid}
        assert_error(
            c.post("/count/responses", json=follow, headers=bob), 400, "previous_response_not_found"
        )
        assert c.post("/count/responses", json=follow, headers=alice).status_code == 200
        assert c.get(f"/count/responses/{rid}", headers=alice).status_code == 200


def test_the_response_is_stored_before_the_client_has_it() -> None:
    """A client that continues the conversation at once finds the response."""
    store = MemoryStore()
    app, _ = conversation_app(response_store=store)
    stored_when_sent: list[bool] = []

    async def scenario(stream: bool) -> None:
        body = json.dumps({"input": "hi", "stream": stream}).encode()
        call = ASGICall(app, "/count/responses", body)
        original = call.send

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                stored_when_sent.append(len(store) > 0)
            await original(message)

        call.send = send  # type: ignore[method-assign]
        await call.run()

    for stream in (False, True):
        store._records.clear()
        asyncio.run(scenario(stream))
    assert stored_when_sent == [True, True]


# the lifecycle -----------------------------------------------------------------------------


def test_hooks_finalize_usage_and_pricing_work_as_for_chat() -> None:
    app = ServerBase()
    finals: list[Any] = []

    @app.agent("priced")
    @pricing(credits_per_request=1, credits_per_token=0.5)
    async def priced(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        current_context().set("seen", "yes")
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}], "usage": USAGE}

    @app.agent.before_request
    async def before(request: Any) -> None:
        if request.headers.get("x-deny"):
            raise HTTPException(402, "Pay first.")

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        ctx = current_context()
        finals.append(
            (ctx.agent_name, ctx.get("seen"), ctx.usage["total_credits"], ctx.token_usage, response)
        )

    with TestClient(app) as c:
        assert respond(c, "/priced/responses").status_code == 200
        assert respond(c, "/priced/responses", stream=True).status_code == 200
        assert_error(c.post("/priced/responses", json={"input": "x"}, headers={"x-deny": "1"}), 402)
    assert [f[:4] for f in finals] == [
        ("priced", "yes", 3.5, USAGE),
        ("priced", "yes", 3.5, USAGE),
        ("priced", None, 0, None),
    ]
    assert isinstance(finals[1][4], StreamingWrapper) and finals[1][4].status == "completed"


@pytest.mark.parametrize("outcome", ["completed", "failed", "disconnected"])
def test_finalize_runs_once_with_the_streams_outcome(outcome: str) -> None:
    app = ServerBase()
    finals: list[Any] = []

    @app.agent("agent")
    async def agent(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        for i in range(20):
            yield f"piece {i} "
            await asyncio.sleep(0)
            if outcome == "failed" and i == 5:
                raise RuntimeError("boom")

    @app.agent.finalize_request
    async def finalize(request: Any, response: Any) -> None:
        finals.append(response)

    body = json.dumps({"input": "hi", "stream": True}).encode()
    cut = 4 if outcome == "disconnected" else None
    call = asyncio.run(ASGICall(app, "/agent/responses", body, leave_after=cut).run())
    assert call.status == 200
    assert len(finals) == 1
    assert isinstance(finals[0], StreamingWrapper) and finals[0].status == outcome
    if outcome == "failed":
        assert validate_response_stream(call.text).status == "failed"


# the /v1 front door ------------------------------------------------------------------------


def front_app(**kwargs: Any) -> tuple[ServerBase, list[Any]]:
    app = ServerBase(**kwargs)
    seen: list[Any] = []

    @app.agent("assistant")
    async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return f"You said: {messages[-1]['content']}"

    async def find(name: str) -> Any:
        return {"greeting": "Arr"} if name in ("pirate", "parrot") else False

    @app.agent(find, list=lambda: ["pirate", "parrot", "assistant", "not a name!"])
    async def persona(
        messages: list[dict[str, Any]], stream: bool = False, agent_data: Any = None
    ) -> str:
        return f"{agent_data['greeting']}! {messages[-1]['content']}"

    @app.agent.before_request
    async def before(request: Any) -> None:
        seen.append(current_context().agent_name)

    return app, seen


def test_v1_models_lists_static_and_listed_dynamic_agents() -> None:
    app, seen = front_app()
    with TestClient(app) as c:
        body = c.get("/v1/models").json()
        assert body["object"] == "list"
        assert [m["id"] for m in body["data"]] == ["assistant", "pirate", "parrot"]
        assert all(m["object"] == "model" and m["owned_by"] == "robutler" for m in body["data"])
        assert c.get("/v1/models/assistant").json()["id"] == "assistant"
        assert c.get("/v1/models/pirate").json()["id"] == "pirate"
        for missing in ("nobody", "not%20a%20name"):
            error = assert_error(c.get(f"/v1/models/{missing}"), 404, "model_not_found", "model")
            assert "GET /v1/models" in error["message"]
    assert seen == []  # hooks run for agent requests only


def test_an_async_lister_works_and_a_bad_one_is_named() -> None:
    app = ServerBase()

    async def names() -> list[str]:
        return ["dyn"]

    @app.agent(lambda name: name == "dyn", list=names)
    async def dyn(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "ok"

    with TestClient(app) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["dyn"]
    with pytest.raises(TypeError, match="list= goes with a resolver"):
        app.agent("static", list=names)


def test_v1_chat_completions_routes_by_model() -> None:
    app, seen = front_app()
    with TestClient(app) as c:
        for model, text in (("assistant", "You said: hi"), ("pirate", "Arr! hi")):
            got = c.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            )
            body = validate_completion(got.content)
            assert body["choices"][0]["message"]["content"] == text
        error = assert_error(
            c.post(
                "/v1/chat/completions",
                json={"model": "nobody", "messages": [{"role": "user", "content": "x"}]},
            ),
            404,
            "model_not_found",
            "model",
        )
        assert "'nobody'" in error["message"]
        assert_error(
            c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}),
            422,
            "missing_required_parameter",
            "model",
        )
        assert_error(
            c.post("/v1/chat/completions", json={"model": "assistant"}), 422, param="messages"
        )
    assert seen == ["assistant", "pirate", "nobody"]  # the hooks saw the agent's name


def test_v1_responses_routes_by_model_and_stores() -> None:
    app, _ = front_app()
    with TestClient(app) as c:
        first = validate_response(
            c.post("/v1/responses", json={"model": "pirate", "input": "ahoy"}).content
        )
        assert first["output"][0]["content"][0]["text"] == "Arr! ahoy"
        streamed = c.post(
            "/v1/responses",
            json={
                "model": "assistant",
                "input": "yo",
                "stream": True,
                "previous_response_id": first["id"],
            },
        )
        assert validate_response_stream(streamed.text).text == "You said: yo"
        assert c.get(f"/v1/responses/{first['id']}").json()["id"] == first["id"]
        assert_error(
            c.post("/v1/responses", json={"model": "nobody", "input": "x"}), 404, "model_not_found"
        )
        assert_error(c.get("/v1/responses"), 405, "method_not_allowed")
        assert_error(c.post("/v1/models"), 405, "method_not_allowed")
        assert_error(c.get("/v1/elsewhere"), 404, "unknown_url")


def test_openai_prefix_moves_or_turns_off_the_front_door() -> None:
    app = ServerBase(openai_prefix="/api/v1")

    @app.agent("v1")  # allowed: the front door is elsewhere
    async def v1(messages: list[dict[str, Any]], stream: bool = False) -> str:
        return "I am v1"

    with TestClient(app) as c:
        assert [m["id"] for m in c.get("/api/v1/models").json()["data"]] == ["v1"]
        assert c.post("/api/v1/responses", json={"model": "v1", "input": "x"}).status_code == 200
        assert (
            c.post(
                "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
            ).status_code
            == 200
        )
    off = ServerBase(openai_prefix=None)
    off.add_agent("v1", lambda messages, stream=False: "mine")
    with TestClient(off) as c:
        assert c.get("/v1/models").json()["data"][0]["id"] == "v1"  # the agent's own models route
        assert_error(c.get("/api/v1/models"), 404)


def test_an_agent_named_like_the_prefix_is_refused_while_it_is_on() -> None:
    app = ServerBase()
    with pytest.raises(
        ValueError, match=r"collides with the OpenAI front door at /v1.*openai_prefix=None"
    ):
        app.add_agent("v1", lambda messages, stream=False: "x")
    with pytest.raises(ValueError, match="collides with the OpenAI front door"):
        Server(agents={"v1": MockAgent("v1")})
    with pytest.raises(ValueError, match="api"):
        ServerBase(openai_prefix="/api/v1").add_agent("api", lambda messages, stream=False: "x")


@pytest.mark.parametrize("bad", ["v1", "/v1/", "/v 1", "", 5])
def test_a_bad_prefix_is_refused_at_construction(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="openai_prefix"):
        ServerBase(openai_prefix=bad)


def test_a_bad_store_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="ResponseStore"):
        ServerBase(response_store={})  # type: ignore[arg-type]


def test_dynamic_agents_have_responses_routes() -> None:
    app, _ = front_app()
    with TestClient(app) as c:
        created = validate_response(respond(c, "/parrot/responses", input="polly").content)
        assert created["output"][0]["content"][0]["text"] == "Arr! polly"
        assert c.get(f"/parrot/responses/{created['id']}").status_code == 200
        assert_error(respond(c, "/nobody/responses"), 404, "agent_not_found")
        assert_error(c.get(f"/nobody/responses/{created['id']}"), 404, "agent_not_found")


# an Agents SDK agent served through the Responses API -------------------------------------

SDK_CALLS: list[str] = []


@pytest.mark.parametrize("stream", [False, True])
def test_an_agents_sdk_run_with_a_tool_through_the_responses_api(stream: bool) -> None:
    from agents import Agent, function_tool

    from robutler_testing.mock_openai import mock_openai

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        SDK_CALLS.append(city)
        return f"Sunny in {city}"

    SDK_CALLS.clear()
    agent = Agent(name="weather", instructions="Be brief.", model="gpt-test", tools=[get_weather])
    with mock_openai() as upstream:
        upstream.add_tool_call(
            "get_weather", {"city": "Paris"}, usage={"input_tokens": 5, "output_tokens": 3}
        )
        upstream.add_text(
            ["It is ", "sunny ", "in Paris."], usage={"input_tokens": 6, "output_tokens": 4}
        )
        with TestClient(Server(agents=[agent])) as c:
            got = respond(c, "/weather/responses", input="Weather in Paris?", stream=stream)
        upstream.assert_all_used()
    assert SDK_CALLS == ["Paris"]
    if stream:
        report = validate_response_stream(got.text, expect_usage=True)
        deltas = [e["delta"] for e in report.events if e["type"] == "response.output_text.delta"]
        assert deltas == ["It is ", "sunny ", "in Paris."]  # as the run produced them
        output, usage = report.response["output"], report.usage
    else:
        body = validate_response(got.content)
        output, usage = body["output"], body["usage"]
    assert [item["type"] for item in output] == ["message"]  # the tool stayed inside the run
    assert output[0]["content"][0]["text"] == "It is sunny in Paris."
    assert (usage["input_tokens"], usage["output_tokens"]) == (11, 7)  # the run's two calls
    assert upstream.requests[0]["input"][-1]["content"] == "Weather in Paris?"
