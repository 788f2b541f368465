"""Lifecycle hooks: check a header before each request, log after each one ends.

`finalize_request` runs exactly once per request, after the last byte of a stream, also
when the agent failed or the client left; for streams it gets a StreamingWrapper that
says how the stream ended.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException, Request

from robutler.server import ServerBase, StreamingWrapper, current_context

log = logging.getLogger("examples.hooks")
app = ServerBase(title="Hooks example")
finished: list[dict[str, Any]] = []  # what finalize saw, for the example's test


@app.agent.before_request
async def require_user(request: Request) -> None:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(status_code=401, detail="Send an X-User header.")
    current_context().set("user", user)


@app.agent.finalize_request
async def log_request(request: Request, response: Any) -> None:
    ctx = current_context()
    outcome = response.status if isinstance(response, StreamingWrapper) else response.status_code
    finished.append({"user": ctx.get("user"), "outcome": outcome, "seconds": ctx.get_duration()})
    log.info("user=%s agent=%s outcome=%s", ctx.get("user"), ctx.agent_name, outcome)


@app.agent("greeter")
async def greeter(messages: list[dict[str, Any]], stream: bool = False) -> Any:
    """Greets the user named in the X-User header, word by word."""
    user = current_context().get("user")
    for word in ["Hello", ", ", user, "!"]:
        yield word


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
