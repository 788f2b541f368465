"""The smallest robutler server: one agent that answers with a string.

Run:  robutler serve examples/basic_server.py   (or: python examples/basic_server.py)
Then: curl http://127.0.0.1:8000/assistant/chat/completions \
        -H 'Content-Type: application/json' \
        -d '{"messages": [{"role": "user", "content": "Hello"}]}'
"""

from __future__ import annotations

from typing import Any

from robutler.server import ServerBase

app = ServerBase(title="Basic robutler server")


@app.agent("assistant")
async def assistant(messages: list[dict[str, Any]], stream: bool = False) -> str:
    """Repeats what the user said."""
    return f"You said: {messages[-1]['content']}"


@app.agent("counter")
async def counter(messages: list[dict[str, Any]], stream: bool = False) -> Any:
    """Streams a count, one piece at a time (joined when the client does not stream)."""
    for n in range(1, 4):
        yield f"{n} "


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
