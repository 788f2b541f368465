"""ServerBase: a FastAPI app that serves agents behind OpenAI-compatible routes.

Static agents get concrete routes at registration; requests that match no route and look
like an agent's (`/NAME`, `/NAME/models`, `/NAME/chat/completions`, `/NAME/responses`)
reach the dynamic resolvers through the router's default app. Every agent route is plain
ASGI, so the lifecycle costs no middleware. The `/v1` front door (one base URL, the agent
picked by `model`) is in `frontdoor.py`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, overload

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, get_route_path
from starlette.types import Receive, Scope, Send

from .. import __version__
from .agents import (
    RESERVED_NAMES,
    AgentSpec,
    check_name,
    find_agent,
    is_agent_name,
    looks_like_handler,
)
from .auth import ApiKeys
from .config import FROM_ENV, FromEnv, env_list, load_env, seconds
from .context import RequestState, get_context
from .crosssite import HostCheck
from .endpoint import (
    DEFAULT_MAX_ANSWER_SIZE,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_CONVERSATION_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    AgentEndpoint,
)
from .frontdoor import FrontDoor, check_prefix, model_object
from .lifecycle import Hooks, StreamingWrapper
from .metrics import Metrics, metered_exchange, metrics_enabled
from .playground import Playground
from .protocol import RequestError, encode, error_response
from .responses.routes import serve_stored
from .responses.websocket import ResponsesSocket
from .responses.wire import ResponsesWire
from .routes import RouteTable
from .store import MemoryStore, ResponseStore, SQLiteStore
from .tracing import trace_hook, trace_store, traced_exchange, tracer_for

# `get_context`, `RequestState` and `StreamingWrapper` are re-exported: the original
# robutler documentation imports them from `robutler.server.base`.
__all__ = ["AgentDecorator", "RequestState", "ServerBase", "StreamingWrapper", "get_context"]

F = TypeVar("F", bound=Callable[..., Any])

CHAT, INFO, MODELS, MODEL = "chat", "info", "models", "model"
RESPONSES, STORED = "responses", "stored"
_ALLOWED = {
    CHAT: ("GET", "POST"),
    INFO: ("GET", "POST"),
    MODELS: ("GET",),
    MODEL: ("GET",),
    RESPONSES: ("POST",),
    STORED: ("GET", "DELETE"),
}


class AgentDecorator:
    """`app.agent`: registers agents and lifecycle hooks.

    `@app.agent("name")` serves a function as a static agent; `@app.agent(resolver)` serves
    it for every name `resolver(name)` accepts (returning data, or False for no such agent).
    `@app.agent` without parentheses on a handler serves it under its function name.
    `choices=True` registers an agent that answers the request's `n` itself: it is called
    with `n=...` and returns a list of n replies (each a str or a message dict) or a
    chat.completion dict with n choices. Other agents answer one choice; a request with
    `n > 1` to them is rejected with a 400 before they run.
    `@app.agent(resolver, list=fn)` also lists the dynamic agents `fn()` names (sync or
    async, a list of names) in `GET /v1/models`.
    `@app.agent.before_request` and `@app.agent.finalize_request` add hooks.
    """

    def __init__(self, server: ServerBase) -> None:
        self._server = server

    @overload
    def __call__(
        self, name_or_resolver: str, *, description: str | None = ..., choices: bool = ...
    ) -> Callable[[F], F]: ...

    @overload
    def __call__(
        self,
        name_or_resolver: Callable[[str], Any],
        *,
        description: str | None = ...,
        choices: bool = ...,
        list: Callable[[], Any] | None = ...,
    ) -> Callable[[F], F]: ...

    @overload
    def __call__(
        self, name_or_resolver: F, *, description: str | None = ..., choices: bool = ...
    ) -> F: ...

    def __call__(
        self,
        name_or_resolver: str | Callable[..., Any],
        *,
        description: str | None = None,
        choices: bool = False,
        list: Callable[[], Any] | None = None,
    ) -> Any:
        if list is not None and (isinstance(name_or_resolver, str) or not callable(list)):
            raise TypeError(
                "list= goes with a resolver, @app.agent(resolver, list=fn), and is a "
                "function that returns the names GET /v1/models shows"
            )
        if isinstance(name_or_resolver, str):
            name = check_name(name_or_resolver, self._server.reserved_names)

            def register_static(fn: F) -> F:
                self._server.add_agent(name, fn, description=description, choices=choices)
                return fn

            return register_static
        if callable(name_or_resolver) and looks_like_handler(name_or_resolver):
            # `@app.agent` without parentheses: the function is the handler, not a resolver.
            fn = name_or_resolver
            self._server.add_agent(_handler_name(fn), fn, description=description, choices=choices)
            return fn
        if callable(name_or_resolver):
            resolver = name_or_resolver

            def register_dynamic(fn: F) -> F:
                self._server.add_dynamic_agent(
                    resolver, fn, description=description, choices=choices, list=list
                )
                return fn

            return register_dynamic
        raise TypeError(
            "@app.agent(...) takes an agent name (str) or a resolver function "
            f"name -> data | False, got {type(name_or_resolver).__name__}"
        )

    def before_request(self, fn: F) -> F:
        """Run `fn(request)` before each agent request (chat or responses); raise HTTPException
        to reject it."""
        self._server.hooks.add_before(fn)
        return fn

    def finalize_request(self, fn: F) -> F:
        """Run `fn(request, response)` exactly once after each agent request ends."""
        self._server.hooks.add_finalize(fn)
        return fn

    def compactor(self, name: str) -> Callable[[F], F]:
        """`@app.agent.compactor("NAME")`: agent NAME's own compaction. `fn(messages)`
        (sync or async) gets the conversation `POST /responses/compact` was asked to
        compact (Chat Completions messages) and returns what stands for it: messages, or
        a str (a summary, one system message). That is what gets sealed; without a
        compactor the whole conversation is."""
        return self._responses_hook(name, self._server.responses_wire.compactors)

    def input_tokens(self, name: str) -> Callable[[F], F]:
        """`@app.agent.input_tokens("NAME")`: `fn(messages)` (sync or async) counts the
        input tokens of a request's conversation for `POST /responses/input_tokens`;
        without it that route is a 400 saying it is not offered."""
        return self._responses_hook(name, self._server.responses_wire.token_counters)

    def _responses_hook(self, name: str, table: dict[str, Any]) -> Callable[[F], F]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name the agent this is for, as a str; got {name!r}")

        def register(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"expected a function of the messages, got {fn!r}")
            table[name] = fn
            return fn

        return register


def _handler_name(fn: Any) -> str:
    name = getattr(fn, "__name__", "")
    if not isinstance(name, str) or not name.strip("_") or name == "<lambda>":
        raise TypeError(
            f"@app.agent without a name needs a named function, got {fn!r}; "
            'write @app.agent("name") instead'
        )
    return name.strip("_")


class ServerBase(FastAPI):
    """A FastAPI app with `@app.agent` for serving agents as Chat Completions endpoints.

    FastAPI keyword arguments (`title`, `version`, `debug`, ...) pass through. `debug=True`
    also puts an agent exception's text in its 500 answer.

    - `api_keys`: keys for `Authorization: Bearer KEY` on every agent route (a list, or a
      mapping of name to key); default from `ROBUTLER_API_KEYS`; none means open.
    - `max_body_size` (bytes, 413 beyond), `max_messages` and `max_depth` (422 beyond).
    - `max_conversation_size`: bytes of messages (encoded as JSON) an agent may be given
      for a Responses request, with the earlier turns of its `previous_response_id`
      (default 16 MiB); beyond, and beyond `max_messages` messages, a 400 naming the limit.
    - `max_answer_size`: characters of content an answer may have when the client did not
      ask for a stream (it is assembled in memory); beyond, the agent is stopped and the
      client gets a 500 with code `answer_too_large`.
    - `keepalive`: seconds without a byte on an open stream before the server sends an SSE
      comment (`: keepalive`) so that proxies keep it open; default `ROBUTLER_SSE_KEEPALIVE`
      or 15, 0 turns it off.
    - `request_timeout`: seconds an agent may take for its answer, JSON or stream; beyond,
      it is cancelled and the client gets a 504 `timeout` (an error event in an open
      stream); default `ROBUTLER_REQUEST_TIMEOUT`, else 600 (10 minutes); None or 0: no
      limit.
    - `public_docs`: whether `/docs`, `/redoc` and `/openapi.json` are open. Default: open
      without API keys, behind the key when keys are configured (`/health` then tells a
      caller without a key only that the server is alive).
    - `cors_origins`: origins allowed by CORS (off by default).
    - `env_file`: the `.env` to load first (default `./.env`), never overriding the environment.
    - `hook_errors`: what a `before_request` hook that raises something other than
      `HTTPException` does: `"log"` (default) logs it with its traceback and serves the
      request; `"reject"` answers 500 with code `hook_error` (fail closed).
    - `playground`: the chat page at `/playground` and `/NAME/playground`; None (default)
      means on unless API keys are configured.
    - `openai_prefix`: where the OpenAI front door is (`/v1`: `GET /v1/models`,
      `POST /v1/chat/completions`, `POST /v1/responses`, the agent picked by `model`);
      None turns it off. Its first segment cannot be an agent's name.
    - `allowed_hosts`: Host names served besides the loopback ones when the server is
      reached on a loopback address (where any other name is refused, 400 `invalid_host`,
      against DNS rebinding); default `ROBUTLER_ALLOWED_HOSTS` (comma-separated); `["*"]`
      turns the check off. List the public name a proxy on the same machine passes on.
    - `response_store`: where Responses API answers are stored (for `previous_response_id`,
      `GET`/`DELETE .../responses/{id}`); default an `SQLiteStore` at
      `ROBUTLER_RESPONSES_DB` when that is set (as `robutler serve` does), else a
      `MemoryStore`.
    - `metrics`: Prometheus metrics on `GET /metrics` (behind the API key when keys are
      configured); needs `robutler-sdk[metrics]`. Default `ROBUTLER_METRICS`, else off; off
      costs nothing per request (see `robutler.server.metrics`).
    - `tracing`: OpenTelemetry spans per request (`robutler-sdk[tracing]`): True (the global
      tracer provider), a `TracerProvider`, False; None (default) means
      `ROBUTLER_TRACING`, else on when a global tracer provider is set when the server is
      built (see `robutler.server.tracing`).
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | Mapping[str, str] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_messages: int = 10_000,
        max_depth: int = 64,
        max_answer_size: int = DEFAULT_MAX_ANSWER_SIZE,
        max_conversation_size: int = DEFAULT_MAX_CONVERSATION_SIZE,
        cors_origins: Iterable[str] | None = None,
        public_docs: bool | None = None,
        keepalive: float | None = None,
        request_timeout: float | Literal[FromEnv.FROM_ENV] | None = FROM_ENV,
        env_file: str | None = None,
        hook_errors: str = "log",
        playground: bool | None = None,
        openai_prefix: str | None = "/v1",
        response_store: ResponseStore | None = None,
        allowed_hosts: Iterable[str] | None = None,
        metrics: bool | None = None,
        tracing: Any = None,
        **fastapi_kwargs: Any,
    ) -> None:
        load_env(env_file)
        openai_prefix = check_prefix(openai_prefix)
        if response_store is not None and not isinstance(response_store, ResponseStore):
            raise TypeError(
                "response_store must be a robutler.server.store.ResponseStore (MemoryStore, "
                f"SQLiteStore or your own subclass), got {type(response_store).__name__}"
            )
        super().__init__(**fastapi_kwargs)
        for label, value in (
            ("max_body_size", max_body_size),
            ("max_messages", max_messages),
            ("max_depth", max_depth),
            ("max_answer_size", max_answer_size),
            ("max_conversation_size", max_conversation_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.api_keys = ApiKeys.configure(api_keys)
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts is a list of host names, e.g. ['robutler.example']")
        self.host_check = HostCheck(
            env_list("ROBUTLER_ALLOWED_HOSTS") if allowed_hosts is None else allowed_hosts
        )
        self.hooks = Hooks(hook_errors)
        self.agent = AgentDecorator(self)
        self.endpoint = AgentEndpoint(
            self.hooks,
            max_body_size=max_body_size,
            max_messages=max_messages,
            max_depth=max_depth,
            max_answer_size=max_answer_size,
            max_conversation_size=max_conversation_size,
            auth=self.api_keys,
            debug=self.debug,
            keepalive=seconds(keepalive, "ROBUTLER_SSE_KEEPALIVE", 15.0, "keepalive"),
            request_timeout=None
            if request_timeout is None
            else seconds(
                None if request_timeout is FROM_ENV else request_timeout,
                "ROBUTLER_REQUEST_TIMEOUT",
                DEFAULT_REQUEST_TIMEOUT,
                "request_timeout",
            ),
        )
        self.chat_handler = self.endpoint  # its former name
        self.endpoint.models = self._specs_for_model
        self.responses_wire = ResponsesWire(
            response_store if response_store is not None else _default_store()
        )
        self.started = _STARTED  # when the models were "created"
        if cors_origins is not None:
            origins = [cors_origins] if isinstance(cors_origins, str) else list(cors_origins)
            self.add_middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["authorization", "content-type"],
                expose_headers=["x-request-id"],
            )
        self.static_agents: dict[str, AgentSpec] = {}
        self.dynamic_agents: list[AgentSpec] = []
        self.reserved_names: set[str] = set(RESERVED_NAMES)
        self.readiness_checks: list[Callable[[], str | None]] = []
        self.router.default = self._unmatched
        # robutler's own routes: one table, first, looked up instead of pattern-matched
        self.route_table = RouteTable()
        self.router.routes.insert(0, self.route_table)
        self.add_api_route("/health", self._health, methods=["GET"], tags=["robutler"])
        if self.api_keys is not None and not public_docs:
            self._guard_docs(self.api_keys)
        self.playground = Playground(self, playground)
        for path, app, route_name in self.playground.routes():
            self.route_table.add(path, app, route_name)
        self.openai_prefix = openai_prefix
        self.front_door: FrontDoor | None = None
        if openai_prefix is not None:
            self.front_door = FrontDoor(self, openai_prefix)
            self.reserved_names.add(openai_prefix.strip("/").split("/")[0])
            for path, app, route_name in self.front_door.routes():
                self.route_table.add(path, app, route_name)
            self.route_table.add_socket(f"{openai_prefix}/responses", self._socket(None, None))
        self.metrics: Metrics | None = None
        if metrics_enabled(metrics):
            self._enable_metrics()
        self.tracer = tracer_for(tracing)
        if self.tracer is not None:
            self._enable_tracing(self.tracer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            host = self.host_check.refused(scope)
            if host is not None:  # a rebound DNS name on a loopback server (crosssite.py)
                await self.host_check.refuse(host, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _enable_tracing(self, tracer: Any) -> None:
        """A span per agent request, with the hooks, the agent and store calls in it."""
        self.endpoint.exchange_class = traced_exchange(self.endpoint.exchange_class, tracer)
        self.hooks.wrap = lambda hook: trace_hook(hook, tracer)
        for hook in (*self.hooks.before, *self.hooks.finalize):
            trace_hook(hook, tracer)
        trace_store(self.responses_wire.store, tracer)

    def _enable_metrics(self) -> None:
        """Measure every agent request and serve the page at `/metrics` (a reserved name)."""
        self.metrics = Metrics()
        self.endpoint.exchange_class = metered_exchange(
            self.endpoint.exchange_class, self.metrics, self.static_agents
        )
        self.metrics.observe_store(self.responses_wire.store)
        self.reserved_names.add("metrics")
        keys = self.api_keys
        self.route_table.add(
            "/metrics", self.metrics if keys is None else keys.guard(self.metrics), "metrics"
        )

    @property
    def response_store(self) -> ResponseStore:
        """Where Responses API answers are stored; assign another `ResponseStore` to change it."""
        return self.responses_wire.store

    @response_store.setter
    def response_store(self, store: ResponseStore) -> None:
        if not isinstance(store, ResponseStore):
            raise TypeError(f"response_store must be a ResponseStore, got {type(store).__name__}")
        if self.metrics is not None:
            self.metrics.observe_store(store)
        if self.tracer is not None:
            trace_store(store, self.tracer)
        self.responses_wire.store = store

    def _socket(self, name: str | None, specs: list[AgentSpec] | None) -> ResponsesSocket:
        """The Responses API's WebSocket mode for agent `name` (None: picked by `model`)."""

        async def serve_turn(scope: Scope, receive: Receive, send: Send, wire: Any) -> None:
            await self.endpoint(scope, receive, send, name, specs, wire)

        return ResponsesSocket(serve_turn, self.responses_wire, self.api_keys)

    def _specs_for_model(self, model: str) -> list[AgentSpec]:
        if self.front_door is None:  # pragma: no cover - only the front door routes by model
            raise RuntimeError("routing by model needs the front door")
        return self.front_door.specs_for(model)

    # registration ---------------------------------------------------------------------

    def add_agent(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str | None = None,
        model: str | None = None,
        pricing: dict[str, Any] | None = None,
        choices: bool = False,
    ) -> AgentSpec:
        """Serve `fn` as the static agent `name`; returns its spec.

        `choices=True`: `fn` answers the request's `n` itself (see `AgentDecorator`).
        """
        self._check_front_door_name(name)
        check_name(name, self.reserved_names)
        if name in self.static_agents:
            raise ValueError(
                f"an agent named {name!r} is already registered; agent names must be unique"
            )
        spec = AgentSpec(fn, name, description=description, model=model, choices=choices)
        if pricing is not None:
            spec.pricing = pricing
        self.static_agents[name] = spec
        specs = [spec]
        for path, kind in (
            (f"/{name}/chat/completions", CHAT),
            (f"/{name}/responses", RESPONSES),
            (f"/{name}/responses/{{response_id:path}}", STORED),
            (f"/{name}/models", MODELS),
            (f"/{name}/models/{{model_id:path}}", MODEL),
            (f"/{name}", INFO),
        ):
            self.route_table.add(path, _AgentRoute(self, kind, name, specs), f"agent:{name}:{kind}")
        self.route_table.add_socket(f"/{name}/responses", self._socket(name, specs))
        return spec

    def add_dynamic_agent(
        self,
        resolver: Callable[[str], Any],
        fn: Callable[..., Any],
        *,
        description: str | None = None,
        choices: bool = False,
        list: Callable[[], Any] | None = None,
    ) -> AgentSpec:
        """Serve `fn` for every agent name that `resolver(name)` returns data for.

        `list`: a function (sync or async) returning the names `GET /v1/models` shows.
        """
        spec = AgentSpec(fn, None, resolver, description=description, choices=choices)
        self.dynamic_agents.append(spec)
        if list is not None and self.front_door is not None:
            self.front_door.listers.append(list)
        return spec

    def _check_front_door_name(self, name: Any) -> None:
        prefix = self.openai_prefix
        if isinstance(name, str) and prefix is not None and name == prefix.strip("/").split("/")[0]:
            raise ValueError(
                f"agent name {name!r} collides with the OpenAI front door at {prefix}; choose "
                "another name, or build the server with openai_prefix=None (or another prefix)"
            )

    # routes ---------------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document plus the agent routes (built once, like FastAPI's)."""
        if self.openapi_schema is None:
            from .openapi import add_agent_paths, add_responses_paths

            names = sorted(self.static_agents)
            secured = self.api_keys is not None
            schema = add_agent_paths(
                super().openapi(),
                names,
                secured,
                frozenset(name for name, spec in self.static_agents.items() if spec.choices),
            )
            self.openapi_schema = add_responses_paths(schema, names, secured, self.openai_prefix)
        return self.openapi_schema

    def health_warnings(self) -> list[str]:
        """What keeps agents from answering (e.g. a missing upstream API key), as sentences."""
        return [problem for check in self.readiness_checks if (problem := check())]

    def _guard_docs(self, keys: ApiKeys) -> None:
        """Put FastAPI's documentation routes behind the API key."""
        paths = {
            self.openapi_url,
            self.docs_url,
            self.redoc_url,
            self.swagger_ui_oauth2_redirect_url,
        }
        for route in self.router.routes:
            if isinstance(route, Route) and route.path in paths:
                route.app = keys.guard(route.app)

    async def _health(self, request: Request) -> dict[str, Any]:
        if self.api_keys is not None:
            try:
                self.api_keys.check(request.scope)
            except RequestError:
                return {"status": "ok"}  # liveness only, for callers without a key
        return {
            "status": "ok",
            "version": __version__,
            "agents": sorted(self.static_agents),
            "dynamic_agents": bool(self.dynamic_agents),
            "warnings": self.health_warnings(),
        }

    async def _unmatched(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router.not_found(scope, receive, send)
            return
        parts = get_route_path(scope).strip("/").split("/")
        name = parts[0]
        if name in self.reserved_names:
            await _unknown_url(scope, receive, send)
        elif parts[1:] == ["playground"] and is_agent_name(name):
            await self.playground.serve(scope, receive, send, name)
        else:
            kind = _agent_route_kind(parts, scope)
            # A name that could not be an agent's is an unknown path: no resolver, hook or
            # log line ever sees it.
            if kind is not None and is_agent_name(name):
                await self.serve_agent(kind, name, self.dynamic_agents, scope, receive, send)
            else:
                await _unknown_url(scope, receive, send)

    async def serve_agent(
        self,
        kind: str,
        name: str,
        specs: list[AgentSpec],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Answer one agent route: chat completions, agent info, or its models list."""
        method = scope["method"]
        if kind == CHAT and method == "POST":
            await self.endpoint(scope, receive, send, name, specs)
            return
        if kind == RESPONSES and method == "POST":
            await self.endpoint(scope, receive, send, name, specs, self.responses_wire)
            return
        if (
            kind != STORED  # its sub-routes say their own methods
            and method not in _ALLOWED[kind]
            and not (method == "HEAD" and kind not in (CHAT, RESPONSES) and "GET" in _ALLOWED[kind])
        ):
            allowed = ", ".join(_ALLOWED[kind])
            response = error_response(
                405,
                f"Method {method} is not allowed on {scope['path']}; use {allowed}.",
                code="method_not_allowed",
                headers={"allow": allowed},
            )
            await response(scope, receive, send)
            return
        owner = None
        if self.api_keys is not None:
            try:
                owner = self.api_keys.check(scope)
            except RequestError as exc:
                await exc.response()(scope, receive, send)
                return
        try:
            spec, _ = await find_agent(name, specs)
        except RequestError as exc:
            await exc.response()(scope, receive, send)
            return
        if kind == STORED:
            try:
                await serve_stored(self, scope, receive, send, owner, name)
            except RequestError as exc:
                await exc.response()(scope, receive, send)
            return
        if kind == CHAT:
            body: dict[str, Any] = {
                "agent": name,
                "endpoint": f"/{name}/chat/completions",
                "method": "POST",
                "openai_compatible": True,
                "supports_streaming": True,
            }
        elif kind == MODELS:
            body = {"object": "list", "data": [_model(name)]}
        elif kind == MODEL:
            model_id = get_route_path(scope).strip("/").split("/", 2)[2]
            if model_id != name:
                await error_response(
                    404,
                    f"The model {model_id!r} does not exist; agent {name!r} serves the model "
                    f"{name!r} (see GET /{name}/models).",
                    param="model",
                    code="model_not_found",
                )(scope, receive, send)
                return
            body = _model(name)
        else:
            body = spec.info(name)
            if method == "POST":
                body["status"] = "active"
        await Response(encode(body), media_type="application/json")(scope, receive, send)


_STARTED = int(time.time())


def _model(name: str) -> dict[str, Any]:
    return model_object(name, _STARTED)


def _default_store() -> ResponseStore:
    """An SQLiteStore at ROBUTLER_RESPONSES_DB when it is set, else a MemoryStore."""
    path = os.environ.get("ROBUTLER_RESPONSES_DB", "").strip()
    return SQLiteStore(path) if path else MemoryStore()


def _agent_route_kind(parts: list[str], scope: Scope) -> str | None:
    """Which route of a dynamic agent a path (split at `/`, the name first) is, if any;
    a stored response's id goes into the scope's path parameters."""
    rest = parts[1:]
    if not rest:
        return INFO if parts[0] else None
    if rest == ["models"]:
        return MODELS
    if rest == ["chat", "completions"]:
        return CHAT
    if rest == ["responses"]:
        return RESPONSES
    if len(rest) >= 2 and rest[0] == "responses" and rest[1]:
        scope["path_params"] = {"response_id": "/".join(rest[1:])}
        return STORED
    if len(rest) >= 2 and rest[0] == "models" and all(rest[1:]):
        return MODEL
    return None


async def _unknown_url(scope: Scope, receive: Receive, send: Send) -> None:
    """OpenAI's answer to a URL it does not serve, with the routes an agent has."""
    message = (
        f"Invalid URL ({scope['method']} {scope['path']}): each agent NAME is served at "
        "/NAME/chat/completions, /NAME/responses, /NAME/models and /NAME; GET /health "
        "lists the agents."
    )
    await error_response(404, message, code="unknown_url")(scope, receive, send)


class _AgentRoute:
    """The ASGI app behind one static agent route."""

    __slots__ = ("kind", "name", "server", "specs")

    def __init__(self, server: ServerBase, kind: str, name: str, specs: list[AgentSpec]) -> None:
        self.server = server
        self.kind = kind
        self.name = name
        self.specs = specs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.serve_agent(self.kind, self.name, self.specs, scope, receive, send)
