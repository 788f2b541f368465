"""The OpenAI Responses API over the same agents: requests, response objects, events.

An agent answers Chat Completions `messages`; this package translates. `request` turns a
Responses request into those messages, `objects` turns an agent's answer (a
chat.completion) into a `response` object, and `encoder.ResponsesEncoder` turns its
stream items into the Responses API's semantic SSE events.
"""

from .encoder import ResponsesEncoder
from .objects import (
    error_object,
    new_response_id,
    output_items,
    response_from_completion,
    response_json,
    response_json_from_completion,
    response_object,
    responses_usage,
    status_of,
)
from .request import ResponsesRequest, chat_messages, items_to_messages, parse_responses_request

__all__ = [
    "ResponsesEncoder",
    "ResponsesRequest",
    "chat_messages",
    "error_object",
    "items_to_messages",
    "new_response_id",
    "output_items",
    "parse_responses_request",
    "response_from_completion",
    "response_json",
    "response_json_from_completion",
    "response_object",
    "responses_usage",
    "status_of",
]
