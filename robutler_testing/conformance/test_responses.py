"""The Responses API and the /v1 front door, driven with the official client.

Every answer the client parses is also checked by `validate_response` /
`validate_response_stream` on the exact bytes. The per-agent cases use the client's base
URL `BASE_URL/AGENT` (so another server's `/v1/responses` is checked with `--agent v1`);
the front-door cases use `BASE_URL/v1` with the agent's name as `model`, and are skipped
when the server has no such front door.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from robutler_testing import (
    ResponseStreamReport,
    validate_completion,
    validate_response,
    validate_response_messages,
    validate_response_stream,
)

from .driver import TIMEOUT, Chat, Target, assert_error_shape, user
from .reference import MIDWAY_REPLY, TOOL_CALLS
from .wire import RecordingAsyncTransport


def create(chat: Chat, agent: str | None = None, **kwargs: Any) -> tuple[Response, dict]:
    """`responses.create` with the official client, and the validated JSON body."""
    kwargs.setdefault("input", "hello")
    client = chat.client(agent)
    try:
        response = client.responses.create(model=_model(chat, agent), **kwargs)
    except openai.APIResponseValidationError:
        validate_response(chat.wire.last("/responses").body)  # names the problem
        raise
    return response, validate_response(chat.wire.last("/responses").body)


def stream(
    chat: Chat, agent: str | None = None, **kwargs: Any
) -> tuple[list[Any], ResponseStreamReport]:
    """A streamed response as the client iterated it, and the validators' report on it."""
    kwargs.setdefault("input", "hello")
    events_stream = chat.client(agent).responses.create(
        model=_model(chat, agent), stream=True, **kwargs
    )
    exchange = chat.wire.of(events_stream.response)
    with events_stream:
        events = list(events_stream)
    return events, validate_response_stream(exchange.body)


def _model(chat: Chat, agent: str | None) -> str:
    return agent if agent and chat.target.is_reference else chat.target.model


def _text(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_responses_create_is_a_response(chat: Chat, target: Target) -> None:
    response, body = create(chat)
    assert response.object == "response" and response.status == "completed"
    assert response.output_text, "the response has no output text"
    assert body["id"] == response.id
    if target.is_reference:
        assert response.output_text == "echo received: hello"


def test_responses_stream_events_in_order(chat: Chat, target: Target) -> None:
    events, report = stream(chat)
    assert events[0].type == "response.created", events[0].type
    assert events[-1].type == "response.completed", events[-1].type
    assert _text(events) == report.text and report.text
    assert [e.sequence_number for e in events] == sorted({e.sequence_number for e in events})
    if target.is_reference:
        assert report.text == "echo received: hello"


def test_responses_stream_helper_assembles_the_final_response(chat: Chat) -> None:
    client = chat.client()
    with client.responses.stream(model=chat.target.model, input="helper") as helper:
        deltas = [e.delta for e in helper if e.type == "response.output_text.delta"]
        final = helper.get_final_response()
    validate_response_stream(chat.wire.last("/responses").body)
    assert final.output_text == "".join(deltas) and final.status == "completed"


def test_responses_with_the_async_client(chat: Chat) -> None:
    async def scenario() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=chat.target.url(),
            api_key=chat.target.api_key or "unused",
            max_retries=0,
            timeout=TIMEOUT,
            http_client=openai.DefaultAsyncHttpxClient(
                transport=RecordingAsyncTransport(chat.wire)
            ),
            _strict_response_validation=True,
        ) as client:
            created = await client.responses.create(model=chat.target.model, input="async")
            events = await client.responses.create(
                model=chat.target.model, input="async", stream=True
            )
            text = "".join(
                [e.delta async for e in events if e.type == "response.output_text.delta"]
            )
        return created.output_text, text

    created, streamed = asyncio.run(scenario())
    assert created and created == streamed
    validate_response_stream(chat.wire.last("/responses").body)


