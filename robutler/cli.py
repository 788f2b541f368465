"""`robutler serve [APP]`: serve a robutler app (or the built-in demo) with uvicorn."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
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
            if not callable(app):
                raise AppError(f"{module_name}:{name} is a {type(app).__name__}, not an ASGI app")
            return app, f"{module_name}:{name}"
    if attr:
        raise AppError(f"module {module_name!r} has no attribute {attr!r}")
    raise AppError(
        f"module {module_name!r} has no 'app' or 'server' attribute; name one as MODULE:ATTRIBUTE"
    )


def _banner(app: Any, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    names = sorted(getattr(app, "static_agents", {}) or {})
    lines = [f"robutler serving on {base}"]
    for name in names:
        lines.append(f"  agent {name:<12} {base}/{name}/chat/completions")
    if getattr(app, "dynamic_agents", None):
        lines.append(f"  dynamic agents    {base}/<name>/chat/completions")
    if getattr(getattr(app, "playground", None), "enabled", False):
        lines.append(f"  playground         {base}/playground   (chat in a browser)")
    example = names[0] if names else "NAME"
    lines += [
        "",
        "Try it:",
        f"  curl {base}/{example}/chat/completions -H 'Content-Type: application/json' \\",
        '    -d \'{"messages": [{"role": "user", "content": "Hello"}]}\'',
        "",
        "  from openai import OpenAI",
        f'  client = OpenAI(base_url="{base}/{example}", api_key="unused")',
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


def serve(args: argparse.Namespace) -> int:
    if args.env_file:
        from robutler.server.config import load_env

        if not Path(args.env_file).is_file():
            print(f"robutler: error: no such env file: {args.env_file}", file=sys.stderr)
            return 2
        load_env(args.env_file)
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

    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": args.log_level}
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
    parser = argparse.ArgumentParser(
        prog="robutler", description="Serve AI agents behind OpenAI-compatible endpoints."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    srv.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
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
