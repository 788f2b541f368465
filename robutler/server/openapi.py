"""The agent routes in the OpenAPI document (they are plain ASGI, so FastAPI cannot see them)."""

from __future__ import annotations

import copy
from typing import Any

from .protocol import ChatCompletionRequest, ErrorBody

__all__ = ["add_agent_paths"]


def _error_responses(*statuses: int) -> dict[str, Any]:
    reasons = {
        401: "Missing or wrong API key",
        404: "Unknown agent",
        405: "Method not allowed",
        400: "Unsupported value (e.g. n > 1 for an agent that answers one choice)",
        413: "Body too large",
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
                    **_error_responses(*(([401] if secured else []) + [400, 404, 413, 422, 500])),
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
