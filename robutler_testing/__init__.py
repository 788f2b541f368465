"""robutler_testing: test agents and OpenAI-compatible servers offline.

Public names (imported on first use, so `import robutler_testing` and the pytest plugin
stay light):

- `MockAgent`: a scripted, deterministic agent with failure modes.
- `validate_completion`, `validate_chunk`, `validate_stream`, `StreamReport`,
  `ConformanceError`: OpenAI wire-format checks, also through the official client's types.
- `validate_response`, `validate_response_stream`, `ResponseStreamReport`: the same for
  the Responses API (`response` objects and their semantic SSE events);
  `validate_response_messages` for a WebSocket-mode turn's messages.
- `create_test_client`: a TestClient that keeps one event loop for its life.
- `FinalizeRecorder`: checks that finalize ran exactly once per request.
- `mock_openai`: the upstream OpenAI API on 127.0.0.1, for real Agents SDK agents.
- `LiveServer`: uvicorn for an app on a free loopback port.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import create_test_client
    from .live import LiveServer
    from .mock_agent import MockAgent, MockAgentError
    from .mock_openai import MockOpenAI, mock_openai
    from .recorder import FinalizeRecorder
    from .response_validators import (
        ResponseStreamReport,
        validate_response,
        validate_response_messages,
        validate_response_stream,
    )
    from .validators import (
        ConformanceError,
        Problem,
        StreamReport,
        validate_chunk,
        validate_completion,
        validate_stream,
    )

_WHERE = {
    "MockAgent": "mock_agent",
    "MockAgentError": "mock_agent",
    "validate_completion": "validators",
    "validate_chunk": "validators",
    "validate_stream": "validators",
    "StreamReport": "validators",
    "ConformanceError": "validators",
    "Problem": "validators",
    "validate_response": "response_validators",
    "validate_response_messages": "response_validators",
    "validate_response_stream": "response_validators",
    "ResponseStreamReport": "response_validators",
    "create_test_client": "client",
    "FinalizeRecorder": "recorder",
    "mock_openai": "mock_openai",
    "MockOpenAI": "mock_openai",
    "LiveServer": "live",
}

__all__ = [
    "ConformanceError",
    "FinalizeRecorder",
    "LiveServer",
    "MockAgent",
    "MockAgentError",
    "MockOpenAI",
    "Problem",
    "ResponseStreamReport",
    "StreamReport",
    "create_test_client",
    "mock_openai",
    "validate_chunk",
    "validate_completion",
    "validate_response",
    "validate_response_messages",
    "validate_response_stream",
    "validate_stream",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'robutler_testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
