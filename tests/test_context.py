"""RequestState and .env loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from robutler.server import RequestState, ServerBase, get_context
from robutler.server.config import load_env


def test_get_context_outside_a_request_is_none() -> None:
    assert get_context() is None


def test_set_get_and_defaults() -> None:
    state = RequestState(agent_name="a")
    assert state.get("missing") is None and state.get("missing", 7) == 7
    state.set("user_id", "123")
    assert state.get("user_id") == "123"


def test_track_usage_returns_ids_and_keeps_totals() -> None:
    state = RequestState()
    first = state.track_usage(credits=10, reason="Agent processing", metadata={"model": "gpt-4"})
    second = state.track_usage(2.5)
    assert first != second
    assert state.usage["total_credits"] == 12.5
    records = state.usage["records"]
    assert [r["id"] for r in records] == [first, second]
    assert records[0]["reason"] == "Agent processing" and records[0]["metadata"] == {
        "model": "gpt-4"
    }
    assert records[0]["credits"] == 10 and isinstance(records[0]["timestamp"], float)


@pytest.mark.parametrize("bad", [-1, "10", None, True])
def test_track_usage_rejects_bad_credits(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="credits"):
        RequestState().track_usage(bad)  # type: ignore[arg-type]


def test_duration_grows() -> None:
    state = RequestState()
    first = state.get_duration()
    assert first >= 0
    assert state.get_duration() >= first


def test_env_file_loaded_without_overriding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("ROBUTLER_T_NEW=from-file\nROBUTLER_T_SET=from-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUTLER_T_SET", "from-env")
    monkeypatch.delenv("ROBUTLER_T_NEW", raising=False)
    ServerBase()
    assert os.environ["ROBUTLER_T_NEW"] == "from-file"
    assert os.environ["ROBUTLER_T_SET"] == "from-env"
    monkeypatch.delenv("ROBUTLER_T_NEW")


def test_works_without_python_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    env = tmp_path / "other.env"
    env.write_text("ROBUTLER_T_NODOTENV=1\n")
    monkeypatch.setitem(sys.modules, "dotenv", None)  # import dotenv now fails
    monkeypatch.delenv("ROBUTLER_T_NODOTENV", raising=False)
    assert load_env(env) is False
    assert "ROBUTLER_T_NODOTENV" not in os.environ
    ServerBase(env_file=str(env))  # still constructs


def test_registration_mistakes_fail_at_construction() -> None:
    app = ServerBase()
    with pytest.raises(ValueError, match=r"not URL-safe.*'my-agent'"):
        app.agent("my agent!")
    with pytest.raises(ValueError, match="collides with the server route /health"):
        app.agent("health")
    with pytest.raises(TypeError, match="agent name \\(str\\) or a resolver"):
        app.agent(3)  # type: ignore[call-overload]

    @app.agent("dup")
    async def one(messages: list, stream: bool = False) -> str:
        return ""

    with pytest.raises(ValueError, match="already registered"):
        app.agent("dup")(one)
    with pytest.raises(TypeError, match="expects a function"):
        app.agent.finalize_request("not callable")  # type: ignore[arg-type]
