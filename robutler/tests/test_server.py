"""Deprecated: `from robutler.tests.test_server import create_test_client`.

Use `from robutler_testing import create_test_client`. This module holds no tests, and it
imports the testing package only when the old name is used, so the server core stays
free of it.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []  # `create_test_client` is served by __getattr__, with a warning


def __getattr__(name: str) -> Any:
    if name == "create_test_client":
        import warnings

        warnings.warn(
            "robutler.tests.test_server.create_test_client is deprecated; use "
            "`from robutler_testing import create_test_client`",
            DeprecationWarning,
            stacklevel=2,
        )
        from robutler_testing import create_test_client

        return create_test_client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
