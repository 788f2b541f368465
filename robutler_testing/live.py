"""Run an ASGI app under a real uvicorn server on a free 127.0.0.1 port, in a thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["LiveServer"]


class LiveServer:
    """A uvicorn server for `app` on 127.0.0.1; `url` is its base URL once started.

    Use as a context manager, or call `start()` and `stop()`. Only loopback is bound.
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **uvicorn_kwargs: Any
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"LiveServer binds loopback only, not {host!r}")
        self.app = app
        self.host = host
        self.port = port
        self.uvicorn_kwargs = {"log_level": "warning", "lifespan": "on", **uvicorn_kwargs}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> LiveServer:
        import uvicorn

        config = uvicorn.Config(self.app, host=self.host, port=self.port, **self.uvicorn_kwargs)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="robutler-live-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited before it started; see its log above")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
