"""The models list, and the HTTP headers of answers as `with_raw_response` shows them."""

from __future__ import annotations

from typing import cast

import openai
from openai.types.chat import ChatCompletionChunk

from robutler_testing import validate_completion

from .driver import Chat, Target, user


def test_models_list_names_the_model(chat: Chat, target: Target) -> None:
    models = chat.client().models.list()
    ids = [model.id for model in models]
    assert ids, "the models list is empty"
    assert all(model.object == "model" for model in models)
    assert target.model in ids, f"{target.model!r} is not among the models {ids!r}"


def test_raw_response_stream_headers_are_event_stream_and_no_cache(chat: Chat) -> None:
    raw = chat.client().chat.completions.with_raw_response.create(
        model=chat.target.model, messages=[user("headers, please")], stream=True
    )
    content_type = raw.headers.get("content-type", "")
    cache_control = raw.headers.get("cache-control", "")
    streamed = chat.consume(cast("openai.Stream[ChatCompletionChunk]", raw.parse()))
    assert content_type.startswith("text/event-stream"), f"content-type is {content_type!r}"
    assert "no-cache" in cache_control, f"cache-control is {cache_control!r}"
    assert streamed.chunks, "the stream was empty"


def test_raw_response_json_headers_are_application_json(chat: Chat) -> None:
    raw = chat.client().chat.completions.with_raw_response.create(
        model=chat.target.model, messages=[user("headers, please")]
    )
    content_type = raw.headers.get("content-type", "")
    completion = raw.parse()
    assert content_type.startswith("application/json"), f"content-type is {content_type!r}"
    assert completion.choices, "the completion has no choices"
    validate_completion(chat.wire.last().body)
