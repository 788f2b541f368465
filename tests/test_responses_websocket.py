"""WebSocket mode of the Responses API, through uvicorn on 127.0.0.1: the official
client's `responses.connect()` and a raw `websockets` client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from robutler.server import ServerBase
from robutler.server.responses.websocket import SocketLimits
from robutler.server.store import MemoryStore
from robutler_testing import FinalizeRecorder, validate_response_messages
from robutler_testing.live import LiveServer

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def make_app(**kwargs: Any) -> tuple[ServerBase, dict[str, Any]]:
    app = ServerBase(response_store=MemoryStore(), **kwargs)
    seen: dict[str, Any] = {"cancelled": threading.Event(), "started": threading.Event()}

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Says how many user turns it saw and what the last one said; fails on 'fail'."""
        last = messages[-1]["content"]
        if last == "fail":
            raise RuntimeError("asked to fail")
        turns = sum(m["role"] == "user" for m in messages)
        return f"turn {turns}: {last}"

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Streams one word, then waits (bounded) until it is cancelled."""
        yield "first"
        seen["started"].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["cancelled"].set()
            raise
        yield " never"

    return app, seen


@pytest.fixture
def served() -> Iterator[tuple[str, ServerBase, dict[str, Any]]]:
    app, seen = make_app()
    with LiveServer(app) as live:
        yield live.url, app, seen


def set_limits(app: ServerBase, **limits: Any) -> None:
    for socket in app.route_table.sockets.values():
        socket.limits = SocketLimits(**limits)


def ws_url(base: str, path: str = "/v1/responses") -> str:
    return base.replace("http://", "ws://") + path


def turn(conn: Any) -> list[Any]:
    """The events of one turn from the official client's connection."""
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            return events
    raise AssertionError("the connection closed before the turn ended")


def raw_turn(ws: Any, message: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one message on a raw socket and read its turn's messages."""
    ws.send(json.dumps(message))
    out = []
    while True:
        event = json.loads(ws.recv(timeout=20))
        out.append(event)
        if event["type"] in TERMINAL:
            return out


def test_several_turns_on_one_socket_continue_without_a_store(served: Any) -> None:
    base, app, _ = served
    recorder = FinalizeRecorder(app)
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "echo", "store": False, "input": "hi"})
        first = turn(conn)
        report = validate_response_messages([e.to_dict() for e in first])
        assert report.text == "turn 1: hi" and report.status == "completed"
        previous = first[-1].response.id
        for n in (2, 3):
            conn.send(
                {
                    "type": "response.create",
                    "model": "echo",
                    "store": False,
                    "previous_response_id": previous,
                    "input": f"again {n}",
                }
            )
            events = turn(conn)
            report = validate_response_messages([e.to_dict() for e in events])
            assert report.text == f"turn {n}: again {n}"
            assert events[-1].response.previous_response_id == previous
            previous = events[-1].response.id
    # store: false turns were kept on the connection only
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(previous)
    recorder.wait_for(3)
    recorder.assert_exactly_once()
    assert [r.outcome for r in recorder.records.values()] == ["completed"] * 3


def test_a_stored_turn_continues_on_a_new_connection_an_unstored_one_does_not(
    served: Any,
) -> None:
    base, _, _ = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    ids = {}
    with client.responses.connect() as conn:
        for store in (True, False):
            conn.send({"type": "response.create", "model": "echo", "store": store, "input": "x"})
            ids[store] = turn(conn)[-1].response.id
    with client.responses.connect() as conn:
        conn.send(
            {
                "type": "response.create",
                "model": "echo",
                "previous_response_id": ids[True],
                "input": "y",
            }
        )
        assert turn(conn)[-1].response.output_text == "turn 2: y"
        conn.send(
            {
                "type": "response.create",
                "model": "echo",
                "store": False,
                "previous_response_id": ids[False],
                "input": "z",
            }
        )
        error = turn(conn)[-1]
        assert error.type == "error" and error.status == 400
        assert error.error.code == "previous_response_not_found"
        assert error.error.param == "previous_response_id"


def test_a_failed_continuation_evicts_the_response_it_continued(served: Any) -> None:
    base, _, _ = served
    with connect(ws_url(base)) as ws:
        first = raw_turn(
            ws, {"type": "response.create", "model": "echo", "store": False, "input": "a"}
        )
        rid = first[-1]["response"]["id"]
        create = {"type": "response.create", "model": "echo", "store": False}
        failed = raw_turn(ws, {**create, "previous_response_id": rid, "input": "fail"})
        # an agent that fails before its first word: the 500 an HTTP client would get
        assert (failed[-1]["type"], failed[-1]["status"]) == ("error", 500)
        assert validate_response_messages(failed).status == "error"
        retry = raw_turn(ws, {**create, "previous_response_id": rid, "input": "b"})
        assert retry == [
            {
                "type": "error",
                "status": 400,
                "error": {
                    "message": f"Previous response with id {rid!r} not found.",
                    "type": "invalid_request_error",
                    "param": "previous_response_id",
                    "code": "previous_response_not_found",
                },
            }
        ]


def test_closing_the_socket_mid_response_cancels_the_agent_and_finalizes_once(
    served: Any,
) -> None:
    base, app, seen = served
    recorder = FinalizeRecorder(app)
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "slow", "input": "go"})
        for event in conn:
            if event.type == "response.output_text.delta":
                break
        assert seen["started"].wait(10)
    assert seen["cancelled"].wait(10), "the agent was not cancelled when the socket closed"
    recorder.wait_for(1)
    recorder.assert_exactly_once()
    assert next(iter(recorder.records.values())).outcome == "disconnected"


