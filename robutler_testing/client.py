"""`create_test_client(app)`: a TestClient that keeps one event loop for its whole life."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

__all__ = ["RobutlerTestClient", "create_test_client"]


class RobutlerTestClient(TestClient):
    """A TestClient already started: startup ran and one event loop serves every request.

    A plain `TestClient` used without `with` runs each request on a new event loop, and
    clients cached across requests (the Agents SDK's HTTP client, for one) then fail with
    "Event loop is closed". `close()` (or leaving a `with` block) runs shutdown once.
    """

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._started = False
        self.__enter__()

    def __enter__(self) -> RobutlerTestClient:
        if not self._started:
            super().__enter__()
            self._started = True
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def close(self) -> None:
        """Run the app's shutdown and stop the event loop; safe to call twice."""
        if self._started:
            self._started = False
            super().__exit__(None, None, None)
        super().close()


def create_test_client(app: Any, **kwargs: Any) -> RobutlerTestClient:
    """A started test client for `app` (keyword arguments go to Starlette's TestClient)."""
    return RobutlerTestClient(app, **kwargs)
