"""`robutler serve [APP]`: serve a robutler app (or the built-in demo) with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import inspect
import logging
import logging.config
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["load_app", "main"]

DEMO = "robutler_testing.demo:app"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class AppError(Exception):
    """APP could not be loaded; the message is one line for the user."""


def _import_target(spec: str) -> tuple[str, str | None, str | None]:
    """(module name, attribute, directory to put on sys.path) for an APP argument."""
    target, _, attr = spec.partition(":")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise AppError(f"no such file: {target}")
        return path.stem, attr or None, str(path.resolve().parent)
    return target, attr or None, None


def load_app(spec: str) -> tuple[Any, str]:
    """Import APP (`module:attr`, `module`, `file.py` or `file.py:attr`).

    Returns the app and an import string uvicorn can re-import (for --workers/--reload).
    Without an attribute, `app` then `server` is used.
    """
    module_name, attr, directory = _import_target(spec)
    if directory is not None:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:
        raise AppError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    names = [attr] if attr else ["app", "server"]
    for name in names:
        app = getattr(module, name, None)
        if app is not None:
            problem = _not_asgi(app)
            if problem:
                raise AppError(
                    f"{module_name}:{name} is {problem}, not an ASGI app: name the ServerBase "
                    f"or Server that serves your agents (e.g. app = Server(agents=[...]))"
                )
            return app, f"{module_name}:{name}"
    if attr:
        raise AppError(f"module {module_name!r} has no attribute {attr!r}")
    raise AppError(
        f"module {module_name!r} has no 'app' or 'server' attribute; name one as MODULE:ATTRIBUTE"
    )


def _not_asgi(obj: Any) -> str | None:
    """What `obj` is when it cannot be an ASGI app (`app(scope, receive, send)`), else None."""
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    if not callable(obj):
        return f"a {type(obj).__name__}"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        params = list(inspect.signature(obj).parameters)
        if "messages" in params or len(params) != 3:
            return f"the function {obj.__name__}({', '.join(params)})"
    return None


def _banner(app: Any, host: str, port: int) -> str:
    """What `robutler serve` prints on start: each agent's URL and snippets to try one."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    names = sorted(getattr(app, "static_agents", {}) or {})
    dynamic = bool(getattr(app, "dynamic_agents", None))
    lines = [f"robutler serving on {base}"]
    for name in names:
        lines.append(f"  agent {name:<12} {base}/{name}/chat/completions")
    if dynamic:
        lines.append(f"  dynamic agents    {base}/<name>/chat/completions")
    if getattr(getattr(app, "playground", None), "enabled", False):
        lines.append(f"  playground         {base}/playground   (chat in a browser)")
    if not names and not dynamic:
        lines.append(
            '  no agents are registered yet: add one with @app.agent("name") or '
            "Server(agents=[...])"
        )
        return "\n".join(lines)
    prefix = getattr(app, "openai_prefix", None)
    if prefix:
        lines.append(f"  OpenAI base URL    {base}{prefix}   (model = the agent's name)")
    store_path = getattr(getattr(app, "response_store", None), "path", None)
    if isinstance(store_path, str):
        lines.append(f"  stored responses   {store_path}")
    example = names[0] if names else "NAME"
    keyed = getattr(app, "api_keys", None) is not None
    auth = " -H 'Authorization: Bearer YOUR_API_KEY'" if keyed else ""
    key = "YOUR_API_KEY" if keyed else "unused"
    install = "  # pip install openai" if importlib.util.find_spec("openai") is None else ""
    lines += [
        "",
        "Try it:",
        f"  curl {base}/{example}/chat/completions -H 'Content-Type: application/json'{auth} \\",
        '    -d \'{"messages": [{"role": "user", "content": "Hello"}]}\'',
        "",
        f"  from openai import OpenAI{install}",
    ]
    if prefix:
        lines += [
            f'  client = OpenAI(base_url="{base}{prefix}", api_key="{key}")',
            f'  print(client.chat.completions.create(model="{example}", messages=[{{"role": '
            '"user", "content": "Hello"}]).choices[0].message.content)',
            f'  print(client.responses.create(model="{example}", input="Hello").output_text)',
        ]
    else:
        lines += [
            f'  client = OpenAI(base_url="{base}/{example}", api_key="{key}")',
            '  print(client.chat.completions.create(model="any", messages=[{"role": "user", '
            '"content": "Hello"}]).choices[0].message.content)',
        ]
    return "\n".join(lines)


