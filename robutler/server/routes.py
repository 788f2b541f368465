"""`RouteTable`: robutler's own routes, found with one dictionary lookup.

Starlette tries a router's routes in order, one regular expression each. A server with a
few agents has dozens of routes of its own (six per agent, the `/v1` front door, the
playground), so a request to the last agent registered would pay for every pattern before
it. The table is one route, first in the router: its paths are fixed except for a last
segment parameter (`/NAME/responses/{response_id}`, `/NAME/models/{model_id:path}`), so it
looks the path up instead of matching patterns. A path it does not know falls through to
the router's other routes (the user's own, `/health`, the docs) as before. Being first,
the table's paths win over a user's route for the same path.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RouteTable"]


class RouteTable(BaseRoute):
    """Routes added with `add(path, app, name)`; `path` is fixed, or ends with one
    parameter segment: `{name}` (one segment) or `{name:path}` (the rest of the path)."""

    def __init__(self) -> None:
        self.exact: dict[str, ASGIApp] = {}
        # "/NAME/responses/" -> (parameter name, whether it takes the rest of the path, app)
        self.prefixed: dict[str, tuple[str, bool, ASGIApp]] = {}
        self.names: dict[str, str] = {}  # route name -> path template
        self.sockets: dict[str, ASGIApp] = {}  # WebSocket apps, by their fixed path

    def add(self, path: str, app: ASGIApp, name: str) -> None:
        """Serve `path` with `app` (a plain ASGI app); `name` is for `url_path_for`."""
        head, _, last = path.rpartition("/")
        if last.startswith("{") and last.endswith("}"):
            param, _, convertor = last[1:-1].partition(":")
            if convertor not in ("", "path"):
                raise ValueError(f"a route table parameter is {{name}} or {{name:path}}: {path}")
            self.prefixed[head + "/"] = (param, convertor == "path", app)
        elif "{" in path:
            raise ValueError(f"only a route's last segment may be a parameter: {path}")
        else:
            self.exact[path] = app
        self.names[name] = path

    def add_socket(self, path: str, app: ASGIApp) -> None:
        """Serve WebSocket connections to the fixed `path` with `app`."""
        self.sockets[path] = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                app = self.sockets.get(get_route_path(scope))
                if app is not None:
                    return Match.FULL, {"endpoint": app}
            return Match.NONE, {}
        path = get_route_path(scope)
        app = self.exact.get(path)
        if app is not None:
            return Match.FULL, {"endpoint": app}
        # A parameter route: its prefix ends at the last slash (a one-segment value) or,
        # for a {name:path} parameter, at an earlier one.
        end = len(path)
        while (cut := path.rfind("/", 0, end)) >= 0:
            entry = self.prefixed.get(path[: cut + 1])
            if entry is not None:
                param, rest, app = entry
                value = path[cut + 1 :]
                if rest or (value and end == len(path)):
                    params = dict(scope.get("path_params") or ())
                    params[param] = value
                    return Match.FULL, {"endpoint": app, "path_params": params}
            end = cut
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["endpoint"](scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        template = self.names.get(name)
        if template is None:
            raise NoMatchFound(name, path_params)
        head, _, last = template.rpartition("/")
        if last.startswith("{"):
            param = last[1:-1].partition(":")[0]
            if set(path_params) != {param}:
                raise NoMatchFound(name, path_params)
            return URLPath(f"{head}/{path_params[param]}", protocol="http")
        if path_params:
            raise NoMatchFound(name, path_params)
        return URLPath(template, protocol="http")

    def __repr__(self) -> str:
        return f"RouteTable({len(self.names)} routes)"
