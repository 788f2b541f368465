"""(c0) as a module attribute, for `robutler serve benchmarks.apps.robutler_served:app`
(the workers workload: `robutler serve --workers N` imports the app in every worker)."""

from __future__ import annotations

from benchmarks.apps.robutler_app import no_hooks

app = no_hooks()
