"""robutler: serve AI agents behind OpenAI-compatible endpoints, and test them offline."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RobutlerServer", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "RobutlerServer":
        import warnings

        from .server import Server

        warnings.warn(
            "robutler.RobutlerServer is deprecated; use robutler.server.Server, which replaces it",
            DeprecationWarning,
            stacklevel=2,
        )
        return Server
    raise AttributeError(f"module 'robutler' has no attribute {name!r}")