def test_the_key_is_checked_at_the_handshake() -> None:
    app, _ = make_app(api_keys={"alice": "sk-alice"})
    with LiveServer(app) as live:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(live.url)).close()
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body)["error"]["code"] == "missing_api_key"
        headers = {"Authorization": "Bearer sk-alice"}
        with connect(ws_url(live.url, "/echo/responses"), additional_headers=headers) as ws:
            events = raw_turn(ws, {"type": "response.create", "input": "hi"})
            assert validate_response_messages(events).text == "turn 1: hi"


def test_mistakes_get_an_error_envelope_and_the_socket_stays_usable(served: Any) -> None:
    base, app, _ = served
    set_limits(app, max_message_size=2000)
    with connect(ws_url(base)) as ws:
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "invalid_json"
        ws.send(json.dumps({"type": "session.update"}))
        error = json.loads(ws.recv(timeout=10))
        assert (error["status"], error["error"]["param"]) == (400, "type")
        ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "x" * 3000}))
        error = json.loads(ws.recv(timeout=10))
        assert error["error"]["code"] == "message_too_large" and "2000" in error["error"]["message"]
        bad = raw_turn(ws, {"type": "response.create", "model": "echo", "input": 5})
        assert bad[-1]["status"] == 422 and bad[-1]["error"]["param"] == "input"
        missing = raw_turn(ws, {"type": "response.create", "model": "nobody", "input": "x"})
        assert missing[-1]["error"]["code"] == "model_not_found"
        events = raw_turn(ws, {"type": "response.create", "model": "echo", "input": "ok"})
        assert validate_response_messages(events).text == "turn 1: ok"


def test_steering_is_refused_clearly(served: Any) -> None:
    base, _, _ = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    with client.responses.connect() as conn:
        conn.response.steer(input="faster", previous_response_id="resp_x")
        event = conn.recv()
        assert event.type == "response.steer.failed"
        assert event.error.code == "steering_not_supported"


def test_warm_up_and_stream_id(served: Any) -> None:
    base, _, _ = served
    with connect(ws_url(base)) as ws:
        warm = raw_turn(
            ws,
            {
                "type": "response.create",
                "model": "echo",
                "generate": False,
                "input": "remember",
                "stream_id": "lane-1",
            },
        )
        assert {e["stream_id"] for e in warm} == {"lane-1"}
        report = validate_response_messages(warm)
        assert report.response is not None and report.response["output"] == []
        rid = warm[-1]["response"]["id"]
        events = raw_turn(
            ws,
            {
                "type": "response.create",
                "model": "echo",
                "previous_response_id": rid,
                "input": "go",
            },
        )
        assert "stream_id" not in events[0]
        assert validate_response_messages(events).text == "turn 2: go"


def test_idle_connections_are_closed(served: Any) -> None:
    base, app, _ = served
    set_limits(app, idle_timeout=0.3)
    with connect(ws_url(base)) as ws:
        started = time.monotonic()
        error = json.loads(ws.recv(timeout=10))
        assert error["error"]["code"] == "websocket_idle_timeout"
        assert time.monotonic() - started < 9


def test_request_timeout_holds_per_turn() -> None:
    app, _ = make_app(request_timeout=0.5)
    with LiveServer(app) as live, connect(ws_url(live.url)) as ws:
        events = raw_turn(ws, {"type": "response.create", "model": "slow", "input": "go"})
        assert events[-1]["type"] == "response.failed"
        assert "request_timeout" in events[-1]["response"]["error"]["message"]
        events = raw_turn(ws, {"type": "response.create", "model": "echo", "input": "next"})
        assert validate_response_messages(events).text == "turn 1: next"


async def test_an_agents_sdk_agent_over_the_websocket_transport() -> None:
    """The Agents SDK's `websocket` Responses transport with a robutler agent as its
    model: a tool round trip, run and streamed."""
    from agents import Agent, Runner, function_tool
    from agents.models.openai_responses import OpenAIResponsesWSModel

    app, _ = make_app()

    @app.agent("forecaster")
    async def forecaster(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        last = messages[-1]
        if last["role"] == "tool":
            return f"The forecast: {last['content']}."
        arguments = json.dumps({"city": "Paris"})
        call = {"id": "call_w1", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": arguments}
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    recorder = FinalizeRecorder(app)
    with LiveServer(app) as live:
        client = openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
        model = OpenAIResponsesWSModel("forecaster", client)
        agent = Agent(name="a", model=model, tools=[get_weather])
        result = await Runner.run(agent, "weather?")
        assert result.final_output == "The forecast: sunny in Paris."
        streamed = Runner.run_streamed(agent, "weather again?")
        async for _ in streamed.stream_events():
            pass
        assert streamed.final_output == "The forecast: sunny in Paris."
        await model.close()
        await client.close()
        await asyncio.to_thread(recorder.wait_for, 4)
    recorder.assert_exactly_once()


def test_turns_queue_behind_the_running_one_up_to_a_limit(served: Any) -> None:
    base, app, seen = served
    set_limits(app, max_queued=1)
    create = {"type": "response.create", "model": "echo", "input": "queued"}
    with connect(ws_url(base)) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "slow", "input": "go"}))
        assert seen["started"].wait(10)
        for _ in range(3):
            ws.send(json.dumps(create))
        codes = []
        while len(codes) < 2:
            event = json.loads(ws.recv(timeout=10))
            if event["type"] == "error":
                codes.append(event["error"]["code"])
        assert codes == ["too_many_queued", "too_many_queued"]
    assert seen["cancelled"].wait(10)
