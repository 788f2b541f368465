"""Settings from the environment, and `.env` loading.

`.env` in the working directory is loaded once per process when python-dotenv is
installed; variables already set are never overridden.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

__all__ = ["FROM_ENV", "FromEnv", "env_list", "env_number", "load_env", "seconds"]


class FromEnv(Enum):
    FROM_ENV = "from the environment"

    def __repr__(self) -> str:
        return "FROM_ENV"


# The default of a setting whose None means "off": take it from the environment, else
# the built-in default.
FROM_ENV = FromEnv.FROM_ENV

_loaded: set[str] = set()


def load_env(path: str | os.PathLike[str] | None = None) -> bool:
    """Load `path` (default: `./.env`) into os.environ without overriding; True if read."""
    target = Path(path) if path is not None else Path.cwd() / ".env"
    key = str(target.resolve())
    if key in _loaded or not target.is_file():
        return False
    try:
        from dotenv import load_dotenv
    except ImportError:  # python-dotenv is optional at run time
        return False
    _loaded.add(key)
    load_dotenv(target, override=False)
    return True


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list of non-empty, stripped items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_number(name: str, problem: str) -> float | None:
    """The environment variable `name` as a number; None when it is unset or blank.
    Raises ValueError("`problem`, got '...'") when it is not a number."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{problem}, got {raw!r}") from None


def seconds(value: float | None, env: str, default: float | None, what: str) -> float | None:
    """A duration setting: `value` if given, else the environment variable `env`, else
    `default`; 0 (or "0") means off (None). Raises ValueError naming `what` and `env`."""
    if value is None:
        value = env_number(env, f"{env} ({what}) must be a number of seconds")
        if value is None:
            return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 (0: off), got {value!r}")
    return float(value) or None