def test_previous_response_id_continues_the_conversation(chat: Chat, target: Target) -> None:
    first, _ = create(chat, input="first turn")
    second, body = create(chat, input="second turn", previous_response_id=first.id)
    assert body["previous_response_id"] == first.id
    assert second.output_text
    if target.is_reference:
        messages = target.mock("echo").calls[-1]
        assert [m["content"] for m in messages] == [
            "first turn",
            "echo received: first turn",
            "second turn",
        ]


def test_retrieve_and_delete_a_stored_response(chat: Chat) -> None:
    client = chat.client()
    created, _ = create(chat, input="keep me")
    got = client.responses.retrieve(created.id)
    validate_response(chat.wire.last(f"/responses/{created.id}").body)
    assert (got.id, got.output_text) == (created.id, created.output_text)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(created.id)
    assert_error_shape(caught.value, 404)


def test_unknown_previous_response_is_a_bad_request(chat: Chat) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        create(chat, previous_response_id=f"resp_{uuid.uuid4().hex}")
    assert_error_shape(caught.value, 400)
    assert caught.value.code == "previous_response_not_found"


def test_invalid_input_is_rejected_naming_the_field(chat: Chat) -> None:
    client = chat.client()
    robot: Any = [{"role": "robot", "content": "x"}]  # the official param types forbid it
    with pytest.raises((openai.UnprocessableEntityError, openai.BadRequestError)) as caught:
        client.responses.create(model=chat.target.model, input=robot)
    assert_error_shape(caught.value, None)
    error: Any = caught.value.body
    assert "role" in error["message"], error


def test_responses_of_an_unknown_agent_are_not_found(chat: Chat) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        chat.client(f"no-such-agent-{uuid.uuid4().hex[:8]}").responses.create(model="x", input="hi")
    assert_error_shape(caught.value, 404)


def test_a_tool_round_trip(chat: Chat, target: Target) -> None:
    tools = target.special("tools")
    first, body = create(chat, tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == [c["name"] for c in TOOL_CALLS]
    assert len({c.call_id for c in calls}) == len(calls)
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"result of {c.name}"}
        for c in calls
    ]
    _, report = stream(chat, tools, previous_response_id=first.id, input=outputs)
    assert report.tool_calls  # the tools agent always calls its tools
    messages = target.mock("tools").calls[-1]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": calls[0].call_id,
        "content": "result of get_weather",
    }
    assert body["status"] == "completed"


def test_failing_agents_fail_the_response(chat: Chat, target: Target) -> None:
    early = target.special("fails-early")
    with pytest.raises(openai.InternalServerError) as caught:
        create(chat, early)
    assert_error_shape(caught.value, 500)
    events, report = stream(chat, target.special("fails-midway"))
    assert report.status == "failed" and events[-1].type == "response.failed"
    assert MIDWAY_REPLY.startswith(report.text) and report.text
    assert report.error is not None and report.error["message"]


# the /v1 front door --------------------------------------------------------------------


@pytest.fixture
def front(chat: Chat, target: Target) -> Target:
    """The target's `/v1` front door, where `model` names the agent; skipped without one."""
    door = Target(
        base_url=target.base_url,
        agent="v1",
        api_key=target.api_key,
        model=target.agent,
        reference=target.reference,
    )
    try:
        ids = [m.id for m in chat.client(target=door).models.list()]
    except openai.NotFoundError:
        pytest.skip("the server has no /v1 front door (GET /v1/models is a 404)")
    if target.agent not in ids:
        pytest.skip(f"GET /v1/models does not list the agent {target.agent!r}: {ids!r}")
    return door


def test_v1_models_lists_the_agents(chat: Chat, front: Target, target: Target) -> None:
    client = chat.client(target=front)
    ids = [m.id for m in client.models.list()]
    assert client.models.retrieve(target.agent).id == target.agent
    if target.is_reference:
        assert ids == [agent.name for agent in target.reference.agents]
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(f"no-such-model-{uuid.uuid4().hex[:8]}")
    assert_error_shape(caught.value, 404)
    assert caught.value.code == "model_not_found"


