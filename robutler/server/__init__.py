"""The robutler server core: ServerBase, the request context, lifecycle types.

`Server`, which registers agent objects, and `pricing` arrive with their own modules.
"""

from .base import ServerBase
from .context import RequestState, get_context
from .lifecycle import StreamingWrapper

__all__ = ["RequestState", "ServerBase", "StreamingWrapper", "get_context"]
