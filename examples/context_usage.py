"""The request context and usage tracking.

Anything serving a request (the agent, a tool it calls, a hook) reaches the same
RequestState through current_context() (or get_context(), which returns None outside a
request), without passing it around.
"""

from __future__ import annotations

from typing import Any

from robutler.server import RequestState, ServerBase, current_context, get_context

app = ServerBase(title="Context and usage example")
bills: list[dict[str, Any]] = []  # what finalize recorded, for the example's test


def lookup_weather(city: str) -> str:
    """A 'tool' deep inside the agent: it charges the request it serves, if any."""
    ctx = get_context()
    if ctx is not None:
        ctx.track_usage(credits=5, reason="weather lookup", metadata={"city": city})
    return f"Sunny in {city}"


@app.agent("weather")
async def weather(
    messages: list[dict[str, Any]], stream: bool = False, context: RequestState | None = None
) -> str:
    """Answers with the weather for the city the user names."""
    assert context is not None
    context.track_usage(credits=1, reason="agent call")
    return lookup_weather(str(messages[-1]["content"]).strip() or "Paris")


@app.agent.finalize_request
def bill(request: Any, response: Any) -> None:
    ctx = current_context()
    bills.append(
        {
            "agent": ctx.agent_name,
            "credits": ctx.usage["total_credits"],
            "records": len(ctx.usage["records"]),
        }
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
