"""The README's way to a first answer from an agent that calls a (mocked) model.

Only what the README says: its `model_agent.py`, the mock upstream started from the shell
(`python -m robutler_testing.mock_openai --port P`) and `robutler serve model_agent:app`
with `OPENAI_BASE_URL` pointing at it, asked with the official client on both APIs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
from helpers import documentation

README = documentation()  # the docs pages, where the README's snippets went


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", README, re.S)
    assert match, f"README lost its {marker} block"
    return match.group(1)


@contextmanager
def running(args: list[str], cwd: Path, env: dict[str, str], ready: str) -> Iterator[str]:
    """Run a command until the block ends; wait until GET `ready` answers."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                httpx.get(ready, timeout=1)
                break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{args} did not come up"
            time.sleep(0.05)
        yield ready
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_readme_model_agent_answers_through_the_mock_from_the_shell(tmp_path: Path) -> None:
    assert "python -m robutler_testing.mock_openai --port 9000" in README
    assert "OPENAI_BASE_URL=http://127.0.0.1:9000/v1 OPENAI_API_KEY=unused" in README
    (tmp_path / "model_agent.py").write_text(readme_block("readme-model-agent"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up, port = free_port(), free_port()
    mock = [sys.executable, "-m", "robutler_testing.mock_openai", "--port", str(up)]
    env_up = {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{up}/v1", "OPENAI_API_KEY": "unused"}
    serve = [sys.executable, "-m", "robutler", "serve", "model_agent:app", "--port", str(port)]
    with (
        running(mock, tmp_path, env, f"http://127.0.0.1:{up}/v1/models"),
        running(serve, tmp_path, env_up, f"http://127.0.0.1:{port}/health"),
    ):
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
        )
        hi = [{"role": "user", "content": "hi there"}]
        completion = client.chat.completions.create(model="writer", messages=hi)  # type: ignore[arg-type]
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="writer", messages=hi, stream=True)  # type: ignore[arg-type]
            if c.choices
        )
        response = client.responses.create(model="writer", input="hello")
        client.close()
    assert completion.choices[0].message.content == "You said: hi there"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert streamed == "You said: hi there"
    assert response.output_text == "You said: hello"


def test_mock_openai_from_the_shell_serves_replies_then_echoes_and_says_a_busy_port(
    tmp_path: Path,
) -> None:
    port = free_port()
    args = [sys.executable, "-m", "robutler_testing.mock_openai", "--port", str(port)]
    with running(
        [*args, "--reply", "Scripted."], tmp_path, dict(os.environ), f"http://127.0.0.1:{port}/"
    ):
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
        )
        first = client.responses.create(model="m", input="one").output_text
        second = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "two"}]
        )
        client.close()
        busy = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert first == "Scripted."
    assert second.choices[0].message.content == "You said: two"
    assert busy.returncode != 0
    assert "address already in use" in busy.stdout + busy.stderr
