"""The Vercel AI SDK's default OpenAI provider (the Responses API, `@ai-sdk/openai`)
against robutler's `/v1` on uvicorn: two turns with a tool, the second replaying the
first's answer as an `item_reference` (node runs tests/js/ai_sdk_multiturn.mjs).

The npm packages come from the registry: into `ROBUTLER_AI_SDK_DIR` when set (`.ci/run`
installs them there), else into a directory of the test session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from robutler.server import ServerBase
from robutler.server.store import MemoryStore
from robutler_testing.live import LiveServer

SCRIPT = Path(__file__).parent / "js" / "ai_sdk_multiturn.mjs"
PACKAGES = ["ai@6", "@ai-sdk/openai@3", "zod@4"]


@pytest.fixture(scope="session")
def ai_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the AI SDK installed and the test's script in it."""
    where = os.environ.get("ROBUTLER_AI_SDK_DIR")
    root = Path(where) if where else tmp_path_factory.mktemp("ai-sdk")
    if not (root / "node_modules" / "@ai-sdk" / "openai").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the Vercel AI SDK for this test"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), *PACKAGES],
            check=True,
            capture_output=True,
            timeout=300,
        )
    shutil.copy(SCRIPT, root / SCRIPT.name)  # ES modules resolve packages beside the script
    return root


def make_app() -> ServerBase:
    app = ServerBase(response_store=MemoryStore())

    @app.agent("forecaster")
    async def forecaster(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Calls get_weather for the city asked about, then answers with its result and
        how many earlier answers of its own it was shown."""
        last = messages[-1]
        if last["role"] == "tool":
            earlier = sum(m["role"] == "assistant" and bool(m.get("content")) for m in messages)
            return f"The forecast: {last['content']} ({earlier} earlier)."
        city = "Oslo" if "Oslo" in str(last.get("content")) else "Paris"
        call = {
            "id": f"call_{city}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    return app


def test_ai_sdk_default_provider_multi_turn_with_a_tool(ai_sdk: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed for this test"
    with LiveServer(make_app()) as live:
        run = subprocess.run(
            [node, str(ai_sdk / SCRIPT.name), live.url + "/v1", "forecaster"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    said = json.loads(run.stdout.strip().splitlines()[-1])
    assert (said["first"], said["second"]) == (
        "The forecast: sunny in Paris (0 earlier).",
        "The forecast: sunny in Oslo (1 earlier).",  # the referenced answer reached it
    )
    kinds = [[item.get("type", "message") for item in body["input"]] for body in said["bodies"]]
    assert "item_reference" in kinds[2], kinds  # the second turn replays the first's answer