def host_warning(app: Any, host: str) -> str | None:
    """The warning for binding a non-loopback `host` with no API keys configured, if due."""
    if host in LOOPBACK:
        return None
    if getattr(app, "api_keys", None) or os.environ.get("ROBUTLER_API_KEYS", "").strip():
        return None
    return (
        f"serving on {host} with no API keys: anyone who can reach this address can use "
        "your agents. Set ROBUTLER_API_KEYS or ServerBase(api_keys=[...])."
    )


def limit_options(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn options for the connection limits (see robutler.serving)."""
    os.environ["ROBUTLER_MAX_HEADER_SIZE"] = str(args.max_header_size)
    os.environ["ROBUTLER_HEADER_TIMEOUT"] = str(args.header_timeout)
    os.environ["ROBUTLER_BODY_TIMEOUT"] = str(args.body_timeout)
    os.environ["ROBUTLER_MIN_BODY_RATE"] = str(args.min_body_rate)
    options: dict[str, Any] = {
        "limit_concurrency": args.limit_concurrency or None,
        "timeout_keep_alive": args.timeout_keep_alive,
    }
    try:
        from .serving import GuardedHttp
    except ImportError:  # no httptools: h11 has a header size limit of its own
        options["http"] = "h11"
        options["h11_max_incomplete_event_size"] = args.max_header_size
    else:
        options["http"] = GuardedHttp
    return options


_STORED_ID = re.compile(r"(/responses/)[^/?#\s]+")


class MaskResponseIds(logging.Filter):
    """Masks stored response ids in access-log paths (`/v1/responses/resp_...`): an id
    reads, continues and deletes its response, so it must not end up in a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            path = args[2]
            if "/responses/" in path:
                masked = _STORED_ID.sub(r"\1resp_...", path)
                record.args = (*args[:2], masked, *args[3:])
        return True


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the `robutler` logger, at `level`.

    robutler's records (a failing agent, a missing API key) then look like uvicorn's own
    lines: the same handler, level prefix and format. The access log masks stored
    response ids (`MaskResponseIds`).
    """
    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_response_ids"] = {"()": MaskResponseIds}
    config["handlers"]["access"]["filters"] = ["mask_response_ids"]
    config["loggers"]["robutler"] = {
        "handlers": ["default"],
        "level": LOG_LEVELS[level],
        "propagate": False,
    }
    return config


DEFAULT_RESPONSES_DB = ".robutler/responses.db"


def responses_db(args: argparse.Namespace) -> str:
    """Where stored responses go: --responses-db, else ROBUTLER_RESPONSES_DB, else
    `.robutler/responses.db` in the working directory. Set in the environment (absolute),
    so that every worker's server opens the same SQLite file."""
    path = args.responses_db or os.environ.get("ROBUTLER_RESPONSES_DB") or DEFAULT_RESPONSES_DB
    path = str(Path(path).expanduser().resolve())
    os.environ["ROBUTLER_RESPONSES_DB"] = path
    return path


def serve(args: argparse.Namespace) -> int:
    logging_config = log_config(args.log_level)
    logging.config.dictConfig(logging_config)  # before APP is imported: its records too
    if args.env_file:
        from robutler.server.config import load_env

        if not Path(args.env_file).is_file():
            print(f"robutler: error: no such env file: {args.env_file}", file=sys.stderr)
            return 2
        load_env(args.env_file)
    responses_db(args)  # before APP is imported: its server opens this file
    with metrics_dir(args):
        return _serve(args, logging_config)


@contextlib.contextmanager
def metrics_dir(args: argparse.Namespace) -> Iterator[None]:
    """--metrics: turn them on for APP's server (`ROBUTLER_METRICS=1`), and with several
    workers give prometheus_client's multiprocess mode a fresh directory for the run
    (`PROMETHEUS_MULTIPROC_DIR`, unless it is set), removed at the end."""
    if not args.metrics:
        yield
        return
    os.environ["ROBUTLER_METRICS"] = "1"
    if args.workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="robutler-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


def _serve(args: argparse.Namespace, logging_config: dict[str, Any]) -> int:
    spec = args.app or DEMO
    try:
        app, import_string = load_app(spec)
    except AppError as exc:
        print(f"robutler: error: {exc}", file=sys.stderr)
        return 2
    warning = host_warning(app, args.host)
    if warning:
        print(f"robutler: warning: {warning}", file=sys.stderr)
    print(_banner(app, args.host, args.port), flush=True)
    import uvicorn

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        **limit_options(args),
        "log_config": logging_config,
    }
    if args.workers > 1 or args.reload:
        _, _, directory = _import_target(spec)
        uvicorn.run(
            import_string,
            workers=args.workers if not args.reload else None,
            reload=args.reload,
            app_dir=directory or os.getcwd(),
            **options,
        )
    else:
        uvicorn.run(app, **options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="robutler", description="Serve AI agents behind OpenAI-compatible endpoints."
    )
    parser.add_argument(
        "--version", action="version", version=f"robutler {__version__}", help="show the version"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="serve (see robutler serve --help)"
    )
    srv = commands.add_parser(
        "serve",
        help="serve an app, or the built-in demo agents",
        description="Serve APP with uvicorn. Without APP, serve the built-in demo agents "
        "(backed by robutler_testing.MockAgent; no API key needed).",
    )
    srv.add_argument(
        "app", nargs="?", metavar="APP", help="module:attribute or path/to/file.py[:attribute]"
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    srv.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    srv.add_argument(
        "--reload", action="store_true", help="restart when code changes (development)"
    )
    srv.add_argument(
        "--env-file", help="load this .env file first (never overrides the environment)"
    )
    limits = srv.add_argument_group("connection limits")
    limits.add_argument(
        "--limit-concurrency",
        type=int,
        default=1000,
        help="requests in progress at once (a body received, the answer not finished), per "
        "worker; more get 503; idle connections and bodies still arriving do not count "
        "(default: 1000; 0: no limit)",
    )
    limits.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=5,
        help="seconds an idle kept-alive connection stays open (default: 5)",
    )
    limits.add_argument(
        "--max-header-size",
        type=int,
        default=64 * 1024,
        help="bytes of request line and headers; more get 431 (default: 65536)",
    )
    limits.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send its request headers (default: 10)",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send its request body, plus one for every "
        "--min-body-rate bytes it sent; beyond, 408 (default: 10)",
    )
    limits.add_argument(
        "--min-body-rate",
        type=float,
        default=1024.0,
        help="bytes a second a body slower than --body-timeout must keep up (default: 1024)",
    )
    srv.add_argument(
        "--responses-db",
        metavar="PATH",
        help="SQLite file for stored Responses API answers, shared by the workers "
        f"(default: $ROBUTLER_RESPONSES_DB, else {DEFAULT_RESPONSES_DB})",
    )
    srv.add_argument(
        "--metrics",
        action="store_true",
        help="Prometheus metrics on GET /metrics, every worker's (needs robutler-sdk[metrics]; "
        "also ROBUTLER_METRICS=1)",
    )
    srv.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="log level of uvicorn and robutler (default: info)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `robutler` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
