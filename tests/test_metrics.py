"""Prometheus metrics: GET /metrics, read with prometheus_client's own text parser after
real requests to live uvicorn (JSON, stream, failed, cut, timed out, Responses API)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import USER, streaming, wait_for
from prometheus_client.parser import text_string_to_metric_families

from robutler.server import ServerBase, pricing
from robutler.server.endpoint import Exchange
from robutler_testing.live import LiveServer

Key = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Key, float]:
    """Every sample of the page by (name, labels), parsed by prometheus_client."""
    found: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(page: dict[Key, float], name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str, **kwargs: Any) -> dict[Key, float]:
    response = httpx.get(f"{url}/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def settled(url: str, name: str, expected: float, **labels: str) -> dict[Key, float]:
    """The page once `name{labels}` reached `expected` (counted at the request's end,
    right after its finalize hooks: a moment after the client has the answer)."""
    page: dict[Key, float] = {}

    def reached() -> bool:
        nonlocal page
        page = scrape(url)
        return value(page, name, **labels) == expected

    assert wait_for(reached), {k: v for k, v in page.items() if k[0] == name}
    return page


def metered_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(metrics=True, keepalive=0, **kwargs)

    @app.agent("echo")
    @pricing(credits_per_request=3)
    async def echo(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        if stream:

            async def chunks() -> AsyncIterator[Any]:
                yield "he"
                yield "llo"
                yield {
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
                }

            return chunks()
        return {
            "object": "chat.completion",
            "model": "echo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }

    @app.agent("broken")
    async def broken(messages: list[dict[str, Any]], stream: bool = False) -> str:
        raise RuntimeError("the agent's bug")

    return app


ECHO_OK = {"agent": "echo", "api": "chat", "outcome": "completed", "status": "200"}


def test_json_and_stream_requests_are_counted_timed_and_their_usage_added() -> None:
    app = metered_app()
    with LiveServer(app) as live:
        url = live.url
        first = httpx.post(f"{url}/echo/chat/completions", json={"messages": USER}, timeout=10)
        assert first.status_code == 200
        page = settled(url, "robutler_requests_total", 1, **ECHO_OK)
        assert value(page, "robutler_tokens_total", agent="echo", type="input") == 7
        assert value(page, "robutler_tokens_total", agent="echo", type="output") == 5
        assert value(page, "robutler_credits_total", agent="echo") == 3
        by = {"agent": "echo", "api": "chat"}
        assert value(page, "robutler_request_duration_seconds_count", **by) == 1
        assert value(page, "robutler_time_to_first_byte_seconds_count", **by) == 1
        assert 0 < value(page, "robutler_request_duration_seconds_sum", **by) < 10

        streamed = httpx.post(
            f"{url}/echo/chat/completions",
            json={"messages": USER, "stream": True, "stream_options": {"include_usage": True}},
            timeout=10,
        )
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        page = settled(url, "robutler_requests_total", 2, **ECHO_OK)
        assert value(page, "robutler_tokens_total", agent="echo", type="input") == 7 + 4
        assert value(page, "robutler_tokens_total", agent="echo", type="output") == 5 + 2
        assert value(page, "robutler_credits_total", agent="echo") == 6
        assert value(page, "robutler_request_duration_seconds_count", **by) == 2
        assert value(page, "robutler_time_to_first_byte_seconds_count", **by) == 2
        assert value(page, "robutler_open_streams", **by) == 0
        # the page lists no other outcome for these requests
        outcomes = {
            dict(labels)["outcome"]
            for (name, labels), v in page.items()
            if name == "robutler_requests_total" and v
        }
        assert outcomes == {"completed"}


def test_a_failed_agent_and_an_unknown_name_are_counted_by_outcome_and_status() -> None:
    app = metered_app()

    @app.agent(lambda name: name.startswith("dyn-"))
    async def dynamic(messages: list[dict[str, Any]]) -> str:
        return "hi"

    with LiveServer(app) as live:
        url = live.url
        assert (
            httpx.post(f"{url}/broken/chat/completions", json={"messages": USER}).status_code == 500
        )
        assert (
            httpx.post(f"{url}/dyn-a/chat/completions", json={"messages": USER}).status_code == 200
        )
        for n in range(3):  # made-up names must not grow the label set
            missing = httpx.post(f"{url}/nobody-{n}/chat/completions", json={"messages": USER})
            assert missing.status_code == 404
        bad = httpx.post(f"{url}/echo/chat/completions", json={"messages": "nope"})
        assert bad.status_code == 422
        page = settled(
            url,
            "robutler_requests_total",
            3,
            agent="",
            api="chat",
            outcome="rejected",
            status="404",
        )
        labels = {"api": "chat"}
        assert (
            value(
                page,
                "robutler_requests_total",
                agent="broken",
                outcome="failed",
                status="500",
                **labels,
            )
            == 1
        )
        assert (
            value(
                page,
                "robutler_requests_total",
                agent="dyn-a",
                outcome="completed",
                status="200",
                **labels,
            )
            == 1
        )
        assert (
            value(
                page,
                "robutler_requests_total",
                agent="echo",
                outcome="rejected",
                status="422",
                **labels,
            )
            == 1
        )
        agents = {dict(k[1]).get("agent") for k in page if k[0] == "robutler_requests_total"}
        assert agents == {"", "broken", "dyn-a", "echo"}
        assert value(page, "robutler_credits_total", agent="broken") == 0


def test_a_stream_is_open_while_it_is_sent_and_a_cut_one_counts_as_disconnected() -> None:
    app = ServerBase(metrics=True, keepalive=0)
    release: list[asyncio.Event] = []

    @app.agent("slow")
    async def slow(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "first"
        event = asyncio.Event()
        release.append(event)
        await event.wait()  # never set: the client leaves
        yield "never"

    with LiveServer(app) as live:
        url = live.url
        by = {"agent": "slow", "api": "chat"}
        with streaming(f"{url}/slow/chat/completions"):
            assert wait_for(lambda: bool(release))
            assert value(scrape(url), "robutler_open_streams", **by) == 1
        page = settled(
            url,
            "robutler_requests_total",
            1,
            outcome="disconnected",
            status="200",
            **by,
        )
        assert value(page, "robutler_open_streams", **by) == 0
        assert value(page, "robutler_time_to_first_byte_seconds_count", **by) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_timed_out_request_counts_as_timeout(stream: bool) -> None:
    app = ServerBase(metrics=True, keepalive=0, request_timeout=0.2)

    @app.agent("stuck")
    async def stuck(messages: list[dict[str, Any]], stream: bool = False) -> AsyncIterator[str]:
        yield "partial "
        await asyncio.Event().wait()
        yield "never"

    with LiveServer(app) as live:
        response = httpx.post(
            f"{live.url}/stuck/chat/completions",
            json={"messages": USER, "stream": stream},
            timeout=10,
        )
        status = "200" if stream else "504"
        assert str(response.status_code) == status
        page = settled(
            live.url,
            "robutler_requests_total",
            1,
            agent="stuck",
            api="chat",
            outcome="timeout",
            status=status,
        )
        assert value(page, "robutler_open_streams", agent="stuck", api="chat") == 0


def test_responses_api_requests_and_store_operations() -> None:
    app = metered_app()
    with LiveServer(app) as live:
        url = live.url
        created = httpx.post(
            f"{url}/v1/responses", json={"model": "echo", "input": "hi"}, timeout=10
        )
        assert created.status_code == 200, created.text
        response_id = created.json()["id"]
        assert httpx.get(f"{url}/v1/responses/{response_id}").status_code == 200
        assert httpx.delete(f"{url}/v1/responses/{response_id}").status_code == 200
        page = settled(
            url,
            "robutler_requests_total",
            1,
            agent="echo",
            api="responses",
            outcome="completed",
            status="200",
        )
        assert value(page, "robutler_store_operations_total", operation="put") == 1
        assert value(page, "robutler_store_operations_total", operation="get") == 1
        assert value(page, "robutler_store_operations_total", operation="delete") == 1
        assert value(page, "robutler_store_errors_total", operation="put") == 0
        assert value(page, "robutler_tokens_total", agent="echo", type="input") == 7


async def test_store_errors_are_counted() -> None:
    from robutler.server.store import MemoryStore

    class Failing(MemoryStore):
        async def get(self, response_id: str, owner: str | None = None) -> Any:
            raise OSError("the disk is gone")

    app = ServerBase(metrics=True)
    app.response_store = Failing()
    assert isinstance(app.response_store, Failing)
    with pytest.raises(OSError):
        await app.response_store.get("resp_1")
    assert app.metrics is not None
    page = samples(app.metrics.page().decode())
    assert value(page, "robutler_store_operations_total", operation="get") == 1
    assert value(page, "robutler_store_errors_total", operation="get") == 1


def test_metrics_are_behind_the_api_key_when_keys_are_set() -> None:
    app = ServerBase(metrics=True, api_keys=["sekrit"])
    with LiveServer(app) as live:
        assert httpx.get(f"{live.url}/metrics").status_code == 401
        scrape(live.url, headers={"Authorization": "Bearer sekrit"})
        assert (
            httpx.post(
                f"{live.url}/metrics", headers={"Authorization": "Bearer sekrit"}
            ).status_code
            == 405
        )


def test_off_by_default_costs_nothing_and_the_environment_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROBUTLER_METRICS", raising=False)
    off = ServerBase()
    assert off.metrics is None
    assert off.endpoint.exchange_class is Exchange  # the plain exchange: nothing per request
    with LiveServer(off) as live:
        assert httpx.get(f"{live.url}/metrics").status_code == 404
    monkeypatch.setenv("ROBUTLER_METRICS", "1")
    on = ServerBase()
    assert on.metrics is not None and on.endpoint.exchange_class is not Exchange
    assert ServerBase(metrics=False).metrics is None


def test_metrics_reserve_the_name_and_need_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    app = ServerBase(metrics=True)
    with pytest.raises(ValueError, match="/metrics"):
        app.add_agent("metrics", lambda messages: "x")
    ServerBase().add_agent("metrics", lambda messages: "x")  # free when metrics are off
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"robutler-sdk\[metrics\]"):
        ServerBase(metrics=True)


# several workers ----------------------------------------------------------------------


def test_two_workers_of_robutler_serve_report_every_request(tmp_path: Any) -> None:
    from test_cli import serving

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["ROBUTLER_RESPONSES_DB"] = str(tmp_path / "responses.db")
    env["TMPDIR"] = str(tmp_path)  # where robutler serve makes the multiprocess directory
    by = {"agent": "echo", "api": "chat"}
    with serving("--metrics", "--workers", "2", cwd=tmp_path, env=env) as (url, output):
        total = 12
        for _ in range(total):  # a new connection each time: both workers get some
            with httpx.Client(timeout=10) as client:
                answer = client.post(f"{url}/echo/chat/completions", json={"messages": USER})
                assert answer.status_code == 200
        page = settled(
            url, "robutler_requests_total", total, outcome="completed", status="200", **by
        )
        assert value(page, "robutler_request_duration_seconds_count", **by) == total
        # every worker answers scrapes with every worker's requests
        for _ in range(6):
            with httpx.Client(timeout=10) as client:
                again = samples(client.get(f"{url}/metrics").text)
            assert (
                value(again, "robutler_requests_total", outcome="completed", status="200", **by)
                == total
            )
        (directory,) = [p for p in tmp_path.iterdir() if p.name.startswith("robutler-metrics-")]
        # the counters were written by two processes other than robutler serve's own
        counted_by = {p.stem.rpartition("_")[2] for p in directory.glob("counter_*.db")}
        served = {
            pid
            for pid in counted_by
            if (directory / f"histogram_{pid}.db").exists()  # it timed requests: a worker
        }
        assert len(served) == 2, counted_by
    assert not any("Traceback" in line for line in output), output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("robutler-metrics-")]
