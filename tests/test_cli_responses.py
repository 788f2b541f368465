"""`robutler serve` and the Responses API: the /v1 banner, the SQLite store the workers share."""

from __future__ import annotations

import argparse
from pathlib import Path

import openai
import pytest
from test_cli import banner_app, serving


def test_banner_shows_the_v1_base_url_with_the_agent_as_model() -> None:
    from robutler.cli import _banner

    text = _banner(banner_app(api_keys=None, openai_prefix="/v1"), "127.0.0.1", 8000)
    assert "OpenAI base URL    http://127.0.0.1:8000/v1" in text
    assert 'client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")' in text
    assert 'model="echo"' in text and "client.responses.create(" in text
    off = _banner(banner_app(api_keys=None, openai_prefix=None), "127.0.0.1", 8000)
    assert "/v1" not in off and 'base_url="http://127.0.0.1:8000/echo"' in off


def test_responses_db_comes_from_the_option_the_environment_or_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robutler.cli import responses_db

    monkeypatch.chdir(tmp_path)
    # setenv first, so that monkeypatch restores the variable's absence afterwards:
    # responses_db() sets it for the workers, and a later ServerBase() would use that file
    monkeypatch.setenv("ROBUTLER_RESPONSES_DB", "")
    monkeypatch.delenv("ROBUTLER_RESPONSES_DB")
    assert responses_db(argparse.Namespace(responses_db=None)) == str(
        tmp_path / ".robutler" / "responses.db"
    )
    monkeypatch.setenv("ROBUTLER_RESPONSES_DB", "from-env.db")
    assert responses_db(argparse.Namespace(responses_db=None)) == str(tmp_path / "from-env.db")
    assert responses_db(argparse.Namespace(responses_db="opt.db")) == str(tmp_path / "opt.db")
    import os

    assert os.environ["ROBUTLER_RESPONSES_DB"] == str(tmp_path / "opt.db")  # for the workers


def test_serve_stores_responses_in_sqlite_shared_by_its_workers(tmp_path: Path) -> None:
    db = tmp_path / "store" / "responses.db"
    with serving("--workers", "2", "--responses-db", str(db), cwd=tmp_path) as (base, output):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["echo", "stream", "tools"]
        first = client.responses.create(model="echo", input="ping")
        assert "ping" in first.output_text
        # new connections each time, so both workers answer some of these
        for _ in range(8):
            fresh = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
            assert fresh.responses.retrieve(first.id).id == first.id
            fresh.close()
        second = client.responses.create(model="echo", input="pong", previous_response_id=first.id)
        assert "pong" in second.output_text
    assert db.is_file()
    assert f"stored responses   {db}" in "\n".join(output)
    assert not (tmp_path / ".robutler").exists()  # the option wins over the default
