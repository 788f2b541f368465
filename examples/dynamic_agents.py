"""Dynamic agents: one handler serves every name a resolver accepts.

The resolver (sync or async) returns data for a known name, or False for an unknown
one (answered with 404). The handler gets the data as `agent_data`.
"""

from __future__ import annotations

from typing import Any

from robutler.server import ServerBase

app = ServerBase(title="Dynamic agents example")

PERSONAS = {
    "pirate": {"greeting": "Arr"},
    "butler": {"greeting": "Good evening"},
}


async def find_persona(name: str) -> dict[str, str] | bool:
    return PERSONAS.get(name, False)


@app.agent(find_persona)
async def persona(
    messages: list[dict[str, Any]], stream: bool = False, agent_data: Any = None
) -> str:
    """Answers in the voice of the persona named in the URL."""
    return f"{agent_data['greeting']}! You said: {messages[-1]['content']}"


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
