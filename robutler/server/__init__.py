"""The robutler server core: ServerBase, Server, the request context, pricing."""

from .base import ServerBase
from .context import RequestState, current_context, get_context
from .lifecycle import StreamingWrapper
from .pricing import pricing
from .server import Server

__all__ = [
    "RequestState",
    "Server",
    "ServerBase",
    "StreamingWrapper",
    "current_context",
    "get_context",
    "pricing",
]
