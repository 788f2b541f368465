"""OpenTelemetry traces: one span per agent request, with child spans for the hooks, the
agent and the response store (`ServerBase(tracing=...)`).

Needs `opentelemetry-api` (`pip install 'robutler-sdk[tracing]'`) and, to export anything, an
SDK with a tracer provider (`opentelemetry-sdk` and an exporter). Off unless configured,
decided once when the server is built: `tracing=True` (the global tracer provider),
`tracing=provider` (that one), `tracing=False`, or None (the default): `ROBUTLER_TRACING`
(1/0) if set, else on exactly when a global tracer provider has been set by then. A
server without tracing runs the plain `Exchange`: no per-request cost.

The request's span follows OpenTelemetry's GenAI semantic conventions: it is named
`chat AGENT` (kind SERVER), continues the trace of an incoming `traceparent` header, and
carries `gen_ai.operation.name` (`chat`), `gen_ai.request.model`, `gen_ai.agent.name`,
`gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`, the HTTP method, path and
status, and `robutler.outcome` (`completed`, `rejected`, `failed`, `disconnected`,
`timeout`, as the metrics count it), `robutler.api` and `robutler.request_id`; a failure
or timeout sets the span's status to ERROR with `error.type`. It ends once, after the
finalize hooks, whatever way the request ended. Its children: `invoke_agent AGENT` while
the agent runs and its answer is sent (what the agent calls, an Agents SDK run's model
requests included, nests under it), one span per hook (`before_request NAME`,
`finalize_request NAME`) and one per store call (`response_store get|put|delete`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .. import __version__
from .metrics import api_name, outcome

if TYPE_CHECKING:
    from .endpoint import Exchange
    from .lifecycle import Hook

__all__ = ["trace_hook", "trace_store", "traced_exchange", "tracer_for"]

STORE_OPERATIONS = {"get": "get", "put_json": "put", "delete": "delete"}
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ImportError(
            "tracing (ServerBase(tracing=...), ROBUTLER_TRACING=1) needs opentelemetry-api: "
            "pip install 'robutler-sdk[tracing]'"
        ) from exc
    return trace


def provider_configured() -> bool:
    """Whether a global tracer provider has been set (without importing OpenTelemetry:
    a program that set one has imported it)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def tracer_for(value: Any) -> Any | None:
    """The tracer a server traces with, or None for no tracing (see the module docstring)."""
    if value is False:
        return None
    if value is None:
        env = os.environ.get("ROBUTLER_TRACING", "").strip().lower()
        if env in _OFF or (env not in _ON and not provider_configured()):
            return None
        value = True
    trace = _otel()
    if value is True:
        return trace.get_tracer("robutler", __version__)
    if callable(getattr(value, "get_tracer", None)):
        return value.get_tracer("robutler", __version__)
    raise TypeError(
        "tracing must be True, False, None or an OpenTelemetry TracerProvider, got "
        f"{type(value).__name__}"
    )


def _headers(scope: Any) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def traced_exchange(base: type[Exchange], tracer: Any) -> type[Exchange]:
    """`base` with a span per request and one around the agent."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    parent: Any = base  # a class made at run time: mypy checks the methods, not the base

    class TracedExchange(parent):
        """An `Exchange` whose request is a span, the agent's work a child of it."""

        __slots__ = ("model",)

        async def run(self, specs: Any) -> None:
            self.model = None
            scope = self.scope
            state = self.state
            attributes = {
                "gen_ai.operation.name": "chat",
                "http.request.method": scope.get("method", ""),
                "url.path": scope.get("path", ""),
                "robutler.request_id": state.request_id,
            }
            with tracer.start_as_current_span(
                "chat",
                context=propagate.extract(_headers(scope)),
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    await super().run(specs)
                finally:
                    self.describe(span)

        def describe(self, span: Any) -> None:
            """The span's attributes once the request is over."""
            state = self.state
            agent = state.agent_name or ""
            how = outcome(self)
            status = int(getattr(state.response, "status_code", 500))
            if agent:
                span.update_name(f"chat {agent}")
                span.set_attribute("gen_ai.agent.name", agent)
            model = self.model or agent
            if model:
                span.set_attribute("gen_ai.request.model", model)
            span.set_attribute("robutler.api", api_name(self.wire))
            span.set_attribute("robutler.outcome", how)
            span.set_attribute("http.response.status_code", status)
            usage = state.token_usage
            if usage:
                for key, names in (
                    ("gen_ai.usage.input_tokens", ("prompt_tokens", "input_tokens")),
                    ("gen_ai.usage.output_tokens", ("completion_tokens", "output_tokens")),
                ):
                    count = next((usage[n] for n in names if isinstance(usage.get(n), int)), None)
                    if count is not None:
                        span.set_attribute(key, count)
            if how in ("failed", "timeout"):
                error = state.error
                span.set_attribute("error.type", type(error).__name__ if error else how)
                span.set_status(Status(StatusCode.ERROR, str(error) if error else how))

        async def produce(self, spec: Any, parsed: Any) -> None:
            self.model = parsed.model
            agent = self.state.agent_name or ""
            with tracer.start_as_current_span(
                f"invoke_agent {agent}",
                attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
            ):
                await super().produce(spec, parsed)

    return TracedExchange


def trace_hook(hook: Hook, tracer: Any) -> None:
    """Run `hook` in a span of its own (`before_request NAME`, `finalize_request NAME`)."""
    call = hook.call
    if getattr(call, "_robutler_traced", False):
        return
    kind = hook.label.partition(" ")[0]  # before_request or finalize_request
    name = f"{kind} {getattr(hook.fn, '__name__', None) or type(hook.fn).__name__}"

    async def traced(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(name, attributes={"robutler.hook": name}):
            return await call(*args, **kwargs)

    traced._robutler_traced = True  # type: ignore[attr-defined]
    hook.call = traced  # type: ignore[assignment]


def trace_store(store: Any, tracer: Any) -> None:
    """A span per call the server makes to `store` (get, put_json, delete), by wrapping
    those methods on the instance (its class and identity unchanged)."""
    for method, operation in STORE_OPERATIONS.items():
        original = getattr(store, method, None)
        if original is None or getattr(original, "_robutler_traced", False):
            continue
        setattr(store, method, _traced_call(original, tracer, f"response_store {operation}"))


def _traced_call(original: Any, tracer: Any, name: str) -> Any:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(name, attributes={"robutler.store.operation": name}):
            return await original(*args, **kwargs)

    traced._robutler_traced = True  # type: ignore[attr-defined]
    return traced
