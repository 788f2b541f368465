"""The robutler server core: ServerBase, Server, the request context, pricing."""

from .base import ServerBase
from .context import RequestState, get_context
from .lifecycle import StreamingWrapper
from .pricing import pricing
from .server import Server

__all__ = ["RequestState", "Server", "ServerBase", "StreamingWrapper", "get_context", "pricing"]
