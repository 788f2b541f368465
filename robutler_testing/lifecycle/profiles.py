"""Hypothesis profiles for the lifecycle checks."""

from __future__ import annotations

import os
from typing import Any, Literal

from hypothesis import HealthCheck, Phase
from hypothesis import settings as Settings

PROFILE_ENV = "ROBUTLER_LIFECYCLE_PROFILE"


# --------------------------------------------------------------------------------------
# Profiles and the entry point

_SIZES: dict[str, dict[str, int]] = {
    "ci": {"asgi": 300, "live": 50, "machine": 30, "steps": 25},
    "deep": {"asgi": 4000, "live": 1000, "machine": 300, "steps": 40},
}
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
Settings.register_profile(
    "robutler-lifecycle-ci",
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=_HEALTH,
)
Settings.register_profile(
    "robutler-lifecycle-deep",
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_HEALTH,
)


def lifecycle_settings(
    kind: Literal["asgi", "live", "machine"] = "asgi", profile: str | None = None, **overrides: Any
) -> Settings:
    """Hypothesis settings for a lifecycle check of `kind`.

    `profile` is "ci" (derandomized, a few hundred scenarios, the default) or "deep"
    (thousands, random); by default it comes from the `ROBUTLER_LIFECYCLE_PROFILE`
    environment variable. `overrides` go to `hypothesis.settings`.
    """
    name = profile or os.environ.get(PROFILE_ENV) or "ci"
    if name not in _SIZES:
        raise ValueError(f"{PROFILE_ENV} must be one of {sorted(_SIZES)}, got {name!r}")
    sizes = _SIZES[name]
    values: dict[str, Any] = {"max_examples": sizes[kind]}
    if kind == "machine":
        values["stateful_step_count"] = sizes["steps"]
    values.update(overrides)
    return Settings(Settings.get_profile(f"robutler-lifecycle-{name}"), **values)
