"""`python -m robutler_testing.mock_openai --port 9000`: the mock upstream API until Ctrl-C.

Point any OpenAI client (or an agent that calls a model) at it with
`OPENAI_BASE_URL=http://127.0.0.1:9000/v1 OPENAI_API_KEY=unused`. It answers
`POST /v1/chat/completions` and `POST /v1/responses`, JSON or streamed: first the `--reply`
texts, in order, then "You said: ..." with the call's last user message.
"""

from __future__ import annotations

import argparse
import sys

from .mock import MockOpenAI
from .scripting import echo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m robutler_testing.mock_openai",
        description="Serve a mock OpenAI API (Chat Completions and Responses) on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    parser.add_argument(
        "--reply",
        action="append",
        default=[],
        metavar="TEXT",
        help="a scripted reply (repeat for several, served in order); then echoes",
    )
    args = parser.parse_args(argv)

    import uvicorn

    mock = MockOpenAI(strict=False, fallback=echo)
    for text in args.reply:
        mock.add_text(text)
    config = uvicorn.Config(
        mock.app,
        host=args.host,
        port=args.port,
        interface="asgi3",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)  # type: ignore[arg-type]
        if server.started:  # bound: say where, once
            print(
                f"mock_openai: the OpenAI API on http://{args.host}:{args.port}/v1 "
                f"({len(args.reply)} scripted repl(ies), then echo); Ctrl-C stops it",
                flush=True,
            )

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
