"""`python -m robutler_testing.conformance --base-url URL [--agent NAME] [--api-key KEY]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

SUITE = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m robutler_testing.conformance",
        description="Check an OpenAI-compatible server with the official openai client. "
        "Without --base-url, a reference robutler server is started on 127.0.0.1. "
        "Other arguments go to pytest (e.g. -k stream, -x).",
    )
    parser.add_argument(
        "--base-url", help="the server to check (the client's base URL is URL/NAME)"
    )
    parser.add_argument(
        "--agent", help="agent NAME; default: the only agent a robutler server lists"
    )
    parser.add_argument("--api-key", help="bearer key the server accepts; enables the auth cases")
    parser.add_argument("--model", help="the request's model (default: the agent name)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the suite's cases with pytest; returns pytest's exit code."""
    import pytest

    args, pytest_args = build_parser().parse_known_args(argv)
    options = [
        f"{flag}={value}"
        for flag, value in (
            ("--base-url", args.base_url),
            ("--agent", args.agent),
            ("--api-key", args.api_key),
            ("--model", args.model),
        )
        if value is not None
    ]
    os.environ.setdefault("COLUMNS", "160")  # room for the table's "first problem" column
    return int(
        pytest.main(
            [
                str(SUITE),
                "-p",
                "robutler_testing.conformance.plugin",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(SUITE),
                "-c",
                os.devnull,  # the caller's pytest configuration is not the suite's
                "-q",
                *options,
                *pytest_args,
            ]
        )
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
