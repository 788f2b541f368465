"""Prometheus metrics for agent requests, on `GET /metrics` (`ServerBase(metrics=True)`).

Needs `prometheus_client` (`pip install 'robutler-sdk[metrics]'`), imported only when metrics
are turned on. Turning them on is decided once, when the server is built: the server's
endpoint then makes a `MeteredExchange` (an `Exchange` subclass) per request, which times
the answer, counts it at its end, and gives finalize nothing new to do. A server without
metrics runs the plain `Exchange`: no per-request cost at all.

What is exported (names and labels are the contract dashboards are built on):

| metric | type | labels |
|---|---|---|
| `robutler_requests_total` | counter | `agent`, `api`, `outcome`, `status` |
| `robutler_request_duration_seconds` | histogram | `agent`, `api` |
| `robutler_time_to_first_byte_seconds` | histogram | `agent`, `api` |
| `robutler_open_streams` | gauge | `agent`, `api` |
| `robutler_tokens_total` | counter | `agent`, `type` (`input`, `output`) |
| `robutler_credits_total` | counter | `agent` |
| `robutler_store_operations_total` | counter | `operation` (`get`, `put`, `delete`) |
| `robutler_store_errors_total` | counter | `operation` |

`outcome` is `completed`, `rejected` (a 4xx before the agent answered), `failed` (a 5xx,
or a stream the agent broke off), `disconnected` (the client left first) or `timeout`
(`request_timeout` ran out). `api` is `chat`, `responses` or `websocket` (the Responses API's WebSocket mode). `agent` is the agent's name
once one serves the request; a request no agent took (an unknown name, a bad key before
resolution) is counted with `agent=""`, so made-up names cannot grow the label set.

Under several workers (`robutler serve --workers N --metrics`) every process writes its
values to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode,
which `robutler serve` sets up), and a scrape of any worker reads them all.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from .lifecycle import StreamingWrapper

if TYPE_CHECKING:
    from .endpoint import Exchange

__all__ = ["MULTIPROC_ENV", "Metrics", "metered_exchange", "metrics_enabled", "outcome"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FLUSH_EVERY = 1.0  # seconds: under several workers, the longest a count waits for a flush
STORE_OPERATIONS = {"get": "get", "put_json": "put", "delete": "delete"}


def metrics_enabled(value: bool | None) -> bool:
    """`ServerBase(metrics=...)`: the value given, else `ROBUTLER_METRICS` (1/true/yes/on)."""
    if value is not None:
        return bool(value)
    return os.environ.get("ROBUTLER_METRICS", "").strip().lower() in ("1", "true", "yes", "on")


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "metrics=True (robutler serve --metrics, ROBUTLER_METRICS=1) needs "
            "prometheus_client: pip install 'robutler-sdk[metrics]'"
        ) from exc
    return prometheus_client


def outcome(exchange: Exchange) -> str:
    """How the request ended, for the `outcome` label: completed, rejected, failed,
    disconnected or timeout."""
    response = exchange.state.response
    if isinstance(response, StreamingWrapper):
        status = response.status
        if status == "completed":
            return "completed"
        if status in ("disconnected", "streaming"):
            return "disconnected"
        return "timeout" if status == "timeout" else "failed"
    if exchange.timed_out:
        return "timeout"
    code = int(getattr(response, "status_code", 500))
    if exchange.disconnected or code == 499:
        return "disconnected"
    if code >= 500:
        return "failed"
    if code >= 400:
        return "rejected"
    return "completed" if exchange.finished else "disconnected"


_APIS: dict[type, str] = {}


def api_name(wire: Any) -> str:
    """The `api` label of a wire format: ChatWire -> chat, ResponsesWire -> responses."""
    api = _APIS.get(type(wire))
    if api is None:
        named = getattr(wire, "api", None)
        api = named if isinstance(named, str) else type(wire).__name__.removesuffix("Wire")
        api = _APIS[type(wire)] = api.lower() or "chat"
    return api


class Metrics:
    """The server's metrics: a registry of its own (several servers in one process do
    not collide), children cached per label set, and the `/metrics` ASGI app."""

    def __init__(self) -> None:
        prom = _prometheus()
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        reg = self.registry
        reg.register(_Flush(self))  # first in the registry: a scrape flushes, then reads
        by_agent = ("agent", "api")
        self.requests = prom.Counter(
            "robutler_requests",
            "Agent requests served, by how they ended.",
            ("agent", "api", "outcome", "status"),
            registry=reg,
        )
        self.duration = prom.Histogram(
            "robutler_request_duration_seconds",
            "Seconds from the request's arrival to the end of its answer (before finalize).",
            by_agent,
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.ttfb = prom.Histogram(
            "robutler_time_to_first_byte_seconds",
            "Seconds from the request's arrival to the first bytes of its answer's body.",
            by_agent,
            buckets=TTFB_BUCKETS,
            registry=reg,
        )
        self.open_streams = prom.Gauge(
            "robutler_open_streams",
            "Streamed answers being sent right now.",
            by_agent,
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.tokens = prom.Counter(
            "robutler_tokens",
            "Tokens the agents reported in their usage.",
            ("agent", "type"),
            registry=reg,
        )
        self.credits = prom.Counter(
            "robutler_credits", "Credits charged (track_usage, @pricing).", ("agent",), registry=reg
        )
        self.store_ops = prom.Counter(
            "robutler_store_operations",
            "Calls the server made to the response store.",
            ("operation",),
            registry=reg,
        )
        self.store_errors = prom.Counter(
            "robutler_store_errors",
            "Response store calls that raised.",
            ("operation",),
            registry=reg,
        )
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.counts: dict[tuple[str, str, str, int], int] = {}  # requests since the flush
        self.flush_timer: asyncio.TimerHandle | None = None

    def tally(self, agent: str, api: str) -> Tally:
        """The running numbers of one (agent, api)."""
        key = (agent, api)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally(self, agent, api)
        return tally

    def count(self, agent: str, api: str, how: str, status: int) -> None:
        """Count a finished request (in plain Python: `flush` hands it to prometheus_client)."""
        key = (agent, api, how, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if self.multiprocess_dir and self.flush_timer is None:
            # other workers' scrapes read this one's files: write them within a second
            self.flush_timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Add what was counted since the last flush to the prometheus_client metrics.

        Counting a request costs a few dictionary updates; the locked (or, under several
        workers, memory-mapped) prometheus_client values are updated here, at a scrape
        and, under several workers, at most a second after a request.
        """
        self.flush_timer = None
        counts, self.counts = self.counts, {}
        for (agent, api, how, status), n in counts.items():
            self.requests.labels(agent, api, how, str(status)).inc(n)
        for tally in self.tallies.values():
            tally.flush()

    def observe_store(self, store: Any) -> None:
        """Count the server's calls to `store` (get, put_json, delete) and their errors,
        by wrapping those methods on the instance (its class and identity unchanged)."""
        for method, operation in STORE_OPERATIONS.items():
            original = getattr(store, method, None)
            if original is None or getattr(original, "_robutler_metered", False):
                continue
            wrapped = _counted_call(
                original, self.store_ops.labels(operation), self.store_errors.labels(operation)
            )
            setattr(store, method, wrapped)

    def page(self) -> bytes:
        """The metrics in Prometheus's text format (every worker's, in multiprocess mode)."""
        prom = self._prom
        if self.multiprocess_dir:
            self.flush()
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return bytes(prom.generate_latest(registry))
        return bytes(prom.generate_latest(self.registry))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /metrics` (HEAD too); any other method gets a 405."""
        from .protocol import error_response

        if scope["method"] not in ("GET", "HEAD"):
            response = error_response(
                405,
                f"Method {scope['method']} is not allowed on {scope['path']}; use GET.",
                code="method_not_allowed",
                headers={"allow": "GET"},
            )
            await response(scope, receive, send)
            return
        body = self.page()
        headers = [
            (b"content-type", self._prom.CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


class Tally:
    """One (agent, api)'s numbers since the last flush, kept in plain Python."""

    __slots__ = (
        "credits",
        "credits_child",
        "duration",
        "duration_sum",
        "histograms",
        "open_streams",
        "tokens",
        "tokens_in",
        "tokens_out",
        "ttfb",
        "ttfb_sum",
    )

    def __init__(self, metrics: Metrics, agent: str, api: str) -> None:
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)  # by bucket, +Inf last
        self.ttfb = [0] * (len(TTFB_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.ttfb_sum = 0.0
        self.tokens_in = 0
        self.tokens_out = 0
        self.credits = 0.0
        self.histograms = (metrics.duration.labels(agent, api), metrics.ttfb.labels(agent, api))
        self.tokens = (
            metrics.tokens.labels(agent, "input"),
            metrics.tokens.labels(agent, "output"),
        )
        self.credits_child = metrics.credits.labels(agent)
        self.open_streams = metrics.open_streams.labels(agent, api)  # a gauge: set at once

    def observe(self, duration: float, ttfb: float | None) -> None:
        self.duration[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        if ttfb is not None:
            self.ttfb[bisect_left(TTFB_BUCKETS, ttfb)] += 1
            self.ttfb_sum += ttfb

    def flush(self) -> None:
        for histogram, counts, total in (
            (self.histograms[0], self.duration, self.duration_sum),
            (self.histograms[1], self.ttfb, self.ttfb_sum),
        ):
            if not any(counts):
                continue
            # prometheus_client has no bulk observe: add to its bucket values directly
            # (`observe` does the same, one at a time; the +Inf bucket is the last)
            histogram._sum.inc(total)
            for index, n in enumerate(counts):
                if n:
                    histogram._buckets[index].inc(n)
                    counts[index] = 0
        self.duration_sum = self.ttfb_sum = 0.0
        if self.tokens_in:
            self.tokens[0].inc(self.tokens_in)
            self.tokens_in = 0
        if self.tokens_out:
            self.tokens[1].inc(self.tokens_out)
            self.tokens_out = 0
        if self.credits:
            self.credits_child.inc(self.credits)
            self.credits = 0.0


class _Flush:
    """A collector that reads nothing: registered first, it flushes the tallies before
    the registry's metrics are read, for whatever reads the registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> list[Any]:
        self.metrics.flush()
        return []

    def describe(self) -> list[Any]:
        return []


def _counted_call(original: Callable[..., Any], ops: Any, errors: Any) -> Callable[..., Any]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        ops.inc()
        try:
            return await original(*args, **kwargs)
        except Exception:
            errors.inc()
            raise

    counted._robutler_metered = True  # type: ignore[attr-defined]
    return counted


def metered_exchange(
    base: type[Exchange], metrics: Metrics, static_agents: Container[str]
) -> type[Exchange]:
    """`base` with its requests measured: what a server with metrics on serves through.
    `static_agents`: the names that label a request even when no agent ran for it."""

    parent: Any = base  # a class made at run time: mypy checks the methods, not the base

    class MeteredExchange(parent):
        """An `Exchange` that times its answer and counts it when the request is over."""

        __slots__ = ("ended", "first_byte", "ran", "raw_send", "stream_gauge")

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.first_byte: float | None = None
            self.ended: float | None = None
            self.ran = False
            self.stream_gauge: Any = None
            self.raw_send = self.send  # type: ignore[has-type]
            self.send = self.metered_send  # type: ignore[misc]

        async def metered_send(self, message: Any) -> None:
            if self.first_byte is None:
                kind = message["type"]
                if kind == "http.response.start":
                    if isinstance(self.response, StreamingWrapper):
                        self.stream_gauge = self.tally().open_streams
                        self.stream_gauge.inc()
                elif kind == "http.response.body" and message.get("body"):
                    self.first_byte = time.perf_counter()
                    self.send = self.raw_send  # nothing more to look at
            await self.raw_send(message)

        def tally(self) -> Tally:
            return metrics.tally(self.label(), api_name(self.wire))

        def label(self) -> str:
            name = self.state.agent_name or ""
            return name if self.ran or name in static_agents else ""

        async def produce(self, spec: Any, parsed: Any) -> None:
            self.ran = True
            await super().produce(spec, parsed)

        async def finalize(self) -> None:
            self.ended = time.perf_counter()
            await super().finalize()

        async def run(self, specs: Any) -> None:
            try:
                await super().run(specs)
            finally:
                self.record()

        def record(self) -> None:
            state = self.state
            how = outcome(self)
            status = int(getattr(state.response, "status_code", 500))
            agent = self.label()
            api = api_name(self.wire)
            tally = metrics.tally(agent, api)
            start = state.start_time
            first = self.first_byte
            tally.observe(
                (self.ended or time.perf_counter()) - start,
                None if first is None else first - start,
            )
            if self.stream_gauge is not None:
                self.stream_gauge.dec()
            usage = state.token_usage
            if usage:
                tally.tokens_in += _tokens(usage, "prompt_tokens", "input_tokens")
                tally.tokens_out += _tokens(usage, "completion_tokens", "output_tokens")
            spent = state.usage.get("total_credits") or 0
            if spent > 0:
                tally.credits += spent
            metrics.count(agent, api, how, status)

    return MeteredExchange


def _tokens(usage: Any, *keys: str) -> int:
    for key in keys:
        value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0