def test_v1_chat_and_responses_route_by_model(chat: Chat, front: Target, target: Target) -> None:
    client = chat.client(target=front)
    completion = client.chat.completions.create(model=target.agent, messages=[user("routed")])
    validate_completion(chat.wire.last().body)
    response = client.responses.create(model=target.agent, input="routed")
    validate_response(chat.wire.last("/responses").body)
    assert completion.choices[0].message.content and response.output_text
    if target.is_reference:
        assert (
            completion.choices[0].message.content == response.output_text == "echo received: routed"
        )
        other = client.responses.create(model="quiet", input="routed")
        assert other.output_text == "quiet received: routed" and other.usage is None
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=f"no-such-model-{uuid.uuid4().hex[:8]}", input="x")
    assert caught.value.code == "model_not_found"


# WebSocket mode, compaction, input items, item references --------------------------------

_TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def _socket_turn(connection: Any, **create: Any) -> ResponseStreamReport:
    """One `response.create` on an open WebSocket, its messages validated."""
    connection.send({"type": "response.create", **create})
    messages = []
    for event in connection:
        messages.append(event.to_dict())
        if event.type in _TERMINAL:
            return validate_response_messages(messages)
    raise AssertionError("the WebSocket closed before the turn ended")


def test_websocket_mode_turns_continue_on_one_connection(chat: Chat, target: Target) -> None:
    model = _model(chat, None)
    with chat.client().responses.connect() as connection:
        first = _socket_turn(connection, model=model, input="first turn", store=False)
        assert first.status == "completed" and first.text and first.id
        second = _socket_turn(
            connection, model=model, input="second turn", store=False, previous_response_id=first.id
        )
        assert second.status == "completed" and second.text
    if target.is_reference:
        assert (first.text, second.text) == (
            "echo received: first turn",
            "echo received: second turn",
        )
        messages = target.mock("echo").calls[-1]
        assert [m["content"] for m in messages][-1] == "second turn"
    with chat.client().responses.connect() as connection:  # a store: false id stays behind
        missing = _socket_turn(
            connection, model=model, input="x", store=False, previous_response_id=first.id
        )
    assert missing.status == "error" and missing.error is not None
    assert missing.error["code"] == "previous_response_not_found"


def test_compaction_then_a_new_chain_from_its_item(chat: Chat, target: Target) -> None:
    client = chat.client()
    compacted = client.responses.compact(
        model=_model(chat, None), input=[{"role": "user", "content": "remember slate"}]
    )
    assert compacted.object == "response.compaction"
    items = [item for item in compacted.output if item.type == "compaction"]
    assert items, "the compacted output has no compaction item"
    response, _ = create(chat, input=[*(i.model_dump() for i in compacted.output), user("next")])
    assert response.output_text
    if target.is_reference:
        messages = target.mock("echo").calls[-1]
        assert [m["content"] for m in messages] == ["remember slate", "next"]
    with pytest.raises((openai.BadRequestError, openai.UnprocessableEntityError)) as caught:
        client.post("/responses/compact", body={"input": "x"}, cast_to=object)
    assert_error_shape(caught.value, None)


def test_input_items_and_item_references(chat: Chat, target: Target) -> None:
    client = chat.client()
    first, _ = create(chat, input="first turn")
    page = client.responses.input_items.list(first.id, order="asc")
    assert page.data and page.data[0].type == "message"
    again, _ = create(
        chat, input=[{"type": "item_reference", "id": first.output[0].id}, user("and then")]
    )
    assert again.output_text
    if target.is_reference:
        messages = target.mock("echo").calls[-1]
        assert [m["content"] for m in messages] == ["echo received: first turn", "and then"]
    with pytest.raises(openai.BadRequestError) as caught:
        create(chat, input=[{"type": "item_reference", "id": f"msg_{uuid.uuid4().hex}_0"}])
    assert_error_shape(caught.value, 400)
