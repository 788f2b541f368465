"""A stand-in robutler server for the Open Responses compliance runner.

The runner (`bin/compliance-test.ts` of github.com/openresponses/openresponses, run with
bun) sends a fixed set of prompts and checks the wire format of the answers. This app
serves one agent, `standin`, that answers each of those prompts as the tests expect (a
tool call for the weather, the code word it was told, "compacted" after a compaction...),
so what the runner judges is robutler's wire format, not a model's wit.

Run:  python tests/openresponses_standin.py 8123
Then, in a clone of the runner's repository (with `zod` installed):
      bun run bin/compliance-test.ts --base-url http://127.0.0.1:8123/v1 \
          --api-key unused --model standin
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

from robutler.server import ServerBase
from robutler.server.store import MemoryStore

app = ServerBase(title="Open Responses stand-in", response_store=MemoryStore())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def answer(messages: list[dict[str, Any]]) -> str | dict[str, Any]:
    """What a capable model would say to the runner's prompts."""
    said = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    last = said[-1] if said else ""
    everything = " ".join(_text(m.get("content")) for m in messages)
    if "weather" in last.lower():
        arguments = json.dumps({"location": "San Francisco, CA"})
        call = {"id": "call_weather", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": arguments}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    exactly = re.search(r"[Rr]eply with exactly: (\w+)", last)
    if exactly:
        return exactly.group(1)
    if "code word" in last:
        words = re.findall(r"code word: (\w+)", everything)
        return words[-1] if words else "I was not told a code word."
    if "my name" in last:
        names = re.findall(r"[Mm]y name is (\w+)", everything)
        return names[-1] if names else "You did not say."
    if "Count from 1 to" in last:
        top = int(re.search(r"to (\d+)", last).group(1))  # type: ignore[union-attr]
        return " ".join(str(n) for n in range(1, top + 1))
    if "number" in last:
        return "four"
    if "image" in last:
        return "A red heart on a white background."
    if any(m.get("role") == "system" and "pirate" in _text(m.get("content")) for m in messages):
        return "Ahoy, matey!"
    if "Reply with OK" in last:
        return "OK"
    return "Hello there, friend."


@app.agent("standin")
async def standin(messages: list[dict[str, Any]], stream: bool = False) -> Any:
    """Answers the compliance runner's prompts; streams text word by word."""
    reply = answer(messages)
    if not stream or not isinstance(reply, str):
        return reply
    return _words(reply)


async def _words(text: str) -> AsyncIterator[str]:
    for n, word in enumerate(text.split(" ")):
        yield word if n == 0 else " " + word


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
