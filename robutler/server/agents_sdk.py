"""Serving OpenAI Agents SDK agents: `Runner.run` / `Runner.run_streamed` per request.

Imported only when a `Server` is given an `agents.Agent`. The whole conversation becomes
the run's input; a streamed run sends its text deltas as they arrive and ends with the
run's real usage; tool calls the agent makes run inside the run. Upstream failures become
OpenAI-shaped errors: 502 (the model API failed), 504 (it timed out), 429 (rate limited);
a missing API key is a 503 (`upstream_key_missing`) that says so.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from .adapters import Adapted
from .agents import first_line
from .protocol import RequestError, encode
from .upstream import upstream_error

__all__ = ["adapt_sdk_agent", "to_input_items", "upstream_error"]


def _text_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
        else:
            parts.append(part)
    return parts


def to_input_items(messages: list[dict[str, Any]]) -> list[Any]:
    """Chat Completions messages as Agents SDK (Responses API) input items, all roles kept."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            output = content if isinstance(content, str) else encode(content).decode()
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": output,
                }
            )
            continue
        if role == "assistant":
            if content:
                text = (
                    content
                    if isinstance(content, str)
                    else "".join(p.get("text", "") for p in content if isinstance(p, dict))
                )
                items.append({"role": "assistant", "content": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments", ""),
                    }
                )
            continue
        if role == "function":  # the legacy function-result role
            items.append(
                {
                    "role": "user",
                    "content": f"{message.get('name', 'function')} returned: {content}",
                }
            )
            continue
        items.append({"role": role, "content": _text_parts(content if content is not None else "")})
    return items


def _key_configured() -> bool:
    from agents.models import _openai_shared

    return bool(
        _openai_shared.get_default_openai_client() is not None
        or _openai_shared.get_default_openai_key()
        or os.environ.get("OPENAI_API_KEY")
    )


def _model_name(agent: Any) -> str | None:
    model = agent.model
    if isinstance(model, str):
        return model
    if model is None:
        try:
            from agents.models import get_default_model

            return str(get_default_model())
        except ImportError:  # pragma: no cover - older SDKs
            return None
    name = getattr(model, "model", None)
    return name if isinstance(name, str) else None


def _usage(result: Any) -> dict[str, int] | None:
    usage = getattr(getattr(result, "context_wrapper", None), "usage", None)
    if usage is None or not getattr(usage, "requests", 0):
        return None
    prompt, completion = int(usage.input_tokens), int(usage.output_tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if hasattr(output, "model_dump_json"):
        return str(output.model_dump_json())
    return encode(output).decode()


def adapt_sdk_agent(agent: Any) -> Adapted:
    """A handler that runs `agent` with the Agents SDK's Runner."""
    from agents import Runner

    needs_openai_key = isinstance(agent.model, str) or agent.model is None
    if os.environ.get("OPENAI_ORGANIZATION") and not os.environ.get("OPENAI_ORG_ID"):
        os.environ["OPENAI_ORG_ID"] = os.environ["OPENAI_ORGANIZATION"]  # the client reads this one

    def key_problem() -> str | None:
        if needs_openai_key and not _key_configured():
            return (
                f"Agent {agent.name!r} needs an OpenAI API key: set OPENAI_API_KEY in the "
                "server's environment or .env."
            )
        return None

    def check_key() -> None:
        problem = key_problem()
        if problem is not None:
            raise RequestError(503, problem, code="upstream_key_missing", log_traceback=False)

    async def run(messages: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            result = await Runner.run(agent, to_input_items(messages))
        except Exception as exc:
            raise (upstream_error(exc) or exc) from exc
        message = {"role": "assistant", "content": _output_text(result.final_output)}
        completion: dict[str, Any] = {
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]
        }
        usage = _usage(result)
        if usage:
            completion["usage"] = usage
        return completion

    async def run_stream(messages: list[dict[str, Any]]) -> AsyncIterator[Any]:
        result = Runner.run_streamed(agent, to_input_items(messages))
        try:
            async for event in result.stream_events():
                if event.type == "raw_response_event":
                    data: Any = event.data
                    if getattr(data, "type", None) == "response.output_text.delta" and data.delta:
                        yield data.delta
        except Exception as exc:
            raise (upstream_error(exc) or exc) from exc
        finally:
            if not result.is_complete:
                result.cancel()
        usage = _usage(result)
        if usage:
            yield {"choices": [], "usage": usage}

    async def handler(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        check_key()
        return run_stream(messages) if stream else await run(messages)

    handler.__doc__ = (agent.instructions if isinstance(agent.instructions, str) else "") or ""
    return Adapted(
        handler,
        description=first_line(handler),
        model=_model_name(agent),
        pricing=getattr(agent, "_robutler_pricing", None),
        problem=key_problem,
    )
