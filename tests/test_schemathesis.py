"""Schemathesis against the server's own OpenAPI document.

The `dev` extra installs schemathesis, so the README's test command runs this file (25
examples per operation); `nox -s fuzz` runs it with many more. Without schemathesis (an
install without `dev`) the module is skipped.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")  # in the dev extra; skipped only without it

from hypothesis import HealthCheck, settings  # noqa: E402

from robutler.server import ServerBase  # noqa: E402

EXAMPLES = int(os.environ.get("ROBUTLER_FUZZ_EXAMPLES", "25"))


def make_app() -> ServerBase:
    app = ServerBase(title="fuzz target")

    @app.agent("echo")
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        for piece in ("echo ", str(len(messages))):
            yield piece

    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: Any) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("previous_response_id"), str):
        # It must name a stored response, which a generated id never does: that is a 400
        # `previous_response_not_found`, as on OpenAI, not a schema-valid body rejected.
        case.body["previous_response_id"] = None
    items = case.body.get("input") if isinstance(case.body, dict) else None
    if isinstance(items, list):
        # A function_call_output answers a call of the conversation (a 400 otherwise, as on
        # OpenAI), which a generated call_id never is: the call goes in front of it.
        calls = [
            {"type": "function_call", "call_id": i["call_id"], "name": "f", "arguments": "{}"}
            for i in items
            if isinstance(i, dict)
            and i.get("type") == "function_call_output"
            and isinstance(i.get("call_id"), str)
        ]
        items[:0] = calls
    case.call_and_validate()
