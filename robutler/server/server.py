"""Server: a ServerBase that registers a list (or mapping) of agent objects."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .adapters import adapt, route_name, suggest_name
from .base import ServerBase

__all__ = ["Server"]

logger = logging.getLogger("robutler")


class Server(ServerBase):
    """Serve agent objects: `Server(agents=[agent, ...])` or `Server(agents={"name": agent})`.

    Each agent gets the routes of `ServerBase`, named by `agent.name` (else `str(agent)`)
    or by its mapping key. Mistakes (an object robutler cannot serve, a duplicate or
    unsafe name, a name that collides with a server route) raise at construction.
    FastAPI keyword arguments pass through.
    """

    def __init__(
        self, agents: Iterable[Any] | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if agents is None:
            pairs: list[tuple[str | None, Any]] = []
        elif isinstance(agents, Mapping):
            pairs = list(agents.items())
        elif isinstance(agents, (str, bytes)) or not isinstance(agents, Iterable):
            raise TypeError(
                f"Server(agents=...) takes a list of agents or a mapping of name to agent, "
                f"got {type(agents).__name__}"
            )
        else:
            pairs = [(None, agent) for agent in agents]
        self.agents: list[Any] = [agent for _, agent in pairs]
        for position, (key, agent) in enumerate(pairs):
            try:
                adapted = adapt(agent)
                name = (
                    key
                    if key is not None
                    else _name_of(agent, set(self.static_agents), self.reserved_names)
                )
                self.add_agent(
                    name,
                    adapted.handler,
                    description=adapted.description,
                    model=adapted.model,
                    pricing=adapted.pricing,
                )
            except (TypeError, ValueError) as exc:
                where = f"agents[{key!r}]" if key is not None else f"agents[{position}]"
                raise type(exc)(f"Server: {where}: {exc}") from None
            if adapted.problem is not None:
                self.readiness_checks.append(adapted.problem)
        problems = self.health_warnings()
        if problems:  # once, at start-up; each request it affects logs one line
            logger.warning("%s Until then its requests answer 503.", " ".join(problems))


def _name_of(agent: Any, taken: set[str], reserved: set[str]) -> str:
    """The route name of an agent given in a list, or a ValueError suggesting a usable one."""
    from .agents import check_name

    own = getattr(agent, "name", None)
    name = own if isinstance(own, str) else route_name(agent)
    if name in taken:
        reason, suggestion = "is already taken by another agent", f"{name}-2"
    elif name in reserved:
        reason, suggestion = f"collides with the server route /{name}", f"{name}-agent"
    else:
        try:
            return check_name(name, reserved)
        except ValueError:
            pass
        reason = "is empty" if not name else "is not URL-safe"
        suggestion = suggest_name(agent)
    if isinstance(own, str):
        what = f"its name {own!r}"
    elif inspect.isfunction(agent) or inspect.ismethod(agent):
        what = f"its function name {name!r}"
    else:
        what = f"it has no `name`, and its str() {_short(name)}"
    raise ValueError(
        f"a {type(agent).__name__} cannot be served under a route name: {what} {reason}. "
        f"Name it like {suggestion!r} (letters, digits, '-', '_', '.', '~', starting with a "
        f"letter or digit), or pass a mapping that names it: "
        f"Server(agents={{{suggestion!r}: agent}})."
    )


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
