"""The agent routes in the OpenAPI document (they are plain ASGI, so FastAPI cannot see them)."""

from __future__ import annotations

import copy
from typing import Any

from .protocol import ChatCompletionRequest, ErrorBody

__all__ = ["add_agent_paths", "add_responses_paths"]


def _error_responses(*statuses: int) -> dict[str, Any]:
    reasons = {
        401: "Missing or wrong API key",
        404: "Unknown agent",
        405: "Method not allowed",
        400: "Unsupported value (n > 1 for an agent that answers one choice; a Responses "
        "parameter robutler does not offer, or an unknown previous_response_id)",
        413: "Body too large",
        415: "Body not sent as application/json",
        422: "Invalid request body",
        500: "The agent failed",
    }
    return {
        str(s): {
            "description": reasons[s],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for s in statuses
    }


def _json_get(
    summary: str,
    operation_id: str,
    description: str,
    errors: dict[str, Any],
    extra: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """An operation answering a JSON object (agent info, models), with its errors."""
    ok = {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "summary": summary,
        "operationId": operation_id,
        **fields,
        "responses": {"200": ok, **errors},
        **extra,
    }


def add_agent_paths(
    schema: dict[str, Any], names: list[str], secured: bool, choices: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Add each agent's routes, the request model and the error shape to `schema`.

    Agents not in `choices` answer one choice: their request schema allows only `n: 1`.
    """
    request = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request.pop("$defs", {}))
    components["ChatCompletionRequest"] = request
    one_choice = copy.deepcopy(request)
    for option in one_choice["properties"]["n"].get("anyOf", []):
        if option.get("type") == "integer":
            option["maximum"] = 1
    one_choice["title"] = "ChatCompletionRequestOneChoice"
    components["ChatCompletionRequestOneChoice"] = one_choice
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error.pop("$defs", {}))
    components["Error"] = error
    security: list[dict[str, list[str]]] = []
    if secured:
        schema["components"].setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
        }
        security = [{"bearer": []}]
    paths = schema.setdefault("paths", {})
    info_errors = _error_responses(*(([401] if secured else []) + [404]))
    for name in names:
        extra = {"tags": [f"agent {name}"], **({"security": security} if security else {})}
        request_schema = (
            "ChatCompletionRequest" if name in choices else "ChatCompletionRequestOneChoice"
        )
        paths[f"/{name}/chat/completions"] = {
            "post": {
                "summary": f"Chat completion with agent {name}",
                "operationId": f"chat_completions_{name}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{request_schema}"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "A chat.completion, or an SSE stream of chat.completion.chunk when stream is true",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/event-stream": {},
                        },
                    },
                    **_error_responses(
                        *(([401] if secured else []) + [400, 404, 413, 415, 422, 500])
                    ),
                },
                **extra,
            },
            "get": _json_get(
                f"Endpoint info for agent {name}",
                f"chat_completions_info_{name}",
                "Endpoint info",
                info_errors,
                extra,
            ),
        }
        paths[f"/{name}"] = {
            method: _json_get(
                f"Agent {name}: info",
                f"agent_info_{name}_{method}",
                "Agent info",
                info_errors,
                extra,
            )
            for method in ("get", "post")
        }
        paths[f"/{name}/models"] = {
            "get": _json_get(
                f"Models list naming agent {name}",
                f"models_{name}",
                "An OpenAI models list",
                info_errors,
                extra,
            )
        }
        model_id = {
            "name": "model_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        }
        paths[f"/{name}/models/{{model_id}}"] = {
            "get": _json_get(
                f"The model object of agent {name}",
                f"model_{name}",
                "An OpenAI model object (its id is the agent's name)",
                info_errors,
                extra,
                parameters=[model_id],
            )
        }
    return schema


def _json(description: str, stream: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {}
    return {"description": description, "content": content}


def _body(model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }


def _id_parameter(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


def _stored(prefix: str, tag: str, op: str, extra: dict[str, Any], auth: list[int]) -> dict:
    return {
        method: {
            "summary": f"{verb} a stored response",
            "operationId": f"{op}_{method}",
            "parameters": _id_parameter("response_id"),
            "responses": {
                "200": _json("The response object" if method == "get" else "Deleted"),
                **_error_responses(*auth, 404),
            },
            "tags": [tag],
            **extra,
        }
        for method, verb in (("get", "Retrieve"), ("delete", "Delete"))
    }


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional},
    }


_STR = {"type": "string"}


# What `items_to_messages` accepts, so that the document admits no input it rejects.
def _parts(*alternatives: dict[str, Any]) -> dict[str, Any]:
    """An array of content parts, each one of `alternatives`."""
    return {"type": "array", "items": {"anyOf": list(alternatives)}}


_USER_PARTS = _parts(
    _obj({"type": {"enum": ["input_text", "output_text", "text"]}, "text": _STR}),
    _obj({"type": {"const": "input_image"}, "image_url": _STR}),
    _obj({"type": {"const": "input_file"}}),
)
_ASSISTANT_PARTS = _parts(
    _obj({"type": {"enum": ["output_text", "input_text", "text"]}, "text": _STR}),
    _obj({"type": {"const": "refusal"}, "refusal": _STR}),
)
_MESSAGE_TYPE = {"type": {"enum": ["message", None]}}  # no type: a message
_INPUT = {
    "anyOf": [
        _STR,
        {
            "type": "array",
            "items": {
                "anyOf": [
                    _obj(
                        {
                            "role": {"enum": ["user", "system", "developer"]},
                            "content": {"anyOf": [_STR, _USER_PARTS]},
                        },
                        **_MESSAGE_TYPE,
                    ),
                    _obj(
                        {
                            "role": {"const": "assistant"},
                            "content": {"anyOf": [_STR, _ASSISTANT_PARTS]},
                        },
                        **_MESSAGE_TYPE,
                    ),
                    _obj(
                        {
                            "type": {"const": "function_call"},
                            "call_id": _STR,
                            "name": _STR,
                            "arguments": _STR,
                        }
                    ),
                    _obj(
                        {
                            "type": {"const": "function_call_output"},
                            "call_id": _STR,
                            "output": {"anyOf": [_STR, _USER_PARTS]},
                        }
                    ),
                ]
            },
        },
    ]
}


def add_responses_paths(
    schema: dict[str, Any], names: list[str], secured: bool, prefix: str | None
) -> dict[str, Any]:
    """Add each agent's Responses API routes and the front door under `prefix` to `schema`
    (after `add_agent_paths`, whose components they use)."""
    from .responses.request import ResponsesRequest

    request = ResponsesRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema["components"]["schemas"]
    components.update(request.pop("$defs", {}))
    # What `parse_responses_request` checks of each tool: a string type, and a name for a
    # function tool.
    function_tool = {
        "type": "object",
        "required": ["type", "name"],
        "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
    }
    other_tool = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "not": {"const": "function"}}},
    }
    request["properties"]["input"] = _INPUT
    request["properties"]["tools"] = {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [function_tool, other_tool]}},
            {"type": "null"},
        ]
    }
    components["ResponsesRequest"] = request
    # Under the front door `model` names the agent, so it is required there.
    for name in ("ChatCompletionRequest", "ResponsesRequest"):
        routed = dict(components[name])
        routed["required"] = sorted({*routed.get("required", []), "model"})
        routed["properties"] = {**routed["properties"], "model": {"type": "string", "minLength": 1}}
        components[f"Routed{name}"] = routed
    extra: dict[str, Any] = {"security": [{"bearer": []}]} if secured else {}
    auth = [401] if secured else []
    created = {
        "200": _json("A response object, or an SSE stream of Responses events", stream=True),
        **_error_responses(*auth, 400, 404, 413, 415, 422, 500),
    }
    paths = schema.setdefault("paths", {})
    for name in names:
        tag = f"agent {name}"
        paths[f"/{name}/responses"] = {
            "post": {
                "summary": f"Responses API with agent {name}",
                "operationId": f"responses_{name}",
                "requestBody": _body("ResponsesRequest"),
                "responses": created,
                "tags": [tag],
                **extra,
            }
        }
        paths[f"/{name}/responses/{{response_id}}"] = _stored(
            name, tag, f"stored_response_{name}", extra, auth
        )
    if prefix is None:
        return schema
    tag = f"OpenAI front door ({prefix})"
    paths[f"{prefix}/models"] = {
        "get": {
            "summary": "Every agent, as an OpenAI models list",
            "operationId": "front_door_models",
            "responses": {"200": _json("An OpenAI models list"), **_error_responses(*auth)},
            "tags": [tag],
            **extra,
        }
    }
    paths[f"{prefix}/models/{{model_id}}"] = {
        "get": {
            "summary": "An agent as an OpenAI model object",
            "operationId": "front_door_model",
            "parameters": _id_parameter("model_id"),
            "responses": {"200": _json("An OpenAI model object"), **_error_responses(*auth, 404)},
            "tags": [tag],
            **extra,
        }
    }
    paths[f"{prefix}/chat/completions"] = {
        "post": {
            "summary": "Chat completion with the agent named by model",
            "operationId": "front_door_chat_completions",
            "requestBody": _body("RoutedChatCompletionRequest"),
            "responses": {
                "200": _json("A chat.completion, or an SSE stream of chunks", stream=True),
                **_error_responses(*auth, 404, 413, 415, 422, 500),
            },
            "tags": [tag],
            **extra,
        }
    }
    paths[f"{prefix}/responses"] = {
        "post": {
            "summary": "Responses API with the agent named by model",
            "operationId": "front_door_responses",
            "requestBody": _body("RoutedResponsesRequest"),
            "responses": created,
            "tags": [tag],
            **extra,
        }
    }
    paths[f"{prefix}/responses/{{response_id}}"] = _stored(
        prefix, tag, "front_door_stored_response", extra, auth
    )
    return schema
