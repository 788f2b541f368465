"""Errors the official client must recognise: 404, 400/422, 401, 500, and a failure mid-stream."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from robutler_testing import validate_chunk

from .driver import Chat, Target, assert_error_shape, user
from .reference import MIDWAY_REPLY
from .report import NOTE
from .wire import sse_data

HI = [user("hi")]


def test_unknown_agent_is_not_found(chat: Chat) -> None:
    name = f"no-such-agent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.NotFoundError) as caught:
        chat.complete(HI, agent=name)
    assert_error_shape(caught.value, 404)


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "role": ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    "content": ({"messages": [{"role": "user", "content": 5}]}, "content"),
    "temperature": ({"messages": HI, "temperature": 7}, "temperature"),
    "empty-messages": ({"messages": []}, "messages"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_body_is_rejected_naming_the_field(
    chat: Chat, case: str, record_property: Any
) -> None:
    """400 (what OpenAI answers) or 422 (what robutler answers) both pass; the table says which."""
    kwargs, field = INVALID[case]
    client = chat.client()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=chat.target.model, **kwargs)
    status = caught.value.status_code
    assert status in (400, 422), f"status is {status}, expected 400 or 422"
    assert_error_shape(caught.value, status)
    record_property(NOTE, f"answered {status}" + (" (OpenAI answers 400)" if status == 422 else ""))
    error: Any = caught.value.body
    assert field in error["message"], f"the message does not name {field!r}: {error['message']!r}"
    param = error.get("param")
    assert param is None or param.endswith(field), f"param is {param!r}, not the {field!r} field"


def _no_auth_header() -> dict[str, Any]:
    return {"Authorization": openai.Omit()}


def test_missing_api_key_is_an_authentication_error(chat: Chat, keyed_target: Target) -> None:
    client = chat.client(target=keyed_target)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(
            model=keyed_target.model, messages=HI, extra_headers=_no_auth_header()
        )
    assert "authorization" not in chat.wire.last().request_headers, "a key was sent anyway"
    assert_error_shape(caught.value, 401)
    chat.complete(HI, client=client)  # the right key is accepted


def test_wrong_api_key_is_an_authentication_error(chat: Chat, keyed_target: Target) -> None:
    wrong = chat.client(target=keyed_target, api_key=keyed_target.api_key + "-wrong")
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model=keyed_target.model, messages=HI)
    assert_error_shape(caught.value, 401)
    with pytest.raises(openai.AuthenticationError):
        chat.stream(HI, client=wrong)
    chat.complete(HI, client=chat.client(target=keyed_target))  # the right key is accepted


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_agent_failing_before_first_chunk_is_a_500(
    chat: Chat, target: Target, stream: bool
) -> None:
    agent = target.special("fails-early")
    with pytest.raises(openai.InternalServerError) as caught:
        if stream:
            chat.stream(HI, agent=agent)
        else:
            chat.complete(HI, agent=agent)
    assert_error_shape(caught.value, 500)
    assert "MockAgentError" not in caught.value.message, "internals leaked into the message"


def test_agent_failing_mid_stream_raises_while_iterating(chat: Chat, target: Target) -> None:
    agent = target.special("fails-midway")
    stream = cast(
        "openai.Stream[ChatCompletionChunk]",
        chat.client(agent).chat.completions.create(model=target.model, messages=HI, stream=True),
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught, stream:
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert not isinstance(caught.value, openai.APIStatusError), "expected an in-stream error"
    assert_error_shape(caught.value, None)
    assert "MockAgentError" not in caught.value.message, "internals leaked into the message"
    assert "".join(received) == "alpha beta gamma ", f"received {received!r} before the error"
    assert MIDWAY_REPLY.startswith("".join(received))

    events = sse_data(chat.wire.last().body)
    assert events[-1] == "[DONE]", f"the stream does not end with [DONE]: {events[-1:]!r}"
    error = json.loads(events[-2])
    assert set(error) == {"error"}, f"the error event is not {{'error': ...}}: {error!r}"
    for index, data in enumerate(events[:-2]):
        validate_chunk(data, index=index)
